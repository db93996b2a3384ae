package controller

import (
	"errors"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/modelsync/modelsync/internal/analysis"
	"github.com/modelsync/modelsync/internal/canary"
	"github.com/modelsync/modelsync/reconciler/reconcilertest"
	"github.com/modelsync/modelsync/test/testenv"
)

// The canary record round-trips through a real kube-apiserver, a second
// reader (a new leader) sees the same evidence, and a write based on a
// stale read is refused instead of overwriting a newer look.
func TestConfigMapStoreRoundTripAndConflict(t *testing.T) {
	kube := testenv.NewKube(t)
	cs, err := kubernetes.NewForConfig(kube.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := kube.NewNamespace(t.Context(), "canary")
	if err != nil {
		t.Fatal(err)
	}
	a := &ConfigMapStore{Client: cs, Namespace: ns}
	b := &ConfigMapStore{Client: cs, Namespace: ns}
	k := Key{Model: "churn", Environment: "prod"}
	if rec, err := a.Get(t.Context(), k); err != nil || rec != nil {
		t.Fatalf("Get before any Put = %+v, %v; want nil, nil", rec, err)
	}
	start := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
	rec := &CanaryRecord{Model: k.Model, Environment: k.Environment, StableVersion: 3, CandidateVersion: 4, Outcome: OutcomeRunning,
		Revisions: canary.Revisions{Canary: "churn-predictor-00002", Stable: "churn-predictor-00001"},
		State: analysis.State{Started: start, Looks: 7, Windows: []analysis.Window{{Weight: 10, Started: start,
			Requests: analysis.Arms{Canary: analysis.Counts{Total: 412}, Stable: analysis.Counts{Total: 3690}},
			Metrics:  map[string]analysis.Arms{"errors": {Canary: analysis.Counts{Bad: 3, Total: 412}, Stable: analysis.Counts{Bad: 40, Total: 3690}}}}},
			Counters: map[string]analysis.Counter{}}}
	if err := a.Put(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(t.Context(), k)
	if err != nil || got == nil {
		t.Fatalf("second reader: %+v, %v", got, err)
	}
	if got.State.Looks != 7 || got.State.Windows[0].Metrics["errors"].Canary.Bad != 3 || got.Revisions.Canary != "churn-predictor-00002" {
		t.Fatalf("second reader sees %+v", got)
	}
	// Replica b writes a newer look; replica a's copy is now stale.
	got.State.Looks = 8
	if err := b.Put(t.Context(), got); err != nil {
		t.Fatal(err)
	}
	rec.State.Looks = 99
	if err := a.Put(t.Context(), rec); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale Put = %v, want ErrConflict", err)
	}
	// A second create of the same record is a conflict too.
	fresh := &CanaryRecord{Model: k.Model, Environment: k.Environment}
	if err := a.Put(t.Context(), fresh); !errors.Is(err, ErrConflict) {
		t.Fatalf("second create = %v, want ErrConflict", err)
	}
	final, err := a.Get(t.Context(), k)
	if err != nil || final.State.Looks != 8 {
		t.Fatalf("after the refused write: %+v, %v; want 8 looks", final, err)
	}
	if err := a.Delete(t.Context(), k); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(t.Context(), k); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if rec, err := a.Get(t.Context(), k); err != nil || rec != nil {
		t.Fatalf("Get after Delete = %+v, %v", rec, err)
	}
}

func TestConfigMapNameIsDistinctAndValid(t *testing.T) {
	a, b := ConfigMapName(Key{Model: "a-b", Environment: "c"}), ConfigMapName(Key{Model: "a", Environment: "b-c"})
	if a == b {
		t.Fatalf("two keys share ConfigMap %s", a)
	}
	long := ConfigMapName(Key{Model: string(make([]byte, 300)), Environment: "prod"})
	if len(long) > 253 {
		t.Fatalf("name of %d characters", len(long))
	}
}

// A controller restarted on the same cluster state (a new Controller whose
// record store is the same kube-apiserver) continues the same test: its
// first look gets the stored state, so counts and looks are not reset.
// This restarts the in-process controller, not a `serve` process.
func TestAnalysisRestartContinuesOnKubeStore(t *testing.T) {
	kube := testenv.NewKube(t)
	cs, err := kubernetes.NewForConfig(kube.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := kube.NewNamespace(t.Context(), "canary")
	if err != nil {
		t.Fatal(err)
	}
	store := &ConfigMapStore{Client: cs, Namespace: ns}
	a := newAnalysisUnit(t, analysis.ActionHold)
	a.c.opts.Analysis.Store = store
	a.setDesired(reconcilertest.Whole(nil, reconcilertest.Model("churn", canaryEnv(3, 4, 20))))
	a.step(t)
	a.step(t)
	b := newAnalysisUnit(t, analysis.ActionHold)
	b.c.opts.Analysis.Store = &ConfigMapStore{Client: cs, Namespace: ns}
	*b.now = *a.now
	b.setDesired(reconcilertest.Whole(nil, reconcilertest.Model("churn", canaryEnv(3, 4, 20))))
	b.step(t)
	rec, err := store.Get(t.Context(), Key{Model: "churn", Environment: "prod"})
	if err != nil || rec == nil {
		t.Fatalf("record: %+v, %v", rec, err)
	}
	if rec.State.Looks != 3 || !rec.State.Started.Equal(testNow.Add(time.Minute)) {
		t.Fatalf("after a restart: %d looks since %s, want 3 since the first look", rec.State.Looks, rec.State.Started)
	}
}
