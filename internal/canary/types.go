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
	"github.com/modelsync/modelsync/internal/prometheus"
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
	// Verification is the check after promotion, when the analysis has
	// postPromotion.
	Verification *Verification `json:"verification,omitempty"`
}

// VerifyResult is where a check after promotion ended.
type VerifyResult string

const (
	// VerifyPending: the window after the promotion has not been judged yet.
	VerifyPending VerifyResult = ""
	// VerifyVerified: the promoted version is non-inferior to the previous one.
	VerifyVerified VerifyResult = "verified"
	// VerifyInconclusive: the windows decided neither; the promotion stays.
	VerifyInconclusive VerifyResult = "inconclusive"
	// VerifyReverted: the promoted version was clearly worse and the
	// previous one serves again.
	VerifyReverted VerifyResult = "reverted"
)

// Verification is a check after promotion (postPromotion) of one
// environment: the settings it runs with, the two revisions, when the
// promotion was applied and how the check ended. The controller keeps it
// in the canary's record from the first look, because Git's canary block,
// which holds the postPromotion settings, is gone once Git records the
// promotion.
type Verification struct {
	Namespace     string        `json:"namespace"`
	Name          string        `json:"name"`
	Interval      time.Duration `json:"interval"`
	PostPromotion PostPromotion `json:"postPromotion"`
	// Provider is the analysis' Prometheus: its address and the names of
	// the variables holding its credentials, never the credentials.
	Provider ProviderRef `json:"provider"`
	// Promoted and Previous are the revisions compared: the candidate's
	// and the one that had all traffic before it.
	Promoted string `json:"promoted,omitempty"`
	Previous string `json:"previous,omitempty"`
	// PromotedAt is when the promotion was applied (zero until then); the
	// windows are [PromotedAt-Duration, PromotedAt] for Previous and
	// [PromotedAt, PromotedAt+Duration] for Promoted.
	PromotedAt time.Time `json:"promotedAt,omitzero"`
	// By says who promoted: "analysis" or "git" (a person changed the
	// version in Git while the canary ran).
	By       string             `json:"by,omitempty"`
	Decision *analysis.Decision `json:"decision,omitempty"`
	Result   VerifyResult       `json:"result,omitempty"`
	// ProviderErrors counts looks without data; they hold, never revert.
	ProviderErrors int       `json:"providerErrors,omitempty"`
	LastLook       time.Time `json:"lastLook,omitzero"`
}

// ProviderRef is the stored form of a prometheus.Config.
type ProviderRef struct {
	Address            string `json:"address,omitempty"`
	BearerTokenEnv     string `json:"bearerTokenEnv,omitempty"`
	UsernameEnv        string `json:"usernameEnv,omitempty"`
	PasswordEnv        string `json:"passwordEnv,omitempty"`
	CAFile             string `json:"caFile,omitempty"`
	InsecureSkipVerify bool   `json:"insecureSkipVerify,omitempty"`
}

// NewVerification starts the check after promotion of s's canary; nil
// when s has no postPromotion.
func NewVerification(s Spec) *Verification {
	if s.PostPromotion == nil {
		return nil
	}
	p := s.Provider
	return &Verification{Namespace: s.Namespace, Name: s.Name, Interval: s.Interval, PostPromotion: *s.PostPromotion,
		Provider: ProviderRef{Address: p.Address, BearerTokenEnv: p.BearerTokenEnv, UsernameEnv: p.UsernameEnv, PasswordEnv: p.PasswordEnv,
			CAFile: p.CAFile, InsecureSkipVerify: p.InsecureSkipVerify}}
}

// WindowEnd is when the window after the promotion ends (zero before the
// promotion is applied).
func (v *Verification) WindowEnd() time.Time {
	if v == nil || v.PromotedAt.IsZero() {
		return time.Time{}
	}
	return v.PromotedAt.Add(v.PostPromotion.Duration)
}

// Spec is the part of a Spec that Verify reads.
func (v *Verification) Spec(model, env string) Spec {
	pp, p := v.PostPromotion, v.Provider
	return Spec{Model: model, Environment: env, Namespace: v.Namespace, Name: v.Name, Interval: v.Interval, PostPromotion: &pp,
		Provider: prometheus.Config{Address: p.Address, BearerTokenEnv: p.BearerTokenEnv, UsernameEnv: p.UsernameEnv, PasswordEnv: p.PasswordEnv,
			CAFile: p.CAFile, InsecureSkipVerify: p.InsecureSkipVerify}}
}
