package kserve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/modelsync/modelsync/reconciler"
)

// applyError turns an API error into a model error a reader can act on.
func (t *Target) applyError(key objKey, version int, model, env string, err error) error {
	if namespaceNotFound(err, key.Namespace) {
		return &ModelError{Model: model, Environment: env, Version: version, Err: &NamespaceMissingError{Namespace: key.Namespace}}
	}
	var status apierrors.APIStatus
	if apierrors.IsConflict(err) && errors.As(err, &status) {
		ce := &ConflictError{Namespace: key.Namespace, Name: key.Name, Message: status.Status().Message}
		if d := status.Status().Details; d != nil {
			for _, c := range d.Causes {
				if c.Type != metav1.CauseTypeFieldManagerConflict {
					continue
				}
				ce.Conflicts = append(ce.Conflicts, FieldConflict{Manager: managerFromCause(c.Message), Field: c.Field})
			}
		}
		if len(ce.Conflicts) > 0 {
			return &ModelError{Model: model, Environment: env, Version: version, Err: ce}
		}
	}
	// A value of the wrong type fails server-side apply while it builds the
	// typed object from the CRD schema; the API server reports that as a
	// 500 rather than a 422, but it is the object that is wrong.
	typeErr := apierrors.IsInternalError(err) && strings.Contains(err.Error(), "failed to create typed patch object")
	if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || typeErr {
		return &ModelError{Model: model, Environment: env, Version: version,
			Err: fmt.Errorf("%w: the API server rejected %s %s: %w", ErrInvalidSpec, kindOf(key), key, err)}
	}
	return &ModelError{Model: model, Environment: env, Version: version,
		Err: fmt.Errorf("applying %s %s: %w", kindOf(key), key, err)}
}

// namespaceNotFound reports whether err is the API server refusing a write
// because namespace ns does not exist (the NamespaceLifecycle admission
// check answers 404 naming the namespace, not the object written).
func namespaceNotFound(err error, ns string) bool {
	var status apierrors.APIStatus
	if !apierrors.IsNotFound(err) || !errors.As(err, &status) {
		return false
	}
	d := status.Status().Details
	return d != nil && d.Group == "" && d.Kind == "namespaces" && d.Name == ns
}

// managerFromCause extracts the manager from a FieldManagerConflict cause,
// whose message reads: conflict with "kubectl-edit" using v1: .spec.x
// (or: conflict with "m" with subresource "scale" using ...).
func managerFromCause(msg string) string {
	_, rest, ok := strings.Cut(msg, `conflict with "`)
	if !ok {
		return msg
	}
	name, _, ok := strings.Cut(rest, `"`)
	if !ok {
		return msg
	}
	return name
}

// ValidateAction implements reconciler.ActionValidator: the payload must
// decode and agree with the action it rides on.
func (t *Target) ValidateAction(a reconciler.Action) error {
	_, _, err := decodeAction(a)
	return err
}

func decodeAction(a reconciler.Action) (Payload, *unstructured.Unstructured, error) {
	var p Payload
	if a.Target != Name {
		return p, nil, fmt.Errorf("action for target %q given to %q", a.Target, Name)
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
		// A create, not an apply: it needs only the "create" verb on
		// Namespaces (deploy/components/create-namespaces), and a namespace
		// someone else created meanwhile is as good as ours.
		_, err := t.dyn.Resource(namespaceGVR).Create(ctx, obj, metav1.CreateOptions{FieldManager: t.cfg.fieldManager()})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating namespace %s: %w", p.Name, err)
		}
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
