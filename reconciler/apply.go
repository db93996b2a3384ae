package reconciler

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
	// OnAction is called after each action with its outcome (nil on
	// success). Calls are serialized, never concurrent.
	OnAction func(Action, error)
	// Concurrency is how many models are applied at once (default 1).
	// Actions of one model always run in plan order, one at a time.
	Concurrency int
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

// Apply executes a plan. The plan is validated first, so a plan with a bad
// action writes nothing. Each model's actions run in plan order; models run
// side by side up to opts.Concurrency. When an action fails, the remaining
// actions of that model are skipped and the other models go on; because
// every action is idempotent, the next plan converges from wherever this
// one stopped. The result lists actions in plan order.
func Apply(ctx context.Context, p *Plan, targets []Target, opts ApplyOptions) (*ApplyResult, error) {
	if err := ValidatePlan(p, targets); err != nil {
		return nil, fmt.Errorf("plan %s is invalid, nothing applied: %w", p.revision, err)
	}
	byName := map[string]Target{}
	for _, t := range targets {
		byName[t.Name()] = t
	}
	// Group by model, keeping plan order inside each group.
	var order []string
	groups := map[string][]Action{}
	for _, a := range p.actions {
		if _, ok := groups[a.Model]; !ok {
			order = append(order, a.Model)
		}
		groups[a.Model] = append(groups[a.Model], a)
	}
	type outcome struct {
		action Action
		err    error
		ran    bool
	}
	results := make(map[string][]outcome, len(order))
	var mu sync.Mutex // guards results and serializes OnAction
	runModel := func(model string) {
		var outs []outcome
		failed := false
		for _, a := range groups[model] {
			if failed || ctx.Err() != nil {
				outs = append(outs, outcome{action: a})
				continue
			}
			err := byName[a.Target].Apply(ctx, a)
			if opts.OnAction != nil {
				mu.Lock()
				opts.OnAction(a, err)
				mu.Unlock()
			}
			failed = err != nil
			outs = append(outs, outcome{action: a, err: err, ran: true})
		}
		mu.Lock()
		results[model] = outs
		mu.Unlock()
	}
	// Actions that belong to no model (a namespace an environment needs)
	// run first, on their own: the models' actions depend on them.
	rest := order
	if len(order) > 0 && order[0] == "" {
		runModel("")
		rest = order[1:]
	}
	work := make(chan string)
	var wg sync.WaitGroup
	for range max(1, min(opts.Concurrency, len(rest))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for model := range work {
				runModel(model)
			}
		}()
	}
	for _, m := range rest {
		work <- m
	}
	close(work)
	wg.Wait()

	res := &ApplyResult{Applied: []Action{}, Failed: []ActionError{}, Skipped: []Action{}}
	for _, m := range order {
		for _, o := range results[m] {
			switch {
			case !o.ran:
				res.Skipped = append(res.Skipped, o.action)
			case o.err != nil:
				res.Failed = append(res.Failed, ActionError{Action: o.action, Err: o.err.Error()})
			default:
				res.Applied = append(res.Applied, o.action)
			}
		}
	}
	return res, ctx.Err()
}
