package controller

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/reconciler/reconcilertest"
)

// These tests run the controller's logic over in-memory targets: no Git
// server and no fetch. They set the desired state directly, as a fetch
// would, and drive keys through reconcile and triage.

var testNow = time.Date(2026, 3, 7, 10, 0, 0, 0, time.UTC)

type unit struct {
	c       *Controller
	ctx     context.Context
	targets []*reconcilertest.Target
	events  *fake.Clientset
}

func newUnit(t *testing.T, opts Options, targets ...*reconcilertest.Target) *unit {
	t.Helper()
	// The tests set the desired state themselves; the repository is
	// opened but never synced.
	opts.Git = newGit(t, t.TempDir())
	opts.Now = func() time.Time { return testNow }
	for _, tg := range targets {
		opts.Targets = append(opts.Targets, tg)
	}
	events := fake.NewClientset()
	opts.Events = events
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c.leaderCtx = ctx
	return &unit{c: c, ctx: ctx, targets: targets, events: events}
}

func (u *unit) setDesired(d *reconciler.DesiredState) {
	u.c.mu.Lock()
	u.c.desired = d
	u.c.mu.Unlock()
}

func (u *unit) reconcile(t *testing.T, model, env string) (time.Duration, error) {
	t.Helper()
	return u.c.reconcile(u.ctx, Key{Model: model, Environment: env})
}

func (u *unit) row(t *testing.T, model, env string) StatusRow {
	t.Helper()
	for _, r := range u.c.Status().Rows {
		if r.Model == model && r.Environment == env {
			return r
		}
	}
	t.Fatalf("no status row for %s/%s", model, env)
	return StatusRow{}
}

func (u *unit) eventCreates() []string {
	var out []string
	for _, a := range u.events.Actions() {
		if a.GetVerb() == "create" && a.GetResource().Resource == "events" {
			out = append(out, a.GetNamespace())
		}
	}
	return out
}

func appliedIDs(tg *reconcilertest.Target) []string {
	var out []string
	for _, a := range tg.Applied() {
		out = append(out, a.ID())
	}
	return out
}

func withPrune() *manifest.RepoConfig {
	return &manifest.RepoConfig{Prune: true, Environments: []manifest.Environment{{Name: "dev"}, {Name: "prod"}}}
}

// One work item plans one model: with prune on, it must not delete the
// other models' objects (the bug that deleted InferenceServices of models
// still in Git).
func TestReconcileOneKeyLeavesOtherModelsAlone(t *testing.T) {
	kserve := reconcilertest.New("kserve")
	for _, m := range []string{"churn", "fraud", "llama"} {
		kserve.SetLive(m, "dev", 1)
	}
	u := newUnit(t, Options{}, kserve)
	u.setDesired(reconcilertest.Whole(withPrune(),
		reconcilertest.Model("churn", reconcilertest.Env("dev", 2)),
		reconcilertest.Model("fraud", reconcilertest.Env("dev", 1)),
		reconcilertest.Model("llama", reconcilertest.Env("dev", 1))))
	if _, err := u.reconcile(t, "churn", "dev"); err != nil {
		t.Fatal(err)
	}
	if got := appliedIDs(kserve); !slices.Equal(got, []string{"kserve/set-version/churn/alias dev", "kserve/record-environments/churn/record"}) {
		t.Fatalf("applied %v", got)
	}
	if got := kserve.Models(); !slices.Equal(got, []string{"churn", "fraud", "llama"}) {
		t.Fatalf("live models after one key: %v", got)
	}
	if r := u.row(t, "churn", "dev"); r.State != StateSynced || r.Live != "v2" {
		t.Fatalf("churn/dev row = %+v", r)
	}
}

// Only the full pass sees models that left Git; it queues each one's key,
// whose run prunes exactly that model.
func TestFullPassPrunesExactlyTheModelThatLeftGit(t *testing.T) {
	kserve := reconcilertest.New("kserve")
	for _, m := range []string{"churn", "fraud", "llama"} {
		kserve.SetLive(m, "dev", 1)
		kserve.SetLive(m, "prod", 1)
	}
	u := newUnit(t, Options{}, kserve)
	d := reconcilertest.Whole(withPrune(),
		reconcilertest.Model("churn", reconcilertest.Env("dev", 1), reconcilertest.Env("prod", 1)),
		reconcilertest.Model("fraud", reconcilertest.Env("dev", 1), reconcilertest.Env("prod", 1)))
	// A broken model is still in Git: it keeps everything.
	d.Errors = []reconciler.ModelError{{Model: "broken", Message: "model.yaml:3: spec: expected a mapping"}}
	kserve.SetLive("broken", "dev", 1)
	u.setDesired(d)

	keys := u.c.triage(u.ctx, d)
	if !slices.Contains(keys, Key{Model: "llama"}) || slices.Contains(keys, Key{Model: "broken"}) {
		t.Fatalf("triage queued %v, want llama's key and not broken's", keys)
	}
	for _, k := range keys {
		if _, err := u.c.reconcile(u.ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if got := kserve.Models(); !slices.Equal(got, []string{"broken", "churn", "fraud"}) {
		t.Fatalf("live models after the full pass: %v", got)
	}
	for _, a := range kserve.Applied() {
		if a.Op == reconciler.OpDelete && a.Model != "llama" {
			t.Errorf("full pass changed %s", a.ID())
		}
	}
	if _, ok := u.c.items[Key{Model: "llama"}]; ok {
		t.Error("a model that left Git got a status row")
	}
}

// A wait at one target holds the change at every other target, the
// model-level record included, and the key says waiting with the reason.
func TestWaitingKeyIsWaitingNotSynced(t *testing.T) {
	registry, s3 := reconcilertest.New("mlflow"), reconcilertest.New("s3")
	for _, tg := range []*reconcilertest.Target{registry, s3} {
		tg.SetLive("churn", "prod", 3)
	}
	s3.Wait("churn", "prod", "v2 are not readable yet: waiting for restore (tier Standard)")
	u := newUnit(t, Options{}, registry, s3)
	u.setDesired(reconcilertest.Whole(withPrune(), reconcilertest.Model("churn", reconcilertest.Env("prod", 2))))

	after, err := u.reconcile(t, "churn", "prod")
	if err != nil {
		t.Fatal(err)
	}
	if got := appliedIDs(registry); len(got) != 0 {
		t.Fatalf("registry wrote while s3 waits: %v", got)
	}
	r := u.row(t, "churn", "prod")
	if r.State != StateWaiting || !strings.Contains(r.Message, "waiting for restore") || r.Live != "v3" {
		t.Fatalf("row = %+v", r)
	}
	if after != minWaitRecheck {
		t.Fatalf("requeue after %s, want %s", after, minWaitRecheck)
	}
	// The restore finished: the next look completes the change.
	s3.Wait("churn", "prod", "")
	if _, err := u.reconcile(t, "churn", "prod"); err != nil {
		t.Fatal(err)
	}
	if registry.Live("churn", "prod") != 2 || registry.Record("churn") != "prod=v2" {
		t.Fatalf("after the wait: prod=v%d record=%q", registry.Live("churn", "prod"), registry.Record("churn"))
	}
	if r := u.row(t, "churn", "prod"); r.State != StateSynced || r.Live != "v2" {
		t.Fatalf("row after the wait = %+v", r)
	}
}

// A standby plans but writes nothing: no action, no Event, not even for a
// failing model.
func TestStandbyWritesNothing(t *testing.T) {
	tg := reconcilertest.New("mlflow")
	tg.Break("fraud", "version 9 does not exist")
	u := newUnit(t, Options{}, tg)
	u.c.leaderCtx = nil
	u.setDesired(reconcilertest.Whole(nil,
		reconcilertest.Model("churn", reconcilertest.Env("dev", 2)),
		reconcilertest.Model("fraud", reconcilertest.Env("dev", 9))))
	if _, err := u.reconcile(t, "churn", "dev"); err != nil {
		t.Fatal(err)
	}
	if _, err := u.reconcile(t, "fraud", "dev"); err == nil {
		t.Fatal("a broken model reconciled without error")
	}
	if got := appliedIDs(tg); len(got) != 0 {
		t.Fatalf("standby applied %v", got)
	}
	if got := u.eventCreates(); len(got) != 0 {
		t.Fatalf("standby created %d Events", len(got))
	}
	if r := u.row(t, "churn", "dev"); r.State != StateOutOfSync {
		t.Fatalf("standby row = %+v", r)
	}
	if r := u.row(t, "fraud", "dev"); r.State != StateFailed {
		t.Fatalf("standby row = %+v", r)
	}
	// The same failure on the leader is recorded as a Warning Event.
	u.c.leaderCtx = u.ctx
	if _, err := u.reconcile(t, "fraud", "dev"); err == nil {
		t.Fatal("a broken model reconciled without error")
	}
	evs, err := u.events.CoreV1().Events("models-dev").List(u.ctx, metav1.ListOptions{})
	if err != nil || len(evs.Items) != 1 || evs.Items[0].Type != corev1.EventTypeWarning || evs.Items[0].Reason != "SyncFailed" {
		t.Fatalf("leader events = %+v, %v", evs, err)
	}
}

func TestApplyFailureFailsTheKeyAndAudits(t *testing.T) {
	tg := reconcilertest.New("mlflow")
	tg.FailApply("mlflow/set-version/churn/alias dev", errors.New("503 from registry"))
	var audit strings.Builder
	u := newUnit(t, Options{Audit: &audit}, tg)
	u.setDesired(reconcilertest.Whole(nil, reconcilertest.Model("churn", reconcilertest.Env("dev", 2))))
	if _, err := u.reconcile(t, "churn", "dev"); err == nil || !strings.Contains(err.Error(), "503 from registry") {
		t.Fatalf("err = %v", err)
	}
	if r := u.row(t, "churn", "dev"); r.State != StateFailed || !strings.Contains(r.LastError, "503 from registry") {
		t.Fatalf("row = %+v", r)
	}
	if !strings.Contains(audit.String(), `"result":"failed"`) || strings.Contains(audit.String(), "record-environments") {
		t.Fatalf("audit = %s", audit.String())
	}
}

func TestPartition(t *testing.T) {
	a := func(model, env, kind string) reconciler.Action {
		return reconciler.Action{Target: "t", Kind: kind, Model: model, Environment: env, Resource: kind + " " + env}
	}
	d := reconcilertest.Whole(nil, reconcilertest.Model("churn", reconcilertest.Env("dev", 1), reconcilertest.Env("prod", 1)))
	tg := &planOf{actions: []reconciler.Action{
		a("", "", "create-namespace"), a("churn", "dev", "alias"), a("churn", "prod", "alias"),
		a("churn", "", "tags"), a("churn", "staging", "delete-alias"),
	}}
	p, err := reconciler.BuildPlan(context.Background(), d, []reconciler.Target{tg})
	if err != nil {
		t.Fatal(err)
	}
	envs := map[string]bool{"dev": true, "prod": true}
	kinds := func(as []reconciler.Action) (out []string) {
		for _, a := range as {
			out = append(out, a.Kind+"@"+a.Environment)
		}
		return out
	}
	for _, tc := range []struct {
		key                              Key
		shared, mine, others, modelLevel []string
	}{
		{Key{"churn", "dev"}, []string{"create-namespace@"}, []string{"alias@dev"}, []string{"alias@prod"}, []string{"tags@", "delete-alias@staging"}},
		{Key{"churn", "prod"}, []string{"create-namespace@"}, []string{"alias@prod"}, []string{"alias@dev"}, []string{"tags@", "delete-alias@staging"}},
		{Key{"churn", ""}, []string{"create-namespace@"}, []string{"alias@dev", "alias@prod", "tags@", "delete-alias@staging"}, nil, nil},
	} {
		s := partition(p, tc.key, envs)
		if !slices.Equal(kinds(s.shared), tc.shared) || !slices.Equal(kinds(s.mine), tc.mine) ||
			!slices.Equal(kinds(s.others), tc.others) || !slices.Equal(kinds(s.modelLevel), tc.modelLevel) {
			t.Errorf("%s: shared %v mine %v others %v model-level %v", tc.key, kinds(s.shared), kinds(s.mine), kinds(s.others), kinds(s.modelLevel))
		}
	}
}

// planOf is a target that plans a fixed list of actions.
type planOf struct{ actions []reconciler.Action }

func (p *planOf) Name() string { return "t" }
func (p *planOf) Observe(context.Context, *reconciler.DesiredState) (reconciler.Observation, error) {
	return nil, nil
}
func (p *planOf) Plan(*reconciler.DesiredState, reconciler.Observation) reconciler.TargetPlan {
	return reconciler.TargetPlan{Actions: p.actions}
}
func (p *planOf) Apply(context.Context, reconciler.Action) error { return nil }

func TestDeriveOutcome(t *testing.T) {
	env := reconcilertest.Env("prod", 2)
	old := reconcilertest.Env("prod", 1)
	d := reconcilertest.Whole(nil, reconcilertest.Model("churn", env))
	tm := timing{interval: time.Minute, resync: 10 * time.Minute}
	open := testNow.Add(2 * time.Hour)
	alias := reconciler.Action{Target: "mlflow", Kind: "set-alias", Model: "churn", Environment: "prod", Resource: "alias prod", From: "v1", To: "v2"}
	wait := reconciler.Wait{Model: "churn", Environment: "prod", Target: "s3", Reason: "restore running"}
	base := func() *itemRun {
		return &itemRun{key: Key{"churn", "prod"}, now: testNow, desired: d, effEnv: &env, gitEnv: &env}
	}
	for _, tc := range []struct {
		name        string
		run         func(r *itemRun)
		prev        itemStatus
		state, live string
		message     string
		requeue     time.Duration
		runs        bool
	}{
		{name: "applied", run: func(r *itemRun) { r.result = &reconciler.ApplyResult{Applied: []reconciler.Action{alias}} },
			state: StateSynced, live: "v2", requeue: 0, runs: true},
		{name: "failed", run: func(r *itemRun) { r.err = errors.New("boom") }, state: StateFailed, message: "retrying with backoff"},
		{name: "suspended", run: func(r *itemRun) { r.suspended = true }, state: StateSuspended, message: "suspended in Git: nothing is changed"},
		{name: "waiting", run: func(r *itemRun) {
			r.share.waits = []reconciler.Wait{wait}
			r.share.heldMine = []reconciler.Action{alias}
		},
			state: StateWaiting, live: "v1", message: "s3: restore running", requeue: minWaitRecheck},
		{name: "waiting for an hour", prev: itemStatus{State: StateWaiting, WaitingSince: testNow.Add(-time.Hour)},
			run:   func(r *itemRun) { r.share.waits = []reconciler.Wait{wait} },
			state: StateWaiting, live: "v2", message: "s3: restore running", requeue: maxWaitRecheck},
		{name: "held actions without a wait of this key", run: func(r *itemRun) { r.share.heldMine = []reconciler.Action{alias} },
			state: StateWaiting, live: "v1", message: "held: another target waits for this model", requeue: minWaitRecheck},
		{name: "window holds", run: func(r *itemRun) {
			r.window = &heldEnv{window: WindowStatus{Reason: "deny window", NextOpen: &open}}
			r.share.mine = []reconciler.Action{alias}
		}, state: StateHeld, live: "v1", message: "sync window: deny window", requeue: 10 * time.Minute},
		{name: "window holds a key in sync", run: func(r *itemRun) {
			r.window = &heldEnv{window: WindowStatus{Reason: "deny window", NextOpen: &open}, known: true}
		}, state: StateSynced, live: "v2"},
		{name: "window holds an unknown state", run: func(r *itemRun) {
			r.window = &heldEnv{window: WindowStatus{Reason: "deny window", NextOpen: &open}}
			r.effEnv = &old
		}, state: StateHeld, live: "v1", message: "sync window: deny window", requeue: 10 * time.Minute},
		{name: "standby with changes", run: func(r *itemRun) { r.standby = true; r.share.mine = []reconciler.Action{alias} },
			state: StateOutOfSync, live: "v1", message: "standby replica: planned, not applied", requeue: time.Minute / 2},
		{name: "standby in sync", run: func(r *itemRun) { r.standby = true }, state: StateSynced},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			tc.run(r)
			o := deriveOutcome(r, tc.prev, tm)
			if o.status == nil {
				t.Fatal("no status")
			}
			s := o.status
			if s.State != tc.state || s.Message != tc.message || (tc.live != "" && s.Live != tc.live) || o.requeue != tc.requeue || (o.runs != nil) != tc.runs {
				t.Fatalf("got state %q message %q live %q requeue %s runs %v", s.State, s.Message, s.Live, o.requeue, o.runs != nil)
			}
		})
	}
	gone := &itemRun{key: Key{Model: "llama"}, now: testNow, desired: d, gone: true}
	if o := deriveOutcome(gone, itemStatus{}, tm); o.status != nil {
		t.Fatalf("a model that left Git got a status: %+v", o.status)
	}
}
