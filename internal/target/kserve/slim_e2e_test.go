package kserve

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/test/testenv"
)

// fullStatus is knativeStatus with everything else a KServe controller
// writes (addresses, URLs, timestamps, severities, model copies), which
// modelsync never reads.
func fullStatus(name, ns, created, latest, rolledOut string, canaryPct int64) map[string]any {
	st := knativeStatus(created, latest, rolledOut, canaryPct)
	host := fmt.Sprintf("%s.%s", name, ns)
	st["url"] = "http://" + host + ".example.com"
	st["address"] = map[string]any{"url": "http://" + host + ".svc.cluster.local/v1/models/" + name + ":predict"}
	st["observedGeneration"] = int64(1)
	pred := st["components"].(map[string]any)["predictor"].(map[string]any)
	pred["url"] = "http://" + name + "-predictor." + ns + ".example.com"
	pred["address"] = map[string]any{"url": "http://" + name + "-predictor." + ns + ".svc.cluster.local"}
	var conds []any
	for _, typ := range []string{"IngressReady", "LatestDeploymentReady", "PredictorConfigurationReady", "PredictorReady", "PredictorRouteReady", "Ready", "RoutesReady"} {
		conds = append(conds, map[string]any{"type": typ, "status": "True", "severity": "Info", "lastTransitionTime": "2026-09-01T10:00:00Z"})
	}
	st["conditions"] = conds
	ms := st["modelStatus"].(map[string]any)
	ms["copies"] = map[string]any{"failedCopies": int64(0), "totalCopies": int64(1)}
	return st
}

// TestSlimCachesPlanTheSame plans one desired state over objects in every
// shape the planner tells apart (converged with a full KServe status, a
// version change, a hand edit, a canary start, a canary rollback, kubectl's
// last-applied record and a finalizer, an unlabelled object of a desired
// name, an orphan) with two targets: one whose informers slim what they
// store, one that stores objects as listed. Plans, waits, errors and
// serving health must be identical.
func TestSlimCachesPlanTheSame(t *testing.T) {
	kube := testenv.NewKube(t)
	names := []string{"bumped", "canary", "edited", "foreign", "kubectl", "orphan", "rollback", "steady"} // sorted, as a desired state is
	loc := artifactsFor(names, 5)
	w := newWorld(t, kube, Config{}, loc)
	ns := w.namespace("slim")
	cfg := testConfig(map[string]string{"prod": ns})
	cfg.Prune = true
	files := repoWith(names...)
	env := func(model string, v int) reconciler.DesiredEnv { return desiredEnv("prod", ns, v, files, model) }
	state := func(envs map[string]reconciler.DesiredEnv) *reconciler.DesiredState {
		d := &reconciler.DesiredState{Revision: "main@sha1:0123456789abcdef0123456789abcdef01234567", Config: cfg, Scope: reconciler.WholeRepository()}
		for _, n := range names {
			if e, ok := envs[n]; ok {
				d.Models = append(d.Models, desiredModel(n, e))
			}
		}
		return d
	}
	rolled := func(n string) { w.setStatus(ns, n, fullStatus(n, ns, n+"-00001", n+"-00001", n+"-00001", -1)) }

	// Before: every managed model at v1 with a rolled-out status.
	before := map[string]reconciler.DesiredEnv{}
	for _, n := range []string{"steady", "bumped", "edited", "canary", "rollback", "kubectl", "orphan"} {
		before[n] = env(n, 1)
	}
	w.apply(w.plan(state(before)))
	for n := range before {
		rolled(n)
	}
	// rollback runs a canary of v2 at 10%.
	canary := withCanary(env("rollback", 1), 2, 10)
	canary.Revision = "main@sha1:2222222222222222222222222222222222222222"
	before["rollback"] = canary
	w.apply(w.plan(state(before)))
	w.setStatus(ns, "rollback", fullStatus("rollback", ns, "rollback-00002", "rollback-00002", "rollback-00001", 10))

	// A hand edit of the spec.
	o := w.get(ns, "edited")
	_ = unstructured.SetNestedField(o.Object, int64(3), "spec", "predictor", "minReplicas")
	if _, err := w.dyn.Resource(inferenceServiceGVR).Namespace(ns).Update(w.ctx, o, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	// kubectl's last-applied record and a finalizer, as KServe adds one.
	o = w.get(ns, "kubectl")
	ann := o.GetAnnotations()
	ann[lastApplied] = `{"apiVersion":"serving.kserve.io/v1beta1","kind":"InferenceService","metadata":{"name":"kubectl"}}`
	o.SetAnnotations(ann)
	o.SetFinalizers([]string{"inferenceservice.finalizers"})
	if _, err := w.dyn.Resource(inferenceServiceGVR).Namespace(ns).Update(w.ctx, o, metav1.UpdateOptions{FieldManager: "kubectl-client-side-apply"}); err != nil {
		t.Fatal(err)
	}
	// An object of a desired name that modelsync never wrote.
	foreign := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": KServeGroup + "/" + KServeVersion, "kind": InferenceServiceKind,
		"metadata": map[string]any{"name": "foreign", "namespace": ns, "annotations": map[string]any{lastApplied: "{}"}},
		"spec":     map[string]any{"predictor": map[string]any{"model": map[string]any{"modelFormat": map[string]any{"name": "sklearn"}}}},
	}}
	if _, err := w.dyn.Resource(inferenceServiceGVR).Namespace(ns).Create(w.ctx, foreign, metav1.CreateOptions{FieldManager: "someone"}); err != nil {
		t.Fatal(err)
	}

	after := map[string]reconciler.DesiredEnv{
		"steady":   env("steady", 1),
		"bumped":   env("bumped", 2),
		"edited":   env("edited", 1),
		"canary":   withCanary(env("canary", 1), 2, 10),
		"rollback": env("rollback", 1),
		"kubectl":  env("kubectl", 2),
		"foreign":  env("foreign", 1),
	}
	d := state(after)

	full := countedTarget(t, kube, Config{}, &requestCounter{}, loc)
	full.caches.keepAll = true
	plan := func(tgt *Target) (string, []string) {
		p, err := reconciler.BuildPlan(w.ctx, d, []reconciler.Target{reconciler.Typed(tgt)})
		if err != nil {
			t.Fatal(err)
		}
		out, err := json.MarshalIndent(map[string]any{"actions": p.Actions(), "errors": p.Errors(), "waits": p.Waits()}, "", " ")
		if err != nil {
			t.Fatal(err)
		}
		var health []string
		for _, m := range d.Models {
			h, err := tgt.ServingHealth(w.ctx, m.Name, m.Environments[0])
			if err != nil {
				t.Fatal(err)
			}
			hb, _ := json.Marshal(h)
			health = append(health, m.Name+" "+string(hb))
		}
		return string(out), health
	}
	slimPlan, slimHealth := plan(w.target)
	fullPlan, fullHealth := plan(full)
	if slimPlan != fullPlan {
		t.Fatalf("plans differ\nslim caches:\n%s\nfull caches:\n%s", slimPlan, fullPlan)
	}
	if !slices.Equal(slimHealth, fullHealth) {
		t.Fatalf("serving health differs\nslim: %v\nfull: %v", slimHealth, fullHealth)
	}

	// The comparison covers what it claims: every shape above shows in the plan.
	p := w.plan(d)
	got := map[string]string{}
	for _, a := range p.Actions() {
		got[a.Model] += a.Kind + ","
		if a.Drift {
			got[a.Model] += "drift,"
		}
	}
	for _, e := range p.Errors() {
		got[e.Model] += "error,"
	}
	want := map[string]string{
		"bumped":   KindApplyInferenceService + ",",
		"edited":   KindApplyInferenceService + ",drift,",
		"canary":   KindApplyInferenceService + ",",
		"rollback": KindSetCanaryTraffic + "," + KindApplyInferenceService + ",",
		"kubectl":  KindApplyInferenceService + ",",
		"foreign":  "error,",
		"orphan":   KindDeleteInferenceService + ",",
	}
	for m, k := range want {
		if got[m] != k {
			t.Errorf("%s: planned %q, want %q (plan %s, errors %v)", m, got[m], k, actionSummary(p.Actions()), p.Errors())
		}
	}
	if got["steady"] != "" {
		t.Errorf("steady: planned %q, want nothing", got["steady"])
	}
	// And the slim cache did drop what it should, the full one did not.
	key := objKey{inferenceServiceGVR, ns, "kubectl"}
	slimObj, fullObj := w.target.caches.managedObject(key), full.caches.managedObject(key)
	if _, ok := slimObj.GetAnnotations()[lastApplied]; ok {
		t.Error("slim cache kept kubectl's last-applied record")
	}
	if _, ok := fullObj.GetAnnotations()[lastApplied]; !ok {
		t.Error("full cache lacks kubectl's last-applied record")
	}
	slimOwned, _ := json.Marshal(ownedFields(slimObj, FieldManager, metav1.ManagedFieldsOperationApply))
	fullOwned, _ := json.Marshal(ownedFields(fullObj, FieldManager, metav1.ManagedFieldsOperationApply))
	if string(slimOwned) == "null" || string(slimOwned) != string(fullOwned) {
		t.Errorf("modelsync's owned fields: slim %s, full %s", slimOwned, fullOwned)
	}
	for _, c := range []struct {
		obj  *unstructured.Unstructured
		want bool
	}{{slimObj, false}, {fullObj, true}} {
		_, hasAddr := c.obj.Object["status"].(map[string]any)["address"]
		subres := false
		for _, e := range managedFieldsOf(c.obj) {
			subres = subres || e.Subresource != ""
		}
		if hasAddr != c.want || subres != c.want {
			t.Errorf("status.address kept %t, status managedFields kept %t; want %t", hasAddr, subres, c.want)
		}
	}
}
