package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/modelsync/modelsync/reconciler"
)

// inferenceServiceAPIVersion is the API version of the object Events are
// recorded on: the InferenceService the KServe target names after the
// model in each environment's namespace.
const inferenceServiceAPIVersion = "serving.kserve.io/v1beta1"

// event records a Kubernetes Event on the InferenceService when the key's
// state or applied revision changed since the last event, so a quiet
// resync emits nothing. Only the Lease holder records Events: an Event is a
// write like any other, and a standby's view may be stale.
func (c *Controller) event(_ context.Context, k Key, e *reconciler.DesiredEnv, wrote bool) {
	if c.opts.Events == nil || k.Environment == "" {
		return
	}
	ctx := c.leaderContext()
	if ctx == nil {
		return
	}
	c.mu.Lock()
	s := c.items[k]
	d := c.desired
	if s == nil || d == nil {
		c.mu.Unlock()
		return
	}
	state, rev, lastErr, message := s.State, s.LastRevision, s.LastError, s.Message
	changed := state != s.eventState || (state == StateSynced && rev != s.eventRev && wrote)
	if changed {
		s.eventState, s.eventRev = state, rev
	}
	c.mu.Unlock()
	if !changed {
		return
	}
	m, ok := d.Model(k.Model)
	if !ok {
		return
	}
	ge, ok := m.Env(k.Environment)
	if !ok {
		return
	}
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: k.Model + ".", Namespace: ge.Namespace},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: inferenceServiceAPIVersion, Kind: "InferenceService",
			Namespace: ge.Namespace, Name: k.Model,
		},
		Source:         corev1.EventSource{Component: "modelsync-controller"},
		FirstTimestamp: metav1.NewTime(c.opts.Now()),
		LastTimestamp:  metav1.NewTime(c.opts.Now()),
		Count:          1,
	}
	switch state {
	case StateSynced:
		ev.Type, ev.Reason = corev1.EventTypeNormal, "Synced"
		ev.Message = fmt.Sprintf("%s %s at %s", k.Environment, envLabel(e), rev)
	case StateFailed:
		ev.Type, ev.Reason = corev1.EventTypeWarning, "SyncFailed"
		ev.Message = fmt.Sprintf("%s at %s: %s", k.Environment, ge.Revision, lastErr)
	case StateWaiting:
		ev.Type, ev.Reason = corev1.EventTypeNormal, "Waiting"
		ev.Message = fmt.Sprintf("%s at %s: %s", k.Environment, ge.Revision, message)
	default:
		return
	}
	if _, err := c.opts.Events.CoreV1().Events(ge.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		c.log.Warn("recording event failed", "model", k.Model, "environment", k.Environment, "error", err)
	}
}
