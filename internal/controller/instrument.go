package controller

import (
	"context"
	"time"

	"github.com/modelsync/modelsync/reconciler"
)

// instrumented times a target's observations and writes.
type instrumented struct {
	reconciler.Target
	m *Metrics
}

func (t *instrumented) Observe(ctx context.Context, d *reconciler.DesiredState) (reconciler.Observation, error) {
	start := time.Now()
	defer func() { t.m.reconcileDuration.WithLabelValues(t.Name()).Observe(time.Since(start).Seconds()) }()
	return t.Target.Observe(ctx, d)
}

func (t *instrumented) Apply(ctx context.Context, a reconciler.Action) error {
	start := time.Now()
	defer func() { t.m.reconcileDuration.WithLabelValues(t.Name()).Observe(time.Since(start).Seconds()) }()
	return t.Target.Apply(ctx, a)
}

// ValidateAction forwards to the target when it validates actions.
func (t *instrumented) ValidateAction(a reconciler.Action) error {
	if v, ok := t.Target.(reconciler.ActionValidator); ok {
		return v.ValidateAction(a)
	}
	return nil
}

// Unwrap returns the target, so reconciler.As finds its capabilities.
func (t *instrumented) Unwrap() any { return t.Target }
