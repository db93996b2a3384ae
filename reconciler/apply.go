package reconciler

import (
	"context"
	"errors"
	"fmt"
)

// ApplyResult records what happened to each action of a plan.
type ApplyResult struct {
	Applied []Action      `json:"applied"`
	Failed  []ActionError `json:"failed"`
	// Skipped actions belong to a model whose earlier action failed; the
	// next plan picks them up again.
	Skipped []Action `json:"skipped"`
}

// ActionError is an action that failed, with the reason.
type ActionError struct {
	Action Action `json:"action"`
	Err    string `json:"error"`
}

// OK reports whether every action was applied.
func (r *ApplyResult) OK() bool { return len(r.Failed) == 0 && len(r.Skipped) == 0 }

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// OnAction is called after each action with its outcome (nil on success).
	OnAction func(Action, error)
}

// ValidatePlan checks, before anything is written, that every action names a
// configured target and that the target accepts it.
func ValidatePlan(p *Plan, targets []Target) error {
	byName := map[string]Target{}
	for _, t := range targets {
		byName[t.Name()] = t
	}
	var errs []error
	for _, a := range p.actions {
		t, ok := byName[a.Target]
		if !ok {
			errs = append(errs, fmt.Errorf("action %s: target %q is not configured", a.ID(), a.Target))
			continue
		}
		if v, ok := t.(ActionValidator); ok {
			if err := v.ValidateAction(a); err != nil {
				errs = append(errs, fmt.Errorf("action %s: %w", a.ID(), err))
			}
		}
	}
	return errors.Join(errs...)
}

// Apply executes a plan in order. The plan is validated first, so a plan
// with a bad action writes nothing. When an action fails, the remaining
// actions of that model are skipped and the other models go on; because
// every action is idempotent, the next plan converges from wherever this
// one stopped.
func Apply(ctx context.Context, p *Plan, targets []Target, opts ApplyOptions) (*ApplyResult, error) {
	if err := ValidatePlan(p, targets); err != nil {
		return nil, fmt.Errorf("plan %s is invalid, nothing applied: %w", p.revision, err)
	}
	byName := map[string]Target{}
	for _, t := range targets {
		byName[t.Name()] = t
	}
	res := &ApplyResult{Applied: []Action{}, Failed: []ActionError{}, Skipped: []Action{}}
	failedModel := map[string]bool{}
	for _, a := range p.actions {
		if err := ctx.Err(); err != nil {
			res.Skipped = append(res.Skipped, a)
			continue
		}
		if failedModel[a.Model] {
			res.Skipped = append(res.Skipped, a)
			continue
		}
		err := byName[a.Target].Apply(ctx, a)
		if opts.OnAction != nil {
			opts.OnAction(a, err)
		}
		if err != nil {
			failedModel[a.Model] = true
			res.Failed = append(res.Failed, ActionError{Action: a, Err: err.Error()})
			continue
		}
		res.Applied = append(res.Applied, a)
	}
	return res, ctx.Err()
}
