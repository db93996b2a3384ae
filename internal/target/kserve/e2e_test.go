package kserve

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/test/testenv"
)

// TestKServe runs every scenario against one real kube-apiserver with the
// upstream KServe InferenceService CRD (full schema) installed.
func TestKServe(t *testing.T) {
	kube := testenv.NewKube(t)
	loc := artifactsFor([]string{"churn", "fraud", "ranker"}, 5)

	t.Run("first apply, version change, quiet resync", func(t *testing.T) {
		w := newWorld(t, kube, Config{}, loc)
		ns := w.namespace("dev")
		files := repoWith("churn")
		cfg := testConfig(map[string]string{"dev": ns})
		d := oneModel(cfg, desiredEnv("dev", ns, 1, files, "churn"), "churn")

		p := w.plan(d)
		if got := kinds(p.Actions()); !slices.Equal(got, []string{KindApplyInferenceService}) || p.Actions()[0].Op != reconciler.OpCreate {
			t.Fatalf("first plan: %s", actionSummary(p.Actions()))
		}
		w.apply(p)
		live := w.get(ns, "churn")
		if storageURI(live) != uriFor("churn", 1) || live.GetLabels()[LabelManagedBy] != ManagedByValue || live.GetLabels()[LabelVersion] != "1" {
			t.Fatalf("live after first apply: %v", live.Object)
		}
		if ownedFields(live, FieldManager, metav1.ManagedFieldsOperationApply) == nil {
			t.Fatalf("no server-side apply entry for %q: %v", FieldManager, live.GetManagedFields())
		}
		w.quiet(d)

		d = oneModel(cfg, desiredEnv("dev", ns, 2, files, "churn"), "churn")
		d.Models[0].Environments[0].Revision = "main@sha1:1111111111111111111111111111111111111111"
		p = w.plan(d)
		as := p.Actions()
		if len(as) != 1 || as[0].Kind != KindApplyInferenceService || as[0].From != "v1" || as[0].To != "v2" || as[0].Drift {
			t.Fatalf("version change: %s", actionSummary(as))
		}
		w.apply(p)
		live = w.get(ns, "churn")
		if storageURI(live) != uriFor("churn", 2) || live.GetAnnotations()[AnnotationRevision] != "main@sha1:1111111111111111111111111111111111111111" {
			t.Fatalf("after version change: uri %s annotations %v", storageURI(live), live.GetAnnotations())
		}
		w.quiet(d)
	})

	t.Run("canary 10 25 50 then promote", func(t *testing.T) {
		w := newWorld(t, kube, Config{}, loc)
		ns := w.namespace("prod")
		files := repoWith("churn")
		cfg := testConfig(map[string]string{"prod": ns})
		stable := desiredEnv("prod", ns, 1, files, "churn")
		w.apply(w.plan(oneModel(cfg, stable, "churn")))
		w.setStatus(ns, "churn", knativeStatus("churn-predictor-00001", "churn-predictor-00001", "churn-predictor-00001", -1))

		canary := withCanary(stable, 2, 10)
		canary.Revision = "main@sha1:2222222222222222222222222222222222222222"
		p := w.plan(oneModel(cfg, canary, "churn"))
		as := p.Actions()
		if len(as) != 1 || as[0].Kind != KindApplyInferenceService || as[0].To != "v2 (canary 10%)" {
			t.Fatalf("canary start: %s", actionSummary(as))
		}
		w.apply(p)
		live := w.get(ns, "churn")
		if storageURI(live) != uriFor("churn", 2) || *canaryPercent(live) != 10 {
			t.Fatalf("canary start: uri %s pct %v", storageURI(live), canaryPercent(live))
		}
		w.setStatus(ns, "churn", knativeStatus("churn-predictor-00002", "churn-predictor-00002", "churn-predictor-00001", 10))
		started := w.get(ns, "churn")

		for i, weight := range []int{25, 50} {
			step := withCanary(stable, 2, weight)
			step.Revision = "main@sha1:" + strings.Repeat(string(rune('3'+i)), 40)
			p := w.plan(oneModel(cfg, step, "churn"))
			as := p.Actions()
			if len(as) != 1 || as[0].Kind != KindSetCanaryTraffic {
				t.Fatalf("weight %d: %s", weight, actionSummary(as))
			}
			w.apply(p)
			live := w.get(ns, "churn")
			if got := *canaryPercent(live); got != int64(weight) {
				t.Fatalf("canaryTrafficPercent = %d, want %d", got, weight)
			}
			// Only the percentage changes: same model, labels and
			// annotations, so Knative makes no new revision.
			unstructured.RemoveNestedField(live.Object, "spec", "predictor", "canaryTrafficPercent")
			before := started.DeepCopy()
			unstructured.RemoveNestedField(before.Object, "spec", "predictor", "canaryTrafficPercent")
			if !equality.Semantic.DeepEqual(live.Object["spec"], before.Object["spec"]) ||
				!equality.Semantic.DeepEqual(live.GetLabels(), before.GetLabels()) ||
				!equality.Semantic.DeepEqual(live.GetAnnotations(), before.GetAnnotations()) {
				t.Fatalf("weight %d changed more than the percentage:\nbefore %v\nafter  %v", weight, before.Object, live.Object)
			}
			w.setStatus(ns, "churn", knativeStatus("churn-predictor-00002", "churn-predictor-00002", "churn-predictor-00001", int64(weight)))
			w.quiet(oneModel(cfg, step, "churn"))
		}

		promoted := desiredEnv("prod", ns, 2, files, "churn")
		promoted.Revision = "main@sha1:5555555555555555555555555555555555555555"
		p = w.plan(oneModel(cfg, promoted, "churn"))
		as = p.Actions()
		if len(as) != 1 || as[0].Kind != KindPromoteCanary {
			t.Fatalf("promotion: %s", actionSummary(as))
		}
		w.apply(p)
		live = w.get(ns, "churn")
		if canaryPercent(live) != nil || storageURI(live) != uriFor("churn", 2) {
			t.Fatalf("after promotion: pct %v uri %s", canaryPercent(live), storageURI(live))
		}
		if live.GetAnnotations()[AnnotationRevision] != started.GetAnnotations()[AnnotationRevision] || live.GetLabels()[LabelVersion] != "2" {
			t.Fatalf("promotion touched the revision template: annotations %v labels %v", live.GetAnnotations(), live.GetLabels())
		}
		w.quiet(oneModel(cfg, promoted, "churn"))
	})

	t.Run("canary on a new object waits for the stable version", func(t *testing.T) {
		w := newWorld(t, kube, Config{}, loc)
		ns := w.namespace("prod")
		cfg := testConfig(map[string]string{"prod": ns})
		d := oneModel(cfg, withCanary(desiredEnv("prod", ns, 1, repoWith("fraud"), "fraud"), 2, 20), "fraud")
		p := w.plan(d)
		if as := p.Actions(); len(as) != 1 || as[0].To != "v1" || len(p.Waits()) != 1 {
			t.Fatalf("plan: %s waits %v", actionSummary(as), p.Waits())
		}
		w.apply(p)
		p = w.plan(d)
		if p.HasChanges() || len(p.Waits()) != 1 || !strings.Contains(p.Waits()[0].Reason, "latestRolledoutRevision is empty") {
			t.Fatalf("before roll-out: %s waits %v", actionSummary(p.Actions()), p.Waits())
		}
		w.setStatus(ns, "fraud", knativeStatus("fraud-predictor-00001", "fraud-predictor-00001", "fraud-predictor-00001", -1))
		p = w.plan(d)
		if as := p.Actions(); len(as) != 1 || as[0].To != "v2 (canary 20%)" || len(p.Waits()) != 0 {
			t.Fatalf("after roll-out: %s waits %v", actionSummary(as), p.Waits())
		}
	})

	t.Run("canary rollback", func(t *testing.T) {
		w := newWorld(t, kube, Config{}, loc)
		ns := w.namespace("prod")
		files := repoWith("churn")
		cfg := testConfig(map[string]string{"prod": ns})
		stable := desiredEnv("prod", ns, 1, files, "churn")
		w.apply(w.plan(oneModel(cfg, stable, "churn")))
		w.setStatus(ns, "churn", knativeStatus("churn-predictor-00001", "churn-predictor-00001", "churn-predictor-00001", -1))
		w.apply(w.plan(oneModel(cfg, withCanary(stable, 2, 25), "churn")))
		w.setStatus(ns, "churn", knativeStatus("churn-predictor-00002", "churn-predictor-00002", "churn-predictor-00001", 25))

		// Git drops the canary and keeps version 1.
		p := w.plan(oneModel(cfg, stable, "churn"))
		as := p.Actions()
		if got := kinds(as); !slices.Equal(got, []string{KindSetCanaryTraffic, KindApplyInferenceService}) {
			t.Fatalf("rollback plan: %s", actionSummary(as))
		}
		if as[0].From != "25%" || as[0].To != "0%" || as[1].To != "v1 (canary 0%)" {
			t.Fatalf("rollback steps: %s", actionSummary(as))
		}
		var first Payload
		if err := json.Unmarshal(as[0].Payload, &first); err != nil {
			t.Fatal(err)
		}
		firstObj := &unstructured.Unstructured{}
		if err := firstObj.UnmarshalJSON(first.Object); err != nil {
			t.Fatal(err)
		}
		if storageURI(firstObj) != uriFor("churn", 2) || *canaryPercent(firstObj) != 0 {
			t.Fatalf("first rollback step must only zero the traffic: uri %s pct %v", storageURI(firstObj), canaryPercent(firstObj))
		}
		var states []string
		res, err := reconciler.Apply(w.ctx, p, []reconciler.Target{reconciler.Typed(w.target)}, reconciler.ApplyOptions{OnAction: func(a reconciler.Action, err error) {
			live := w.get(ns, "churn")
			states = append(states, storageURI(live)+"@"+pctString(canaryPercent(live)))
		}})
		if err != nil || !res.OK() {
			t.Fatalf("apply: %v %+v", err, res)
		}
		want := []string{uriFor("churn", 2) + "@0%", uriFor("churn", 1) + "@0%"}
		if !slices.Equal(states, want) {
			t.Fatalf("states after each step = %v, want %v", states, want)
		}
		live := w.get(ns, "churn")
		if live.GetAnnotations()[AnnotationRollbackOf] != "churn-predictor-00002" {
			t.Fatalf("rollback-of annotation: %v", live.GetAnnotations())
		}
		// KServe has not made the restored revision ready: traffic stays put.
		p = w.plan(oneModel(cfg, stable, "churn"))
		if p.HasChanges() || len(p.Waits()) != 1 || !strings.Contains(p.Waits()[0].Reason, "rollback to v1") {
			t.Fatalf("while restoring: %s waits %v", actionSummary(p.Actions()), p.Waits())
		}
		w.setStatus(ns, "churn", knativeStatus("churn-predictor-00003", "churn-predictor-00003", "churn-predictor-00001", 0))
		p = w.plan(oneModel(cfg, stable, "churn"))
		if as := p.Actions(); len(as) != 1 || as[0].Kind != KindPromoteCanary || !strings.Contains(as[0].Reason, "churn-predictor-00003 is ready") {
			t.Fatalf("release: %s", actionSummary(as))
		}
		w.apply(p)
		live = w.get(ns, "churn")
		if canaryPercent(live) != nil || storageURI(live) != uriFor("churn", 1) {
			t.Fatalf("after rollback: pct %v uri %s", canaryPercent(live), storageURI(live))
		}
		w.setStatus(ns, "churn", knativeStatus("churn-predictor-00003", "churn-predictor-00003", "churn-predictor-00003", -1))
		w.quiet(oneModel(cfg, stable, "churn"))
	})

	t.Run("canary refused in RawDeployment and Standard mode", func(t *testing.T) {
		w := newWorld(t, kube, Config{}, loc)
		ns := w.namespace("prod")
		cfg := testConfig(map[string]string{"prod": ns})
		files := fstest.MapFS{}
		modelFiles(files, "churn", "", "RawDeployment")
		modelFiles(files, "fraud", "", "")
		stable := func(m string) reconciler.DesiredEnv { return desiredEnv("prod", ns, 1, files, m) }
		d := &reconciler.DesiredState{Config: cfg, Models: []reconciler.DesiredModel{desiredModel("churn", stable("churn")), desiredModel("fraud", stable("fraud"))}}
		w.apply(w.plan(d))
		// fraud has no annotation; KServe reports Standard mode in its status.
		st := knativeStatus("", "", "", -1)
		st["deploymentMode"] = "Standard"
		w.setStatus(ns, "fraud", st)
		w.setStatus(ns, "churn", knativeStatus("churn-predictor-00001", "churn-predictor-00001", "churn-predictor-00001", -1))

		d = &reconciler.DesiredState{Config: cfg, Models: []reconciler.DesiredModel{
			desiredModel("churn", withCanary(stable("churn"), 2, 10)), desiredModel("fraud", withCanary(stable("fraud"), 2, 10))}}
		p := w.plan(d)
		if p.HasChanges() || len(p.Errors()) != 2 {
			t.Fatalf("plan: %s errors %v", actionSummary(p.Actions()), p.Errors())
		}
		for i, want := range []string{"RawDeployment mode (annotation serving.kserve.io/deploymentMode)", "Standard mode (status.deploymentMode)"} {
			e := p.Errors()[i]
			if !strings.Contains(e.Message, want) || !strings.Contains(e.Message, "canaryTrafficPercent works only in Knative") || !strings.Contains(e.Message, "version 2") {
				t.Errorf("error %d = %q, want it to mention %q", i, e.Message, want)
			}
		}
	})

	t.Run("hand edits are drift and get corrected", func(t *testing.T) {
		w := newWorld(t, kube, Config{}, loc)
		ns := w.namespace("prod")
		cfg := testConfig(map[string]string{"prod": ns})
		stable := desiredEnv("prod", ns, 1, repoWith("churn"), "churn")
		w.apply(w.plan(oneModel(cfg, stable, "churn")))
		w.setStatus(ns, "churn", knativeStatus("churn-predictor-00001", "churn-predictor-00001", "churn-predictor-00001", -1))
		d := oneModel(cfg, withCanary(stable, 2, 25), "churn")
		w.apply(w.plan(d))

		// kubectl edit: an update, not an apply.
		live := w.get(ns, "churn")
		_ = unstructured.SetNestedField(live.Object, "s3://models/churn/hotfix", "spec", "predictor", "model", "storageUri")
		edited, err := w.dyn.Resource(inferenceServiceGVR).Namespace(ns).Update(w.ctx, live, metav1.UpdateOptions{FieldManager: "kubectl-edit"})
		if err != nil {
			t.Fatal(err)
		}
		w.seen(edited)
		p := w.plan(d)
		as := p.Actions()
		if len(as) != 1 || !as[0].Drift || as[0].Kind != KindApplyInferenceService || !strings.Contains(as[0].Reason, "kubectl-edit") {
			t.Fatalf("storageUri drift: %s (%v)", actionSummary(as), p.Errors())
		}
		w.apply(p)
		if got := storageURI(w.get(ns, "churn")); got != uriFor("churn", 2) {
			t.Fatalf("storageUri after correction = %s", got)
		}
		w.quiet(d)

		patched, err := w.dyn.Resource(inferenceServiceGVR).Namespace(ns).Patch(w.ctx, "churn", types.MergePatchType,
			[]byte(`{"spec":{"predictor":{"canaryTrafficPercent":90}}}`), metav1.PatchOptions{FieldManager: "kubectl-patch"})
		if err != nil {
			t.Fatal(err)
		}
		w.seen(patched)
		p = w.plan(d)
		as = p.Actions()
		if len(as) != 1 || !as[0].Drift || as[0].Kind != KindSetCanaryTraffic || as[0].From != "90%" || as[0].To != "25%" {
			t.Fatalf("canaryTrafficPercent drift: %s (%v)", actionSummary(as), p.Errors())
		}
		w.apply(p)
		if got := *canaryPercent(w.get(ns, "churn")); got != 25 {
			t.Fatalf("canaryTrafficPercent after correction = %d", got)
		}
		w.quiet(d)
	})

	t.Run("conflict with another applier is reported", func(t *testing.T) {
		w := newWorld(t, kube, Config{}, loc)
		ns := w.namespace("prod")
		cfg := testConfig(map[string]string{"prod": ns})
		d1 := oneModel(cfg, desiredEnv("prod", ns, 1, repoWith("churn"), "churn"), "churn")
		w.apply(w.plan(d1))
		d2 := oneModel(cfg, desiredEnv("prod", ns, 2, repoWith("churn"), "churn"), "churn")
		stale := w.plan(d2)

		// A second GitOps tool server-side applies the same field.
		other := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
			"metadata": map[string]any{"name": "churn", "namespace": ns},
			"spec":     map[string]any{"predictor": map[string]any{"model": map[string]any{"storageUri": "s3://elsewhere/churn", "modelFormat": map[string]any{"name": "sklearn"}}}},
		}}
		force := true
		out, err := w.dyn.Resource(inferenceServiceGVR).Namespace(ns).Apply(w.ctx, "churn", other, metav1.ApplyOptions{FieldManager: "other-gitops", Force: force})
		if err != nil {
			t.Fatal(err)
		}
		w.seen(out)

		p := w.plan(d2)
		if p.HasChanges() || len(p.Errors()) != 1 || !strings.Contains(p.Errors()[0].Message, `"other-gitops"`) ||
			!strings.Contains(p.Errors()[0].Message, ".spec.predictor.model.storageUri") {
			t.Fatalf("plan: %s errors %v", actionSummary(p.Actions()), p.Errors())
		}
		err = w.target.Apply(w.ctx, stale.Actions()[0])
		var ce *ConflictError
		if !errors.As(err, &ce) || !slices.Equal(ce.Managers(), []string{"other-gitops"}) {
			t.Fatalf("apply of the stale action: %v", err)
		}
		if !strings.Contains(err.Error(), "model churn in prod (version 2)") {
			t.Errorf("error should name model, environment and version: %v", err)
		}

		cfg.Serving.ForceConflicts = true
		p = w.plan(d2)
		if len(p.Actions()) != 1 || len(p.Errors()) != 0 {
			t.Fatalf("with forceConflicts: %s errors %v", actionSummary(p.Actions()), p.Errors())
		}
		w.apply(p)
		if got := storageURI(w.get(ns, "churn")); got != uriFor("churn", 2) {
			t.Fatalf("storageUri = %s", got)
		}
	})

	t.Run("pruning", func(t *testing.T) {
		w := newWorld(t, kube, Config{}, loc)
		ns := w.namespace("prod")
		cfg := testConfig(map[string]string{"prod": ns})
		files := repoWith("churn", "fraud")
		both := &reconciler.DesiredState{Config: cfg, Models: []reconciler.DesiredModel{
			desiredModel("churn", desiredEnv("prod", ns, 1, files, "churn")),
			desiredModel("fraud", desiredEnv("prod", ns, 1, files, "fraud")),
		}}
		w.apply(w.plan(both))
		// Somebody else's InferenceService in the same namespace.
		foreign := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
			"metadata": map[string]any{"name": "handmade", "namespace": ns},
			"spec":     map[string]any{"predictor": map[string]any{"model": map[string]any{"modelFormat": map[string]any{"name": "onnx"}, "storageUri": "s3://x/y"}}},
		}}
		created, err := w.dyn.Resource(inferenceServiceGVR).Namespace(ns).Create(w.ctx, foreign, metav1.CreateOptions{FieldManager: "kubectl-create"})
		if err != nil {
			t.Fatal(err)
		}
		w.seen(created)

		// Fraud left Git: a state read from the whole repository lists
		// only churn.
		onlyChurn := &reconciler.DesiredState{Config: cfg, Models: both.Models[:1], Scope: reconciler.WholeRepository()}
		if p := w.plan(onlyChurn); p.HasChanges() {
			t.Fatalf("prune off: %s", actionSummary(p.Actions()))
		}
		cfg.Prune = true
		// A state that covers churn alone (one controller work item) says
		// nothing about fraud, which may well be in Git.
		if p := w.plan(both.Subset("churn")); p.HasChanges() {
			t.Fatalf("a one-model state pruned another model: %s", actionSummary(p.Actions()))
		}
		p := w.plan(onlyChurn)
		as := p.Actions()
		if len(as) != 1 || as[0].Kind != KindDeleteInferenceService || as[0].Model != "fraud" || as[0].Resource != ns+"/fraud" {
			t.Fatalf("prune on: %s", actionSummary(as))
		}
		// A model that fails to resolve is still in Git: its object stays.
		broken := &reconciler.DesiredState{Config: cfg, Models: both.Models[:1], Errors: []reconciler.ModelError{{Model: "fraud", Message: "model.yaml is invalid"}}, Scope: reconciler.WholeRepository()}
		if p := w.plan(broken); p.HasChanges() {
			t.Fatalf("broken model pruned: %s", actionSummary(p.Actions()))
		}
		w.apply(p)
		if _, err := w.dyn.Resource(inferenceServiceGVR).Namespace(ns).Get(w.ctx, "fraud", metav1.GetOptions{}); err == nil {
			t.Fatal("fraud still exists")
		}

		empty := &reconciler.DesiredState{Config: cfg, Scope: reconciler.WholeRepository()}
		p = w.plan(empty)
		if p.HasChanges() || len(p.Errors()) != 1 || !strings.Contains(p.Errors()[0].Message, "refusing to prune everything") {
			t.Fatalf("empty repo: %s errors %v", actionSummary(p.Actions()), p.Errors())
		}
		w2 := newWorld(t, kube, Config{AllowEmpty: true}, loc)
		p = w2.plan(empty)
		if got := kinds(p.Actions()); !slices.Equal(got, []string{KindDeleteInferenceService}) || p.Actions()[0].Model != "churn" {
			t.Fatalf("empty repo with AllowEmpty: %s", actionSummary(p.Actions()))
		}
		w2.apply(p)
		if _, err := w.dyn.Resource(inferenceServiceGVR).Namespace(ns).Get(w.ctx, "handmade", metav1.GetOptions{}); err != nil {
			t.Fatalf("the unlabelled object was touched: %v", err)
		}
	})

	t.Run("unlabelled object of the desired name is left alone", func(t *testing.T) {
		w := newWorld(t, kube, Config{}, loc)
		ns := w.namespace("prod")
		cfg := testConfig(map[string]string{"prod": ns})
		foreign := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
			"metadata": map[string]any{"name": "churn", "namespace": ns},
			"spec":     map[string]any{"predictor": map[string]any{"model": map[string]any{"modelFormat": map[string]any{"name": "onnx"}, "storageUri": "s3://x/y"}}},
		}}
		created, err := w.dyn.Resource(inferenceServiceGVR).Namespace(ns).Create(w.ctx, foreign, metav1.CreateOptions{FieldManager: "kubectl-create"})
		if err != nil {
			t.Fatal(err)
		}
		w.seen(created)
		p := w.plan(oneModel(cfg, desiredEnv("prod", ns, 1, repoWith("churn"), "churn"), "churn"))
		if p.HasChanges() || len(p.Errors()) != 1 || !strings.Contains(p.Errors()[0].Message, "not managed by modelsync") || !strings.Contains(p.Errors()[0].Message, "kubectl-create") {
			t.Fatalf("plan: %s errors %v", actionSummary(p.Actions()), p.Errors())
		}
	})

	t.Run("bad models fail alone", func(t *testing.T) {
		w := newWorld(t, kube, Config{}, loc)
		ns := w.namespace("prod")
		cfg := testConfig(map[string]string{"prod": ns})
		files := repoWith("churn", "fraud", "ranker")
		// churn reaches into another model's folder.
		files["models/churn/serving/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources:\n- isvc.yaml\n- ../../fraud/serving\n")}
		// fraud's overlay puts a string where the CRD wants an integer.
		files["models/fraud/serving/overlays/prod/kustomization.yaml"] = &fstest.MapFile{Data: []byte(`resources:
- ../../isvc.yaml
patches:
- target: {kind: InferenceService}
  patch: |
    - op: replace
      path: /spec/predictor/minReplicas
      value: lots
`)}
		d := &reconciler.DesiredState{Config: cfg, Models: []reconciler.DesiredModel{
			desiredModel("churn", desiredEnv("prod", ns, 1, files, "churn")),
			desiredModel("fraud", desiredEnv("prod", ns, 1, files, "fraud")),
			desiredModel("ranker", desiredEnv("prod", ns, 1, files, "ranker")),
		}}
		p := w.plan(d)
		errs := p.Errors()
		if len(errs) != 2 || errs[0].Model != "churn" || errs[1].Model != "fraud" {
			t.Fatalf("errors: %v", errs)
		}
		if !strings.Contains(errs[0].Message, "leaves the model folder") || !strings.Contains(errs[0].Message, "../../fraud/serving") {
			t.Errorf("escape error: %q", errs[0].Message)
		}
		if !strings.Contains(errs[1].Message, "the API server rejected") || !strings.Contains(errs[1].Message, "spec.predictor.minReplicas") {
			t.Errorf("schema error: %q", errs[1].Message)
		}
		if as := p.Actions(); len(as) != 1 || as[0].Model != "ranker" {
			t.Fatalf("ranker should still be planned: %s", actionSummary(as))
		}
		w.apply(p)
	})

	t.Run("extra kinds are applied, kept and pruned", func(t *testing.T) {
		w := newWorld(t, kube, Config{}, loc)
		ns := w.namespace("prod")
		cfg := testConfig(map[string]string{"prod": ns})
		cfg.Serving.ExtraKinds = []string{"ConfigMap"}
		cfg.Prune = true
		files := repoWith("churn", "fraud")
		files["models/churn/serving/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources:\n- isvc.yaml\nconfigMapGenerator:\n- name: churn-settings\n  literals: [threshold=0.7]\n  options: {disableNameSuffixHash: true}\n")}
		both := &reconciler.DesiredState{Config: cfg, Models: []reconciler.DesiredModel{
			desiredModel("churn", desiredEnv("prod", ns, 1, files, "churn")),
			desiredModel("fraud", desiredEnv("prod", ns, 1, files, "fraud")),
		}}
		p := w.plan(both)
		if got := kinds(p.Actions()); !slices.Equal(got, []string{KindApplyInferenceService, "apply-configmap", KindApplyInferenceService}) {
			t.Fatalf("plan: %s errors %v", actionSummary(p.Actions()), p.Errors())
		}
		w.apply(p)
		w.quiet(both)

		cm, err := w.dyn.Resource(namespaceGVR.GroupVersion().WithResource("configmaps")).Namespace(ns).Get(w.ctx, "churn-settings", metav1.GetOptions{})
		if err != nil || cm.GetLabels()[LabelModel] != "churn" {
			t.Fatalf("configmap: %v %v", cm, err)
		}
		onlyFraud := &reconciler.DesiredState{Config: cfg, Models: both.Models[1:], Scope: reconciler.WholeRepository()}
		if p := w.plan(both.Subset("fraud")); p.HasChanges() {
			t.Fatalf("a one-model state pruned another model: %s", actionSummary(p.Actions()))
		}
		p = w.plan(onlyFraud)
		if got := kinds(p.Actions()); !slices.Equal(got, []string{KindDeleteInferenceService, "delete-configmap"}) {
			t.Fatalf("prune: %s", actionSummary(p.Actions()))
		}
		w.apply(p)
		w.quiet(onlyFraud)

		cfg.Serving.ExtraKinds = []string{"NoSuchKind.example.com"}
		p = w.plan(onlyFraud)
		if len(p.Errors()) != 1 || !strings.Contains(p.Errors()[0].Message, "NoSuchKind.example.com") {
			t.Fatalf("unknown extra kind: %v", p.Errors())
		}
	})

	t.Run("namespaces", func(t *testing.T) {
		// modelsync as deploy/components/create-namespaces grants it:
		// InferenceServices and Events in every namespace and Namespace
		// creation, but no read of Namespaces.
		rc := rbacUser(t, kube, "", append(isvcRules(), rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"create"}}))
		w := newWorldAs(t, kube, rc, Config{}, loc)
		ns := testenv.UniqueName("absent")
		cfg := testConfig(map[string]string{"prod": ns})
		d := oneModel(cfg, desiredEnv("prod", ns, 1, repoWith("churn"), "churn"), "churn")
		p := w.plan(d)
		want := "namespace " + ns + " does not exist; pre-create it with its RoleBinding"
		if p.HasChanges() || len(p.Errors()) != 1 || !strings.Contains(p.Errors()[0].Message, want) {
			t.Fatalf("without createNamespaces: %s errors %v; want one error saying %q", actionSummary(p.Actions()), p.Errors(), want)
		}
		cfg.CreateNamespaces = true
		p = w.plan(d)
		if got := kinds(p.Actions()); !slices.Equal(got, []string{KindCreateNamespace, KindApplyInferenceService}) || len(p.Errors()) > 0 {
			t.Fatalf("with createNamespaces: %s errors %v", actionSummary(p.Actions()), p.Errors())
		}
		w.apply(p)
		if storageURI(w.get(ns, "churn")) != uriFor("churn", 1) {
			t.Fatal("not applied")
		}
		w.quiet(d)
		// The namespace exists now: a second model in it needs no create.
		d2 := &reconciler.DesiredState{Revision: d.Revision, Config: cfg, Models: []reconciler.DesiredModel{
			desiredModel("churn", desiredEnv("prod", ns, 1, repoWith("churn", "fraud"), "churn")),
			desiredModel("fraud", desiredEnv("prod", ns, 1, repoWith("churn", "fraud"), "fraud")),
		}}
		p = w.plan(d2)
		if got := kinds(p.Actions()); !slices.Equal(got, []string{KindApplyInferenceService}) || len(p.Errors()) > 0 {
			t.Fatalf("second model in the created namespace: %s errors %v", actionSummary(p.Actions()), p.Errors())
		}
		if r := w.counter.namespaceReads(); len(r) > 0 {
			t.Fatalf("the target read Namespaces: %v", r)
		}
	})

	t.Run("namespace-scoped RBAC", func(t *testing.T) {
		// modelsync as deploy/ grants it by default: InferenceServices and
		// Events in its environment namespaces, bound there; nothing
		// cluster-wide.
		ns, err := kube.NewNamespace(t.Context(), "scoped")
		if err != nil {
			t.Fatal(err)
		}
		rc := rbacUser(t, kube, ns, isvcRules())
		w := newWorldAs(t, kube, rc, Config{}, loc)
		cfg := testConfig(map[string]string{"prod": ns})
		d := oneModel(cfg, desiredEnv("prod", ns, 1, repoWith("churn"), "churn"), "churn")
		p := w.plan(d)
		if got := kinds(p.Actions()); !slices.Equal(got, []string{KindApplyInferenceService}) || len(p.Errors()) > 0 {
			t.Fatalf("first plan: %s errors %v", actionSummary(p.Actions()), p.Errors())
		}
		w.apply(p)
		w.quiet(d)
		if r := w.counter.namespaceReads(); len(r) > 0 {
			t.Fatalf("the target read Namespaces: %v", r)
		}

		// An environment whose namespace has no RoleBinding (it may not
		// even exist): the error names the namespace and what is missing.
		unbound := testenv.UniqueName("unbound")
		cfg = testConfig(map[string]string{"prod": ns, "qa": unbound})
		d = oneModel(cfg, desiredEnv("qa", unbound, 1, repoWith("churn"), "churn"), "churn")
		p = w.plan(d)
		if p.HasChanges() || len(p.Errors()) != 1 || !strings.Contains(p.Errors()[0].Message, "in namespace "+unbound) ||
			!strings.Contains(p.Errors()[0].Message, "needs a RoleBinding there") {
			t.Fatalf("unbound namespace: %s errors %v", actionSummary(p.Actions()), p.Errors())
		}
	})

	t.Run("wait for health", func(t *testing.T) {
		w := newWorld(t, kube, Config{}, loc)
		ns := w.namespace("prod")
		cfg := testConfig(map[string]string{"prod": ns})
		env := desiredEnv("prod", ns, 1, repoWith("churn"), "churn")
		p := w.plan(oneModel(cfg, env, "churn"))
		w.apply(p)
		// The capabilities callers use, found through the adapter.
		adapted := reconciler.Typed(w.target)
		waiter, ok := reconciler.As[reconciler.Waiter](adapted)
		health, ok2 := reconciler.As[reconciler.HealthReporter](adapted)
		if !ok || !ok2 || len(p.Actions()) != 1 {
			t.Fatalf("Waiter %v HealthReporter %v, actions %s", ok, ok2, actionSummary(p.Actions()))
		}
		applied := p.Actions()[0]
		if got := waiter.WaitFor(applied); got != "InferenceService "+ns+"/churn" {
			t.Fatalf("WaitFor = %q", got)
		}
		failed := loadObject(t, filepath.Join("testdata/health", "failed-load.yaml"))
		w.setStatus(ns, "churn", failed.Object["status"].(map[string]any))
		err := w.target.WaitHealthy(w.ctx, ns, "churn", time.Minute)
		var nh *NotHealthyError
		if !errors.As(err, &nh) || nh.Status != Degraded || nh.Reason != "ModelLoadFailed" || !strings.Contains(nh.Message, "model not found") || nh.TimedOut {
			t.Fatalf("failed load: %v", err)
		}
		if err := waiter.Wait(w.ctx, applied, time.Minute); !errors.As(err, &nh) || !strings.Contains(err.Error(), "model churn environment prod") {
			t.Fatalf("Wait on a failed load: %v", err)
		}
		if h, err := health.ServingHealth(w.ctx, "churn", env); err != nil || h.Status != string(Degraded) || h.Reason != "ModelLoadFailed" {
			t.Fatalf("ServingHealth failed load = %+v, %v", h, err)
		}
		w.setStatus(ns, "churn", knativeStatus("churn-predictor-00001", "churn-predictor-00001", "churn-predictor-00001", -1))
		if err := w.target.WaitHealthy(w.ctx, ns, "churn", time.Minute); err != nil {
			t.Fatalf("ready: %v", err)
		}
		if err := waiter.Wait(w.ctx, applied, time.Minute); err != nil {
			t.Fatalf("Wait when ready: %v", err)
		}
		if h, err := health.ServingHealth(w.ctx, "churn", env); err != nil || h.Status != string(Healthy) {
			t.Fatalf("ServingHealth ready = %+v, %v", h, err)
		}
		if h, err := health.ServingHealth(w.ctx, "fraud", env); err != nil || h.Status != string(Missing) {
			t.Fatalf("ServingHealth of a model without an InferenceService = %+v, %v", h, err)
		}
		progressing := loadObject(t, filepath.Join("testdata/health", "progressing.yaml"))
		w.setStatus(ns, "churn", progressing.Object["status"].(map[string]any))
		err = w.target.WaitHealthy(w.ctx, ns, "churn", 200*time.Millisecond)
		if !errors.As(err, &nh) || !nh.TimedOut || nh.Reason != "RevisionMissing" {
			t.Fatalf("progressing: %v", err)
		}
	})

	t.Run("kubeconfig loading", func(t *testing.T) {
		rc, err := LoadRESTConfig(kube.KubeconfigPath, "")
		if err != nil || rc.Host != kube.RESTConfig.Host {
			t.Fatalf("explicit path: %v %v", rc, err)
		}
		t.Setenv("KUBECONFIG", kube.KubeconfigPath)
		rc, err = LoadRESTConfig("", "testenv")
		if err != nil || rc.Host != kube.RESTConfig.Host {
			t.Fatalf("KUBECONFIG: %v %v", rc, err)
		}
		if _, err := LoadRESTConfig("", "no-such-context"); err == nil || !strings.Contains(err.Error(), "no-such-context") {
			t.Fatalf("unknown context: %v", err)
		}
		t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "missing"))
		t.Setenv("HOME", t.TempDir())
		t.Setenv("KUBERNETES_SERVICE_HOST", "")
		if _, err := LoadRESTConfig("", ""); err == nil || !strings.Contains(err.Error(), "no Kubernetes configuration") {
			t.Fatalf("nothing configured: %v", err)
		}
		tgt, err := New(Config{Kubeconfig: kube.KubeconfigPath}, loc, nil)
		if err != nil {
			t.Fatal(err)
		}
		tgt.Close()
	})
}
