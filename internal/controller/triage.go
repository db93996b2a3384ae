package controller

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/modelsync/modelsync/reconciler"
)

// triage is the full pass: it plans every model in one go — one
// observation per target, which the MLflow target serves with a few paged
// searches — and returns only the keys a worker must look at: models with
// actions, waits, held actions or errors, environments a pin or a sync
// window keeps away from Git, pins Git now agrees with, and models that
// left Git but still have live objects. Every other key is recorded as
// synced. This keeps the periodic resync of a large, quiet repository at a
// handful of requests instead of a few per key.
//
// It is the only plan of the whole repository, so it is the only one that
// can see objects of models that left Git; it queues such a model's key,
// whose run prunes exactly that model.
func (c *Controller) triage(ctx context.Context, d *reconciler.DesiredState) []Key {
	now := c.opts.Now()
	sub := *d // same scope: the whole repository
	sub.Models = make([]reconciler.DesiredModel, 0, len(d.Models))
	var need []Key
	type extra struct {
		held   map[string]heldEnv
		pinned map[string]Pin
		agreed []Pin
	}
	extras := map[string]extra{}
	for i := range d.Models {
		m := &d.Models[i]
		if m.Suspended {
			need = append(need, modelKeys(m)...) // no I/O to decide
			sub.Models = append(sub.Models, *m)
			continue
		}
		eff, held, pinned, agreed := c.effective(m, now)
		extras[m.Name] = extra{held: held, pinned: pinned, agreed: agreed}
		sub.Models = append(sub.Models, eff)
	}
	plan, err := reconciler.BuildPlan(ctx, &sub, c.targets)
	if err != nil {
		c.log.Warn("planning every model at once failed; planning model by model", "revision", d.Revision, "error", err)
		return allKeys(d)
	}
	dirty := map[string]bool{}
	for _, e := range plan.Errors() {
		if e.Model == "" {
			// A target could not be observed at all: let each key find
			// out and back off on its own.
			return allKeys(d)
		}
		dirty[e.Model] = true
	}
	for _, a := range slices.Concat(plan.Actions(), plan.Held()) {
		dirty[a.Model] = true
	}
	for _, w := range plan.Waits() {
		dirty[w.Model] = true
	}
	for _, name := range slices.Sorted(maps.Keys(dirty)) {
		if _, inGit := d.Model(name); !inGit && name != "" && !d.Broken(name) {
			need = append(need, Key{Model: name})
		}
	}
	for i := range sub.Models {
		eff := &sub.Models[i]
		git, _ := d.Model(eff.Name)
		if git.Suspended {
			continue
		}
		if dirty[eff.Name] {
			need = append(need, modelKeys(git)...)
			continue
		}
		x := extras[eff.Name]
		for _, k := range modelKeys(git) {
			if k.Environment == "" {
				c.markSynced(ctx, k, nil, d.Revision, now, plan)
				continue
			}
			_, held := x.held[k.Environment]
			_, pinned := x.pinned[k.Environment]
			agreed := slices.ContainsFunc(x.agreed, func(p Pin) bool { return p.Environment == k.Environment })
			if held || pinned || agreed {
				need = append(need, k)
				continue
			}
			e, _ := eff.Env(k.Environment)
			c.markSynced(ctx, k, e, e.Revision, now, plan)
		}
	}
	return need
}

func (c *Controller) markSynced(ctx context.Context, k Key, e *reconciler.DesiredEnv, rev string, now time.Time, plan *reconciler.Plan) {
	health := c.health(ctx, k, e)
	if e != nil {
		c.mu.Lock()
		c.applied[k] = e
		c.mu.Unlock()
		c.metrics.setModelInfo(k, e.Version)
	}
	c.update(k, func(s *itemStatus) {
		s.State, s.Message, s.LastError, s.Drift, s.WaitingSince = StateSynced, "", "", false, time.Time{}
		s.Live, s.LastRevision, s.LastAttempt = envLabel(e), rev, now
		s.Health, s.CanaryStep, s.Traffic = health.Status, health.CanaryStep, health.Traffic
	})
	c.countResult(plan, "noop")
	c.event(ctx, k, e, false)
}
