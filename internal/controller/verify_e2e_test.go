package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/analysis"
	"github.com/modelsync/modelsync/internal/canary"
	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/prometheus"
	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/reconciler/reconcilertest"
	"github.com/modelsync/modelsync/test/testenv"
)

// realVerify is the scripted canary (it promotes at once) whose check
// after promotion reads a real Prometheus.
type realVerify struct {
	*scripted
	ev *canary.Evaluator
}

func (e realVerify) Verify(ctx context.Context, s canary.Spec, promoted, previous string, promotedAt, now time.Time) (analysis.Decision, error) {
	return e.ev.Verify(ctx, s, promoted, previous, promotedAt, now)
}

const (
	verifyPrevious = "churn-predictor-00001"
	verifyPromoted = "churn-predictor-00002"
	verifyPromoteM = 20 // the minute the promotion is applied
)

// verifyOpenMetrics is Knative's queue-proxy counters of one environment
// around a promotion at minute 20: until then the previous revision takes
// 1000 requests a minute with 1% errors and the candidate 250 as a 20%
// canary; after it the promoted revision takes all 1000 with promotedErr.
func verifyOpenMetrics(b *strings.Builder, base time.Time, ns string, promotedErr float64) {
	type pod struct {
		rev           string
		before, after float64 // requests a minute before and after the promotion
		errR          float64
	}
	for _, p := range []pod{{verifyPrevious, 1000, 0, 0.01}, {verifyPromoted, 250, 1000, promotedErr}} {
		var ok, bad float64
		var okLines, badLines []string
		for m := 0; m <= 40; m++ {
			if m > 0 {
				reqs, errR := p.before, 0.01
				if m > verifyPromoteM {
					reqs, errR = p.after, p.errR
				}
				e := reqs * errR
				ok, bad = ok+reqs-e, bad+e
			}
			ts := base.Add(time.Duration(m) * time.Minute).Unix()
			lbl := fmt.Sprintf(`namespace_name="%s",revision_name="%s",pod_name="%s-1"`, ns, p.rev, p.rev)
			okLines = append(okLines, fmt.Sprintf("revision_app_request_count{%s,response_code_class=\"2xx\"} %g %d\n", lbl, ok, ts))
			badLines = append(badLines, fmt.Sprintf("revision_app_request_count{%s,response_code_class=\"5xx\"} %g %d\n", lbl, bad, ts))
		}
		b.WriteString(strings.Join(okLines, ""))
		b.WriteString(strings.Join(badLines, ""))
	}
}

// The check after promotion through the controller against a real
// Prometheus holding Knative's counters: a promoted version with four
// times the previous one's error rate is reverted (the plan goes back to
// the previous version and the revert is written back); one with half the
// errors is verified and kept.
func TestVerifyAfterPromotionOnRealPrometheus(t *testing.T) {
	testenv.RequireE2E(t)
	base := time.Now().Add(-24 * time.Hour).Truncate(time.Hour)
	var om strings.Builder
	verifyOpenMetrics(&om, base, "degraded", 0.04)
	verifyOpenMetrics(&om, base, "healthy", 0.005)
	om.WriteString("# EOF\n")
	prom := testenv.NewPrometheusWithData(t, om.String())
	client, err := prometheus.New(prometheus.Config{Address: prom.URL})
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		ns     string
		result canary.VerifyResult
		live   int
	}{
		{"degraded", canary.VerifyReverted, 3},
		{"healthy", canary.VerifyVerified, 4},
	} {
		t.Run(tc.ns, func(t *testing.T) {
			a := newAnalysisUnit(t, analysis.ActionPromote)
			a.c.opts.Analysis.Evaluator = realVerify{scripted: a.eval, ev: canary.NewEvaluator(client)}
			a.c.opts.Analysis.SpecFor = func(model string, env reconciler.DesiredEnv) (canary.Spec, bool, error) {
				return canary.SpecFor(model, env, model)
			}
			env := canaryEnv(3, 4, 20)
			env.Namespace = tc.ns
			env.Canary.Analysis = &manifest.Analysis{
				Provider:      &manifest.AnalysisProvider{Address: prom.URL},
				Metrics:       []manifest.AnalysisMetric{{Kind: manifest.MetricErrors}},
				PostPromotion: &manifest.PostPromotion{Duration: manifest.Duration{Duration: 10 * time.Minute}},
			}
			a.setDesired(reconcilertest.Whole(nil, reconcilertest.Model("churn", env)))
			*a.now = base.Add((verifyPromoteM - 1) * time.Minute)
			a.step(t) // promoted at minute 20
			rec := a.record(t)
			if v := rec.Verification; v == nil || !v.PromotedAt.Equal(base.Add(verifyPromoteM*time.Minute)) || v.Promoted != verifyPromoted {
				t.Fatalf("verification after the promotion: %+v", rec.Verification)
			}
			// Git records the promotion; the check runs once the 10m
			// window has passed.
			promoted := reconcilertest.Env("prod", 4)
			promoted.Namespace = tc.ns
			a.setDesired(reconcilertest.Whole(nil, reconcilertest.Model("churn", promoted)))
			*a.now = base.Add((verifyPromoteM + 10) * time.Minute)
			a.step(t)
			rec = a.record(t)
			v := rec.Verification
			if v.Result != tc.result || v.Decision == nil {
				t.Fatalf("check: %s (%+v), want %s", v.Result, v.Decision, tc.result)
			}
			m := v.Decision.Metrics[0]
			if m.Stable != (analysis.Counts{Bad: 100, Total: 10000}) || m.Canary.Total != 10000 {
				t.Fatalf("counts: previous %+v over minutes 10-20, promoted %+v over 20-30", m.Stable, m.Canary)
			}
			if e := a.lastEnv(t); e.Version != tc.live || e.Canary != nil {
				t.Fatalf("plan after the check: v%d canary %+v, want v%d", e.Version, e.Canary, tc.live)
			}
			reverts := 0
			for _, o := range a.wb.got {
				if o.Revert {
					reverts++
				}
			}
			if want := map[bool]int{true: 1, false: 0}[tc.result == canary.VerifyReverted]; reverts != want {
				t.Fatalf("%d revert write-backs, want %d: %+v", reverts, want, a.wb.got)
			}
		})
	}
}
