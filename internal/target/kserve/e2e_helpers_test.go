package kserve

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/test/testenv"
)

// requestCounter counts the HTTP requests a client makes, by method.
type requestCounter struct {
	reads, writes atomic.Int64

	mu sync.Mutex
	// paths are "METHOD path" of every request, in order.
	paths []string
}

func (c *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		c.mu.Lock()
		c.paths = append(c.paths, r.Method+" "+r.URL.Path)
		c.mu.Unlock()
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			c.reads.Add(1)
		default:
			// A dry-run apply writes nothing but is counted here too, so a
			// zero proves neither writes nor dry-runs happened.
			c.writes.Add(1)
		}
		return rt.RoundTrip(r)
	})
}

func (c *requestCounter) total() int64 { return c.reads.Load() + c.writes.Load() }

// namespaceReads lists the requests that read Namespace objects (GET
// /api/v1/namespaces[/name]), which modelsync must never need.
func (c *requestCounter) namespaceReads() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, p := range c.paths {
		method, path, _ := strings.Cut(p, " ")
		rest, ok := strings.CutPrefix(path, "/api/v1/namespaces")
		if method == http.MethodGet && ok && !strings.Contains(strings.TrimPrefix(rest, "/"), "/") {
			out = append(out, p)
		}
	}
	return out
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// world is one test's view of the cluster: the target under test (with
// counted requests) and a separate client playing KServe's controller and
// human operators.
type world struct {
	t       *testing.T
	ctx     context.Context
	kube    *testenv.Kube
	target  *Target
	counter *requestCounter
	dyn     dynamic.Interface
}

// countedTarget is a target whose every request goes through counter.
func countedTarget(tb testing.TB, kube *testenv.Kube, cfg Config, counter *requestCounter, locator reconciler.ArtifactLocator) *Target {
	tb.Helper()
	return countedTargetAs(tb, kube.RESTConfig, cfg, counter, locator)
}

func countedTargetAs(tb testing.TB, restConfig *rest.Config, cfg Config, counter *requestCounter, locator reconciler.ArtifactLocator) *Target {
	tb.Helper()
	rc := rest.CopyConfig(restConfig)
	rc.WrapTransport = counter.wrap
	target, err := New(cfg, locator, rc)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(target.Close)
	return target
}

func newWorld(t *testing.T, kube *testenv.Kube, cfg Config, locator reconciler.ArtifactLocator) *world {
	t.Helper()
	return newWorldAs(t, kube, kube.RESTConfig, cfg, locator)
}

// newWorldAs is newWorld with the target authenticating as rc says (a
// user RBAC restricts), while the test's own client stays admin.
func newWorldAs(t *testing.T, kube *testenv.Kube, rc *rest.Config, cfg Config, locator reconciler.ArtifactLocator) *world {
	t.Helper()
	counter := &requestCounter{}
	target := countedTargetAs(t, rc, cfg, counter, locator)
	dyn, err := dynamic.NewForConfig(kube.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	return &world{t: t, ctx: t.Context(), kube: kube, target: target, counter: counter, dyn: dyn}
}

func (w *world) namespace(prefix string) string {
	w.t.Helper()
	ns, err := w.kube.NewNamespace(w.ctx, prefix)
	if err != nil {
		w.t.Fatal(err)
	}
	return ns
}

func (w *world) plan(d *reconciler.DesiredState) *reconciler.Plan {
	w.t.Helper()
	p, err := reconciler.BuildPlan(w.ctx, d, []reconciler.Target{reconciler.Typed(w.target)})
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

func (w *world) apply(p *reconciler.Plan) {
	w.t.Helper()
	res, err := reconciler.Apply(w.ctx, p, []reconciler.Target{reconciler.Typed(w.target)}, reconciler.ApplyOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	if !res.OK() {
		w.t.Fatalf("apply failed: %+v", res.Failed)
	}
}

// quiet asserts that a plan for d has nothing to do and cost no request.
func (w *world) quiet(d *reconciler.DesiredState) {
	w.t.Helper()
	before := w.counter.total()
	p := w.plan(d)
	if p.HasChanges() || len(p.Errors()) > 0 {
		w.t.Fatalf("expected a quiet plan, got actions %s errors %v", actionSummary(p.Actions()), p.Errors())
	}
	if n := w.counter.total() - before; n != 0 {
		w.t.Fatalf("a no-op resync made %d requests (reads %d, writes %d overall); want 0", n, w.counter.reads.Load(), w.counter.writes.Load())
	}
}

func (w *world) get(ns, name string) *unstructured.Unstructured {
	w.t.Helper()
	o, err := w.dyn.Resource(inferenceServiceGVR).Namespace(ns).Get(w.ctx, name, metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	return o
}

// seen makes the target's next Observe wait until its cache shows a write
// the test made behind its back (status, hand edits), as it does for its own.
func (w *world) seen(o *unstructured.Unstructured) {
	w.target.caches.recordWrite(objKey{inferenceServiceGVR, o.GetNamespace(), o.GetName()}, o.GetResourceVersion())
}

// setStatus writes the status subresource as KServe's controller would.
// No KServe controller runs against the test apiserver, so the tests play
// its part with the status shapes KServe documents.
func (w *world) setStatus(ns, name string, status map[string]any) {
	w.t.Helper()
	o := w.get(ns, name)
	o.Object["status"] = status
	out, err := w.dyn.Resource(inferenceServiceGVR).Namespace(ns).UpdateStatus(w.ctx, o, metav1.UpdateOptions{FieldManager: "kserve-controller"})
	if err != nil {
		w.t.Fatal(err)
	}
	w.seen(out)
}

// knativeStatus is a ready Knative-mode status: latest ready revision
// `latest`, last rolled-out `rolledOut`, and the split KServe would build.
func knativeStatus(created, latest, rolledOut string, canaryPct int64) map[string]any {
	traffic := []any{map[string]any{"revisionName": latest, "latestRevision": true, "percent": int64(100)}}
	if canaryPct >= 0 && canaryPct < 100 && rolledOut != "" && rolledOut != latest {
		traffic = []any{
			map[string]any{"revisionName": latest, "latestRevision": true, "percent": canaryPct, "tag": "latest"},
			map[string]any{"revisionName": rolledOut, "latestRevision": false, "percent": 100 - canaryPct, "tag": "prev"},
		}
	}
	return map[string]any{
		"deploymentMode": "Serverless",
		"components": map[string]any{"predictor": map[string]any{
			"latestCreatedRevision":   created,
			"latestReadyRevision":     latest,
			"latestRolledoutRevision": rolledOut,
			"traffic":                 traffic,
		}},
		"conditions": []any{
			map[string]any{"type": "PredictorReady", "status": "True", "lastTransitionTime": "2026-09-01T10:00:00Z"},
			map[string]any{"type": "Ready", "status": "True", "lastTransitionTime": "2026-09-01T10:00:00Z"},
		},
		"modelStatus": map[string]any{"transitionStatus": "UpToDate", "states": map[string]any{"activeModelState": "Loaded", "targetModelState": "Loaded"}},
	}
}

func actionSummary(as []reconciler.Action) string {
	var parts []string
	for _, a := range as {
		s := a.Kind + " " + a.Model + "/" + a.Environment + " " + a.Resource + " " + a.From + "->" + a.To
		if a.Drift {
			s += " (drift)"
		}
		parts = append(parts, s)
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

func kinds(as []reconciler.Action) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Kind
	}
	return out
}

// oneModel is a desired state with one model in one environment.
func oneModel(cfg *manifest.RepoConfig, env reconciler.DesiredEnv, model string) *reconciler.DesiredState {
	return &reconciler.DesiredState{Revision: env.Revision, Config: cfg, Models: []reconciler.DesiredModel{desiredModel(model, env)}}
}

func repoWith(models ...string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for _, m := range models {
		modelFiles(fsys, m, "", "")
	}
	return fsys
}

func storageURI(o *unstructured.Unstructured) string {
	s, _, _ := unstructured.NestedString(o.Object, "spec", "predictor", "model", "storageUri")
	return s
}

// isvcRules are what modelsync needs in an environment namespace.
func isvcRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{KServeGroup}, Resources: []string{"inferenceservices"}, Verbs: []string{"list", "watch", "create", "patch", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create"}},
	}
}

// rbacUser returns a client configuration for a new user granted rules:
// in namespace ns (a Role and RoleBinding there), or everywhere when ns is
// empty (a ClusterRole and ClusterRoleBinding).
func rbacUser(t *testing.T, kube *testenv.Kube, ns string, rules []rbacv1.PolicyRule) *rest.Config {
	t.Helper()
	cs, err := kubernetes.NewForConfig(kube.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	user := testenv.UniqueName("modelsync-user")
	ctx := t.Context()
	subjects := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}
	meta := metav1.ObjectMeta{Name: user, Namespace: ns}
	if ns == "" {
		_, err = cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: meta, Rules: rules}, metav1.CreateOptions{})
		if err == nil {
			_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: meta, Subjects: subjects,
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: user}}, metav1.CreateOptions{})
		}
	} else {
		_, err = cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: meta, Rules: rules}, metav1.CreateOptions{})
		if err == nil {
			_, err = cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: meta, Subjects: subjects,
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user}}, metav1.CreateOptions{})
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	rc, err := kube.UserRESTConfig(user)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}
