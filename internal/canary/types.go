// Package canary runs a canary's analysis against live metrics: it turns an
// environment's canary.analysis block into an analysis.Config and PromQL
// queries, finds the two arms among the InferenceService's revisions as
// KServe reports them, and reads each arm's counts at every look. The
// statistics live in internal/analysis; what to do with a decision (advance,
// promote, roll back) belongs to the controller.
package canary

import (
	"time"

	"github.com/modelsync/modelsync/internal/analysis"
)

// Revisions names the two arms of a canary as KServe reports them in the
// InferenceService status, never guessed from names: the candidate is the
// latest ready revision (the traffic[] entry with latestRevision: true) and
// the stable arm is latestRolledoutRevision, the last one that had all
// traffic (see RevisionsOf).
type Revisions struct {
	Canary string `json:"canary"`
	Stable string `json:"stable"`
}

// OnInconclusive says what happens when maxDuration passes without a decision.
type OnInconclusive string

const (
	// InconclusiveHold keeps the current step and alerts.
	InconclusiveHold OnInconclusive = "hold"
	// InconclusiveRollback sends all traffic back to stable.
	InconclusiveRollback OnInconclusive = "rollback"
)

// Status is what `modelsync analysis`, the API and the dashboard show of one
// environment's canary analysis.
type Status struct {
	Model            string    `json:"model"`
	Environment      string    `json:"environment"`
	StableVersion    int       `json:"stableVersion"`
	CandidateVersion int       `json:"candidateVersion"`
	Revisions        Revisions `json:"revisions"`
	// Weight is the canary's live traffic percentage.
	Weight int            `json:"weight"`
	State  analysis.State `json:"state"`
	// Decision is the last look's decision; nil before the first look.
	Decision *analysis.Decision `json:"decision,omitempty"`
	// Next says in words what happens next ("look again at 12:04; advance
	// to 25% once 500 canary requests and 10m are reached").
	Next       string    `json:"next"`
	NextLookAt time.Time `json:"nextLookAt,omitempty"`
}
