package kserve

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/modelsync/modelsync/reconciler"
)

// WaitFor implements reconciler.Waiter: an applied InferenceService rolls
// out a new revision after the apply returns, so it is waited for; a
// namespace, a delete or an extra object is not.
func (t *Target) WaitFor(a reconciler.Action) string {
	p, ok := appliedInferenceService(a)
	if !ok {
		return ""
	}
	return InferenceServiceKind + " " + p.Namespace + "/" + p.Name
}

// Wait implements reconciler.Waiter with WaitHealthy.
func (t *Target) Wait(ctx context.Context, a reconciler.Action, timeout time.Duration) error {
	p, ok := appliedInferenceService(a)
	if !ok {
		return nil
	}
	if err := t.WaitHealthy(ctx, p.Namespace, p.Name, timeout); err != nil {
		return fmt.Errorf("model %s environment %s: %w", a.Model, a.Environment, err)
	}
	return nil
}

func appliedInferenceService(a reconciler.Action) (Payload, bool) {
	if a.Target != Name {
		return Payload{}, false
	}
	p, _, err := decodeAction(a)
	if err != nil || p.Op != PayloadApply || p.gvr() != inferenceServiceGVR {
		return Payload{}, false
	}
	return p, true
}

// WaitHealthy waits until the managed InferenceService ns/name is Healthy.
// KServe copies status.observedGeneration from the Knative Service, so a
// status right after an apply may still describe the previous spec; to
// wait for a particular revision, compare ProgressOf's revisions as well.
// It watches the informer cache rather than polling the API server. It
// returns a *NotHealthyError at once when the object turns Degraded or
// Suspended, and when timeout passes, naming the failing condition's
// reason and message.
func (t *Target) WaitHealthy(ctx context.Context, ns, name string, timeout time.Duration) error {
	if err := t.caches.ensure(ctx, inferenceServiceGVR, []string{ns}, t.cfg.syncTimeout()); err != nil {
		return err
	}
	// modelsync's own last write must be visible, or the wait could end
	// on the status of the object as it was before the apply.
	t.caches.catchUp(ctx, t.cfg.catchUpTimeout())
	key := objKey{inferenceServiceGVR, ns, name}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		changed := t.caches.changes()
		status, reason, msg := Health(t.caches.managedObject(key))
		switch status {
		case Healthy:
			return nil
		case Degraded, Suspended:
			return &NotHealthyError{Namespace: ns, Name: name, Status: status, Reason: reason, Message: msg}
		}
		select {
		case <-changed:
		case <-deadline.C:
			return &NotHealthyError{Namespace: ns, Name: name, Status: status, Reason: reason, Message: msg, TimedOut: true}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Observed returns a copy of the managed InferenceService ns/name from the
// cache, or nil; the namespace must have been observed before.
func (t *Target) Observed(ns, name string) *unstructured.Unstructured {
	o := t.caches.managedObject(objKey{inferenceServiceGVR, ns, name})
	if o == nil {
		return nil
	}
	return o.DeepCopy()
}
