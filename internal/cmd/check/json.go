package check

import (
	"github.com/modelsync/modelsync/internal/github/prcheck"
	"github.com/modelsync/modelsync/policy"
	"github.com/modelsync/modelsync/reconciler"
)

// JSONReport is `check -o json` (schema check.schema.json): camelCase keys
// like every modelsync output, a boolean verdict, versions as numbers
// beside their display string, and lists that are [] when empty, never
// null. It is built from prcheck.Report rather than being it, because the
// report's Change is the policy input, whose snake_case keys the Rego rules
// read.
type JSONReport struct {
	// Passed is the verdict: the policy was evaluated and denied nothing.
	Passed        bool                    `json:"passed"`
	Refs          prcheck.Refs            `json:"refs"`
	Changes       []JSONChange            `json:"changes"`
	ConfigChanges []policy.ConfigChange   `json:"configChanges"`
	ConfigInvalid bool                    `json:"configInvalid"`
	PlanErrors    []reconciler.ModelError `json:"planErrors"`
	// DesiredWarnings are environments left out of the desired state (a
	// release environment without a release tag in this clone).
	DesiredWarnings []reconciler.ModelError `json:"desiredWarnings"`
	PolicyChanged   bool                    `json:"policyChanged"`
	Result          JSONResult              `json:"result"`
	// Error says why the evaluation failed closed, when it did.
	Error string `json:"error,omitempty"`
}

// JSONChange is one model and environment whose rollout the change moves.
// Versions are MLflow version numbers; 0 means none.
type JSONChange struct {
	Model       string `json:"model"`
	Environment string `json:"environment"`
	From        int    `json:"from"`
	To          int    `json:"to"`
	CanaryFrom  int    `json:"canaryFrom"`
	CanaryTo    int    `json:"canaryTo"`
	// Release is the release that would carry the change, e.g.
	// "v1.1.0 → v1.1.1", for environments that follow release tags.
	Release string `json:"release,omitempty"`
	// Display is the change as the text report shows it, e.g.
	// "v3 → v4 (canary v5 at 10%)".
	Display string `json:"display"`
}

// JSONResult is the policy's verdict in detail.
type JSONResult struct {
	Denies   []policy.Violation `json:"denies"`
	Warnings []policy.Violation `json:"warnings"`
	// Failed means the policy could not be evaluated; Reason says why.
	Failed bool              `json:"failed"`
	Reason string            `json:"reason,omitempty"`
	Policy policy.PolicyInfo `json:"policy"`
}

// NewJSONReport converts a report for -o json.
func NewJSONReport(r *prcheck.Report) JSONReport {
	out := JSONReport{
		Passed:          r.Passed(),
		Refs:            r.Refs,
		Changes:         make([]JSONChange, 0, len(r.Changes)),
		ConfigChanges:   nonNil(r.ConfigChanges),
		ConfigInvalid:   r.ConfigInvalid,
		PlanErrors:      nonNil(r.PlanErrors),
		DesiredWarnings: nonNil(r.DesiredWarnings),
		PolicyChanged:   r.PolicyChanged,
		Result: JSONResult{
			Denies:   nonNil(r.Result.Denies),
			Warnings: nonNil(r.Result.Warnings),
			Failed:   r.Result.Failed,
			Reason:   r.Result.Reason,
			Policy:   r.Result.Policy,
		},
		Error: r.Error,
	}
	for _, c := range r.Changes {
		out.Changes = append(out.Changes, JSONChange{
			Model: c.Model, Environment: c.Environment,
			From: c.Change.FromVersion, To: c.Change.ToVersion, CanaryFrom: c.Change.CanaryFrom, CanaryTo: c.Change.CanaryTo,
			Release: c.Release, Display: changeDisplay(c),
		})
	}
	return out
}

func changeDisplay(c prcheck.ChangeRow) string {
	from, to := c.From, c.To
	if from == "" {
		from = "-"
	}
	if to == "" {
		to = "-"
	}
	if from == to {
		// Only the rollout moved (weight or steps): the rows' labels
		// carry it, the versions do not.
		return to
	}
	return from + " → " + to
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
