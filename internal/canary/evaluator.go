package canary

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/modelsync/modelsync/internal/analysis"
	"github.com/modelsync/modelsync/internal/prometheus"
)

// ErrNoData is a look's error when Prometheus has no data for any counter
// that had data before; like a provider error, it holds.
var ErrNoData = errors.New("no data")

// Querier is what the Evaluator needs from a metrics provider;
// *prometheus.Client implements it.
type Querier = prometheus.Querier

// Evaluator reads each arm's counters and runs one look of the analysis.
// It holds no per-canary state: everything it must remember is in the
// analysis.State the caller keeps in the cluster.
type Evaluator struct {
	q Querier
}

// NewEvaluator returns an Evaluator reading from q.
func NewEvaluator(q Querier) *Evaluator { return &Evaluator{q: q} }

// Counter keys in State.Counters. A cumulative counter per query and arm
// ("<metric>/<part>/<arm>=<revision>", so a changed revision starts a new
// one) counts events since the analysis first saw it; its value at the
// start of the current step is kept under "@<step>:" + key, so a step's
// counts are exact even when a pod restarted in between.
const (
	partBad      = "bad"
	partGood     = "good"
	partTotal    = "total"
	requestsName = "_requests"
)

type counterQuery struct {
	key, arm, part, metric string
	promql                 string
}

// Look reads the counters at now, updates st and decides. A zero st
// starts a new analysis at now (its counts start at zero). A provider
// error is not returned: it becomes the look's Err, which holds and is
// counted apart from metric failures, and leaves the counters untouched
// so the next look counts from the last good reading.
func (e *Evaluator) Look(ctx context.Context, s Spec, rev Revisions, st analysis.State, now time.Time) (analysis.State, analysis.Decision, error) {
	a, err := analysis.New(s.Config)
	if err != nil {
		return st, analysis.Decision{}, fmt.Errorf("%w: model %s environment %s: %w", ErrSpec, s.Model, s.Environment, err)
	}
	if st.Started.IsZero() && len(st.Windows) == 0 {
		st = a.Start(now)
	}
	if rev.Canary == "" || rev.Stable == "" {
		return st, analysis.Decision{}, fmt.Errorf("model %s environment %s: %w", s.Model, s.Environment, ErrNoRevisions)
	}
	queries, err := s.queries(rev)
	if err != nil {
		return st, analysis.Decision{}, fmt.Errorf("model %s environment %s: %w", s.Model, s.Environment, err)
	}
	look := analysis.Look{At: now}
	counters, counts, perr := e.read(ctx, queries, st, now)
	if perr == nil {
		look.Tripped, perr = e.guards(ctx, s, rev, now)
	}
	if perr != nil {
		look.Err = perr
	} else {
		st.Counters = counters
		look.Metrics = make(map[string]analysis.Arms, len(s.Metrics))
		for _, m := range s.Metrics {
			look.Metrics[m.Name] = analysis.Arms{
				Canary: metricCounts(counts, m, "canary"),
				Stable: metricCounts(counts, m, "stable"),
			}
		}
		if s.Requests != "" {
			look.Requests = analysis.Split{
				Canary: counts[requestsName+"/"+partTotal+"/canary"],
				Stable: counts[requestsName+"/"+partTotal+"/stable"],
			}
		}
	}
	return a.Look(st, look)
}

// Advance moves st to the next step at now, after the caller has set the
// new weight. The next look reads the counters as they were at now (an
// instant query at that time), so the new step counts from there.
func (e *Evaluator) Advance(s Spec, st analysis.State, now time.Time) (analysis.State, error) {
	a, err := analysis.New(s.Config)
	if err != nil {
		return st, fmt.Errorf("%w: model %s environment %s: %w", ErrSpec, s.Model, s.Environment, err)
	}
	return a.Advance(st, now)
}

// queries renders every counter query for both arms.
func (s Spec) queries(rev Revisions) ([]counterQuery, error) {
	var qs []counterQuery
	add := func(metric, part, tmpl, le string) error {
		for _, arm := range []struct{ name, rev string }{{"canary", rev.Canary}, {"stable", rev.Stable}} {
			q, err := Render(tmpl, TemplateData{Namespace: s.Namespace, Name: s.Name, Revision: arm.rev, LE: le})
			if err != nil {
				return fmt.Errorf("metric %s %s: %w", metric, part, err)
			}
			qs = append(qs, counterQuery{
				key: metric + "/" + part + "/" + arm.name + "=" + arm.rev, arm: arm.name, part: part, metric: metric, promql: q,
			})
		}
		return nil
	}
	for _, m := range s.Metrics {
		if m.Bad != "" {
			if err := add(m.Name, partBad, m.Bad, m.LE); err != nil {
				return nil, err
			}
		}
		if m.Good != "" {
			if err := add(m.Name, partGood, m.Good, m.LE); err != nil {
				return nil, err
			}
		}
		if err := add(m.Name, partTotal, m.Total, m.LE); err != nil {
			return nil, err
		}
	}
	if s.Requests != "" {
		if err := add(requestsName, partTotal, s.Requests, ""); err != nil {
			return nil, err
		}
	}
	return qs, nil
}

// read queries every counter and returns the updated counters and each
// query's count since the current step started ("<metric>/<part>/<arm>").
// Nothing is updated unless every query succeeded, so a half-read look
// cannot leave counters from two different moments.
func (e *Evaluator) read(ctx context.Context, qs []counterQuery, st analysis.State, now time.Time) (map[string]analysis.Counter, map[string]int64, error) {
	// Only the current queries' counters are kept: a revision that is no
	// longer an arm, or an earlier step's baseline, is dropped.
	out := make(map[string]analysis.Counter, 2*len(qs))
	step := st.Step
	stepStart := st.Windows[step].Started
	counts := make(map[string]int64, len(qs))
	seen, had := 0, false
	for _, q := range qs {
		c := st.Counters[q.key]
		baseKey := "@" + strconv.Itoa(step) + ":" + q.key
		base, haveBase := st.Counters[baseKey]
		if !haveBase {
			if c.Primed {
				// A new step: read the counters as they were when it
				// started, so its counts neither include the previous
				// step's tail nor miss its own first minutes.
				v, err := e.q.Query(ctx, q.promql, stepStart)
				if err != nil {
					return nil, nil, err
				}
				if c, err = observe(c, v); err != nil {
					return nil, nil, fmt.Errorf("query %q: %w", q.promql, err)
				}
			}
			base = analysis.Counter{Count: c.Count, Primed: true}
		}
		v, err := e.q.Query(ctx, q.promql, now)
		if err != nil {
			return nil, nil, err
		}
		seen += len(v)
		had = had || len(c.Last) > 0
		if c, err = observe(c, v); err != nil {
			return nil, nil, fmt.Errorf("query %q: %w", q.promql, err)
		}
		out[q.key], out[baseKey] = c, base
		counts[q.metric+"/"+q.part+"/"+q.arm] = c.Count - base.Count
	}
	if seen == 0 && had {
		// Every series vanished at once: a scrape gap or a relabelling,
		// not a canary without traffic. The look has no data; the
		// counters keep their last values and count on after the gap.
		return nil, nil, fmt.Errorf("%w: every counter series that had data is missing at %s", ErrNoData, now.UTC().Format(time.RFC3339))
	}
	return out, counts, nil
}

// observe feeds one reading to c. A series missing from this reading keeps
// its last value: Prometheus drops every series of a target whose scrape
// failed, and counting them from zero when they come back would add all
// their past events to this step. Carried series are bounded by
// analysis.MaxSeries; past it, the absent ones are dropped.
func observe(c analysis.Counter, v prometheus.Vector) (analysis.Counter, error) {
	now := v.Values()
	for k, last := range c.Last {
		if len(now) >= analysis.MaxSeries {
			break
		}
		if _, ok := now[k]; !ok {
			now[k] = last
		}
	}
	return c.Observe(now)
}

// metricCounts turns a metric's counts into bad of total for one arm.
func metricCounts(counts map[string]int64, m Metric, arm string) analysis.Counts {
	total := counts[m.Name+"/"+partTotal+"/"+arm]
	var bad int64
	if m.Good != "" {
		// Bucket and count come from the same scrape, so the difference
		// is exact; clamp only guards against a template that mixes sources.
		bad = total - counts[m.Name+"/"+partGood+"/"+arm]
	} else {
		bad = counts[m.Name+"/"+partBad+"/"+arm]
	}
	bad = max(0, min(bad, total))
	return analysis.Counts{Bad: bad, Total: max(total, 0)}
}

// guards evaluates the threshold guards on the canary revision. A guard
// whose query returns no data checks nothing; every series it returns must
// be within bounds.
func (e *Evaluator) guards(ctx context.Context, s Spec, rev Revisions, now time.Time) ([]string, error) {
	var tripped []string
	for _, g := range s.Guards {
		q, err := Render(g.Query, TemplateData{Namespace: s.Namespace, Name: s.Name, Revision: rev.Canary})
		if err != nil {
			return nil, fmt.Errorf("guard %s: %w", g.Name, err)
		}
		v, err := e.q.Query(ctx, q, now)
		if err != nil {
			return nil, err
		}
		for _, x := range v {
			if math.IsNaN(x.Value) {
				continue // 0/0: no requests yet
			}
			if g.Max != nil && x.Value > *g.Max {
				tripped = append(tripped, fmt.Sprintf("%s = %.4g > max %.4g", g.Name, x.Value, *g.Max))
				break
			}
			if g.Min != nil && x.Value < *g.Min {
				tripped = append(tripped, fmt.Sprintf("%s = %.4g < min %.4g", g.Name, x.Value, *g.Min))
				break
			}
		}
	}
	return tripped, nil
}

// IsProviderError reports whether a decision's hold came from the
// provider rather than from the metrics.
func IsProviderError(err error) bool {
	var pe *prometheus.Error
	return errors.As(err, &pe)
}
