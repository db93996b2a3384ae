package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/modelsync/modelsync/internal/target/kserve"
	"github.com/modelsync/modelsync/reconciler"
)

func isvcGVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: kserve.KServeGroup, Version: kserve.KServeVersion, Resource: "inferenceservices"}
}

// KubeHealth reads each environment's InferenceService (named after the
// model, in the environment's namespace) and judges it with kserve.Health.
type KubeHealth struct{ Client dynamic.Interface }

// Health implements HealthChecker.
func (h KubeHealth) Health(ctx context.Context, model string, env reconciler.DesiredEnv) (Health, error) {
	obj, err := h.Client.Resource(isvcGVR()).Namespace(env.Namespace).Get(ctx, model, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return Health{Status: string(kserve.Missing)}, nil
	}
	if err != nil {
		return Health{}, fmt.Errorf("model %s environment %s: reading InferenceService %s/%s: %w", model, env.Environment, env.Namespace, model, err)
	}
	st, _, _ := kserve.Health(obj)
	out := Health{Status: string(st)}
	if env.Canary != nil {
		out.CanaryStep = kserve.ProgressOf(obj).String()
	}
	return out, nil
}

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
			APIVersion: kserve.KServeGroup + "/" + kserve.KServeVersion, Kind: "InferenceService",
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
