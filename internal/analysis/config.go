package analysis

import (
	"errors"
	"fmt"
	"time"
)

// Defaults follow the manifest defaults so a caller that fills only
// the steps and metrics gets the documented behaviour.
const (
	DefaultAlpha            = 0.05
	DefaultSRMAlpha         = 0.001
	DefaultSRMConcentration = 1000
	DefaultPriorScale       = 0.5
	DefaultStepDuration     = 10 * time.Minute
	DefaultMinSamples       = 500
	// HistoryLimit bounds the decision history kept in State.
	HistoryLimit = 50
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid analysis config")

// Metric is one statistically tested metric: bad events against a total per
// arm (5xx of requests, slow of requests, wrong of labelled predictions).
type Metric struct {
	Name string `json:"name"`
	// Margin is the non-inferiority margin on the rate ratio: 1.2 lets the
	// canary have at most 20% more bad events per request than stable.
	Margin float64 `json:"margin"`
	// GuardMaxRate, when > 0, rolls back at once when the canary's share of
	// bad events within the current step reaches it after at least
	// GuardMinRequests canary requests (a Flagger-style hard threshold for
	// a canary so broken that no test is needed, e.g. 0.5 after 20).
	GuardMaxRate     float64 `json:"guardMaxRate,omitempty"`
	GuardMinRequests int64   `json:"guardMinRequests,omitempty"`
}

// Config is one canary's analysis. Zero values take the defaults.
type Config struct {
	// Steps are the canary weights in percent, strictly increasing, each in
	// 1…99; the last passing step promotes.
	Steps        []int         `json:"steps"`
	StepDuration time.Duration `json:"stepDuration"`
	// MinSamples is the minimum number of canary requests in a step before
	// it may advance.
	MinSamples int64 `json:"minSamples"`
	// MaxDuration, when > 0, ends the analysis as inconclusive.
	MaxDuration time.Duration `json:"maxDuration"`
	// Alpha is the false-rollback budget over the whole canary and all
	// metrics (split by Bonferroni); it is also the false-promotion budget.
	Alpha float64 `json:"alpha"`
	// SRMAlpha is the level of the sample-ratio-mismatch check; a mismatch
	// only holds, so it may be strict.
	SRMAlpha float64 `json:"srmAlpha"`
	// SRMConcentration is the Beta prior concentration of the SRM mixture:
	// larger catches smaller skews.
	SRMConcentration float64 `json:"srmConcentration"`
	// PriorScale is the standard deviation of ln r in the mixing prior.
	// The default 0.5 puts most mass on ratios between 0.37 and 2.7, the
	// range where a canary decision is hard; it was chosen with the
	// decision-quality benchmark (test/bench/canary), and any value keeps
	// the error guarantees.
	PriorScale float64  `json:"priorScale"`
	Metrics    []Metric `json:"metrics"`
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	if c.Alpha == 0 {
		c.Alpha = DefaultAlpha
	}
	if c.SRMAlpha == 0 {
		c.SRMAlpha = DefaultSRMAlpha
	}
	if c.SRMConcentration == 0 {
		c.SRMConcentration = DefaultSRMConcentration
	}
	if c.PriorScale == 0 {
		c.PriorScale = DefaultPriorScale
	}
	if c.StepDuration == 0 {
		c.StepDuration = DefaultStepDuration
	}
	if c.MinSamples == 0 {
		c.MinSamples = DefaultMinSamples
	}
	return c
}

func (c Config) validate() error {
	if len(c.Steps) == 0 {
		return fmt.Errorf("%w: no steps", ErrConfig)
	}
	for i, s := range c.Steps {
		if s < 1 || s > 99 {
			return fmt.Errorf("%w: step %d weight %d not in 1..99", ErrConfig, i, s)
		}
		if i > 0 && s <= c.Steps[i-1] {
			return fmt.Errorf("%w: step %d weight %d not above %d", ErrConfig, i, s, c.Steps[i-1])
		}
	}
	if !(c.Alpha > 0 && c.Alpha < 1) || !(c.SRMAlpha > 0 && c.SRMAlpha < 1) {
		return fmt.Errorf("%w: alpha %v and srmAlpha %v must be in (0,1)", ErrConfig, c.Alpha, c.SRMAlpha)
	}
	if !(c.PriorScale > 0) || !(c.SRMConcentration > 0) {
		return fmt.Errorf("%w: priorScale and srmConcentration must be > 0", ErrConfig)
	}
	if c.StepDuration < 0 || c.MaxDuration < 0 || c.MinSamples < 0 {
		return fmt.Errorf("%w: negative duration or minSamples", ErrConfig)
	}
	if len(c.Metrics) == 0 {
		return fmt.Errorf("%w: no metrics", ErrConfig)
	}
	seen := map[string]bool{}
	for _, m := range c.Metrics {
		if m.Name == "" || seen[m.Name] {
			return fmt.Errorf("%w: metric name %q empty or repeated", ErrConfig, m.Name)
		}
		seen[m.Name] = true
		if !(m.Margin > 1) || m.Margin > 50 {
			return fmt.Errorf("%w: metric %q margin %v not in (1,50]", ErrConfig, m.Name, m.Margin)
		}
		if m.GuardMaxRate < 0 || m.GuardMaxRate > 1 || m.GuardMinRequests < 0 {
			return fmt.Errorf("%w: metric %q guard rate %v or min requests %d out of range",
				ErrConfig, m.Name, m.GuardMaxRate, m.GuardMinRequests)
		}
	}
	return nil
}
