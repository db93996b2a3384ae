package kserve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

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

// Plan implements reconciler.Target. It does no I/O.
func (t *Target) Plan(desired *reconciler.DesiredState, observed reconciler.Observation) reconciler.TargetPlan {
	var tp reconciler.TargetPlan
	obs, ok := observed.(*observation)
	if !ok || obs == nil {
		tp.Errors = append(tp.Errors, reconciler.ModelError{Target: TargetName, Message: fmt.Sprintf("observation of type %T is not this target's", observed)})
		return tp
	}
	tp.Errors = append(tp.Errors, obs.errs...)
	for _, ns := range obs.createNS {
		obj := &unstructured.Unstructured{}
		obj.SetAPIVersion("v1")
		obj.SetKind("Namespace")
		obj.SetName(ns)
		body, _ := json.Marshal(obj.Object)
		tp.Actions = append(tp.Actions, reconciler.Action{
			Target: TargetName, Kind: KindCreateNamespace, Resource: ns, Op: reconciler.OpCreate, To: ns,
			Reason: "environment namespace missing; createNamespaces is on", Revision: desired.Revision,
			Payload: mustJSON(Payload{Op: PayloadCreateNamespace, Version: "v1", Resource: "namespaces", Name: ns, Object: body}),
		})
	}
	for _, it := range obs.items {
		if it.err != nil {
			tp.Errors = append(tp.Errors, reconciler.ModelError{Model: it.model, Environment: it.env, Target: TargetName, Message: errorMessage(it.err)})
			continue
		}
		for _, s := range it.steps {
			body, err := json.Marshal(s.obj.Object)
			if err != nil {
				tp.Errors = append(tp.Errors, reconciler.ModelError{Model: it.model, Environment: it.env, Target: TargetName, Message: err.Error()})
				continue
			}
			tp.Actions = append(tp.Actions, reconciler.Action{
				Target: TargetName, Kind: s.kind, Model: it.model, Environment: it.env,
				Resource: s.key.String(), Op: s.op, From: s.from, To: s.to, Drift: s.drift, Reason: s.reason,
				Revision: it.revision,
				Payload: mustJSON(Payload{Op: PayloadApply, Group: s.key.GVR.Group, Version: s.key.GVR.Version, Resource: s.key.GVR.Resource,
					Namespace: s.key.Namespace, Name: s.key.Name, Force: s.force, Object: body, ModelVersion: s.version}),
			})
		}
		for _, w := range it.waits {
			tp.Waits = append(tp.Waits, reconciler.Wait{Model: it.model, Environment: it.env, Target: TargetName, Reason: w})
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
		tp.Errors = append(tp.Errors, reconciler.ModelError{Target: TargetName,
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
			Target: TargetName, Kind: kind, Model: o.model, Environment: o.env, Resource: o.key.String(),
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
		panic(fmt.Sprintf("serving: encoding payload: %v", err))
	}
	return b
}

// ValidateAction implements reconciler.ActionValidator: the payload must
// decode and agree with the action it rides on.
func (t *Target) ValidateAction(a reconciler.Action) error {
	_, _, err := decodeAction(a)
	return err
}

func decodeAction(a reconciler.Action) (Payload, *unstructured.Unstructured, error) {
	var p Payload
	if a.Target != TargetName {
		return p, nil, fmt.Errorf("action for target %q given to %q", a.Target, TargetName)
	}
	if err := json.Unmarshal(a.Payload, &p); err != nil {
		return p, nil, fmt.Errorf("action %s: payload: %w", a.ID(), err)
	}
	if p.Name == "" || p.Resource == "" || p.Version == "" {
		return p, nil, fmt.Errorf("action %s: payload names no object", a.ID())
	}
	switch p.Op {
	case PayloadDelete:
		if a.Op != reconciler.OpDelete || p.Namespace == "" {
			return p, nil, fmt.Errorf("action %s: delete payload on a %s action", a.ID(), a.Op)
		}
		return p, nil, nil
	case PayloadApply, PayloadCreateNamespace:
	default:
		return p, nil, fmt.Errorf("action %s: unknown payload op %q", a.ID(), p.Op)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(p.Object); err != nil {
		return p, nil, fmt.Errorf("action %s: payload object: %w", a.ID(), err)
	}
	if obj.GetName() != p.Name || obj.GetNamespace() != p.Namespace {
		return p, nil, fmt.Errorf("action %s: payload object %s/%s does not match %s/%s", a.ID(), obj.GetNamespace(), obj.GetName(), p.Namespace, p.Name)
	}
	if p.Op == PayloadApply && obj.GetLabels()[LabelManagedBy] != ManagedByValue {
		return p, nil, fmt.Errorf("action %s: payload object lacks the %s=%s label", a.ID(), LabelManagedBy, ManagedByValue)
	}
	return p, obj, nil
}

// Apply implements reconciler.Target: one server-side apply, delete or
// namespace creation. Every operation is idempotent.
func (t *Target) Apply(ctx context.Context, a reconciler.Action) error {
	p, obj, err := decodeAction(a)
	if err != nil {
		return err
	}
	key := objKey{GVR: p.gvr(), Namespace: p.Namespace, Name: p.Name}
	switch p.Op {
	case PayloadCreateNamespace:
		_, err := t.dyn.Resource(namespaceGVR).Apply(ctx, p.Name, obj, metav1.ApplyOptions{FieldManager: t.cfg.fieldManager()})
		if err != nil {
			return fmt.Errorf("creating namespace %s: %w", p.Name, err)
		}
		t.mu.Lock()
		t.namespaces[p.Name] = true
		t.mu.Unlock()
		return nil
	case PayloadDelete:
		err := t.dyn.Resource(key.GVR).Namespace(key.Namespace).Delete(ctx, key.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &p.UID},
		})
		switch {
		case err == nil, apierrors.IsNotFound(err):
		case apierrors.IsConflict(err):
			// The UID precondition failed: the object was replaced since the
			// plan, so the one planned for deletion is already gone.
		default:
			return &ModelError{Model: a.Model, Environment: a.Environment, Err: fmt.Errorf("deleting %s %s: %w", kindOf(key), key, err)}
		}
		t.caches.recordDelete(key, p.UID)
		return nil
	}
	res, err := t.dyn.Resource(key.GVR).Namespace(key.Namespace).Apply(ctx, key.Name, obj,
		metav1.ApplyOptions{FieldManager: t.cfg.fieldManager(), Force: p.Force})
	if err != nil {
		return t.applyError(key, p.ModelVersion, a.Model, a.Environment, err)
	}
	t.caches.recordWrite(key, res.GetResourceVersion())
	return nil
}
