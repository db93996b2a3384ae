package analysis

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func testConfig() Config {
	return Config{
		Steps:        []int{10, 50},
		StepDuration: 10 * time.Minute,
		MinSamples:   500,
		MaxDuration:  2 * time.Hour,
		Metrics: []Metric{
			{Name: "errors", Margin: 1.2, GuardMaxRate: 0.5, GuardMinRequests: 20},
			{Name: "latency", Margin: 1.2},
		},
	}
}

func mustNew(t *testing.T, c Config) *Analyzer {
	t.Helper()
	a, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// arms builds counts with totals split by the routed share.
func arms(canaryBad, canaryTotal, stableBad, stableTotal int64) Arms {
	return Arms{Canary: Counts{Bad: canaryBad, Total: canaryTotal}, Stable: Counts{Bad: stableBad, Total: stableTotal}}
}

// Evidence at 10%: equal 1% rates with 10,000 events (non-inferior), a
// canary three times worse (harmful), a little data (undecided).
var (
	equalBig   = arms(1000, 100000, 9000, 900000)
	threeTimes = arms(60, 2000, 180, 18000)
	small      = arms(5, 600, 50, 5400)
)

func look(at time.Time, errs, lat Arms) Look {
	return Look{At: at, Metrics: map[string]Arms{"errors": errs, "latency": lat}}
}

// The decision table: each row is one state of the evidence and the clock.
func TestDecisionTable(t *testing.T) {
	a := mustNew(t, testConfig())
	last, err := a.Advance(a.Start(t0), t0.Add(20*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	skewed := look(t0.Add(15*time.Minute), equalBig, equalBig)
	skewed.Requests = Split{Canary: 150000, Stable: 850000} // 15% at a routed 10%
	tripped := look(t0.Add(15*time.Minute), equalBig, equalBig)
	tripped.Tripped = []string{"p99-latency"}
	provider := Look{At: t0.Add(15 * time.Minute), Err: errors.New("prometheus: 503")}
	lateProvider := provider
	lateProvider.At = t0.Add(3 * time.Hour)

	for _, tc := range []struct {
		name   string
		st     State
		l      Look
		want   Action
		reason string
	}{
		{"advance", a.Start(t0), look(t0.Add(11*time.Minute), equalBig, equalBig), ActionAdvance, "non-inferior at 10%"},
		{"promote on last step", last, look(t0.Add(31*time.Minute), arms(5000, 500000, 5000, 500000), arms(5000, 500000, 5000, 500000)), ActionPromote, "last step"},
		{"hold for step time", a.Start(t0), look(t0.Add(5*time.Minute), equalBig, equalBig), ActionHold, "step time 5m0s of 10m0s"},
		{"hold for samples", a.Start(t0), look(t0.Add(11*time.Minute), arms(0, 400, 0, 3600), equalBig), ActionHold, "canary requests 400 of 500"},
		{"hold for evidence", a.Start(t0), look(t0.Add(11*time.Minute), small, small), ActionHold, "errors upper bound"},
		{"rollback when harmful", a.Start(t0), look(t0.Add(2*time.Minute), threeTimes, small), ActionRollback, "errors: canary worse than stable"},
		{"rollback on latency alone", a.Start(t0), look(t0.Add(2*time.Minute), small, threeTimes), ActionRollback, "latency: canary worse"},
		{"guard", a.Start(t0), look(t0.Add(time.Minute), arms(11, 20, 0, 180), small), ActionRollback, "guard errors: canary rate 0.55"},
		{"guard needs its minimum requests", a.Start(t0), look(t0.Add(time.Minute), arms(10, 19, 90, 171), arms(0, 19, 0, 171)), ActionHold, "errors upper bound"},
		{"external guard", a.Start(t0), tripped, ActionRollback, "guard tripped: p99-latency"},
		{"SRM holds even with good evidence", a.Start(t0), skewed, ActionHold, "SRM: observed canary share 0.1500 vs routed 0.10"},
		{"provider error holds", a.Start(t0), provider, ActionHold, "provider error: prometheus: 503"},
		{"inconclusive at max duration", a.Start(t0), look(t0.Add(2*time.Hour), small, small), ActionInconclusive, "max duration reached; errors upper bound"},
		{"provider error at max duration", a.Start(t0), lateProvider, ActionInconclusive, "max duration reached; last look: provider error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, d, err := a.Look(tc.st, tc.l)
			if err != nil {
				t.Fatal(err)
			}
			if d.Action != tc.want || !strings.Contains(d.Reason, tc.reason) {
				t.Fatalf("decision %s %q, want %s containing %q", d.Action, d.Reason, tc.want, tc.reason)
			}
			if tc.want == ActionAdvance && d.NextWeight != 50 {
				t.Errorf("NextWeight %d, want 50", d.NextWeight)
			}
			if tc.l.Err != nil && st.ProviderErrors != 1 {
				t.Errorf("ProviderErrors %d, want 1", st.ProviderErrors)
			}
			if len(st.History) == 0 || st.History[len(st.History)-1].Action != d.Action {
				t.Errorf("history %+v lacks the decision", st.History)
			}
		})
	}
}

// Bonferroni: each metric is tested at alpha/m.
func TestBonferroni(t *testing.T) {
	a := mustNew(t, testConfig())
	_, d, err := a.Look(a.Start(t0), look(t0.Add(time.Minute), small, small))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range d.Metrics {
		if m.Alpha != 0.025 {
			t.Errorf("metric %s alpha %v, want 0.025", m.Name, m.Alpha)
		}
	}
	// Evidence between ln(1/0.05) and ln(1/0.025) rejects with one metric
	// and not with two.
	cfg := testConfig()
	cfg.Metrics = cfg.Metrics[:1]
	one := mustNew(t, cfg)
	for n := int64(10); n < 200; n++ {
		errs := arms(2*n, 100*n, 9*n, 900*n)
		_, d1, _ := one.Look(one.Start(t0), Look{At: t0.Add(time.Minute), Metrics: map[string]Arms{"errors": errs}})
		_, d2, _ := a.Look(a.Start(t0), look(t0.Add(time.Minute), errs, arms(0, 100*n, 0, 900*n)))
		if d1.Action == ActionRollback && d2.Action != ActionRollback {
			lbf := d1.Metrics[0].LogBFHarm
			if lbf < math.Log(20) || lbf >= math.Log(40) {
				t.Fatalf("log BF %v outside [ln 20, ln 40)", lbf)
			}
			return
		}
	}
	t.Fatal("no count where one metric rejects and two do not")
}

// Evidence carries across steps: advancing keeps the earlier step's counts
// in the test, so the Bayes factor after the advance (with no new events)
// is the one before it, not a fresh start at 0.
func TestEvidenceCarriesAcrossSteps(t *testing.T) {
	a := mustNew(t, testConfig())
	st, d1, err := a.Look(a.Start(t0), look(t0.Add(11*time.Minute), arms(30, 2000, 180, 18000), small))
	if err != nil {
		t.Fatal(err)
	}
	if d1.Metrics[0].LogBFHarm <= 0 {
		t.Fatalf("no evidence to carry: %+v", d1.Metrics[0])
	}
	st, err = a.Advance(st, t0.Add(11*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	_, d2, err := a.Look(st, look(t0.Add(12*time.Minute), arms(0, 0, 0, 0), arms(0, 0, 0, 0)))
	if err != nil {
		t.Fatal(err)
	}
	if d2.Metrics[0].LogBFHarm != d1.Metrics[0].LogBFHarm || d2.Metrics[0].Canary != d1.Metrics[0].Canary {
		t.Fatalf("after advance %+v, before %+v", d2.Metrics[0], d1.Metrics[0])
	}
	if d2.Weight != 50 || d2.Step != 1 {
		t.Fatalf("weight %d step %d", d2.Weight, d2.Step)
	}
	if _, err := a.Advance(st, t0.Add(time.Hour)); !errors.Is(err, ErrState) {
		t.Fatalf("advance past the last step: %v", err)
	}
}

// A restart continues the same test: a state that went through JSON gives
// the same decisions and the same final state as one that never left memory.
func TestStateJSONRoundTripContinues(t *testing.T) {
	a := mustNew(t, testConfig())
	counts := []Arms{arms(2, 200, 18, 1800), arms(5, 400, 37, 3600), arms(9, 600, 55, 5400), arms(14, 800, 70, 7200)}
	mem := a.Start(t0)
	disk := a.Start(t0)
	c, _ := Counter{}.Observe(map[string]float64{`{pod="a"}`: 3})
	mem.Counters = map[string]Counter{"errors/canary": c}
	disk.Counters = map[string]Counter{"errors/canary": c}
	for i, x := range counts {
		l := look(t0.Add(time.Duration(i+1)*time.Minute), x, x)
		var dm, dd Decision
		var err error
		if mem, dm, err = a.Look(mem, l); err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(disk)
		if err != nil {
			t.Fatal(err)
		}
		var restored State
		if err := json.Unmarshal(b, &restored); err != nil {
			t.Fatal(err)
		}
		if disk, dd, err = a.Look(restored, l); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(dm, dd) {
			t.Fatalf("look %d: decision in memory %+v, after restart %+v", i, dm, dd)
		}
	}
	jm, _ := json.Marshal(mem)
	jd, _ := json.Marshal(disk)
	if string(jm) != string(jd) {
		t.Fatalf("states differ:\n%s\n%s", jm, jd)
	}
	if mem.Looks != len(counts) || !strings.Contains(string(jd), `"errors/canary"`) {
		t.Fatalf("state %s", jd)
	}
}

// Look and Advance return new states and leave the argument alone, so a
// failed persist cannot leave a half-updated state in the caller's hands.
func TestLookDoesNotMutateInput(t *testing.T) {
	a := mustNew(t, testConfig())
	st := a.Start(t0)
	before, _ := json.Marshal(st)
	if _, _, err := a.Look(st, look(t0.Add(time.Minute), small, small)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Advance(st, t0); err != nil {
		t.Fatal(err)
	}
	after, _ := json.Marshal(st)
	if string(before) != string(after) {
		t.Fatalf("state changed:\n%s\n%s", before, after)
	}
}

func TestLookRejectsBadInput(t *testing.T) {
	a := mustNew(t, testConfig())
	for name, l := range map[string]Look{
		"missing metric":  {At: t0, Metrics: map[string]Arms{"errors": small}},
		"bad above total": look(t0, arms(5, 4, 0, 10), small),
		"negative":        look(t0, arms(-1, 4, 0, 10), small),
	} {
		if _, _, err := a.Look(a.Start(t0), l); !errors.Is(err, ErrState) {
			t.Errorf("%s: err %v, want ErrState", name, err)
		}
	}
	st := a.Start(t0)
	st.Windows[0].Weight = 20
	if _, _, err := a.Look(st, look(t0, small, small)); !errors.Is(err, ErrState) {
		t.Errorf("state from another config: err %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"no steps":       func(c *Config) { c.Steps = nil },
		"step 100":       func(c *Config) { c.Steps = []int{10, 100} },
		"not increasing": func(c *Config) { c.Steps = []int{50, 10} },
		"alpha 1":        func(c *Config) { c.Alpha = 1 },
		"no metrics":     func(c *Config) { c.Metrics = nil },
		"margin 1":       func(c *Config) { c.Metrics[0].Margin = 1 },
		"duplicate":      func(c *Config) { c.Metrics[1].Name = "errors" },
		"guard rate":     func(c *Config) { c.Metrics[0].GuardMaxRate = 2 },
	} {
		c := testConfig()
		c.Metrics = append([]Metric(nil), c.Metrics...)
		mutate(&c)
		if _, err := New(c); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: err %v, want ErrConfig", name, err)
		}
	}
	a := mustNew(t, Config{Steps: []int{10}, Metrics: []Metric{{Name: "errors", Margin: 1.2}}})
	if c := a.Config(); c.Alpha != DefaultAlpha || c.StepDuration != DefaultStepDuration || c.MinSamples != DefaultMinSamples {
		t.Errorf("defaults not filled: %+v", c)
	}
}

// A long hold is one history record, and the history stays bounded.
func TestHistoryBounded(t *testing.T) {
	a := mustNew(t, testConfig())
	st := a.Start(t0)
	var err error
	for i := range 3 * HistoryLimit {
		l := look(t0.Add(time.Duration(i+1)*time.Second), small, small)
		if i%2 == 0 {
			l = Look{At: l.At, Err: errors.New("down")}
		}
		if st, _, err = a.Look(st, l); err != nil {
			t.Fatal(err)
		}
	}
	if len(st.History) != HistoryLimit {
		t.Fatalf("history length %d, want %d", len(st.History), HistoryLimit)
	}
	st2 := a.Start(t0)
	for i := range 10 {
		if st2, _, err = a.Look(st2, look(t0.Add(time.Duration(i+1)*time.Minute), small, small)); err != nil {
			t.Fatal(err)
		}
	}
	if len(st2.History) != 1 {
		t.Fatalf("a steady hold made %d records: %+v", len(st2.History), st2.History)
	}
}
