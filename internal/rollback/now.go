package rollback

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/modelsync/modelsync/reconciler"
)

// Override returns a desired state that holds only model, with env at
// version and the given revision and commit, for applying a rollback ahead
// of Git. The other models are left out so nothing else is touched, and
// pruning is off: to a target that prunes, the models left out would look
// deleted.
func Override(d *reconciler.DesiredState, model, env string, version int, revision string, commit reconciler.Commit) (*reconciler.DesiredState, error) {
	m, ok := d.Model(model)
	if !ok {
		for _, e := range d.Errors {
			if e.Model == model {
				return nil, fmt.Errorf("model %s cannot be applied now, its desired state does not resolve: %w", model, e)
			}
		}
		return nil, fmt.Errorf("model %s is not in the desired state of %s", model, d.Revision)
	}
	if _, ok := m.Env(env); !ok {
		return nil, fmt.Errorf("model %s does not run in environment %s at %s", model, env, d.Revision)
	}
	mc := *m
	mc.Environments = slices.Clone(m.Environments)
	e, _ := mc.Env(env)
	e.Version = version
	if revision != "" {
		e.Revision = revision
		e.Commit = commit
	}
	out := &reconciler.DesiredState{Revision: d.Revision, Models: []reconciler.DesiredModel{mc}}
	if d.Config != nil {
		cfg := *d.Config
		cfg.Prune = false
		out.Config = &cfg
	}
	return out, nil
}

// ApplyNow plans the overridden desired state against the targets and
// applies it. It refuses, writing nothing, when the plan has errors or
// touches any model but the one rolled back.
func ApplyNow(ctx context.Context, d *reconciler.DesiredState, targets []reconciler.Target, model, env string, version int) (*reconciler.Plan, *reconciler.ApplyResult, error) {
	p, err := reconciler.BuildPlan(ctx, d, targets)
	if err != nil {
		return nil, nil, fmt.Errorf("planning the rollback of model %s in %s to version %d: %w", model, env, version, err)
	}
	if errs := p.Errors(); len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return p, nil, fmt.Errorf("rollback of model %s in %s to version %d cannot be applied now, nothing was changed: %s", model, env, version, strings.Join(msgs, "; "))
	}
	for _, a := range p.Actions() {
		if a.Model != model {
			return p, nil, fmt.Errorf("rollback of model %s in %s: the plan touches model %s (%s); refusing to apply", model, env, a.Model, a.ID())
		}
	}
	res, err := reconciler.Apply(ctx, p, targets, reconciler.ApplyOptions{})
	if err != nil {
		return p, res, fmt.Errorf("applying the rollback of model %s in %s to version %d: %w", model, env, version, err)
	}
	if !res.OK() {
		var msgs []string
		for _, f := range res.Failed {
			msgs = append(msgs, f.Action.ID()+": "+f.Err)
		}
		return p, res, fmt.Errorf("applying the rollback of model %s in %s to version %d failed: %s (%d action(s) skipped)", model, env, version, strings.Join(msgs, "; "), len(res.Skipped))
	}
	return p, res, nil
}
