package serve_test

// Issue 15, tests (b): the canary analysis end to end. The real modelsync
// binary (serve --kserve) runs against a real kube-apiserver, MLflow, a Git
// server and a real Prometheus scraping a test exporter that counts
// requests per Knative revision the way the queue-proxy does. No KServe or
// Knative controller runs here: kserveSim plays KServe's part, reading the
// InferenceService's spec and writing its status (revisions and traffic[])
// as KServe would, and the traffic generator routes requests to those
// revisions at the weights the status reports.

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/modelsync/modelsync/internal/canary"
	"github.com/modelsync/modelsync/internal/controller"
	"github.com/modelsync/modelsync/test/testenv"
)

const (
	canaryModel = "llama2-7b-alpaca"
	canaryEnv   = "staging"
	canaryNS    = "models-staging"
	canaryFile  = "models/" + canaryModel + "/model.yaml"
	// perTick requests every tick (100 ms): 100 requests a second. Enough
	// for the test to decide within a step; few enough that the second or
	// so between an advance and the scrape that first sees the new weight
	// does not look like a sample-ratio mismatch.
	perTick = 10
)

// The staging environment gets a canary with a short analysis: a look
// every 5 s (the shortest allowed), 10 s and 100 canary requests per step,
// and a 20 s check after promotion.
const (
	stagingStable = "    staging:\n      version: 3\n"
	stagingCanary = stagingStable + `      canary:
        version: 4
        steps: [20, 50, 80]
        weight: 20
        analysis:
          interval: 5s
          stepDuration: 10s
          minSamples: 100
          metrics:
            - kind: errors
          postPromotion:
            duration: 20s
`
)

// kserveSim plays KServe in Serverless mode for one InferenceService: each
// new storageUri becomes a new revision (Knative creates one per template
// change); with canaryTrafficPercent the latest revision gets that share
// and latestRolledoutRevision the rest; without it the latest revision gets
// everything and becomes the rolled-out one.
type kserveSim struct {
	dyn       dynamic.Interface
	ns, name  string
	mu        sync.Mutex
	seq       int
	uri       map[string]string // revision → storageUri
	stable    string            // latestRolledoutRevision
	previous  string            // previousRolledoutRevision
	latest    string
	canaryPct int // routed to latest while latest != stable
}

func (s *kserveSim) routes() (stable, latest string, pct int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stable, s.latest, s.canaryPct
}

// sync reads the InferenceService and writes its status when the routing
// changed.
func (s *kserveSim) sync(ctx context.Context) error {
	res := s.dyn.Resource(testenv.InferenceServiceGVR()).Namespace(s.ns)
	obj, err := res.Get(ctx, s.name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	uri, _, _ := unstructured.NestedString(obj.Object, "spec", "predictor", "model", "storageUri")
	pct, hasPct, _ := unstructured.NestedInt64(obj.Object, "spec", "predictor", "canaryTrafficPercent")
	s.mu.Lock()
	changed := false
	if s.latest == "" || uri != s.uri[s.latest] {
		if s.stable != "" && uri == s.uri[s.stable] {
			s.latest = s.stable // back to the rolled-out template
		} else {
			s.seq++
			s.latest = fmt.Sprintf("%s-predictor-%05d", s.name, s.seq)
			s.uri[s.latest] = uri
		}
		changed = true
	}
	want := int(pct)
	if !hasPct || s.latest == s.stable {
		if s.stable != s.latest {
			s.previous, s.stable = s.stable, s.latest
			changed = true
		}
		want = 0
	}
	if want != s.canaryPct {
		s.canaryPct, changed = want, true
	}
	var traffic []any
	if s.latest != s.stable {
		traffic = []any{
			map[string]any{"revisionName": s.stable, "percent": int64(100 - s.canaryPct), "latestRevision": false},
			map[string]any{"revisionName": s.latest, "percent": int64(s.canaryPct), "latestRevision": true, "tag": "latest"},
		}
	} else {
		traffic = []any{map[string]any{"revisionName": s.stable, "percent": int64(100), "latestRevision": true}}
	}
	pred := map[string]any{"latestCreatedRevision": s.latest, "latestReadyRevision": s.latest,
		"latestRolledoutRevision": s.stable, "traffic": traffic}
	if s.previous != "" {
		pred["previousRolledoutRevision"] = s.previous
	}
	s.mu.Unlock()
	if _, ok, _ := unstructured.NestedMap(obj.Object, "status", "components", "predictor"); ok && !changed {
		return nil
	}
	if err := unstructured.SetNestedMap(obj.Object, map[string]any{"predictor": pred}, "status", "components"); err != nil {
		return err
	}
	_, err = res.UpdateStatus(ctx, obj, metav1.UpdateOptions{})
	return err
}

// traffic generates the queue-proxy's request counts: perTick requests
// each tick split between the revisions at the routed weights, with a 5xx
// share per role that the test sets.
type traffic struct {
	mu                   sync.Mutex
	canaryErr, stableErr float64
	// promotedErr, when set, is the error share of a revision that has
	// all traffic (after a promotion) instead of stableErr.
	promotedErr float64
	acc, accBad map[string]float64
}

func (tr *traffic) setPromotedErrors(e float64) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.promotedErr = e
}

func (tr *traffic) setErrors(canary, stable float64) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.canaryErr, tr.stableErr = canary, stable
}

func (tr *traffic) tick(sim *kserveSim, count func(rev, code, class string, n float64)) {
	stable, latest, pct := sim.routes()
	if stable == "" {
		return
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	arms := []struct {
		rev        string
		share, err float64
	}{{stable, float64(100-pct) / 100, tr.stableErr}}
	if latest == stable && tr.promotedErr > 0 {
		arms[0].err = tr.promotedErr
	}
	if latest != stable {
		arms = append(arms, struct {
			rev        string
			share, err float64
		}{latest, float64(pct) / 100, tr.canaryErr})
	}
	for _, a := range arms {
		// Fractions carry over to the next tick, so the counts follow
		// the routed shares exactly over time.
		tr.acc[a.rev] += perTick * a.share
		n := math.Floor(tr.acc[a.rev])
		tr.acc[a.rev] -= n
		tr.accBad[a.rev] += n * a.err
		bad := math.Floor(tr.accBad[a.rev])
		tr.accBad[a.rev] -= bad
		count(a.rev, "200", "2xx", n-bad)
		count(a.rev, "500", "5xx", bad)
	}
}

// isvcPredictor reads the InferenceService's storageUri, canary weight
// and version label.
func isvcPredictor(t *testing.T, dyn dynamic.Interface) (uri string, pct int64, hasPct bool, version string) {
	t.Helper()
	obj, err := dyn.Resource(testenv.InferenceServiceGVR()).Namespace(canaryNS).Get(context.Background(), canaryModel, metav1.GetOptions{})
	if err != nil {
		return "", 0, false, ""
	}
	uri, _, _ = unstructured.NestedString(obj.Object, "spec", "predictor", "model", "storageUri")
	pct, hasPct, _ = unstructured.NestedInt64(obj.Object, "spec", "predictor", "canaryTrafficPercent")
	return uri, pct, hasPct, obj.GetLabels()["modelsync.dev/version"]
}

func TestServeCanaryAnalysisEndToEnd(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kube := testenv.NewKube(t)
	dyn, err := dynamic.NewForConfig(kube.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kubernetes.NewForConfig(kube.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	// The controller's namespace, where the canary records live.
	ctrlNS, err := kube.NewNamespace(ctx, "modelsync")
	if err != nil {
		t.Fatal(err)
	}
	store := &controller.ConfigMapStore{Client: kc, Namespace: ctrlNS}
	key := controller.Key{Model: canaryModel, Environment: canaryEnv}

	exp := testenv.NewExporter()
	defer exp.Close()
	requests := exp.CounterVec("revision_app_request_count", "The number of requests that are routed to queue-proxy",
		"namespace_name", "configuration_name", "revision_name", "pod_name", "response_code", "response_code_class")
	prom := testenv.NewPrometheus(t, exp.Target)

	f := newCrashFixture(t)
	w := f.workdir(t)
	editFile(t, w, "modelsync.yaml", "address: http://prometheus.monitoring.svc:9090", "address: "+prom.URL)
	editFile(t, w, canaryFile, "    staging:\n      version: 4\n", stagingStable)
	w.Commit("staging runs llama v3; the test's Prometheus")
	w.Push("main")

	sim := &kserveSim{dyn: dyn, ns: canaryNS, name: canaryModel, uri: map[string]string{}}
	tr := &traffic{acc: map[string]float64{}, accBad: map[string]float64{}}
	tr.setErrors(0, 0.01)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			_ = sim.sync(ctx) // not there yet, or a conflict with an apply: again next tick
			tr.tick(sim, func(rev, code, class string, n float64) {
				requests.WithLabelValues(canaryNS, canaryModel+"-predictor", rev, rev+"-deployment-0", code, class).Add(n)
			})
		}
	}()

	env := append(f.env, "MODELSYNC_CACHE_DIR="+t.TempDir(), "POD_NAMESPACE="+ctrlNS)
	args := []string{"--repo", f.repo, "--kserve", "--kubeconfig", kube.KubeconfigPath, "--interval", "1s", "--resync-interval", "30s",
		"--concurrency", "2", "--canary-write-back", "direct"}
	p := startServe(t, env, args...)
	waitUntil(t, "KServe rolled out staging v3", 90*time.Second, func() bool {
		st, _, _ := sim.routes()
		_, _, _, v := isvcPredictor(t, dyn)
		return st != "" && v == "3"
	})
	t.Logf("setup done after %s", time.Since(start).Round(time.Millisecond))

	// record reads the canary's record from the cluster.
	record := func() *controller.CanaryRecord {
		rec, err := store.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	aliases := func() map[string]int {
		a, err := f.admin.ReadAliases(ctx, canaryModel)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	// gitHead pulls the workdir and returns the last commit's message and
	// the model file.
	gitHead := func() (string, string) {
		w.Run("pull", "--quiet", "--ff-only", "origin", "main")
		b, err := os.ReadFile(filepath.Join(w.Dir, canaryFile))
		if err != nil {
			t.Fatal(err)
		}
		return w.Run("log", "-1", "--format=%B"), string(b)
	}
	startCanary := func(what string) {
		t.Helper()
		w.Run("pull", "--quiet", "--ff-only", "origin", "main")
		editFile(t, w, canaryFile, stagingStable, stagingCanary)
		w.Commit(what)
		w.Push("main")
		waitUntil(t, "the canary routed at 20%", 60*time.Second, func() bool {
			_, _, pct := sim.routes()
			return pct == 20 && aliases()[canaryEnv+"-canary"] == 4
		})
	}
	describe := func() string {
		rec := record()
		if rec == nil {
			return "no record"
		}
		d := ""
		if rec.Decision != nil {
			d = string(rec.Decision.Action) + ": " + rec.Decision.Reason
		}
		return fmt.Sprintf("outcome %s step %d looks %d, last decision %s, write-back %q %q", rec.Outcome, rec.State.Step, rec.State.Looks, d, rec.WriteBack, rec.WriteBackError)
	}

	// 1. A bad candidate: 30% of its requests fail against 1% of stable's.
	t.Run("bad candidate rolled back", func(t *testing.T) {
		t0 := time.Now()
		tr.setErrors(0.30, 0.01)
		startCanary("staging: canary llama v4 (bad)")
		waitUntil(t, "the rollback written to Git", 90*time.Second, func() bool {
			rec := record()
			return rec != nil && rec.Outcome == controller.OutcomeRolledBack && rec.WriteBack != ""
		})
		rec := record()
		if rec.Decision == nil || !strings.HasPrefix(rec.Decision.Reason, "errors: canary worse than stable") {
			t.Errorf("rollback decision %+v, want the errors test rejecting", rec.Decision)
		}
		// The traffic is back on stable, the canary alias gone.
		waitUntil(t, "all traffic back on v3 and the canary alias removed", 60*time.Second, func() bool {
			_, pct, hasPct, v := isvcPredictor(t, dyn)
			a := aliases()
			_, canaryAlias := a[canaryEnv+"-canary"]
			return (!hasPct || pct == 0) && v == "3" && !canaryAlias && a[canaryEnv] == 3
		})
		msg, file := gitHead()
		for _, want := range []string{"canary: roll back " + canaryModel + " in " + canaryEnv + " to v3 (drop canary v4)", "Evidence:", "- errors: rate ratio", "revisions: canary "} {
			if !strings.Contains(msg, want) {
				t.Errorf("write-back commit lacks %q:\n%s", want, msg)
			}
		}
		if !strings.Contains(file, stagingStable+"    prod:") {
			t.Errorf("write-back left staging's canary in %s:\n%s", canaryFile, file)
		}
		// Git agrees now: the record has done its job and is released.
		waitUntil(t, "the record released once Git agrees", 60*time.Second, func() bool { return record() == nil })
		t.Logf("rolled back and written back in %s", time.Since(t0).Round(time.Millisecond))
	})
	if t.Failed() {
		t.Fatalf("after the bad canary: %s", describe())
	}

	// 2 and 3. A good candidate (0.5% errors against 10%) walks 20, 50 and
	// 80%; at 50% the controller is killed with SIGKILL and a new process
	// continues the same test from the record in the cluster. Once it has
	// all traffic it fails 40% of its requests: the check after promotion
	// reverts it.
	t.Run("good candidate promoted across a kill -9, then reverted", func(t *testing.T) {
		t0 := time.Now()
		tr.setErrors(0.005, 0.10)
		startCanary("staging: canary llama v4 (good)")
		tr.setPromotedErrors(0.40)
		defer tr.setPromotedErrors(0)
		seen := map[int64]bool{}
		watch := func() {
			if _, pct, hasPct, _ := isvcPredictor(t, dyn); hasPct {
				seen[pct] = true
			}
		}
		waitUntil(t, "the advance to 50%", 90*time.Second, func() bool {
			watch()
			rec := record()
			if rec != nil && rec.Outcome != controller.OutcomeRunning {
				t.Fatalf("canary ended before 50%%: %s", describe())
			}
			_, pct, _, _ := isvcPredictor(t, dyn)
			return pct == 50 && rec != nil && rec.State.Step == 1 && !rec.PendingAdvance
		})
		p.kill9()
		before := record()
		if before == nil || before.Outcome != controller.OutcomeRunning || before.State.Step != 1 {
			t.Fatalf("the kill came too late: %s", describe())
		}
		step1 := before.State.Windows[0]
		if step1.Requests.Canary.Total < 100 {
			t.Errorf("step 1 counted %d canary requests, want at least minSamples 100", step1.Requests.Canary.Total)
		}
		t.Logf("killed at 50%% after %d looks; step 1: canary %+v stable %+v", before.State.Looks, step1.Metrics["errors"].Canary, step1.Metrics["errors"].Stable)
		p = startServe(t, env, args...)
		waitUntil(t, "the restarted controller's first look", 90*time.Second, func() bool {
			rec := record()
			if rec != nil && (rec.State.Looks < before.State.Looks || !rec.State.Started.Equal(before.State.Started)) {
				t.Fatalf("the restarted controller started a new test: before the kill %d looks since %s, now %d since %s",
					before.State.Looks, before.State.Started, rec.State.Looks, rec.State.Started)
			}
			return rec != nil && rec.State.Looks > before.State.Looks
		})
		after := record()
		// The same test goes on: the looks count on, the start and the
		// first step's counts are those before the kill.
		if !after.State.Started.Equal(before.State.Started) || after.State.Windows[0].Requests != step1.Requests ||
			after.State.Windows[0].Metrics["errors"] != step1.Metrics["errors"] || after.Revisions != before.Revisions {
			t.Fatalf("the restart reset the evidence:\nbefore %+v\nafter  %+v", before.State, after.State)
		}
		waitUntil(t, "the promotion written to Git", 120*time.Second, func() bool {
			watch()
			rec := record()
			if rec != nil && rec.Outcome == controller.OutcomeRolledBack {
				t.Fatalf("the good canary was rolled back: %s", describe())
			}
			return rec != nil && rec.Outcome == controller.OutcomePromoted && rec.WriteBack != ""
		})
		rec := record()
		if rec.State.Looks <= after.State.Looks || len(rec.State.Windows) != 3 || rec.State.Windows[0].Requests != step1.Requests {
			t.Errorf("promoted on evidence that does not continue the test before the kill: %+v", rec.State)
		}
		// The InferenceService followed every step, then serves v4 alone.
		waitUntil(t, "v4 serving all traffic and the aliases moved", 60*time.Second, func() bool {
			_, _, hasPct, v := isvcPredictor(t, dyn)
			a := aliases()
			_, canaryAlias := a[canaryEnv+"-canary"]
			return !hasPct && v == "4" && !canaryAlias && a[canaryEnv] == 4
		})
		for _, wt := range []int64{20, 50, 80} {
			if !seen[wt] {
				t.Errorf("canaryTrafficPercent never was %d%% (saw %v)", wt, seen)
			}
		}
		if _, latest, pct := sim.routes(); pct != 0 || latest == "" {
			t.Errorf("KServe routes %d%% to a canary after the promotion", pct)
		}
		msg, file := gitHead()
		for _, want := range []string{"canary: promote " + canaryModel + " in " + canaryEnv + " to v4", "Evidence:", "- errors: rate ratio", "step 3 at 80%"} {
			if !strings.Contains(msg, want) {
				t.Errorf("write-back commit lacks %q:\n%s", want, msg)
			}
		}
		if !strings.Contains(file, "    staging:\n      version: 4\n    prod:") {
			t.Errorf("write-back did not set staging to v4 without a canary:\n%s", file)
		}
		t.Logf("promoted and written back in %s", time.Since(t0).Round(time.Millisecond))

		// The check after promotion: v4's 40% errors over the 20 s after
		// the promotion against v3's 10% over the 20 s before it.
		waitUntil(t, "the revert written to Git", 90*time.Second, func() bool {
			rec := record()
			if rec != nil && rec.Verification != nil && rec.Verification.Result == canary.VerifyVerified {
				t.Fatalf("the degraded promotion was verified: %s", describe())
			}
			return rec != nil && rec.Outcome == controller.OutcomeReverted && rec.WriteBack != ""
		})
		v := record().Verification
		if v.Promoted != rec.Revisions.Canary || v.Previous != rec.Revisions.Stable || v.By != "analysis" || v.Decision == nil ||
			len(v.Decision.Metrics) == 0 || v.Decision.Metrics[0].Canary.Total == 0 || v.Decision.Metrics[0].Stable.Total == 0 {
			t.Errorf("check after promotion: %+v", v)
		}
		waitUntil(t, "v3 serving all traffic again and the alias moved back", 60*time.Second, func() bool {
			_, _, hasPct, ver := isvcPredictor(t, dyn)
			return !hasPct && ver == "3" && aliases()[canaryEnv] == 3
		})
		msg, file = gitHead()
		for _, want := range []string{"canary: revert " + canaryModel + " in " + canaryEnv + " to v3 (promoted v4 failed its check after promotion)",
			"Evidence:", "- errors: rate ratio", "windows: previous revision " + v.Previous} {
			if !strings.Contains(msg, want) {
				t.Errorf("revert commit lacks %q:\n%s", want, msg)
			}
		}
		if !strings.Contains(file, stagingStable+"    prod:") {
			t.Errorf("the revert did not set staging back to v3:\n%s", file)
		}
		waitUntil(t, "the record released once Git agrees", 60*time.Second, func() bool { return record() == nil })
		t.Logf("reverted and written back in %s", time.Since(t0).Round(time.Millisecond))
	})
	if t.Failed() {
		t.Logf("the canary record at the end: %s", describe())
	}
	t.Logf("total %s", time.Since(start).Round(time.Millisecond))
}
