package controller

import (
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/modelsync/modelsync/internal/canary"
	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/reconciler"
)

// Status is GET /api/v1/status: one row per model and environment.
type Status struct {
	Revision  string    `json:"revision"`
	Ready     bool      `json:"ready"`
	Leader    bool      `json:"leader"`
	Identity  string    `json:"identity"`
	LastFetch time.Time `json:"lastFetch,omitzero"`
	// FetchError is the last fetch's or desired-state error, if any.
	FetchError string      `json:"fetchError,omitempty"`
	Rows       []StatusRow `json:"rows"`
}

// StatusRow describes one model in one environment. Messages are
// deterministic; times are in their own fields.
type StatusRow struct {
	Model       string `json:"model"`
	Environment string `json:"environment"`
	// Desired is what Git asks for, e.g. "v3 (canary v4 at 20%)".
	Desired string `json:"desired"`
	// DesiredVersion is Desired's version for programs (0: none).
	DesiredVersion  int    `json:"desiredVersion,omitempty"`
	DesiredRevision string `json:"desiredRevision,omitempty"`
	// Live is what runs, from the last plan or apply ("unknown" before).
	Live string `json:"live"`
	// LiveVersion is Live's version for programs (0: none or unknown).
	LiveVersion int    `json:"liveVersion,omitempty"`
	State       string `json:"state"`
	Message     string `json:"message,omitempty"`
	Drift       bool   `json:"drift"`
	Health      string `json:"health"`
	CanaryStep  string `json:"canaryStep,omitempty"`
	// Canary is the canary Git asks for, with the live traffic split when
	// the serving target reports one; CanaryStep is its prose.
	Canary       *CanaryStatus `json:"canary,omitempty"`
	LastRevision string        `json:"lastRevision,omitempty"`
	LastError    string        `json:"lastError,omitempty"`
	Window       WindowStatus  `json:"window"`
	Pin          *Pin          `json:"pin,omitempty"`
	LastAttempt  time.Time     `json:"lastAttempt,omitzero"`
	LastApplied  time.Time     `json:"lastApplied,omitzero"`
}

// CanaryStatus is a canary's desired and live traffic, for programs and
// for compact tables.
type CanaryStatus struct {
	Version int `json:"version"`
	// Weight is the share of traffic Git asks for.
	Weight int `json:"weight"`
	// LiveWeight is the share the canary's revision serves, when the
	// serving target reports a split between two revisions.
	LiveWeight *int `json:"liveWeight,omitempty"`
	// Step is Weight's 1-based position in Steps (0: not a step).
	Step  int   `json:"step,omitempty"`
	Steps []int `json:"steps"`
	// Traffic is the live split as the serving target reports it.
	Traffic []reconciler.TrafficSplit `json:"traffic"`
	// Analysis is the canary analysis' state when one runs; its weight,
	// not Weight, is then live.
	Analysis *AnalysisSummary `json:"analysis,omitempty"`
}

// AnalysisSummary is a canary analysis in a status row.
type AnalysisSummary struct {
	// Step is the current step, 1-based, of Steps.
	Step  int `json:"step"`
	Steps int `json:"steps"`
	// Weight is the canary weight the analysis holds live.
	Weight int `json:"weight"`
	// Decision and Reason are the last look's (empty before the first).
	Decision string  `json:"decision,omitempty"`
	Reason   string  `json:"reason,omitempty"`
	Outcome  Outcome `json:"outcome"`
	// WriteBack is where a promotion or rollback was recorded in Git.
	WriteBack string `json:"writeBack,omitempty"`
	// Verify is the check after promotion: "checking" (window open or
	// not judged yet), verified, inconclusive or reverted; empty without
	// postPromotion.
	Verify string `json:"verify,omitempty"`
	// Error says why the analysis cannot run; the canary then stays at
	// the weight in Git.
	Error string `json:"error,omitempty"`
}

func (cr *canaryRun) summary() *AnalysisSummary {
	if cr != nil && cr.specErr != "" {
		return &AnalysisSummary{Outcome: OutcomeNotRunning, Error: cr.specErr}
	}
	if cr == nil || cr.rec == nil {
		return nil
	}
	rec := cr.rec
	steps := len(cr.spec.Config.Steps)
	if steps == 0 {
		steps = len(rec.State.Windows) // a promotion under check outlives Git's steps
	}
	a := &AnalysisSummary{Step: rec.State.Step + 1, Steps: steps, Weight: rec.weight(), Outcome: rec.Outcome, WriteBack: rec.WriteBack}
	if v := rec.Verification; v != nil && rec.Outcome != OutcomeRunning && rec.Outcome != OutcomeRolledBack {
		a.Verify = string(v.Result)
		if v.Result == canary.VerifyPending {
			a.Verify = "checking"
		}
	}
	if d := rec.Decision; d != nil {
		a.Decision, a.Reason = string(d.Action), d.Reason
	}
	return a
}

// Compact renders the canary for a narrow column, e.g. "v4 20%→50% (2/4)":
// version, live share → desired share when they differ, step of steps.
func (c CanaryStatus) Compact() string {
	if a := c.Analysis; a != nil {
		// The analysis owns the weight: step of steps and its decision,
		// e.g. "v4 50% (2/4) hold" or "v4 rolled-back".
		s := "v" + strconv.Itoa(c.Version) + " "
		if a.Outcome == OutcomeNotRunning {
			return s + strconv.Itoa(c.Weight) + "% (analysis not running)"
		}
		if a.Outcome != OutcomeRunning {
			if a.Verify != "" && a.Outcome == OutcomePromoted {
				return s + string(a.Outcome) + " (" + a.Verify + ")"
			}
			return s + string(a.Outcome)
		}
		s += strconv.Itoa(a.Weight) + "% (" + strconv.Itoa(a.Step) + "/" + strconv.Itoa(a.Steps) + ")"
		if a.Decision != "" {
			s += " " + a.Decision
		}
		return s
	}
	s := "v" + strconv.Itoa(c.Version) + " "
	if c.LiveWeight != nil && *c.LiveWeight != c.Weight {
		s += strconv.Itoa(*c.LiveWeight) + "%→"
	}
	s += strconv.Itoa(c.Weight) + "%"
	if c.Step > 0 {
		s += " (" + strconv.Itoa(c.Step) + "/" + strconv.Itoa(len(c.Steps)) + ")"
	}
	return s
}

// labelVersion reads the version of a label envLabel made ("v3" or
// "v3 (canary v4 at 20%)"); other labels ("none", "out of sync") give 0.
func labelVersion(label string) int {
	head, _, _ := strings.Cut(label, " ")
	n, err := strconv.Atoi(strings.TrimPrefix(head, "v"))
	if err != nil || !strings.HasPrefix(head, "v") || n < 0 {
		return 0
	}
	return n
}

func canaryStatus(c *reconciler.DesiredCanary, traffic []reconciler.TrafficSplit) *CanaryStatus {
	if c == nil {
		return nil
	}
	cs := &CanaryStatus{Version: c.Version, Weight: c.Weight, Steps: slices.Clone(c.Steps), Traffic: slices.Clone(traffic)}
	if cs.Steps == nil {
		cs.Steps = []int{}
	}
	if cs.Traffic == nil {
		cs.Traffic = []reconciler.TrafficSplit{}
	}
	if i := slices.Index(c.Steps, c.Weight); i >= 0 {
		cs.Step = i + 1
	}
	// A single revision at 100% says the canary's revision is not rolled
	// out yet, not that it takes all traffic: only a split is a live share.
	if len(traffic) > 1 {
		for _, t := range traffic {
			if t.Latest {
				w := t.Percent
				cs.LiveWeight = &w
			}
		}
	}
	return cs
}

// Status reports every model and environment of the current desired
// state, including models Git cannot resolve.
func (c *Controller) Status() Status {
	now := c.opts.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{Ready: c.ready.Load(), Leader: c.IsLeader(), Identity: c.identity, LastFetch: c.lastFetch, FetchError: c.fetchErr, Rows: []StatusRow{}}
	d := c.desired
	if d == nil {
		return st
	}
	st.Revision = d.Revision
	keys := allKeys(d)
	sortKeys(keys, d.Config)
	for _, k := range keys {
		m, _ := d.Model(k.Model)
		row := StatusRow{Model: k.Model, Environment: k.Environment, Desired: "-", Live: "unknown", State: StateUnknown, Health: HealthUnknown}
		if k.Environment == "" {
			row.Environment = "-"
			row.Desired = "(in no environment)"
		} else if e, ok := m.Env(k.Environment); ok {
			row.Desired, row.DesiredVersion, row.DesiredRevision = envLabel(e), e.Version, e.Revision
			row.Window = c.windows.Status(k.Environment, now)
		}
		if m.Suspended {
			row.State = StateSuspended
		}
		var traffic []reconciler.TrafficSplit
		var an *AnalysisSummary
		if s, ok := c.items[k]; ok {
			an = s.Analysis
			row.Live, row.State, row.Message, row.Drift, row.Health = s.Live, s.State, s.Message, s.Drift, s.Health
			row.CanaryStep, row.LastRevision, row.LastError, row.LastAttempt, row.LastApplied = s.CanaryStep, s.LastRevision, s.LastError, s.LastAttempt, s.LastApplied
			traffic = s.Traffic
			row.LiveVersion = labelVersion(s.Live)
		}
		if e, ok := m.Env(k.Environment); ok && k.Environment != "" {
			row.Canary = canaryStatus(e.Canary, traffic)
			if row.Canary != nil {
				row.Canary.Analysis = an
			}
		}
		if row.Window.Open || k.Environment == "" {
			row.Window = WindowStatus{Open: true}
		}
		if p, ok := c.pins.get(k); ok {
			row.Pin = &p
		}
		st.Rows = append(st.Rows, row)
	}
	for _, e := range d.Errors {
		row := StatusRow{Model: e.Model, Environment: e.Environment, Desired: "-", Live: "unknown", State: StateInvalid,
			Health: HealthUnknown, LastError: e.Message, Window: WindowStatus{Open: true}}
		if row.Environment == "" {
			row.Environment = "-"
		}
		st.Rows = append(st.Rows, row)
	}
	return st
}

// Desired returns the desired state of the last successful fetch, or nil.
func (c *Controller) Desired() *reconciler.DesiredState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.desired
}

// sortKeys orders keys by model, then environment in modelsync.yaml order.
func sortKeys(keys []Key, cfg *manifest.RepoConfig) {
	rank := map[string]int{}
	if cfg != nil {
		for i, e := range cfg.Environments {
			rank[e.Name] = i + 1
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Model != keys[j].Model {
			return keys[i].Model < keys[j].Model
		}
		return rank[keys[i].Environment] < rank[keys[j].Environment]
	})
}
