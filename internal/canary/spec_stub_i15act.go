package canary

import (
	"time"

	"github.com/modelsync/modelsync/internal/analysis"
)

// Spec is a placeholder of the i15-canary branch's Spec with the fields the
// controller reads, so the controller side builds before that branch lands.
// DELETE THIS FILE when merging i15-canary.
type Spec struct {
	Model, Environment, Namespace, Name, Alias string
	StableVersion, CandidateVersion            int
	Interval                                   time.Duration
	OnInconclusive                             OnInconclusive
	Config                                     analysis.Config
}
