package analysis

import (
	"math"
	"math/rand/v2"
	"testing"
)

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.9g, want %.9g (±%g)", what, got, want, tol)
	}
}

// Hand-computed: one step at ρ = 0.1 with x_B = 2, x_A = 9 at r = 2:
// θ = 0.2/1.1, ln L = 2·ln(θ/0.1) + 9·ln((1−θ)/0.9) = 0.337882383.
// A second step at ρ = 0.5 with x_B = 3, x_A = 1 adds 3·ln(4/3) + ln(2/3),
// 0.795463493 in total: steps with different shares share one likelihood.
func TestLogLikHandComputed(t *testing.T) {
	u := math.Log(2)
	one := []StepCounts{{Share: 0.1, BadCanary: 2, BadStable: 9}}
	near(t, "one step", logLik(one, u, 2), 0.3378823832723157, 1e-12)
	two := append(one, StepCounts{Share: 0.5, BadCanary: 3, BadStable: 1})
	near(t, "two steps", logLik(two, u, 2), 0.795463492519494, 1e-12)
	near(t, "L(1)", logLik(two, 0, 1), 0, 1e-15)
}

// With a very narrow prior (scale 0.01) the truncated mixtures put all their
// mass on one grid point, so the Bayes factors are plain likelihood ratios
// that can be checked by hand. One canary event at ρ = 0.5: L(r) = 2r/(r+1).
// Margin e^0.21 lies between grid points 0.20 and 0.22, so
//   - the harm mixture (r ≥ margin) sits on u = 0.22: BF = 2e^0.22/(e^0.22+1);
//   - the non-inferiority mixture (r < margin) sits on u = 0 (the prior's
//     centre): BF = L(1)/L(margin) = (e^0.21+1)/(2e^0.21).
func TestBayesFactorsHandComputed(t *testing.T) {
	g := newGrid(0.01)
	margin := math.Exp(0.21)
	res := g.rateRatio([]StepCounts{{Share: 0.5, BadCanary: 1}}, 0.05, margin)
	r := math.Exp(0.22)
	near(t, "ln BF harm", res.LogBFHarm, math.Log(2*r/(r+1)), 1e-9)
	near(t, "ln BF non-inferior", res.LogBFNonInferior, math.Log((margin+1)/(2*margin)), 1e-9)
	if res.Harmful || res.NonInferior {
		t.Errorf("one event decided something: %+v", res)
	}
}

// The grid mixture against an independent fine quadrature of the same
// continuous prior (truncated normal, scale 0.5): they agree to the grid's
// resolution.
func TestHarmBFMatchesQuadrature(t *testing.T) {
	steps := []StepCounts{{Share: 0.1, BadCanary: 12, BadStable: 40}, {Share: 0.25, BadCanary: 9, BadStable: 20}}
	margin := 1.2
	res := newGrid(0.5).rateRatio(steps, 0.05, margin)
	var num, den float64
	for u := math.Log(margin); u <= 4; u += 1e-4 {
		w := math.Exp(-u * u / (2 * 0.25))
		num += w * math.Exp(logLik(steps, u, math.Exp(u)))
		den += w
	}
	near(t, "ln BF harm", res.LogBFHarm, math.Log(num/den), 0.02)
}

func TestRatioNoEventsAndSymmetry(t *testing.T) {
	g := newGrid(DefaultPriorScale)
	res := g.rateRatio([]StepCounts{{Share: 0.1}}, 0.05, 1.2)
	if math.Abs(res.LogBFHarm) > 1e-12 || res.Lower != 0 || res.Upper < 54 || math.Abs(res.Estimate-1) > 1e-9 {
		t.Errorf("no events: %+v", res)
	}
	// Equal counts at a 50% share: no evidence either way, estimate 1, and
	// the bounds are reciprocal.
	res = g.rateRatio([]StepCounts{{Share: 0.5, BadCanary: 40, BadStable: 40}}, 0.05, 1.2)
	near(t, "estimate", res.Estimate, 1, 1e-9)
	near(t, "lower·upper", res.Lower*res.Upper, 1, 1e-9)
	if !(res.Lower < 1 && res.Upper > 1) {
		t.Errorf("bounds %v..%v exclude 1", res.Lower, res.Upper)
	}
}

// Large counts: the bounds close in on the true ratio and decide.
func TestRatioDecidesWithEvidence(t *testing.T) {
	g := newGrid(DefaultPriorScale)
	good := g.rateRatio([]StepCounts{{Share: 0.1, BadCanary: 1000, BadStable: 9000}}, 0.05, 1.2)
	if !good.NonInferior || good.Harmful || !(good.Lower < 1 && good.Upper < 1.2 && good.Upper > 1) {
		t.Errorf("equal rates, 10k events: %+v", good)
	}
	bad := g.rateRatio([]StepCounts{{Share: 0.1, BadCanary: 60, BadStable: 180}}, 0.05, 1.2)
	if !bad.Harmful || bad.NonInferior || !(bad.Lower > 1) {
		t.Errorf("canary 3× worse: %+v", bad)
	}
}

// Anytime validity: identical arms looked at after every 200 canary
// requests for 60 looks (across two steps); the harm test may reject at
// most alpha of the time. A fixed-horizon test looked at this often would
// exceed it several times over. Alpha 0.2 keeps the check sharp with few
// replications: 400 replications give a standard error of 2%.
func TestFalseRollbackBelowAlphaUnderContinuousMonitoring(t *testing.T) {
	const alpha, reps = 0.2, 400
	g := newGrid(DefaultPriorScale)
	rng := rand.New(rand.NewPCG(7, 7))
	rejected := 0
	for range reps {
		steps := []StepCounts{{Share: 0.1}}
		for look := range 60 {
			if look == 30 {
				steps = append(steps, StepCounts{Share: 0.5})
			}
			s := &steps[len(steps)-1]
			// 2 expected bad events per look in total; each is the canary's
			// with probability equal to its share under H0.
			for range poisson(rng, 2) {
				if rng.Float64() < s.Share {
					s.BadCanary++
				} else {
					s.BadStable++
				}
			}
			if g.rateRatio(steps, alpha, 1.2).Harmful {
				rejected++
				break
			}
		}
	}
	rate := float64(rejected) / reps
	t.Logf("false rollbacks %.3f at alpha %.2f", rate, alpha)
	if rate > alpha+0.04 {
		t.Fatalf("false rollbacks %.3f above alpha %.2f", rate, alpha)
	}
}

func poisson(rng *rand.Rand, mean float64) int {
	l, k, p := math.Exp(-mean), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// Hand-computed beta-binomial SRM factor with a uniform prior (c = 2 at
// ρ = 0.5): BF = B(1+n_B, 1+n_A)·2^n = n_B!·n_A!/(n+1)!·2^n, so 3 of 3
// canary gives 2 and 2 of 3 gives 2/3.
func TestSRMLogBFHandComputed(t *testing.T) {
	near(t, "3 of 3", srmLogBF(3, 0, 0.5, 2), math.Log(2), 1e-12)
	near(t, "2 of 3", srmLogBF(2, 1, 0.5, 2), math.Log(2.0/3), 1e-12)
}

// The promotion side: a canary exactly at the margin (r = 1.2) must be
// declared non-inferior at most alpha of the time, however often it is
// looked at. Many events per look make the bound tight enough to be tested.
func TestFalseNonInferiorityBelowAlpha(t *testing.T) {
	const alpha, reps, margin = 0.2, 300, 1.2
	g := newGrid(DefaultPriorScale, 0.25)
	rng := rand.New(rand.NewPCG(11, 11))
	theta := 0.25 * margin / (0.25*margin + 0.75) // P(event is the canary's)
	passed := 0
	for range reps {
		steps := []StepCounts{{Share: 0.25}}
		for range 60 {
			for range poisson(rng, 60) {
				if rng.Float64() < theta {
					steps[0].BadCanary++
				} else {
					steps[0].BadStable++
				}
			}
			if g.rateRatio(steps, alpha, margin).NonInferior {
				passed++
				break
			}
		}
	}
	rate := float64(passed) / reps
	t.Logf("false non-inferiority %.3f at alpha %.2f", rate, alpha)
	if rate > alpha+0.05 {
		t.Fatalf("false non-inferiority %.3f above alpha %.2f", rate, alpha)
	}
}

// The SRM check under a fair split, looked at often, holds at most srmAlpha
// of the time; a 12% split at a routed 10% is caught.
func TestSRMAnytime(t *testing.T) {
	const srmAlpha, reps = 0.2, 400
	rng := rand.New(rand.NewPCG(3, 3))
	held := 0
	for range reps {
		var nB, nA int64
		for range 100 {
			for range 200 {
				if rng.Float64() < 0.1 {
					nB++
				} else {
					nA++
				}
			}
			if srmLogBF(nB, nA, 0.1, DefaultSRMConcentration) >= math.Log(1/srmAlpha) {
				held++
				break
			}
		}
	}
	rate := float64(held) / reps
	t.Logf("false SRM %.3f at %.2f", rate, srmAlpha)
	if rate > srmAlpha+0.04 {
		t.Fatalf("false SRM %.3f above %.2f", rate, srmAlpha)
	}
	if lbf := srmLogBF(1200, 8800, 0.1, DefaultSRMConcentration); lbf < math.Log(1/DefaultSRMAlpha) {
		t.Fatalf("12%% of 10,000 at a routed 10%%: log BF %.2f below the default threshold", lbf)
	}
}
