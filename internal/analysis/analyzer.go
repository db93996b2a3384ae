package analysis

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Action is what the controller should do after a look.
type Action string

const (
	// ActionAdvance raises the canary weight to the next step.
	ActionAdvance Action = "advance"
	// ActionPromote gives the candidate all traffic (the last step passed).
	ActionPromote Action = "promote"
	// ActionRollback sends all traffic back to stable.
	ActionRollback Action = "rollback"
	// ActionHold keeps the current weight and looks again next interval.
	ActionHold Action = "hold"
	// ActionInconclusive means MaxDuration passed without a decision; the
	// policy (onInconclusive) decides between hold and rollback.
	ActionInconclusive Action = "inconclusive"
)

// ErrState is wrapped when a State does not fit its Config.
var ErrState = errors.New("analysis state does not match config")

// Counts are bad events and their total for one arm.
type Counts struct {
	Bad   int64 `json:"bad"`
	Total int64 `json:"total"`
}

// Arms are the counts of the canary and the stable arm.
type Arms struct {
	Canary Counts `json:"canary"`
	Stable Counts `json:"stable"`
}

// Window is the evidence of one weight step.
type Window struct {
	Weight  int       `json:"weight"`
	Started time.Time `json:"started"`
	// Requests per arm since the step started (Bad is unused); they drive
	// the minimum-samples rule and the sample-ratio-mismatch check.
	Requests Arms `json:"requests"`
	// Metrics holds each metric's counts since the step started.
	Metrics map[string]Arms `json:"metrics"`
}

// Record is one entry of the decision history.
type Record struct {
	At     time.Time `json:"at"`
	Action Action    `json:"action"`
	Reason string    `json:"reason"`
	Weight int       `json:"weight"`
}

// State is everything the analysis must remember between looks. It is a
// plain value that serializes to JSON: the controller stores it in the
// cluster after every look, and a restarted controller continues the same
// test with it instead of starting a new one (which would spend alpha again).
type State struct {
	Started time.Time `json:"started"`
	// Step indexes Config.Steps; Windows[Step] is the current step.
	Step    int      `json:"step"`
	Windows []Window `json:"windows"`
	Looks   int      `json:"looks"`
	// ProviderErrors counts looks that had no data because the metrics
	// provider failed; they never count as metric failures.
	ProviderErrors int `json:"providerErrors"`
	// Counters holds the caller's counter baselines (one per query and arm),
	// so exact counts survive a restart with the rest of the evidence.
	Counters map[string]Counter `json:"counters,omitempty"`
	// History keeps the last HistoryLimit distinct decisions.
	History []Record `json:"history,omitempty"`
}

// Split is a request count per arm.
type Split struct {
	Canary int64 `json:"canary"`
	Stable int64 `json:"stable"`
}

// Look is one observation: counts since the current step started, read at At.
type Look struct {
	At time.Time
	// Requests are each arm's requests since the step started. When both are
	// zero, the first metric's totals are used.
	Requests Split
	// Metrics are each configured metric's counts since the step started.
	Metrics map[string]Arms
	// Tripped names threshold guards evaluated by the caller (today's
	// {name, query, max|min} entries) that failed at this look.
	Tripped []string
	// Err is a provider error: the look has no data. It holds, never rolls back.
	Err error
}

// MetricResult is one metric's evidence at a look.
type MetricResult struct {
	Name string `json:"name"`
	// Canary and Stable are the counts over all steps so far.
	Canary Counts  `json:"canary"`
	Stable Counts  `json:"stable"`
	Margin float64 `json:"margin"`
	// Alpha is this metric's level after the Bonferroni split.
	Alpha float64 `json:"alpha"`
	RatioResult
}

// SRMResult is the sample-ratio-mismatch check.
type SRMResult struct {
	RoutedShare   float64 `json:"routedShare"`
	ObservedShare float64 `json:"observedShare"`
	LogBF         float64 `json:"logBF"`
	Mismatch      bool    `json:"mismatch"`
}

// Decision is the outcome of a look.
type Decision struct {
	Action Action    `json:"action"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
	Step   int       `json:"step"`
	Weight int       `json:"weight"`
	// NextWeight is the weight to set on advance.
	NextWeight int            `json:"nextWeight,omitempty"`
	Metrics    []MetricResult `json:"metrics,omitempty"`
	SRM        SRMResult      `json:"srm"`
}

// Analyzer evaluates looks for one Config. It is immutable after New and
// safe for concurrent use.
type Analyzer struct {
	cfg  Config
	grid *grid
}

// New validates cfg (after filling defaults) and returns its Analyzer.
func New(cfg Config) (*Analyzer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.Steps = append([]int(nil), cfg.Steps...)
	cfg.Metrics = append([]Metric(nil), cfg.Metrics...)
	shares := make([]float64, len(cfg.Steps))
	for i, w := range cfg.Steps {
		shares[i] = float64(w) / 100
	}
	return &Analyzer{cfg: cfg, grid: newGrid(cfg.PriorScale, shares...)}, nil
}

// Config returns the configuration with defaults filled.
func (a *Analyzer) Config() Config {
	c := a.cfg
	c.Steps = append([]int(nil), c.Steps...)
	c.Metrics = append([]Metric(nil), c.Metrics...)
	return c
}

// Start returns the state of a canary starting at the first step at time at.
func (a *Analyzer) Start(at time.Time) State {
	return State{Started: at, Windows: []Window{{Weight: a.cfg.Steps[0], Started: at, Metrics: map[string]Arms{}}}}
}

// Advance moves st to the next step, started at at. The caller calls it
// after it has set the new weight, so a failed weight change does not
// attribute the next counts to the wrong routed share, and re-reads its
// counter baselines at that moment: the next step's counts start from zero
// there. Events between the deciding look and the new baselines belong to
// no step; they are few and dropping them keeps each step's share exact.
func (a *Analyzer) Advance(st State, at time.Time) (State, error) {
	if err := a.check(st); err != nil {
		return st, err
	}
	if st.Step+1 >= len(a.cfg.Steps) {
		return st, fmt.Errorf("%w: step %d is the last", ErrState, st.Step)
	}
	st = st.clone()
	st.Step++
	st.Windows = append(st.Windows, Window{Weight: a.cfg.Steps[st.Step], Started: at, Metrics: map[string]Arms{}})
	return st, nil
}

func (a *Analyzer) check(st State) error {
	if st.Step < 0 || st.Step >= len(a.cfg.Steps) || len(st.Windows) != st.Step+1 {
		return fmt.Errorf("%w: step %d with %d windows and %d steps", ErrState, st.Step, len(st.Windows), len(a.cfg.Steps))
	}
	for i, w := range st.Windows {
		if w.Weight != a.cfg.Steps[i] {
			return fmt.Errorf("%w: window %d weight %d, config step %d", ErrState, i, w.Weight, a.cfg.Steps[i])
		}
	}
	return nil
}

func (st State) clone() State {
	c := st
	c.Windows = make([]Window, len(st.Windows))
	for i, w := range st.Windows {
		w.Metrics = cloneMap(w.Metrics)
		c.Windows[i] = w
	}
	c.Counters = cloneMap(st.Counters)
	c.History = append([]Record(nil), st.History...)
	return c
}

func cloneMap[V any](m map[string]V) map[string]V {
	if m == nil {
		return nil
	}
	c := make(map[string]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// Look records l into the current step and decides. It returns the new
// state (st is not modified) and the decision; the caller persists the
// state before acting, so an action is never taken on evidence that a
// restart would forget.
func (a *Analyzer) Look(st State, l Look) (State, Decision, error) {
	if err := a.check(st); err != nil {
		return st, Decision{}, err
	}
	st = st.clone()
	st.Looks++
	cur := &st.Windows[st.Step]
	d := Decision{At: l.At, Step: st.Step, Weight: cur.Weight}
	elapsed := l.At.Sub(st.Started)
	timedOut := a.cfg.MaxDuration > 0 && elapsed >= a.cfg.MaxDuration

	if l.Err != nil {
		st.ProviderErrors++
		d.Action, d.Reason = ActionHold, "provider error: "+l.Err.Error()
		if timedOut {
			d.Action, d.Reason = ActionInconclusive, "max duration reached; last look: "+d.Reason
		}
		st.remember(d)
		return st, d, nil
	}
	if err := recordLook(cur, l, a.cfg.Metrics); err != nil {
		return st, Decision{}, err
	}

	d.Metrics, d.SRM = a.evidence(st)
	d.Action, d.Reason = a.decide(st, l, d, timedOut)
	if d.Action == ActionAdvance {
		d.NextWeight = a.cfg.Steps[st.Step+1]
	}
	st.remember(d)
	return st, d, nil
}

// recordLook replaces the current window's counts with the look's. Counts
// are since the step started, so repeating a look is harmless.
func recordLook(w *Window, l Look, metrics []Metric) error {
	for _, m := range metrics {
		c, ok := l.Metrics[m.Name]
		if !ok {
			return fmt.Errorf("%w: look has no counts for metric %q", ErrState, m.Name)
		}
		for _, x := range []Counts{c.Canary, c.Stable} {
			if x.Bad < 0 || x.Total < 0 || x.Bad > x.Total {
				return fmt.Errorf("%w: metric %q counts %d bad of %d", ErrState, m.Name, x.Bad, x.Total)
			}
		}
		w.Metrics[m.Name] = c
	}
	w.Requests = Arms{Canary: Counts{Total: l.Requests.Canary}, Stable: Counts{Total: l.Requests.Stable}}
	if l.Requests.Canary == 0 && l.Requests.Stable == 0 {
		first := l.Metrics[metrics[0].Name]
		w.Requests = Arms{Canary: Counts{Total: first.Canary.Total}, Stable: Counts{Total: first.Stable.Total}}
	}
	if w.Requests.Canary.Total < 0 || w.Requests.Stable.Total < 0 {
		return fmt.Errorf("%w: negative request counts", ErrState)
	}
	return nil
}

// evidence computes each metric's test over every step and the SRM check.
func (a *Analyzer) evidence(st State) ([]MetricResult, SRMResult) {
	alpha := a.cfg.Alpha / float64(len(a.cfg.Metrics)) // Bonferroni
	steps := make([]StepCounts, len(st.Windows))
	out := make([]MetricResult, 0, len(a.cfg.Metrics))
	for _, m := range a.cfg.Metrics {
		r := MetricResult{Name: m.Name, Margin: m.Margin, Alpha: alpha}
		for i, w := range st.Windows {
			c := w.Metrics[m.Name]
			steps[i] = StepCounts{Share: float64(w.Weight) / 100, BadCanary: c.Canary.Bad, BadStable: c.Stable.Bad}
			r.Canary.Bad += c.Canary.Bad
			r.Canary.Total += c.Canary.Total
			r.Stable.Bad += c.Stable.Bad
			r.Stable.Total += c.Stable.Total
		}
		r.RatioResult = a.grid.rateRatio(steps, alpha, m.Margin)
		out = append(out, r)
	}

	var srm SRMResult
	var nB, n int64
	for _, w := range st.Windows {
		rho := float64(w.Weight) / 100
		srm.LogBF += srmLogBF(w.Requests.Canary.Total, w.Requests.Stable.Total, rho, a.cfg.SRMConcentration)
		nB += w.Requests.Canary.Total
		n += w.Requests.Canary.Total + w.Requests.Stable.Total
	}
	cur := st.Windows[st.Step]
	srm.RoutedShare = float64(cur.Weight) / 100
	if t := cur.Requests.Canary.Total + cur.Requests.Stable.Total; t > 0 {
		srm.ObservedShare = float64(cur.Requests.Canary.Total) / float64(t)
	}
	srm.Mismatch = srm.LogBF >= math.Log(1/a.cfg.SRMAlpha)
	return out, srm
}

// decide is the decision table, in order of precedence:
//  1. a guard trips → rollback (a broken canary needs no statistics);
//  2. SRM → hold (or inconclusive after MaxDuration): never decide on a
//     skewed split, whose counts do not mean what the test assumes;
//  3. a metric's test rejects in the harmful direction → rollback;
//  4. every metric non-inferior, the step's minimum time and canary
//     requests met → advance, or promote on the last step;
//  5. MaxDuration reached → inconclusive;
//  6. otherwise hold, saying what is missing.
func (a *Analyzer) decide(st State, l Look, d Decision, timedOut bool) (Action, string) {
	cur := st.Windows[st.Step]
	if len(l.Tripped) > 0 {
		return ActionRollback, "guard tripped: " + strings.Join(l.Tripped, ", ")
	}
	for _, m := range a.cfg.Metrics {
		c := cur.Metrics[m.Name].Canary
		if m.GuardMaxRate > 0 && c.Total > 0 && c.Total >= m.GuardMinRequests &&
			float64(c.Bad)/float64(c.Total) >= m.GuardMaxRate {
			return ActionRollback, fmt.Sprintf("guard %s: canary rate %.3g (%d of %d) ≥ %.3g in this step",
				m.Name, float64(c.Bad)/float64(c.Total), c.Bad, c.Total, m.GuardMaxRate)
		}
	}
	if d.SRM.Mismatch {
		reason := fmt.Sprintf("SRM: observed canary share %.4f vs routed %.2f (log BF %.1f)",
			d.SRM.ObservedShare, d.SRM.RoutedShare, d.SRM.LogBF)
		if timedOut {
			return ActionInconclusive, "max duration reached; " + reason
		}
		return ActionHold, reason
	}
	var waiting []string
	for _, r := range d.Metrics {
		if r.Harmful {
			return ActionRollback, fmt.Sprintf("%s: canary worse than stable (log BF %.2f ≥ %.2f; rate ratio %.3g, bounds %.3g..%.3g)",
				r.Name, r.LogBFHarm, math.Log(1/r.Alpha), r.Estimate, r.Lower, r.Upper)
		}
		if !r.NonInferior {
			waiting = append(waiting, fmt.Sprintf("%s upper bound %.3g not below margin %.3g", r.Name, r.Upper, r.Margin))
		}
	}
	if since := l.At.Sub(cur.Started); since < a.cfg.StepDuration {
		waiting = append(waiting, fmt.Sprintf("step time %s of %s", since.Round(time.Second), a.cfg.StepDuration))
	}
	if cur.Requests.Canary.Total < a.cfg.MinSamples {
		waiting = append(waiting, fmt.Sprintf("canary requests %d of %d", cur.Requests.Canary.Total, a.cfg.MinSamples))
	}
	if len(waiting) == 0 {
		if st.Step == len(a.cfg.Steps)-1 {
			return ActionPromote, fmt.Sprintf("every metric non-inferior at the last step (%d%%)", cur.Weight)
		}
		return ActionAdvance, fmt.Sprintf("every metric non-inferior at %d%%", cur.Weight)
	}
	if timedOut {
		return ActionInconclusive, "max duration reached; " + strings.Join(waiting, "; ")
	}
	return ActionHold, strings.Join(waiting, "; ")
}

// remember appends d to the bounded history when it differs from the last
// entry, so a long hold is one record rather than one per look.
func (st *State) remember(d Decision) {
	if n := len(st.History); n > 0 {
		last := st.History[n-1]
		if last.Action == d.Action && last.Weight == d.Weight && sameKind(last.Reason, d.Reason) {
			return
		}
	}
	st.History = append(st.History, Record{At: d.At, Action: d.Action, Reason: d.Reason, Weight: d.Weight})
	if len(st.History) > HistoryLimit {
		st.History = append([]Record(nil), st.History[len(st.History)-HistoryLimit:]...)
	}
}

// sameKind compares reasons by their first clause, so holds whose only
// change is a counter value do not fill the history.
func sameKind(a, b string) bool {
	cut := func(s string) string {
		if i := strings.IndexAny(s, "0123456789"); i >= 0 {
			return s[:i]
		}
		return s
	}
	return cut(a) == cut(b)
}
