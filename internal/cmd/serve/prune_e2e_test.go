package serve_test

// Issue 12, bug 1: with `prune: true`, serve --kserve deleted the
// InferenceServices of models still in Git, because the controller plans
// one model at a time with a desired state holding that one model and the
// KServe target prunes everything else it manages.

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"github.com/modelsync/modelsync/internal/controller"
	"github.com/modelsync/modelsync/test/testenv"
)

// exampleServices are the InferenceServices the example repository asks
// for (namespace/name): every model in every environment it runs in.
var exampleServices = []string{
	"models-dev/customer-churn-predictor", "models-staging/customer-churn-predictor", "models-prod/customer-churn-predictor",
	"models-dev/llama2-7b-alpaca", "models-staging/llama2-7b-alpaca", "models-prod/llama2-7b-alpaca",
	"models-dev/fraud-detector-xgb",
}

// liveService is what identifies one InferenceService's incarnation and
// its last write.
type liveService struct {
	uid, resourceVersion, version string
}

// services lists the InferenceServices modelsync manages, by namespace/name.
func services(t *testing.T, dyn dynamic.Interface) map[string]liveService {
	t.Helper()
	list, err := dyn.Resource(testenv.InferenceServiceGVR()).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=modelsync"})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]liveService{}
	for _, o := range list.Items {
		out[o.GetNamespace()+"/"+o.GetName()] = liveService{uid: string(o.GetUID()), resourceVersion: o.GetResourceVersion(), version: o.GetLabels()["modelsync.dev/version"]}
	}
	return out
}

func missing(live map[string]liveService, want []string) []string {
	var out []string
	for _, w := range want {
		if _, ok := live[w]; !ok {
			out = append(out, w)
		}
	}
	return out
}

// isvcWrites lists the apiserver's record of writes to InferenceServices
// since a time, optionally only deletes.
func isvcWrites(t *testing.T, kube *testenv.Kube, since time.Time, onlyDeletes bool) []testenv.AuditEvent {
	t.Helper()
	evs, err := kube.AuditEvents()
	if err != nil {
		t.Fatal(err)
	}
	var out []testenv.AuditEvent
	for _, e := range evs {
		if !e.IsWrite() || e.ObjectRef == nil || e.ObjectRef.Resource != "inferenceservices" || e.RequestReceivedTimestamp.Before(since) {
			continue
		}
		if onlyDeletes && e.Verb != "delete" {
			continue
		}
		out = append(out, e)
	}
	return out
}

func eventsText(es []testenv.AuditEvent) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	return b.String()
}

// The real serve binary with --kserve on the example repository with
// prune: true keeps every model's InferenceServices through several full
// passes, leaves the others alone when one model changes, and prunes
// exactly a model removed from Git in one full pass.
func TestServePruneKeepsModelsInGit(t *testing.T) {
	kube := testenv.NewKubeWith(t, testenv.KubeOptions{AuditLog: true})
	dyn, err := dynamic.NewForConfig(kube.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	f := newCrashFixture(t)
	w := f.workdir(t)
	editFile(t, w, "modelsync.yaml", "\nprune: false\n", "\nprune: true\n")
	w.Commit("prune objects of models that leave Git")
	w.Push("main")

	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	start := time.Now()
	// A fetch every second and a full pass every 4 s: several full passes
	// fit in the test.
	p := startServe(t, append(f.env, "MODELSYNC_CACHE_DIR="+t.TempDir()), "--repo", f.repo, "--kserve", "--kubeconfig", kube.KubeconfigPath,
		"--interval", "1s", "--resync-interval", "4s", "--concurrency", "2", "--audit-log", auditPath)

	noDeletes := func(when string) {
		t.Helper()
		if d := isvcWrites(t, kube, start, true); len(d) > 0 {
			var ours []controller.AuditEntry
			for _, e := range auditEntries(t, auditPath) {
				if strings.Contains(e.Action, "delete") {
					ours = append(ours, e)
				}
			}
			t.Fatalf("%s: InferenceServices of models that are in Git were deleted; the apiserver's audit log:\n%smodelsync's audit log:\n%slive now: %v",
				when, eventsText(d), auditText(ours), slices.Sorted(maps.Keys(services(t, dyn))))
		}
	}

	// 1. The first pass creates every InferenceService and deletes none.
	waitUntil(t, "the first pass to create every InferenceService", 90*time.Second, func() bool {
		noDeletes("first pass")
		st, err := p.status(t)
		if err != nil {
			return false
		}
		ok, _ := attempted(st)
		return ok && len(missing(services(t, dyn), exampleServices)) == 0
	})
	first := services(t, dyn)
	passes := p.fullPasses(t)
	waitUntil(t, "three more full passes", 60*time.Second, func() bool {
		noDeletes("later full passes")
		return p.fullPasses(t) >= passes+3
	})
	noDeletes("later full passes")
	live := services(t, dyn)
	for _, name := range exampleServices {
		if l, ok := live[name]; !ok || l.uid != first[name].uid {
			t.Fatalf("%s was replaced or removed across full passes: before %+v, now %+v (present %v)", name, first[name], l, ok)
		}
	}
	for _, e := range auditEntries(t, auditPath) {
		if strings.Contains(e.Action, "delete-inferenceservice") {
			t.Fatalf("modelsync's audit log records a delete of a model in Git:\n%s", auditText([]controller.AuditEntry{e}))
		}
	}

	// 2. A commit changing one model leaves the other models' objects
	// untouched.
	const churn, fraud = "customer-churn-predictor", "fraud-detector-xgb"
	before := services(t, dyn)
	changed := time.Now()
	auditBefore := len(auditEntries(t, auditPath))
	editFile(t, w, "models/"+churn+"/model.yaml", "    dev:\n      version: 5\n", "    dev:\n      version: 4\n")
	w.Commit("churn dev back to v4")
	w.Push("main")
	waitUntil(t, "churn's dev InferenceService at v4", 60*time.Second, func() bool {
		return services(t, dyn)["models-dev/"+churn].version == "4"
	})
	passes = p.fullPasses(t)
	waitUntil(t, "a full pass after the change", 30*time.Second, func() bool { return p.fullPasses(t) >= passes+2 })
	after := services(t, dyn)
	for _, name := range exampleServices {
		if strings.HasSuffix(name, "/"+churn) {
			continue
		}
		if after[name] != before[name] {
			t.Errorf("%s changed although only %s changed in Git: before %+v, after %+v", name, churn, before[name], after[name])
		}
	}
	for _, e := range isvcWrites(t, kube, changed, false) {
		if e.ObjectRef.Name != churn {
			t.Errorf("the apiserver saw a write to another model's InferenceService: %s", e)
		}
	}
	for _, e := range auditEntries(t, auditPath)[auditBefore:] {
		if e.Model != churn {
			t.Errorf("modelsync wrote to %s for a change of %s only:\n%s", e.Model, churn, auditText([]controller.AuditEntry{e}))
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// 3. Removing a model from Git prunes exactly its objects, in one full
	// pass.
	before = services(t, dyn)
	removed := time.Now()
	auditBefore = len(auditEntries(t, auditPath))
	w.Remove("models/" + fraud)
	sha := w.Commit("remove " + fraud)
	w.Push("main")
	waitUntil(t, "the controller to fetch the removal", 30*time.Second, func() bool {
		st, err := p.status(t)
		return err == nil && strings.HasSuffix(st.Revision, sha)
	})
	// The pass that computes the new revision may be a partial one; the
	// next full pass must prune. Give it until a third one starts.
	passes = p.fullPasses(t)
	waitUntil(t, fraud+"'s InferenceService pruned within one full pass", 60*time.Second, func() bool {
		if _, ok := services(t, dyn)["models-dev/"+fraud]; !ok {
			return true
		}
		if p.fullPasses(t) >= passes+3 {
			t.Fatalf("%s's InferenceService still exists after full passes %d to %d; modelsync's audit log since the removal:\n%s",
				fraud, passes, passes+2, auditText(auditEntries(t, auditPath)[auditBefore:]))
		}
		return false
	})
	after = services(t, dyn)
	for _, name := range exampleServices {
		if strings.HasSuffix(name, "/"+fraud) {
			continue
		}
		if after[name].uid != before[name].uid {
			t.Errorf("%s was removed or replaced when %s left Git: before %+v, after %+v", name, fraud, before[name], after[name])
		}
	}
	var deletes []string
	for _, e := range isvcWrites(t, kube, removed, true) {
		deletes = append(deletes, e.ObjectRef.Namespace+"/"+e.ObjectRef.Name)
	}
	if !slices.Equal(deletes, []string{"models-dev/" + fraud}) {
		t.Errorf("the apiserver saw InferenceService deletes %v since the removal, want exactly models-dev/%s", deletes, fraud)
	}
	for _, e := range auditEntries(t, auditPath)[auditBefore:] {
		if e.Model != fraud && strings.Contains(e.Action, "delete") {
			t.Errorf("modelsync deleted something of %s when %s left Git:\n%s", e.Model, fraud, auditText([]controller.AuditEntry{e}))
		}
	}
}
