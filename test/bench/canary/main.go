// Command canary measures the decision quality of the canary analysis in
// internal/analysis against two other rules, by simulation:
//
//   - ours: the step-aware rate-ratio mixture test with Bonferroni over the
//     two metrics (errors, slow requests), advancing when every metric is
//     non-inferior and the step's minimum time and requests are met;
//   - flagger: a Flagger-style threshold rule, checking each interval's
//     canary error rate ≤ 1% and slow share ≤ -flagger-slow, advancing one
//     step per passing interval and rolling back after 5 failed checks;
//   - design: the original design's rule, |effect size| > 2 and n > 30
//     over the per-look rates of each arm, re-checked at every look, with
//     weight steps on a schedule (it has no notion of steps).
//
// Traffic: -rpm requests per minute in total, each routed to the canary with
// the step's weight (10/25/50% by default), one look per minute. Every
// replication is seeded from -seed, so a run is reproducible.
//
//	go run ./test/bench/canary -reps 1000
package main

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/modelsync/modelsync/internal/analysis"
)

type options struct {
	reps         int
	seed         uint64
	rpm          int
	steps        []int
	stepDuration time.Duration
	maxDuration  time.Duration
	minSamples   int64
	alpha        float64
	margin       float64
	prior        float64
	flaggerSlow  float64
	workers      int
}

// scenario is one pair of arms: per-request probabilities of an error and
// of a slow request for stable (A) and canary (B).
type scenario struct {
	name                     string
	errA, errB, slowA, slowB float64
	// errorsOnly analyses the error metric alone (no Bonferroni split), the
	// setting of the detection goal and of the reference's figures.
	errorsOnly bool
}

type outcome struct {
	action   analysis.Action // rollback, promote or inconclusive
	minutes  int             // minutes until the decision
	canaryRq int64           // canary requests until the decision
	srmHold  bool            // ours: some look held for a sample-ratio mismatch
}

type rule func(o options, sc scenario, rng *rand.Rand) outcome

func main() {
	var o options
	var steps string
	flag.IntVar(&o.reps, "reps", 1000, "replications per scenario")
	flag.Uint64Var(&o.seed, "seed", 1, "random seed")
	flag.IntVar(&o.rpm, "rpm", 2000, "requests per minute, both arms together")
	flag.StringVar(&steps, "steps", "10,25,50", "canary weights in percent")
	flag.DurationVar(&o.stepDuration, "step-duration", 10*time.Minute, "minimum time per step")
	flag.DurationVar(&o.maxDuration, "max-duration", 4*time.Hour, "analysis ends inconclusive after this")
	flag.Int64Var(&o.minSamples, "min-samples", 500, "minimum canary requests per step")
	flag.Float64Var(&o.alpha, "alpha", 0.05, "false-rollback budget over the canary")
	flag.Float64Var(&o.margin, "margin", 1.2, "non-inferiority margin on the rate ratio, both metrics")
	flag.Float64Var(&o.prior, "prior-scale", analysis.DefaultPriorScale, "ours: standard deviation of ln(rate ratio) in the mixing prior")
	flag.Float64Var(&o.flaggerSlow, "flagger-slow", 0.06, "flagger rule: maximum slow share per interval")
	flag.IntVar(&o.workers, "workers", runtime.GOMAXPROCS(0), "parallel replications")
	flag.Parse()
	for _, s := range strings.Split(steps, ",") {
		w, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			fmt.Fprintf(os.Stderr, "canary: -steps %q: %v\n", steps, err)
			os.Exit(2)
		}
		o.steps = append(o.steps, w)
	}
	if _, err := analysis.New(ourConfig(o, false)); err != nil {
		fmt.Fprintf(os.Stderr, "canary: %v\n", err)
		os.Exit(2)
	}

	scenarios := []scenario{
		{"identical arms (err 1%, slow 5%)", 0.01, 0.01, 0.05, 0.05, false},
		{"errors 1% -> 1.5%", 0.01, 0.015, 0.05, 0.05, false},
		{"errors 1% -> 2%", 0.01, 0.02, 0.05, 0.05, false},
		{"slow share 5% -> 7%", 0.01, 0.01, 0.05, 0.07, false},
		{"errors only: identical", 0.01, 0.01, 0.05, 0.05, true},
		{"errors only: 1% -> 1.5%", 0.01, 0.015, 0.05, 0.05, true},
		{"errors only: 1% -> 2%", 0.01, 0.02, 0.05, 0.05, true},
	}
	rules := []struct {
		name string
		run  rule
	}{{"ours", runOurs}, {"flagger", runFlagger}, {"design", runDesign}}

	start := time.Now()
	srmHolds, ourRuns := 0, 0
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "scenario\trule\trolled back\tpromoted\tinconclusive\tmedian canary req to rollback\tmedian min to promote\t\n")
	for si, sc := range scenarios {
		for ri, r := range rules {
			outs := replicate(o, sc, r.run, uint64(si*16+ri))
			if r.name == "ours" {
				for _, x := range outs {
					ourRuns++
					if x.srmHold {
						srmHolds++
					}
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", sc.name, r.name,
				pct(outs, analysis.ActionRollback), pct(outs, analysis.ActionPromote), pct(outs, analysis.ActionInconclusive),
				median(outs, analysis.ActionRollback, func(x outcome) float64 { return float64(x.canaryRq) }),
				median(outs, analysis.ActionPromote, func(x outcome) float64 { return float64(x.minutes) }))
		}
	}
	tw.Flush()
	fmt.Printf("\nours: a sample-ratio-mismatch hold in %d of %d replications (the split is fair in every scenario)\n", srmHolds, ourRuns)
	fmt.Printf("\n%d replications per row, seed %d, %d req/min, steps %v%%, look every 1m, step >= %s and >= %d canary req, max %s, alpha %.3g, margin %.2f; %s\n",
		o.reps, o.seed, o.rpm, o.steps, o.stepDuration, o.minSamples, o.maxDuration, o.alpha, o.margin, time.Since(start).Round(time.Second))
}

func replicate(o options, sc scenario, run rule, stream uint64) []outcome {
	outs := make([]outcome, o.reps)
	var wg sync.WaitGroup
	next := make(chan int)
	for range max(1, o.workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				rng := rand.New(rand.NewPCG(o.seed, stream<<32|uint64(i)))
				outs[i] = run(o, sc, rng)
			}
		}()
	}
	for i := range o.reps {
		next <- i
	}
	close(next)
	wg.Wait()
	return outs
}

func pct(outs []outcome, a analysis.Action) string {
	n := 0
	for _, x := range outs {
		if x.action == a {
			n++
		}
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(len(outs)))
}

func median(outs []outcome, a analysis.Action, f func(outcome) float64) string {
	var v []float64
	for _, x := range outs {
		if x.action == a {
			v = append(v, f(x))
		}
	}
	if len(v) == 0 {
		return "-"
	}
	slices.Sort(v)
	m := v[len(v)/2]
	if len(v)%2 == 0 {
		m = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return strconv.FormatFloat(m, 'f', 0, 64)
}

// minute is one interval of traffic at canary share rho.
type minute struct {
	nA, nB       int64
	errA, errB   int64
	slowA, slowB int64
}

func simulate(o options, sc scenario, rho float64, rng *rand.Rand) minute {
	var m minute
	m.nB = binomial(rng, int64(o.rpm), rho)
	m.nA = int64(o.rpm) - m.nB
	m.errA = binomial(rng, m.nA, sc.errA)
	m.errB = binomial(rng, m.nB, sc.errB)
	m.slowA = binomial(rng, m.nA, sc.slowA)
	m.slowB = binomial(rng, m.nB, sc.slowB)
	return m
}

// binomial draws Binomial(n, p): exact inversion while the mean is small,
// the normal approximation with continuity correction above 100 expected
// events (the request split), where its error is far below what any rule
// here can see.
func binomial(rng *rand.Rand, n int64, p float64) int64 {
	if n <= 0 || p <= 0 {
		return 0
	}
	if p >= 1 {
		return n
	}
	mean := float64(n) * p
	if mean > 100 && float64(n)*(1-p) > 100 {
		x := math.Round(mean + rng.NormFloat64()*math.Sqrt(mean*(1-p)))
		return int64(min(max(x, 0), float64(n)))
	}
	// Inversion: walk the CDF from 0 using the pmf recurrence.
	u := rng.Float64()
	q := 1 - p
	pmf := math.Exp(float64(n) * math.Log1p(-p))
	cdf := pmf
	var k int64
	for u > cdf && k < n {
		pmf *= float64(n-k) / float64(k+1) * p / q
		k++
		cdf += pmf
		if pmf == 0 && cdf < u { // numerical tail: stop at the mean-side bound
			break
		}
	}
	return k
}

func ourConfig(o options, errorsOnly bool) analysis.Config {
	c := analysis.Config{
		Steps:        o.steps,
		StepDuration: o.stepDuration,
		MinSamples:   o.minSamples,
		MaxDuration:  o.maxDuration,
		Alpha:        o.alpha,
		PriorScale:   o.prior,
		Metrics: []analysis.Metric{
			{Name: "errors", Margin: o.margin, GuardMaxRate: 0.5, GuardMinRequests: 20},
			{Name: "latency", Margin: o.margin},
		},
	}
	if errorsOnly {
		c.Metrics = c.Metrics[:1]
	}
	return c
}

func runOurs(o options, sc scenario, rng *rand.Rand) outcome {
	a, err := analysis.New(ourConfig(o, sc.errorsOnly))
	if err != nil {
		panic(err) // checked in main
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := a.Start(t0)
	var step minute // counts since the step started
	var canary int64
	srm := false
	for i := 1; ; i++ {
		now := t0.Add(time.Duration(i) * time.Minute)
		m := simulate(o, sc, float64(o.steps[st.Step])/100, rng)
		canary += m.nB
		step.nA += m.nA
		step.nB += m.nB
		step.errA += m.errA
		step.errB += m.errB
		step.slowA += m.slowA
		step.slowB += m.slowB
		look := analysis.Look{At: now, Metrics: map[string]analysis.Arms{
			"errors": {Canary: analysis.Counts{Bad: step.errB, Total: step.nB}, Stable: analysis.Counts{Bad: step.errA, Total: step.nA}},
		}}
		if !sc.errorsOnly {
			look.Metrics["latency"] = analysis.Arms{Canary: analysis.Counts{Bad: step.slowB, Total: step.nB}, Stable: analysis.Counts{Bad: step.slowA, Total: step.nA}}
		}
		var d analysis.Decision
		st, d, err = a.Look(st, look)
		if err != nil {
			panic(err)
		}
		srm = srm || d.SRM.Mismatch
		switch d.Action {
		case analysis.ActionAdvance:
			if st, err = a.Advance(st, now); err != nil {
				panic(err)
			}
			step = minute{}
		case analysis.ActionPromote, analysis.ActionRollback, analysis.ActionInconclusive:
			return outcome{action: d.Action, minutes: i, canaryRq: canary, srmHold: srm}
		}
	}
}

func runFlagger(o options, sc scenario, rng *rand.Rand) outcome {
	const threshold = 5
	failed, step := 0, 0
	var canary int64
	for i := 1; ; i++ {
		m := simulate(o, sc, float64(o.steps[step])/100, rng)
		canary += m.nB
		ok := m.nB > 0 && float64(m.errB)/float64(m.nB) <= 0.01 &&
			(sc.errorsOnly || float64(m.slowB)/float64(m.nB) <= o.flaggerSlow)
		if !ok {
			failed++
			if failed >= threshold {
				return outcome{action: analysis.ActionRollback, minutes: i, canaryRq: canary}
			}
			continue
		}
		step++
		if step == len(o.steps) {
			return outcome{action: analysis.ActionPromote, minutes: i, canaryRq: canary}
		}
	}
}

// runDesign applies the design's AutomatedABTesting rule to the per-look
// rates of each arm: effect = (mean_B − mean_A)/sqrt((sd_A²+sd_B²)/2),
// significant when |effect| > 2 and more than 30 looks. A significant worse
// metric rolls back; a significant better one (and none worse) promotes.
// Steps advance on schedule; without a decision it is inconclusive at
// MaxDuration.
func runDesign(o options, sc scenario, rng *rand.Rand) outcome {
	var errA, errB, slowA, slowB []float64
	var canary int64
	stepLooks := int(o.stepDuration / time.Minute)
	maxLooks := int(o.maxDuration / time.Minute)
	for i := 1; ; i++ {
		step := min((i-1)/stepLooks, len(o.steps)-1)
		m := simulate(o, sc, float64(o.steps[step])/100, rng)
		canary += m.nB
		errA = append(errA, float64(m.errA)/float64(max(m.nA, 1)))
		errB = append(errB, float64(m.errB)/float64(max(m.nB, 1)))
		slowA = append(slowA, float64(m.slowA)/float64(max(m.nA, 1)))
		slowB = append(slowB, float64(m.slowB)/float64(max(m.nB, 1)))
		if len(errA) > 30 {
			e1, e2 := effect(errA, errB), 0.0
			if !sc.errorsOnly {
				e2 = effect(slowA, slowB)
			}
			if e1 > 2 || e2 > 2 {
				return outcome{action: analysis.ActionRollback, minutes: i, canaryRq: canary}
			}
			if e1 < -2 || e2 < -2 {
				return outcome{action: analysis.ActionPromote, minutes: i, canaryRq: canary}
			}
		}
		if i >= maxLooks {
			return outcome{action: analysis.ActionInconclusive, minutes: i, canaryRq: canary}
		}
	}
}

func effect(a, b []float64) float64 {
	ma, sa := meanStd(a)
	mb, sb := meanStd(b)
	pooled := math.Sqrt((sa*sa + sb*sb) / 2)
	if pooled == 0 {
		return 0
	}
	return (mb - ma) / pooled
}

func meanStd(x []float64) (float64, float64) {
	var s, ss float64
	for _, v := range x {
		s += v
	}
	m := s / float64(len(x))
	for _, v := range x {
		ss += (v - m) * (v - m)
	}
	return m, math.Sqrt(ss / float64(len(x)))
}
