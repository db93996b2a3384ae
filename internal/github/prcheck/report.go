package prcheck

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/modelsync/modelsync/internal/scanrecord"

	"github.com/modelsync/modelsync/policy"
	"github.com/modelsync/modelsync/reconciler"
)

// Evaluator judges one input document. *policy.Engine implements it.
type Evaluator interface {
	Evaluate(ctx context.Context, in *policy.Input) (policy.Result, error)
}

// LoadPolicy compiles the bundle at src.
func LoadPolicy(ctx context.Context, src policy.Source) (Evaluator, error) {
	e, err := policy.Load(ctx, src)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// RegistryFacts supplies what the model registry knows about the versions
// a comparison moves (run metrics, audit tags, the version in prod).
type RegistryFacts interface {
	Facts(ctx context.Context, c *Comparison, now time.Time) (map[string]policy.RegistryModel, error)
}

// Review state names as GitHub lists them.
const (
	ReviewApproved         = "APPROVED"
	ReviewChangesRequested = "CHANGES_REQUESTED"
	ReviewDismissed        = "DISMISSED"
)

// Request is what is known about the change beyond Git: the pull request
// and its reviews. A local check has only a number of zero and no reviews.
type Request struct {
	PR      policy.PullRequest
	Reviews []policy.Review
	// Registry may be nil: rules that need registry facts then deny, which
	// is the fail-closed reading of "no facts".
	Registry map[string]policy.RegistryModel
	Now      time.Time
	// ReviewedSHA is the commit the reviews were made on when it is not
	// the head judged: a CI job judges the merge of the pull request into
	// the base, and reviewers approved the pull request's head. It becomes
	// input.pr.head.sha, against which approvals are checked for being
	// current. Empty means the head.
	ReviewedSHA string
}

// Input builds the policy input document for the comparison.
func (c *Comparison) Input(req Request) *policy.Input {
	pr := req.PR
	pr.Base = policy.GitRef{Ref: c.Refs.BaseBranch, SHA: c.Refs.BaseSHA}
	pr.Head = policy.GitRef{Ref: c.Refs.HeadRef, SHA: c.Refs.HeadSHA}
	if req.ReviewedSHA != "" {
		pr.Head.SHA = req.ReviewedSHA
	}
	if pr.ChangedFiles == nil {
		pr.ChangedFiles = c.ChangedFiles
	}
	return &policy.Input{
		PR:                 pr,
		Reviews:            req.Reviews,
		Plan:               policy.NewPlanDoc(c.Plan, c.Changes),
		Models:             c.Models,
		Registry:           req.Registry,
		Security:           scanrecord.SecurityFacts(req.Registry),
		Releases:           c.Releases,
		ConfigChanges:      c.ConfigChanges,
		ManifestErrors:     c.ManifestErrors,
		RegistryConfigured: req.Registry != nil,
		Now:                req.Now,
	}
}

// Report is the outcome of a check: what changes and what the policy says.
type Report struct {
	Refs    Refs        `json:"refs"`
	Changes []ChangeRow `json:"changes"`
	// ConfigChanges are the head's changes to modelsync.yaml, per
	// environment they touch.
	ConfigChanges []policy.ConfigChange `json:"configChanges"`
	// ConfigInvalid is set when modelsync.yaml is broken at the head: no
	// change can be planned until it is fixed.
	ConfigInvalid bool                    `json:"configInvalid,omitempty"`
	PlanErrors    []reconciler.ModelError `json:"planErrors"`
	// DesiredWarnings are environments left out of the base's or the
	// head's desired state, such as a release environment without a
	// release tag in a clone without tags: the check cannot speak for them.
	DesiredWarnings []reconciler.ModelError `json:"desiredWarnings"`
	PolicyChanged   bool                    `json:"policyChanged"`
	Result          policy.Result           `json:"result"`
	// Error is set when the evaluation failed closed.
	Error string `json:"error,omitempty"`
}

// ChangeRow is one model and environment with its rollout before and after.
type ChangeRow struct {
	Model       string `json:"model"`
	Environment string `json:"environment"`
	From        string `json:"from"`
	To          string `json:"to"`
	// Release is the release that would carry the change, e.g. "v1.1.0 →
	// v1.1.1"; only for environments that follow release tags, since a
	// branch environment takes the change at merge, release or not.
	Release string        `json:"release,omitempty"`
	Change  policy.Change `json:"change"`
}

// Passed reports whether the policy was evaluated and denied nothing.
func (r *Report) Passed() bool { return r.Error == "" && r.Result.Passed() }

// Environments lists the environments the report speaks of: those with a
// model change, then those whose configuration changes, in first-seen order.
func (r *Report) Environments() []string {
	var out []string
	seen := map[string]bool{}
	add := func(env string) {
		if !seen[env] {
			seen[env] = true
			out = append(out, env)
		}
	}
	for _, c := range r.Changes {
		add(c.Environment)
	}
	for _, c := range r.ConfigChanges {
		add(c.Environment)
	}
	return out
}

// EnvironmentPassed reports the verdict for one environment: denies about
// that environment, and denies about no environment in particular, fail it.
func (r *Report) EnvironmentPassed(env string) bool {
	if r.Error != "" || r.Result.Failed {
		return false
	}
	for _, d := range r.Result.Denies {
		if d.Environment == env || d.Environment == "" {
			return false
		}
	}
	return true
}

// Evaluate judges the comparison and returns the report. A failed
// evaluation is reported (Error set, Passed false) and also returned.
func Evaluate(ctx context.Context, c *Comparison, ev Evaluator, req Request) (*Report, error) {
	rep := c.report()
	res, err := ev.Evaluate(ctx, c.Input(req))
	rep.Result = res
	if err != nil {
		rep.Error = err.Error()
		return rep, err
	}
	return rep, nil
}

func (c *Comparison) report() *Report {
	rep := &Report{Refs: c.Refs, PolicyChanged: c.PolicyChanged, Changes: []ChangeRow{}, PlanErrors: []reconciler.ModelError{},
		ConfigChanges: append([]policy.ConfigChange{}, c.ConfigChanges...), ConfigInvalid: c.HeadConfigInvalid}
	if c.Plan != nil {
		rep.PlanErrors = append(rep.PlanErrors, c.Plan.Errors()...)
	}
	rep.DesiredWarnings = []reconciler.ModelError{}
	// One per model and environment, the base's first: the head's view
	// adds the release a change would cut, which words the same gap
	// differently.
	seen := map[[2]string]bool{}
	for _, d := range []*reconciler.DesiredState{c.Base, c.Head} {
		if d == nil {
			continue
		}
		for _, w := range d.Warnings {
			if k := [2]string{w.Model, w.Environment}; !seen[k] {
				seen[k] = true
				rep.DesiredWarnings = append(rep.DesiredWarnings, w)
			}
		}
	}
	for _, ch := range c.Changes {
		row := ChangeRow{Model: ch.Model, Environment: ch.Environment, Change: ch,
			From: rollout(c.Base, ch.Model, ch.Environment), To: rollout(c.Head, ch.Model, ch.Environment)}
		if rel, ok := c.Releases[ch.Model]; ok && c.followsReleases(ch.Environment) {
			row.Release = orDash(rel.Before) + " → " + rel.After
		}
		rep.Changes = append(rep.Changes, row)
	}
	return rep
}

// rollout renders a model's state in one environment, e.g. "v3" or
// "v3 + canary v4 @ 20%"; "-" when the model does not run there.
func rollout(d *reconciler.DesiredState, model, env string) string {
	if d == nil {
		return "-"
	}
	m, ok := d.Model(model)
	if !ok {
		return "-"
	}
	e, ok := m.Env(env)
	if !ok {
		return "-"
	}
	s := "v" + strconv.Itoa(e.Version)
	if e.Canary != nil {
		s += fmt.Sprintf(" + canary v%d @ %d%%", e.Canary.Version, e.Canary.Weight)
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
