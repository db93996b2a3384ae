package canary

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/analysis"
	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/prometheus"
	"github.com/modelsync/modelsync/test/testenv"
)

// scenario is one canary's traffic, written minute by minute as Knative's
// queue-proxy would count it, under its own namespace so one backfilled
// Prometheus serves every scenario.
type scenario struct {
	ns string
	// canaryErr, stableErr are the 5xx shares; canarySlow, stableSlow
	// the shares slower than the 500 ms bucket.
	canaryErr, stableErr, canarySlow, stableSlow float64
	// share overrides the routed canary share (a skewed split).
	share float64
	// resetAt restarts the canary pod's counters after that minute.
	resetAt int
	// gapFrom..gapTo (inclusive) are minutes with no samples at all.
	gapFrom, gapTo int
	// gapPod limits the gap to one pod (its target was down).
	gapPod string
}

const (
	minutes       = 30
	perMinute     = 2000
	canaryRev     = "llm-predictor-00002"
	stableRev     = "llm-predictor-00001"
	advanceMinute = 10 // the step duration: the good canary advances here
)

// weightAt is the routed share of the traffic of minute m (the minute
// ending at m): the first step until the advance, then the second.
func weightAt(m int) int {
	if m <= advanceMinute {
		return 10
	}
	return 50
}

type series struct {
	name   string
	labels string
	values []float64 // per minute 0..minutes, NaN: no sample
}

// openMetrics renders the scenarios' counters. Each series is cumulative;
// the stable arm has two pods so series are tracked one by one.
func openMetrics(base time.Time, scs []scenario) string {
	var all []series
	for _, sc := range scs {
		type pod struct {
			rev, name   string
			errR, slowR float64
			canary      bool
		}
		pods := []pod{
			{canaryRev, "c-1", sc.canaryErr, sc.canarySlow, true},
			{stableRev, "s-1", sc.stableErr, sc.stableSlow, false},
			{stableRev, "s-2", sc.stableErr, sc.stableSlow, false},
		}
		for _, p := range pods {
			lbl := fmt.Sprintf(`namespace_name="%s",revision_name="%s",pod_name="%s"`, sc.ns, p.rev, p.name)
			ok := series{"revision_app_request_count", lbl + `,response_code_class="2xx"`, nil}
			bad := series{"revision_app_request_count", lbl + `,response_code_class="5xx"`, nil}
			fast := series{"revision_app_request_latencies_bucket", lbl + `,le="500"`, nil}
			cnt := series{"revision_app_request_latencies_count", lbl, nil}
			var nOK, nBad, nFast, nAll float64
			for m := 0; m <= minutes; m++ {
				if m > 0 {
					share := float64(weightAt(m)) / 100
					if sc.share > 0 && m <= advanceMinute {
						share = sc.share
					}
					reqs := perMinute * share
					if !p.canary {
						reqs = perMinute * (1 - share) / 2
					}
					e, s := math.Round(reqs*p.errR), math.Round(reqs*p.slowR)
					if p.canary && sc.resetAt > 0 && m == sc.resetAt+1 {
						nOK, nBad, nFast, nAll = 0, 0, 0, 0
					}
					nOK += reqs - e
					nBad += e
					nFast += reqs - s
					nAll += reqs
				}
				gap := sc.gapTo > 0 && m >= sc.gapFrom && m <= sc.gapTo && (sc.gapPod == "" || sc.gapPod == p.name)
				for _, x := range []struct {
					s *series
					v float64
				}{{&ok, nOK}, {&bad, nBad}, {&fast, nFast}, {&cnt, nAll}} {
					if gap {
						x.v = math.NaN()
					}
					x.s.values = append(x.s.values, x.v)
				}
			}
			all = append(all, ok, bad, fast, cnt)
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].name < all[j].name })
	var b strings.Builder
	for _, s := range all {
		for m, v := range s.values {
			if math.IsNaN(v) {
				continue
			}
			fmt.Fprintf(&b, "%s{%s} %g %d\n", s.name, s.labels, v, base.Add(time.Duration(m)*time.Minute).Unix())
		}
	}
	b.WriteString("# EOF\n")
	return b.String()
}

func testSpec(t *testing.T, address, ns string, maxDuration time.Duration) Spec {
	t.Helper()
	a := manifest.Analysis{
		Provider:     &manifest.AnalysisProvider{Address: address},
		StepDuration: manifest.Duration{Duration: advanceMinute * time.Minute},
		MinSamples:   500,
		MaxDuration:  manifest.Duration{Duration: maxDuration},
		Metrics: []manifest.AnalysisMetric{
			{Kind: manifest.MetricErrors},
			{Kind: manifest.MetricLatency, LE: "500"},
		},
	}
	s, ok, err := SpecFor("llm", desiredEnv(ns, []int{10, 50}, 10, &a), "llm")
	if err != nil || !ok {
		t.Fatalf("SpecFor: %v, %v", ok, err)
	}
	return s
}

type lookResult struct {
	minute int
	d      analysis.Decision
	st     analysis.State
}

// run looks at minute m + 30 s for m = 0..last, advancing when told, and
// stops at promote or rollback.
func run(t *testing.T, e *Evaluator, s Spec, base time.Time, last int) []lookResult {
	t.Helper()
	ctx := context.Background()
	rev := Revisions{Canary: canaryRev, Stable: stableRev}
	var (
		st  analysis.State
		out []lookResult
	)
	for m := 0; m <= last; m++ {
		now := base.Add(time.Duration(m)*time.Minute + 30*time.Second)
		var (
			d   analysis.Decision
			err error
		)
		st, d, err = e.Look(ctx, s, rev, st, now)
		if err != nil {
			t.Fatalf("minute %d: %v", m, err)
		}
		out = append(out, lookResult{m, d, st})
		switch d.Action {
		case analysis.ActionAdvance:
			if st, err = e.Advance(s, st, now); err != nil {
				t.Fatalf("minute %d: advance: %v", m, err)
			}
		case analysis.ActionPromote, analysis.ActionRollback:
			return out
		}
	}
	return out
}

// summary compresses the decisions: "hold@0-9 advance@10 hold@11-19 promote@20".
func summary(rs []lookResult) string {
	var parts []string
	for i := 0; i < len(rs); {
		j := i
		for j+1 < len(rs) && rs[j+1].d.Action == rs[i].d.Action {
			j++
		}
		if j == i {
			parts = append(parts, fmt.Sprintf("%s@%d", rs[i].d.Action, rs[i].minute))
		} else {
			parts = append(parts, fmt.Sprintf("%s@%d-%d", rs[i].d.Action, rs[i].minute, rs[j].minute))
		}
		i = j + 1
	}
	return strings.Join(parts, " ")
}

func TestEvaluatorDecisionTablesOnRealPrometheus(t *testing.T) {
	testenv.RequireE2E(t)
	base := time.Now().Add(-24 * time.Hour).Truncate(time.Hour)
	good := scenario{ns: "good", canaryErr: 0.01, stableErr: 0.03, canarySlow: 0.05, stableSlow: 0.10}
	scs := []scenario{
		good,
		{ns: "bad", canaryErr: 0.10, stableErr: 0.01, canarySlow: 0.05, stableSlow: 0.05},
		{ns: "flat", canaryErr: 0.02, stableErr: 0.02, canarySlow: 0.05, stableSlow: 0.05},
		{ns: "reset", canaryErr: 0.01, stableErr: 0.03, canarySlow: 0.05, stableSlow: 0.10, resetAt: 5},
		{ns: "gap", canaryErr: 0.01, stableErr: 0.03, canarySlow: 0.05, stableSlow: 0.10, gapFrom: 3, gapTo: 9},
		{ns: "podgap", canaryErr: 0.01, stableErr: 0.03, canarySlow: 0.05, stableSlow: 0.10, gapFrom: 3, gapTo: 9, gapPod: "s-2"},
		{ns: "skew", canaryErr: 0.02, stableErr: 0.02, canarySlow: 0.05, stableSlow: 0.05, share: 0.2},
	}
	prom := testenv.NewPrometheusWithData(t, openMetrics(base, scs))
	client, err := prometheus.New(prometheus.Config{Address: prom.URL})
	if err != nil {
		t.Fatal(err)
	}
	e := NewEvaluator(client)

	cases := []struct {
		ns          string
		maxDuration time.Duration
		last        int
		want        string
		check       func(t *testing.T, rs []lookResult)
	}{
		// Evidence is enough early; the step time (10 min) decides when.
		{ns: "good", last: minutes, want: "hold@0-9 advance@10 hold@11-19 promote@20", check: func(t *testing.T, rs []lookResult) {
			w := rs[10].st.Windows[0] // the first step, read at minute 10
			if got := w.Requests.Canary.Total; got != 10*200 {
				t.Errorf("canary requests in step 1 = %d, want exactly %d", got, 10*200)
			}
			if got := w.Metrics["errors"].Canary; got != (analysis.Counts{Bad: 20, Total: 2000}) {
				t.Errorf("canary errors in step 1 = %+v, want 20 of 2000", got)
			}
			if got := w.Metrics["latency"].Stable; got != (analysis.Counts{Bad: 1800, Total: 18000}) {
				t.Errorf("stable slow requests in step 1 = %+v, want 1800 of 18000", got)
			}
			w2 := rs[20].st.Windows[1] // minutes 11..20 at 50%
			if got := w2.Metrics["errors"].Canary; got != (analysis.Counts{Bad: 100, Total: 10000}) {
				t.Errorf("canary errors in step 2 = %+v, want 100 of 10000 (no tail of step 1)", got)
			}
			// The stored state keeps one counter and one step baseline per
			// query: 2 metrics × 2 parts + requests, for 2 arms.
			if n := len(rs[20].st.Counters); n != 2*2*5 {
				t.Errorf("%d counters stored, want 20: %v", n, rs[20].st.Counters)
			}
			for k := range rs[20].st.Counters {
				if strings.HasPrefix(k, "@0:") {
					t.Errorf("step 1 baseline %s kept after the advance", k)
				}
			}
		}},
		// Ten times the stable error rate is rejected long before the step ends.
		{ns: "bad", last: minutes, want: "hold@0 rollback@1", check: func(t *testing.T, rs []lookResult) {
			if r := rs[len(rs)-1].d.Reason; !strings.HasPrefix(r, "errors: canary worse than stable") {
				t.Errorf("rollback reason = %q", r)
			}
		}},
		// Identical arms: never a rollback, not enough to show non-inferiority
		// at margin 1.2 either; maxDuration makes it inconclusive.
		{ns: "flat", maxDuration: 15 * time.Minute, last: 18, want: "hold@0-14 inconclusive@15-18"},
		// The canary pod restarts after minute 5: its counters start from
		// zero, and the step's counts stay exact.
		{ns: "reset", last: minutes, want: "hold@0-9 advance@10 hold@11-19 promote@20", check: func(t *testing.T, rs []lookResult) {
			if got := rs[10].st.Windows[0].Metrics["errors"].Canary; got != (analysis.Counts{Bad: 20, Total: 2000}) {
				t.Errorf("canary errors across the reset = %+v, want 20 of 2000", got)
			}
		}},
		// No samples for minutes 3..9: looks at 9 (6.5 min after the last
		// sample, past the 5 min lookback) have no data and hold as provider
		// errors; after the gap the counts are exact again.
		{ns: "gap", last: minutes, want: "hold@0-9 advance@10 hold@11-19 promote@20", check: func(t *testing.T, rs []lookResult) {
			if got := rs[9].d.Reason; !strings.Contains(got, "provider error") || !strings.Contains(got, "no data") {
				t.Errorf("look in the gap: reason %q, want a provider error with no data", got)
			}
			if got := rs[10].st.ProviderErrors; got == 0 {
				t.Errorf("provider errors = 0 after a gap")
			}
			if got := rs[10].st.Windows[0].Metrics["errors"].Canary; got != (analysis.Counts{Bad: 20, Total: 2000}) {
				t.Errorf("canary errors across the gap = %+v, want 20 of 2000", got)
			}
		}},
		// One stable pod's series vanish for minutes 3..9 (its scrape
		// failed) and come back with everything counted meanwhile: they
		// are counted from their last value, not from zero.
		{ns: "podgap", last: minutes, want: "hold@0-9 advance@10 hold@11-19 promote@20", check: func(t *testing.T, rs []lookResult) {
			if got := rs[10].st.Windows[0].Metrics["errors"].Stable; got != (analysis.Counts{Bad: 540, Total: 18000}) {
				t.Errorf("stable errors across one pod's gap = %+v, want 540 of 18000", got)
			}
		}},
		// Routed 10%, observed 20%: hold on SRM, never decide.
		{ns: "skew", last: advanceMinute, want: "hold@0-10", check: func(t *testing.T, rs []lookResult) {
			if r := rs[len(rs)-1].d.Reason; !strings.HasPrefix(r, "SRM:") {
				t.Errorf("last reason = %q, want an SRM hold", r)
			}
		}},
	}
	// After promotion at minute 10: the promoted revision's minutes 10..20
	// against the previous revision's minutes 0..10.
	for ns, want := range map[string]analysis.Action{"good": analysis.ActionPromote, "bad": analysis.ActionRollback, "flat": ""} {
		t.Run("verify-"+ns, func(t *testing.T) {
			s := testSpec(t, prom.URL, ns, 0)
			s.PostPromotion = &PostPromotion{Duration: 10 * time.Minute, Metrics: s.Metrics, Config: s.Config}
			at := base.Add(advanceMinute * time.Minute)
			d, err := e.Verify(context.Background(), s, canaryRev, stableRev, at, at.Add(5*time.Minute))
			if err != nil || d.Action != analysis.ActionHold {
				t.Fatalf("before the window ends: %+v, %v", d, err)
			}
			d, err = e.Verify(context.Background(), s, canaryRev, stableRev, at, at.Add(11*time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if got := d.Metrics[0]; got.Canary != (analysis.Counts{Bad: int64(10000 * map[string]float64{"good": 0.01, "bad": 0.10, "flat": 0.02}[ns]), Total: 10000}) || got.Stable.Total != 18000 {
				t.Errorf("counts %+v / %+v", got.Canary, got.Stable)
			}
			if want == "" {
				if d.Action == analysis.ActionRollback {
					t.Fatalf("equal versions rolled back: %s", d.Reason)
				}
				return
			}
			if d.Action != want {
				t.Fatalf("verify = %s (%s), want %s", d.Action, d.Reason, want)
			}
		})
	}
	for _, tc := range cases {
		t.Run(tc.ns, func(t *testing.T) {
			s := testSpec(t, prom.URL, tc.ns, tc.maxDuration)
			rs := run(t, e, s, base, tc.last)
			got := summary(rs)
			if got != tc.want {
				for _, r := range rs {
					t.Logf("minute %d: %s: %s", r.minute, r.d.Action, r.d.Reason)
				}
				t.Fatalf("decisions %q, want %q", got, tc.want)
			}
			if tc.check != nil {
				tc.check(t, rs)
			}
		})
	}
}
