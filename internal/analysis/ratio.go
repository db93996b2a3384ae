package analysis

import (
	"math"
)

// The rate-ratio mixture is evaluated on a grid of u = ln r. A discrete
// prior on the grid is itself a proper mixing distribution, so the mixture
// is an exact test martingale, not an approximation of one.
const (
	gridMin  = -4.0
	gridStep = 0.02
	gridN    = 401 // gridMin … +4 inclusive
)

// StepCounts are the bad events of each arm within one weight step, with
// the share of requests routed to the canary during that step. The totals
// are not needed by the test: conditioned on an event happening, it came
// from the canary with probability θ = ρr/(ρr+1−ρ), where r is the ratio of
// the canary's to the stable per-request bad-event probability. That holds
// under any time trend shared by both arms, which is why the test uses only
// the bad-event counts and the routed share.
type StepCounts struct {
	Share     float64 // routed canary share ρ in (0,1)
	BadCanary int64
	BadStable int64
}

// grid holds the precomputed points u_j, the log prior weights and their
// cumulative sums, and ln(ρ·e^u + 1 − ρ) for the configured steps' shares;
// it is built once per Analyzer and never written after, so a look costs
// multiply-adds and one exponential per grid point rather than logarithms.
type grid struct {
	u        [gridN]float64
	expU     [gridN]float64
	logPrior [gridN]float64 // unnormalized: −u²/(2σ²)
	// preDen[j] = ln Σ_{i<j} prior_i, sufDen[j] = ln Σ_{i≥j} prior_i.
	preDen, sufDen [gridN + 1]float64
	terms          map[float64]*[gridN]float64
}

func newGrid(priorScale float64, shares ...float64) *grid {
	g := &grid{terms: make(map[float64]*[gridN]float64, len(shares))}
	for j := range gridN {
		u := gridMin + float64(j)*gridStep
		g.u[j] = u
		g.expU[j] = math.Exp(u)
		g.logPrior[j] = -u * u / (2 * priorScale * priorScale)
	}
	g.preDen[0], g.sufDen[gridN] = math.Inf(-1), math.Inf(-1)
	for j := range gridN {
		g.preDen[j+1] = logAdd(g.preDen[j], g.logPrior[j])
	}
	for j := gridN - 1; j >= 0; j-- {
		g.sufDen[j] = logAdd(g.sufDen[j+1], g.logPrior[j])
	}
	for _, rho := range shares {
		t := new([gridN]float64)
		for j := range gridN {
			t[j] = math.Log(rho*g.expU[j] + 1 - rho)
		}
		g.terms[rho] = t
	}
	return g
}

// logLik is ln L(r) = Σ_s [x_B,s·ln(θ_s/ρ_s) + x_A,s·ln((1−θ_s)/(1−ρ_s))],
// which simplifies to Σ_s [x_B,s·u − (x_A,s+x_B,s)·ln(ρ_s·e^u + 1 − ρ_s)].
// L(1) = 1.
func logLik(steps []StepCounts, u, expU float64) float64 {
	var l float64
	for _, s := range steps {
		n := s.BadCanary + s.BadStable
		if n == 0 {
			continue
		}
		l += float64(s.BadCanary)*u - float64(n)*math.Log(s.Share*expU+1-s.Share)
	}
	return l
}

// logLiks is logLik at every grid point, from the precomputed terms when
// the share is a configured one.
func (g *grid) logLiks(steps []StepCounts) *[gridN]float64 {
	ll := new([gridN]float64)
	for _, s := range steps {
		n := s.BadCanary + s.BadStable
		if n == 0 {
			continue
		}
		xb, fn := float64(s.BadCanary), float64(n)
		if t, ok := g.terms[s.Share]; ok {
			for j := range gridN {
				ll[j] += xb*g.u[j] - fn*t[j]
			}
			continue
		}
		for j := range gridN {
			ll[j] += xb*g.u[j] - fn*math.Log(s.Share*g.expU[j]+1-s.Share)
		}
	}
	return ll
}

// RatioResult is what the rate-ratio test says about one metric.
type RatioResult struct {
	// Estimate is exp of the posterior mean of ln r under the mixing prior:
	// a shrunk point estimate that is finite even with no events.
	Estimate float64 `json:"estimate"`
	// Lower and Upper are one-sided anytime-valid confidence bounds for r,
	// each at the level Alpha (together a 1−2·Alpha confidence sequence).
	// They are snapped outward to the grid; Lower 0 and Upper ≥ 54.6 mean
	// "no bound yet".
	Lower float64 `json:"lower"`
	Upper float64 `json:"upper"`
	// LogBFHarm is the log Bayes factor of "canary worse by at least the
	// margin" (r ≥ margin) against r = 1; ≥ ln(1/Alpha) rejects "canary no
	// worse" in the harmful direction.
	LogBFHarm float64 `json:"logBFHarm"`
	// LogBFNonInferior is the log Bayes factor of r < margin against
	// r = margin; ≥ ln(1/Alpha) shows the canary is non-inferior.
	LogBFNonInferior float64 `json:"logBFNonInferior"`
	Harmful          bool    `json:"harmful"`
	NonInferior      bool    `json:"nonInferior"`
}

// rateRatio runs the step-aware rate-ratio mixture test at level alpha.
//
// Rollback side: the mixture of L(r)/L(1) over the prior restricted to
// r ≥ margin is a test martingale when r = 1 and a supermartingale when
// r < 1 (each event's likelihood ratio has expectation below one there), so
// P(ever rejecting a canary that is no worse) ≤ alpha. Putting the mass on
// the regressions worth catching (at least the margin) rather than on all
// of r > 1 detects them sooner; the null it rejects is still r ≤ 1.
// Promotion side: the mixture of L(r)/L(margin) over r < margin likewise
// bounds P(ever passing a canary with r ≥ margin) by alpha. Evidence from
// every step enters the same likelihood, so moving to the next weight does
// not start a new test.
func (g *grid) rateRatio(steps []StepCounts, alpha, margin float64) RatioResult {
	ll := g.logLiks(steps)
	thr := math.Log(1 / alpha)
	res := RatioResult{}

	// Prior·likelihood in linear space, scaled by its maximum, with prefix
	// and suffix sums. Terms far below the maximum underflow to zero; that
	// only happens far from the bulk of the posterior, where a zero sum makes
	// a point look less excluded than it is (conservative).
	mx := math.Inf(-1)
	for j := range gridN {
		mx = math.Max(mx, g.logPrior[j]+ll[j])
	}
	var p [gridN]float64
	var pre, suf [gridN + 1]float64
	var wu float64
	for j := range gridN {
		p[j] = math.Exp(g.logPrior[j] + ll[j] - mx)
		pre[j+1] = pre[j] + p[j]
		wu += p[j] * g.u[j]
	}
	for j := gridN - 1; j >= 0; j-- {
		suf[j] = suf[j+1] + p[j]
	}
	res.Estimate = math.Exp(wu / pre[gridN]) // posterior mean of u

	// lnMix(sum, den) is ln of the normalized mixture over a grid range.
	lnMix := func(sum, lnDen float64) float64 { return math.Log(sum) + mx - lnDen }

	// Lower bound: u0 is excluded from below when the mixture over u > u0
	// against u0 reaches 1/alpha. Report the grid point below the first
	// point that is not excluded (outward snap keeps the bound valid).
	res.Lower = math.Exp(g.u[gridN-2]) // every point below the top excluded
	for j := range gridN - 1 {
		if lnMix(suf[j+1], g.sufDen[j+1])-ll[j] < thr {
			res.Lower = 0
			if j > 0 {
				res.Lower = math.Exp(g.u[j-1])
			}
			break
		}
	}
	res.Upper = math.Exp(g.u[1]) // every point above the bottom excluded
	for j := gridN - 1; j > 0; j-- {
		if lnMix(pre[j], g.preDen[j])-ll[j] < thr {
			res.Upper = math.Exp(gridMin + float64(gridN)*gridStep)
			if j < gridN-1 {
				res.Upper = math.Exp(g.u[j+1])
			}
			break
		}
	}

	// The decisions use the exact points r = 1 and r = margin.
	um := math.Log(margin)
	k := 0 // number of grid points strictly below um
	for k < gridN && g.u[k] < um {
		k++
	}
	if k < gridN {
		res.LogBFHarm = lnMix(suf[k], g.sufDen[k]) // ln L(1) = 0
		res.Harmful = res.LogBFHarm >= thr
	}
	if k > 0 {
		res.LogBFNonInferior = lnMix(pre[k], g.preDen[k]) - logLik(steps, um, margin)
		res.NonInferior = res.LogBFNonInferior >= thr
	}
	return res
}

// logAdd returns ln(e^a + e^b) without overflow.
func logAdd(a, b float64) float64 {
	if math.IsInf(a, -1) {
		return b
	}
	if math.IsInf(b, -1) {
		return a
	}
	if a < b {
		a, b = b, a
	}
	return a + math.Log1p(math.Exp(b-a))
}

// lnBeta is ln B(a, b) = lnΓ(a) + lnΓ(b) − lnΓ(a+b).
func lnBeta(a, b float64) float64 {
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	lab, _ := math.Lgamma(a + b)
	return la + lb - lab
}

// srmLogBF is the log Bayes factor of a sample-ratio mismatch in one step:
// canary requests nB out of nB+nA, against Binomial(n, ρ) under a correct
// split, with a Beta(c·ρ, c·(1−ρ)) mixture on the real share. Products over
// steps (sums of logs) stay a test martingale because the steps follow each
// other in time.
func srmLogBF(nB, nA int64, rho, c float64) float64 {
	a, b := c*rho, c*(1-rho)
	return lnBeta(a+float64(nB), b+float64(nA)) - lnBeta(a, b) -
		float64(nB)*math.Log(rho) - float64(nA)*math.Log(1-rho)
}
