package kserve

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/reconciler"
)

// Payload is what this target's actions carry: everything Apply needs, so
// it never renders again. Object is the full object to server-side apply.
type Payload struct {
	Op        string          `json:"op"` // "apply", "delete" or "create-namespace"
	Group     string          `json:"group,omitempty"`
	Version   string          `json:"version"`
	Resource  string          `json:"resource"`
	Namespace string          `json:"namespace,omitempty"`
	Name      string          `json:"name"`
	Force     bool            `json:"force,omitempty"`
	UID       types.UID       `json:"uid,omitempty"`
	Object    json.RawMessage `json:"object,omitempty"`
	// ModelVersion is the model version concerned, for error messages.
	ModelVersion int `json:"modelVersion,omitempty"`
}

// Payload operations.
const (
	PayloadApply           = "apply"
	PayloadDelete          = "delete"
	PayloadCreateNamespace = "create-namespace"
)

func (p Payload) gvr() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: p.Group, Version: p.Version, Resource: p.Resource}
}

// Plan implements reconciler.TypedTarget. It does no I/O.
func (t *Target) Plan(desired *reconciler.DesiredState, obs *observation) reconciler.TargetPlan {
	var tp reconciler.TargetPlan
	tp.Errors = append(tp.Errors, obs.errs...)
	for _, ns := range obs.createNS {
		obj := &unstructured.Unstructured{}
		obj.SetAPIVersion("v1")
		obj.SetKind("Namespace")
		obj.SetName(ns)
		body, _ := json.Marshal(obj.Object)
		tp.Actions = append(tp.Actions, reconciler.Action{
			Target: Name, Kind: KindCreateNamespace, Resource: ns, Op: reconciler.OpCreate, To: ns,
			Reason: "environment namespace missing; createNamespaces is on", Revision: desired.Revision,
			Payload: mustJSON(Payload{Op: PayloadCreateNamespace, Version: "v1", Resource: "namespaces", Name: ns, Object: body}),
		})
	}
	for _, it := range obs.items {
		if it.err != nil {
			tp.Errors = append(tp.Errors, reconciler.ModelError{Model: it.model, Environment: it.env, Target: Name, Message: errorMessage(it.err)})
			continue
		}
		for _, s := range it.steps {
			body, err := json.Marshal(s.obj.Object)
			if err != nil {
				tp.Errors = append(tp.Errors, reconciler.ModelError{Model: it.model, Environment: it.env, Target: Name, Message: err.Error()})
				continue
			}
			tp.Actions = append(tp.Actions, reconciler.Action{
				Target: Name, Kind: s.kind, Model: it.model, Environment: it.env,
				Resource: s.key.String(), Op: s.op, From: s.from, To: s.to, Drift: s.drift, Reason: s.reason,
				Revision: it.revision,
				Payload: mustJSON(Payload{Op: PayloadApply, Group: s.key.GVR.Group, Version: s.key.GVR.Version, Resource: s.key.GVR.Resource,
					Namespace: s.key.Namespace, Name: s.key.Name, Force: s.force, Object: body, ModelVersion: s.version}),
			})
		}
		for _, w := range it.waits {
			tp.Waits = append(tp.Waits, reconciler.Wait{Model: it.model, Environment: it.env, Target: Name, Reason: w})
		}
	}
	tp.Actions = append(tp.Actions, t.prune(desired, obs, &tp)...)
	return tp
}

// errorMessage drops the model/environment prefix the reconciler adds itself.
func errorMessage(err error) string {
	var me *ModelError
	if errors.As(err, &me) {
		if me.Version > 0 {
			return fmt.Sprintf("version %d: %s", me.Version, me.Err.Error())
		}
		return me.Err.Error()
	}
	return err.Error()
}

// prune plans deletes for managed objects whose model or environment left
// the repository, among the models the desired state covers (all of them
// only for a state computed from the whole repository). Objects without modelsync's label are never candidates
// (the informers never list them), and a model that failed to resolve or
// render keeps its objects: it is still in Git, only broken.
func (t *Target) prune(desired *reconciler.DesiredState, obs *observation, tp *reconciler.TargetPlan) []reconciler.Action {
	if desired.Config == nil || !desired.Config.Prune || len(obs.orphans) == 0 {
		return nil
	}
	protected := map[string]bool{}
	for _, e := range desired.Errors {
		protected[e.Model] = true
	}
	for _, m := range desired.Models {
		if m.Suspended {
			protected[m.Name] = true
		}
	}
	failedEnv := map[[2]string]bool{}
	for _, it := range obs.items {
		if it.err != nil {
			failedEnv[[2]string{it.model, it.env}] = true
		}
	}
	var cands []orphan
	for _, o := range obs.orphans {
		// A state that covers some models says nothing about the others:
		// their objects are not orphans, only outside this plan's view.
		if o.model == "" || !desired.Covers(o.model) || protected[o.model] || failedEnv[[2]string{o.model, o.env}] {
			continue
		}
		cands = append(cands, o)
	}
	if len(cands) == 0 {
		return nil
	}
	if desired.Whole() && len(desired.Models) == 0 && !t.cfg.AllowEmpty {
		tp.Errors = append(tp.Errors, reconciler.ModelError{Target: Name,
			Message: fmt.Sprintf("%v: %d managed objects would be deleted", ErrPruneEmpty, len(cands))})
		return nil
	}
	sort.Slice(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if a.model != b.model {
			return a.model < b.model
		}
		// The InferenceService goes first: it may use the others while it serves.
		if ai, bi := a.key.GVR == inferenceServiceGVR, b.key.GVR == inferenceServiceGVR; ai != bi {
			return ai
		}
		return a.key.String() < b.key.String()
	})
	var out []reconciler.Action
	for _, o := range cands {
		kind := KindDeleteInferenceService
		if o.key.GVR != inferenceServiceGVR {
			kind = "delete-" + strings.ToLower(nonEmpty(o.kind, o.key.GVR.Resource))
		}
		reason := fmt.Sprintf("model %s left the repository", o.model)
		if m, ok := desired.Model(o.model); ok {
			reason = fmt.Sprintf("model %s no longer runs in %s", o.model, o.env)
			if _, ok := m.Env(o.env); ok {
				reason = fmt.Sprintf("model %s in %s no longer renders %s", o.model, o.env, o.key)
			}
		}
		out = append(out, reconciler.Action{
			Target: Name, Kind: kind, Model: o.model, Environment: o.env, Resource: o.key.String(),
			Op: reconciler.OpDelete, From: "v" + nonEmpty(o.version, "?"), Reason: reason, Revision: desired.Revision,
			Payload: mustJSON(Payload{Op: PayloadDelete, Group: o.key.GVR.Group, Version: o.key.GVR.Version, Resource: o.key.GVR.Resource,
				Namespace: o.key.Namespace, Name: o.key.Name, UID: o.uid}),
		})
	}
	return out
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		// Payload holds only strings, numbers and already-encoded JSON.
		panic(fmt.Sprintf("kserve: encoding payload: %v", err))
	}
	return b
}

// decide plans the writes that bring one model's objects in one
// environment to what Git says. It reads only the caches.
func (t *Target) decide(it *item, r *Rendered, policy manifest.ServingPolicy) error {
	if err := t.decideISVC(it, r, policy); err != nil {
		return err
	}
	for _, o := range r.Extras {
		rm, err := t.mapping(o.GroupVersionKind())
		if err != nil {
			return t.modelErr(it, err)
		}
		if err := t.decideGeneric(it, objKey{rm.Resource, o.GetNamespace(), o.GetName()}, o, policy); err != nil {
			return err
		}
	}
	return nil
}

func (t *Target) modelErr(it *item, err error) error {
	var me *ModelError
	if errors.As(err, &me) {
		return err
	}
	return &ModelError{Model: it.model, Environment: it.env, Version: it.version, Err: err}
}

// adoptOrRefuse handles a desired object that exists without modelsync's
// label: modelsync adopts it back only if its own field manager wrote it
// (someone removed the label by hand); anything else is left alone.
func (t *Target) adoptOrRefuse(it *item, key objKey, f *metav1.PartialObjectMetadata) error {
	var managers []string
	for _, e := range f.GetManagedFields() {
		if e.Manager == t.cfg.fieldManager() {
			return nil
		}
		managers = append(managers, e.Manager)
	}
	sort.Strings(managers)
	return t.modelErr(it, fmt.Errorf("%w: %s %s (field managers: %s); rename it in the kustomization or delete it",
		ErrNotManaged, kindOf(key), key, strings.Join(managers, ", ")))
}

func kindOf(k objKey) string {
	if k.GVR == inferenceServiceGVR {
		return InferenceServiceKind
	}
	return k.GVR.Resource
}

func (t *Target) decideISVC(it *item, r *Rendered, policy manifest.ServingPolicy) error {
	key := objKey{inferenceServiceGVR, r.Namespace, r.Name}
	it.keys = append(it.keys, key)
	desired := r.InferenceService
	live := t.caches.managedObject(key)
	if live == nil {
		obj := desired
		if r.CanaryVersion > 0 {
			// KServe gives a new object's only revision 100% whatever the
			// percentage says, so the stable version goes first and the
			// canary follows once it has rolled out.
			obj = withPredictor(desired, r.StableURI, r.StableVersion, nil)
			it.waits = append(it.waits, fmt.Sprintf("canary v%d at %d%% starts after v%d has rolled out", r.CanaryVersion, r.CanaryWeight, r.StableVersion))
		}
		s := step{kind: KindApplyInferenceService, op: reconciler.OpCreate, key: key, obj: obj,
			to: describe(obj), version: r.PredictorVersion(), final: true, reason: "InferenceService missing"}
		if f := t.caches.foreignObject(key); f != nil {
			if err := t.adoptOrRefuse(it, key, f); err != nil {
				return err
			}
			s.op, s.drift, s.reason = reconciler.OpUpdate, true, "the "+LabelManagedBy+" label was removed by hand; restoring it"
		}
		it.steps = append(it.steps, s)
		return nil
	}

	if r.CanaryVersion > 0 {
		if mode, source := t.deploymentMode(r, live); mode != "" && !knativeMode(mode) {
			return t.modelErr(it, fmt.Errorf("%w: %s is in %s mode (%s), where KServe ignores canaryTrafficPercent without a warning; remove the canary or use Knative mode",
				ErrCanaryUnsupported, key, mode, source))
		}
	}
	liveURI, _, _ := unstructured.NestedString(live.Object, "spec", "predictor", "model", "storageUri")
	livePct := canaryPercent(live)
	prog := ProgressOf(live)
	rollbackOf := live.GetAnnotations()[AnnotationRollbackOf]
	target := desired
	reason := ""
	switch {
	case r.CanaryVersion > 0:
		if liveURI != r.CanaryURI && prog.LatestRolledoutRevision == "" {
			target = withPredictor(desired, r.StableURI, r.StableVersion, nil)
			it.waits = append(it.waits, fmt.Sprintf("canary v%d at %d%% waits until the current revision has rolled out (status.components.predictor.latestRolledoutRevision is empty)", r.CanaryVersion, r.CanaryWeight))
		} else if liveURI != r.CanaryURI {
			reason = fmt.Sprintf("start canary v%d at %d%% (the rest stays on %s)", r.CanaryVersion, r.CanaryWeight, prog.LatestRolledoutRevision)
		}
	case livePct != nil && liveURI != r.StableURI:
		return t.planRollback(it, key, r, live, *livePct, prog, policy)
	case livePct != nil && rollbackOf != "" && liveURI == r.StableURI:
		ready := prog.LatestReadyRevision != "" && prog.LatestReadyRevision == prog.LatestCreatedRevision && prog.LatestCreatedRevision != rollbackOf
		if !ready {
			zero := int64(0)
			target = withPredictor(desired, r.StableURI, r.StableVersion, &zero)
			it.waits = append(it.waits, fmt.Sprintf("rollback to v%d: traffic stays on %s until the restored revision is ready (latest created %s, latest ready %s)",
				r.StableVersion, nonEmpty(prog.LatestRolledoutRevision, "the last rolled-out revision"), nonEmpty(prog.LatestCreatedRevision, "-"), nonEmpty(prog.LatestReadyRevision, "-")))
		} else {
			reason = fmt.Sprintf("rollback to v%d: restored revision %s is ready; give it all traffic", r.StableVersion, prog.LatestReadyRevision)
		}
	case livePct != nil && liveURI == r.StableURI:
		reason = fmt.Sprintf("promote v%d: the canary is now the version in Git", r.StableVersion)
	}
	diffs := diffObjects(target, live, t.cfg.fieldManager())
	if len(diffs) == 0 {
		return nil
	}
	trafficOnly := true
	for _, d := range diffs {
		if !d.hasPrefix("spec", "predictor", "canaryTrafficPercent") {
			trafficOnly = false
		}
	}
	target = target.DeepCopy()
	if trafficOnly {
		carryBookkeeping(target, live)
	}
	drift, force, driftReason := t.driftOf(live, diffs, policy)
	s := step{key: key, obj: target, op: reconciler.OpUpdate, force: force, drift: drift,
		version: predictorVersion(target), final: true, reason: reason}
	if drift {
		s.reason = driftReason
	}
	newPct := canaryPercent(target)
	switch {
	case trafficOnly && newPct != nil:
		s.kind, s.from, s.to = KindSetCanaryTraffic, pctString(livePct), pctString(newPct)
	case trafficOnly:
		s.kind, s.from, s.to = KindPromoteCanary, describe(live), describe(target)
	default:
		s.kind, s.from, s.to = KindApplyInferenceService, describe(live), describe(target)
		if s.reason == "" {
			s.reason = "changed: " + joinPaths(diffs, 4)
		}
	}
	it.steps = append(it.steps, s)
	return nil
}

// planRollback handles a canary removed from Git while the stable version
// stayed: first all traffic goes back to the last rolled-out revision (a
// route change, no new revision), then the stable model is restored with
// canaryTrafficPercent held at 0. Removing the percentage at once would
// route 100% to the latest *ready* revision, which until the restored one
// is ready is the canary being rolled back; a later plan removes it once
// the restored revision is ready.
func (t *Target) planRollback(it *item, key objKey, r *Rendered, live *unstructured.Unstructured, livePct int64, prog Progress, policy manifest.ServingPolicy) error {
	zero := int64(0)
	if livePct != 0 {
		first := withPredictor(r.InferenceService, "", 0, &zero)
		liveURI, _, _ := unstructured.NestedString(live.Object, "spec", "predictor", "model", "storageUri")
		_ = unstructured.SetNestedField(first.Object, liveURI, "spec", "predictor", "model", "storageUri")
		labels := first.GetLabels()
		labels[LabelVersion] = live.GetLabels()[LabelVersion]
		first.SetLabels(labels)
		carryBookkeeping(first, live)
		diffs := diffObjects(first, live, t.cfg.fieldManager())
		drift, force, _ := t.driftOf(live, diffs, policy)
		it.steps = append(it.steps, step{kind: KindSetCanaryTraffic, op: reconciler.OpUpdate, key: key, obj: first,
			force: force, drift: drift, from: pctString(&livePct), to: "0%", version: predictorVersion(first),
			reason: fmt.Sprintf("rollback: canary removed from Git; all traffic back to %s", nonEmpty(prog.LatestRolledoutRevision, "the last rolled-out revision"))})
	}
	second := withPredictor(r.InferenceService, r.StableURI, r.StableVersion, &zero)
	ann := second.GetAnnotations()
	ann[AnnotationRollbackOf] = nonEmpty(live.GetAnnotations()[AnnotationRollbackOf], nonEmpty(prog.LatestCreatedRevision, "unknown"))
	second.SetAnnotations(ann)
	diffs := diffObjects(second, live, t.cfg.fieldManager())
	drift, force, _ := t.driftOf(live, diffs, policy)
	it.steps = append(it.steps, step{kind: KindApplyInferenceService, op: reconciler.OpUpdate, key: key, obj: second,
		force: force, drift: drift, from: describe(live), to: describe(second), version: r.StableVersion, final: true,
		reason: fmt.Sprintf("rollback: restore v%d with canaryTrafficPercent held at 0 until its revision is ready", r.StableVersion)})
	return nil
}

func (t *Target) decideGeneric(it *item, key objKey, desired *unstructured.Unstructured, policy manifest.ServingPolicy) error {
	kind := "apply-" + strings.ToLower(desired.GetKind())
	it.keys = append(it.keys, key)
	live := t.caches.managedObject(key)
	if live == nil {
		s := step{kind: kind, op: reconciler.OpCreate, key: key, obj: desired, to: desired.GetKind() + " " + key.Name,
			version: it.version, final: true}
		if f := t.caches.foreignObject(key); f != nil {
			if err := t.adoptOrRefuse(it, key, f); err != nil {
				return err
			}
			s.op, s.drift = reconciler.OpUpdate, true
		}
		it.steps = append(it.steps, s)
		return nil
	}
	diffs := diffObjects(desired, live, t.cfg.fieldManager())
	if len(diffs) == 0 {
		return nil
	}
	drift, force, reason := t.driftOf(live, diffs, policy)
	if !drift {
		reason = "changed: " + joinPaths(diffs, 4)
	}
	it.steps = append(it.steps, step{kind: kind, op: reconciler.OpUpdate, key: key, obj: desired, force: force, drift: drift,
		from: live.GetKind() + " " + key.Name, to: desired.GetKind() + " " + key.Name, version: it.version, final: true, reason: reason})
	return nil
}

// driftOf tells whether differing fields were changed behind modelsync's
// back. A field another manager changed with an update (kubectl edit,
// patch, a script) is drift: Git wins, so the apply takes it back with
// force. A field another manager *applies* is a second source of truth;
// that is a conflict, forced only when serving.forceConflicts says so.
func (t *Target) driftOf(live *unstructured.Unstructured, diffs []fieldPath, policy manifest.ServingPolicy) (drift, force bool, reason string) {
	updaters := map[string]bool{}
	appliers := map[string]bool{}
	var fields []string
	for _, p := range diffs {
		for m, op := range owners(live, p, t.cfg.fieldManager()) {
			if op == metav1.ManagedFieldsOperationUpdate {
				updaters[m] = true
				fields = append(fields, p.String())
			} else {
				appliers[m] = true
			}
		}
	}
	drift = len(updaters) > 0
	force = policy.ForceConflicts || (drift && len(appliers) == 0)
	if drift {
		reason = fmt.Sprintf("drift: %s changed by %s", strings.Join(uniqueSorted(fields), ", "), strings.Join(sortedKeys(updaters), ", "))
	}
	return drift, force, reason
}

func (t *Target) deploymentMode(r *Rendered, live *unstructured.Unstructured) (mode, source string) {
	if r.DeploymentMode != "" {
		return r.DeploymentMode, "annotation " + AnnotationDeploymentMode
	}
	if m, _, _ := unstructured.NestedString(live.Object, "status", "deploymentMode"); m != "" {
		return m, "status.deploymentMode"
	}
	if m := live.GetAnnotations()[AnnotationDeploymentMode]; m != "" {
		return m, "live annotation " + AnnotationDeploymentMode
	}
	if t.cfg.DefaultDeploymentMode != "" {
		return t.cfg.DefaultDeploymentMode, "the cluster default in modelsync's configuration"
	}
	return "", ""
}

func knativeMode(mode string) bool {
	switch strings.ToLower(mode) {
	case "knative", "serverless":
		return true
	}
	return false
}

// withPredictor copies obj pointing the predictor at uri/version (kept
// when uri is "") with the given canary percentage (nil removes it).
func withPredictor(obj *unstructured.Unstructured, uri string, version int, pct *int64) *unstructured.Unstructured {
	out := obj.DeepCopy()
	if uri != "" {
		_ = unstructured.SetNestedField(out.Object, uri, "spec", "predictor", "model", "storageUri")
		labels := out.GetLabels()
		labels[LabelVersion] = fmt.Sprint(version)
		out.SetLabels(labels)
	}
	if pct == nil {
		unstructured.RemoveNestedField(out.Object, "spec", "predictor", "canaryTrafficPercent")
	} else {
		_ = unstructured.SetNestedField(out.Object, *pct, "spec", "predictor", "canaryTrafficPercent")
	}
	return out
}

func carryBookkeeping(dst, live *unstructured.Unstructured) {
	ann := dst.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	for _, k := range bookkeeping {
		if v, ok := live.GetAnnotations()[k]; ok {
			ann[k] = v
		} else {
			delete(ann, k)
		}
	}
	dst.SetAnnotations(ann)
}

func canaryPercent(o *unstructured.Unstructured) *int64 {
	v, found, _ := unstructured.NestedFieldNoCopy(o.Object, "spec", "predictor", "canaryTrafficPercent")
	if !found || v == nil {
		return nil
	}
	n := toInt64(v)
	return &n
}

func predictorVersion(o *unstructured.Unstructured) int {
	var v int
	_, _ = fmt.Sscan(o.GetLabels()[LabelVersion], &v)
	return v
}

func pctString(p *int64) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprintf("%d%%", *p)
}

// describe summarises what an InferenceService serves, e.g. "v4 (canary 10%)".
func describe(o *unstructured.Unstructured) string {
	s := "v" + nonEmpty(o.GetLabels()[LabelVersion], "?")
	if p := canaryPercent(o); p != nil {
		s += fmt.Sprintf(" (canary %d%%)", *p)
	}
	return s
}

func joinPaths(ps []fieldPath, max int) string {
	var out []string
	for i, p := range ps {
		if i == max {
			out = append(out, fmt.Sprintf("and %d more", len(ps)-max))
			break
		}
		out = append(out, p.String())
	}
	return strings.Join(out, ", ")
}

func uniqueSorted(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
