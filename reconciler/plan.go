package reconciler

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// TargetPlan is what one target contributes to a plan.
type TargetPlan struct {
	Actions []Action
	Errors  []ModelError
	Waits   []Wait
}

// Op says what an action does to its resource.
type Op string

// Operations, as in a Terraform plan.
const (
	OpCreate Op = "create"
	OpUpdate Op = "update"
	OpDelete Op = "delete"
)

// Action is one small change to one resource of one target.
type Action struct {
	Target      string `json:"target"`
	Kind        string `json:"kind"`
	Model       string `json:"model"`
	Environment string `json:"environment,omitempty"`
	// Resource names what changes, e.g. "alias prod" or "default/churn".
	Resource string `json:"resource"`
	Op       Op     `json:"op"`
	From     string `json:"from,omitempty"`
	To       string `json:"to,omitempty"`
	// Drift is set when the live state moved away from Git by itself,
	// rather than Git changing.
	Drift  bool   `json:"drift,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Revision is the Git revision the change comes from.
	Revision string `json:"revision,omitempty"`
	// Payload is the target's own description of the action, opaque to the
	// reconciler and decoded by the target's Apply.
	Payload json.RawMessage `json:"payload,omitempty"`
}

// ID identifies the action's resource within its target.
func (a Action) ID() string { return a.Target + "/" + a.Kind + "/" + a.Model + "/" + a.Resource }

// ModelError says that a model (optionally in one environment, at one
// target) cannot be planned or applied. Other models are unaffected.
type ModelError struct {
	Model       string `json:"model,omitempty"`
	Environment string `json:"environment,omitempty"`
	Target      string `json:"target,omitempty"`
	Message     string `json:"message"`
	// Unknown marks a warning about an environment whose desired state this
	// view of the repository cannot know (a clone without any release
	// tags): what runs there must be kept, not read as "nothing".
	Unknown bool `json:"unknown,omitempty"`
}

func (e ModelError) Error() string {
	var where []string
	for _, s := range []string{e.Target, e.Model, e.Environment} {
		if s != "" {
			where = append(where, s)
		}
	}
	if len(where) == 0 {
		return e.Message
	}
	return strings.Join(where, "/") + ": " + e.Message
}

// Wait is a change that cannot happen yet, such as a rollback whose
// artifacts are still being restored from cold storage. The environment
// keeps what it runs until the wait ends.
type Wait struct {
	Model       string `json:"model"`
	Environment string `json:"environment,omitempty"`
	Target      string `json:"target"`
	Reason      string `json:"reason"`
}

// Plan is an immutable set of actions computed from one desired state.
// Accessors return copies, so nothing can change a plan after it is made.
type Plan struct {
	revision string
	targets  []string
	actions  []Action
	errors   []ModelError
	warnings []ModelError // the desired state's, see Warnings
	waits    []Wait
	// held are actions a wait keeps back; they are not applied and the
	// next plan after the wait ends plans them again.
	held []Action
	// unobserved are the targets whose live state could not be read: what
	// they would change is unknown, so the plan must not say "no changes".
	unobserved []string
}

// Revision is the Git revision the plan was computed from.
func (p *Plan) Revision() string { return p.revision }

// Targets lists the targets that took part, in execution order.
func (p *Plan) Targets() []string { return slices.Clone(p.targets) }

// Actions returns the actions in execution order.
func (p *Plan) Actions() []Action { return slices.Clone(p.actions) }

// Errors returns the models that could not be planned.
func (p *Plan) Errors() []ModelError { return slices.Clone(p.errors) }

// Warnings returns the desired state's warnings: environments left out of
// it, which the plan therefore does not cover (see DesiredState.Warnings).
func (p *Plan) Warnings() []ModelError { return slices.Clone(p.warnings) }

// Unobserved lists the targets whose live state could not be read (their
// errors say why). A plan with any is incomplete: no changes planned at
// such a target means nothing.
func (p *Plan) Unobserved() []string { return slices.Clone(p.unobserved) }

// Waits returns the changes held back until a precondition is met.
func (p *Plan) Waits() []Wait { return slices.Clone(p.waits) }

// Held returns the actions a wait keeps back, in execution order. They are
// never applied from this plan.
func (p *Plan) Held() []Action { return slices.Clone(p.held) }

// Select returns the plan restricted to the actions keep accepts, in the
// same order, with the same revision, targets, errors, waits and held
// actions: a caller that applies part of a plan (the controller applies one
// work item's share) still applies a plan, not a list it assembled.
func (p *Plan) Select(keep func(Action) bool) *Plan {
	q := &Plan{revision: p.revision, targets: p.targets, errors: p.errors, warnings: p.warnings, waits: p.waits, held: p.held, unobserved: p.unobserved}
	for _, a := range p.actions {
		if keep(a) {
			q.actions = append(q.actions, a)
		}
	}
	return q
}

// HasChanges reports whether applying the plan would write anything.
func (p *Plan) HasChanges() bool { return len(p.actions) > 0 }

// Summary counts the plan's actions by operation.
type Summary struct {
	Create int `json:"create"`
	Update int `json:"update"`
	Delete int `json:"delete"`
	Drift  int `json:"drift"`
	Errors int `json:"errors"`
	Waits  int `json:"waits"`
	Held   int `json:"held"`
}

// Summary counts actions, drift, errors and waits.
func (p *Plan) Summary() Summary {
	var s Summary
	for _, a := range p.actions {
		switch a.Op {
		case OpCreate:
			s.Create++
		case OpUpdate:
			s.Update++
		case OpDelete:
			s.Delete++
		}
		if a.Drift {
			s.Drift++
		}
	}
	s.Errors, s.Waits, s.Held = len(p.errors), len(p.waits), len(p.held)
	return s
}

// PlanJSON is the JSON form of a plan (`plan -o json`, schema
// plan.schema.json): lists are never null.
type PlanJSON struct {
	Revision string       `json:"revision"`
	Targets  []string     `json:"targets"`
	Summary  Summary      `json:"summary"`
	Actions  []ActionJSON `json:"actions"`
	Errors   []ModelError `json:"errors"`
	Warnings []ModelError `json:"warnings"`
	Waits    []Wait       `json:"waits"`
	Held     []ActionJSON `json:"held"`
	// Unobserved are targets whose live state could not be read.
	Unobserved []string `json:"unobservedTargets"`
}

// ActionJSON is an action as programs read it: From and To stay the
// target's values (a version label, a storage class, an environment list),
// and when they name versions FromVersion and ToVersion carry the numbers,
// so no program parses "v6". Display is the action as the text plan shows
// it.
type ActionJSON struct {
	Action
	FromVersion int    `json:"fromVersion,omitempty"`
	ToVersion   int    `json:"toVersion,omitempty"`
	Display     string `json:"display"`
}

// NewActionJSON adds the machine and display fields to a.
func NewActionJSON(a Action) ActionJSON {
	return ActionJSON{Action: a, FromVersion: versionOf(a.From), ToVersion: versionOf(a.To), Display: a.Display()}
}

// Display renders the action on one line, e.g.
// "update mlflow alias prod of churn (prod): v3 -> v4 (drift)".
func (a Action) Display() string {
	where := a.Model
	if a.Environment != "" {
		where += " (" + a.Environment + ")"
	}
	change := a.To
	if a.From != "" || a.Op == OpUpdate {
		change = orDash(a.From) + " -> " + orDash(a.To)
	}
	if a.Op == OpDelete {
		change = orDash(a.From) + " -> (deleted)"
	}
	s := string(a.Op) + " " + a.Target + " " + a.Resource + " of " + where
	if change != "" {
		s += ": " + change
	}
	if a.Drift {
		s += " (drift)"
	}
	return s
}

// versionOf returns N for a version label "vN", else 0.
func versionOf(label string) int {
	rest, ok := strings.CutPrefix(label, "v")
	if !ok || rest == "" || len(rest) > 9 {
		return 0
	}
	n := 0
	for _, c := range rest {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func actionsJSON(as []Action) []ActionJSON {
	out := make([]ActionJSON, 0, len(as))
	for _, a := range as {
		out = append(out, NewActionJSON(a))
	}
	return out
}

// MarshalJSON writes the plan as PlanJSON.
func (p *Plan) MarshalJSON() ([]byte, error) {
	return json.Marshal(PlanJSON{
		Revision:   p.revision,
		Targets:    nonNil(p.targets),
		Summary:    p.Summary(),
		Actions:    actionsJSON(p.actions),
		Errors:     nonNil(p.errors),
		Warnings:   nonNil(p.warnings),
		Waits:      nonNil(p.waits),
		Held:       actionsJSON(p.held),
		Unobserved: nonNil(p.unobserved),
	})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// BuildPlan observes every target and merges their plans. Models that
// failed to resolve, or that a target cannot plan, appear as errors; all
// other models are planned normally. Actions are ordered model by model and,
// within a model, target by target in the order given, each target's own
// order kept.
func BuildPlan(ctx context.Context, desired *DesiredState, targets []Target) (*Plan, error) {
	p := &Plan{revision: desired.Revision, errors: slices.Clone(desired.Errors), warnings: slices.Clone(desired.Warnings)}
	var all []Action
	targetRank := map[string]int{}
	for i, t := range targets {
		name := t.Name()
		if _, dup := targetRank[name]; dup {
			return nil, fmt.Errorf("target %q configured twice", name)
		}
		targetRank[name] = i
		p.targets = append(p.targets, name)
		obs, err := t.Observe(ctx, desired)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			p.errors = append(p.errors, ModelError{Target: name, Message: "observing live state: " + err.Error()})
			p.unobserved = append(p.unobserved, name)
			continue
		}
		tp := t.Plan(desired, obs)
		for _, a := range tp.Actions {
			if a.Target != name {
				return nil, fmt.Errorf("target %q planned an action for target %q", name, a.Target)
			}
		}
		all = append(all, tp.Actions...)
		p.errors = append(p.errors, tp.Errors...)
		p.waits = append(p.waits, tp.Waits...)
	}
	failed := map[string]bool{}
	for _, e := range p.errors {
		if e.Model != "" {
			failed[e.Model] = true
		}
	}
	// A model with an error at any target is held back everywhere: applying
	// half of it (say, the alias but not the serving object) is the state a
	// failure must not leave behind.
	hold, unknown := holdsOf(p.waits), unknownOf(desired.Warnings)
	seen := map[string]bool{}
	for _, a := range all {
		if a.Model != "" && !desired.Covers(a.Model) {
			// Only a state that speaks for a model may change it: a
			// one-model state must not prune the rest of the repository.
			return nil, fmt.Errorf("target %q planned %s for model %q, outside the desired state's scope (%s)", a.Target, a.ID(), a.Model, desired.Scope)
		}
		if failed[a.Model] {
			continue
		}
		if seen[a.ID()] {
			return nil, fmt.Errorf("plan has two actions for %s", a.ID())
		}
		seen[a.ID()] = true
		if hold(a) || unknown(a) {
			p.held = append(p.held, a)
			continue
		}
		p.actions = append(p.actions, a)
	}
	sortActions(p.actions, targetRank)
	sortActions(p.held, targetRank)
	sortModelErrors(p.errors)
	sort.SliceStable(p.waits, func(i, j int) bool {
		a, b := p.waits[i], p.waits[j]
		if a.Model != b.Model {
			return a.Model < b.Model
		}
		return a.Environment < b.Environment
	})
	return p, nil
}

// holdsOf returns whether a wait holds an action back. A wait on a model in
// an environment holds that environment where it is at every other target:
// a rollback whose artifacts are still being restored must not move the
// alias or the InferenceService to files nobody can read yet. It also holds
// the model's model-level actions at every other target (audit and
// residency tags, archiving the version being left): they record where
// versions run, and until the wait ends the environment still runs what it
// ran. The waiting target's own actions (the restore itself) go ahead.
func holdsOf(waits []Wait) func(Action) bool {
	waiting := map[string]map[string][]string{} // model -> environment -> waiting targets
	for _, w := range waits {
		if waiting[w.Model] == nil {
			waiting[w.Model] = map[string][]string{}
		}
		waiting[w.Model][w.Environment] = append(waiting[w.Model][w.Environment], w.Target)
	}
	others := func(targets []string, t string) bool {
		return slices.ContainsFunc(targets, func(w string) bool { return w != t })
	}
	return func(a Action) bool {
		envs := waiting[a.Model]
		if len(envs) == 0 {
			return false
		}
		if others(envs[""], a.Target) {
			return true // a wait on the whole model holds all of it
		}
		if a.Environment != "" {
			return others(envs[a.Environment], a.Target)
		}
		for _, targets := range envs {
			if others(targets, a.Target) {
				return true
			}
		}
		return false
	}
}

// unknownOf returns whether an action touches an environment the desired
// state cannot know (see ModelError.Unknown): a partial view never deletes.
// It holds that environment's actions and the model's model-level actions
// (archiving the version the environment runs, moving its artifacts to a
// cold class) at every target, until a view with the tags plans them.
func unknownOf(warnings []ModelError) func(Action) bool {
	unknown := map[string]map[string]bool{} // model -> environment
	for _, w := range warnings {
		if !w.Unknown || w.Model == "" {
			continue
		}
		if unknown[w.Model] == nil {
			unknown[w.Model] = map[string]bool{}
		}
		unknown[w.Model][w.Environment] = true
	}
	return func(a Action) bool {
		envs := unknown[a.Model]
		return envs != nil && (a.Environment == "" || envs[a.Environment])
	}
}

// sortActions orders actions model by model and, within a model, target by
// target in execution order, keeping each target's own order.
func sortActions(actions []Action, targetRank map[string]int) {
	sort.SliceStable(actions, func(i, j int) bool {
		a, b := actions[i], actions[j]
		if a.Model != b.Model {
			return a.Model < b.Model
		}
		return targetRank[a.Target] < targetRank[b.Target]
	})
}

func sortModelErrors(errs []ModelError) {
	sort.SliceStable(errs, func(i, j int) bool {
		a, b := errs[i], errs[j]
		if a.Model != b.Model {
			return a.Model < b.Model
		}
		if a.Environment != b.Environment {
			return a.Environment < b.Environment
		}
		return a.Target < b.Target
	})
}
