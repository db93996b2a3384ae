package canary

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/modelsync/modelsync/internal/analysis"
)

// verifySRMAlpha switches the sample-ratio check off in practice: a
// before/after comparison has no routed split to check, only the volumes
// the two windows happened to have.
const verifySRMAlpha = 1e-300

// Verify is the check after a promotion (postPromotion): it compares the
// promoted revision's counts over [promotedAt, promotedAt+duration] with
// the previous revision's over the equal window before promotedAt, once
// that window has passed (before, it holds). ActionRollback means the
// promoted version is clearly worse; ActionPromote that it is non-inferior
// (verified); ActionHold that the evidence decides neither. Both windows
// are fixed, so this is one look, not a sequence. It is weaker evidence
// than the canary: whatever else changed at promotedAt counts too. A
// metrics provider that fails is returned as an error (with a hold), so
// the caller can tell missing data from an undecided comparison.
func (e *Evaluator) Verify(ctx context.Context, s Spec, promoted, previous string, promotedAt, now time.Time) (analysis.Decision, error) {
	pp := s.PostPromotion
	if pp == nil {
		return analysis.Decision{}, fmt.Errorf("%w: model %s environment %s: no postPromotion", ErrSpec, s.Model, s.Environment)
	}
	end := promotedAt.Add(pp.Duration)
	if now.Before(end) {
		return analysis.Decision{Action: analysis.ActionHold, At: now,
			Reason: fmt.Sprintf("post-promotion window ends at %s", end.UTC().Format(time.RFC3339))}, nil
	}
	counts := func(tmpl, le, rev string, from, to time.Time) (int64, error) {
		q, err := Render(tmpl, TemplateData{Namespace: s.Namespace, Name: s.Name, Revision: rev, LE: le})
		if err != nil {
			return 0, err
		}
		a, err := e.q.Query(ctx, q, from)
		if err != nil {
			return 0, err
		}
		b, err := e.q.Query(ctx, q, to)
		if err != nil {
			return 0, err
		}
		return analysis.Increase(a.Values(), b.Values())
	}
	arm := func(m Metric, rev string, from, to time.Time) (analysis.Counts, error) {
		total, err := counts(m.Total, m.LE, rev, from, to)
		if err != nil {
			return analysis.Counts{}, err
		}
		var bad int64
		if m.Good != "" {
			good, err := counts(m.Good, m.LE, rev, from, to)
			if err != nil {
				return analysis.Counts{}, err
			}
			bad = total - good
		} else if bad, err = counts(m.Bad, m.LE, rev, from, to); err != nil {
			return analysis.Counts{}, err
		}
		return analysis.Counts{Bad: max(0, min(bad, total)), Total: total}, nil
	}
	look := analysis.Look{At: end, Metrics: map[string]analysis.Arms{}}
	var nNew, nOld int64
	for i, m := range pp.Metrics {
		after, err := arm(m, promoted, promotedAt, end)
		if err == nil {
			var before analysis.Counts
			before, err = arm(m, previous, promotedAt.Add(-pp.Duration), promotedAt)
			look.Metrics[m.Name] = analysis.Arms{Canary: after, Stable: before}
			if i == 0 {
				nNew, nOld = after.Total, before.Total
			}
		}
		if err != nil {
			look.Err = err
			break
		}
	}
	if look.Err != nil {
		// No data is no evidence: the caller holds and asks again, and
		// never reverts for it.
		return analysis.Decision{Action: analysis.ActionHold, At: now, Reason: "provider error: " + look.Err.Error()},
			fmt.Errorf("model %s environment %s: postPromotion: %w", s.Model, s.Environment, look.Err)
	}
	// The "routed share" of a before/after comparison is the share the
	// windows' volumes give; the test conditions on it.
	share := 50
	if nNew+nOld > 0 {
		share = int(math.Round(100 * float64(nNew) / float64(nNew+nOld)))
	}
	cfg := pp.Config
	cfg.Steps = []int{min(99, max(1, share))}
	cfg.StepDuration = pp.Duration
	cfg.SRMAlpha = verifySRMAlpha
	cfg.MaxDuration = 0
	a, err := analysis.New(cfg)
	if err != nil {
		return analysis.Decision{}, fmt.Errorf("%w: model %s environment %s: postPromotion: %w", ErrSpec, s.Model, s.Environment, err)
	}
	_, d, err := a.Look(a.Start(promotedAt), look)
	if err != nil {
		return analysis.Decision{}, fmt.Errorf("model %s environment %s: postPromotion: %w", s.Model, s.Environment, err)
	}
	d.At = now
	if d.Action == analysis.ActionPromote {
		d.Reason = "post-promotion: " + d.Reason
	}
	return d, nil
}
