package canary

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/modelsync/modelsync/internal/analysis"
	"github.com/modelsync/modelsync/internal/mlflowclient"
)

// Tags on a canary's MLflow run.
const (
	// TagCanaryID identifies the run of one canary, so a restarted
	// controller finds and continues it instead of starting another.
	TagCanaryID    = "modelsync.canary.id"
	TagEnvironment = "modelsync.environment"
	TagDecision    = "modelsync.decision"
	TagReason      = "modelsync.reason"
	// maxTagValue keeps a reason within MLflow 2.x's tag value limit.
	maxTagValue = 5000
)

// ExperimentName is the MLflow experiment of a model's canaries.
func ExperimentName(model string) string { return "modelsync-canary/" + model }

// RunRecorder writes each canary as an MLflow run, so the registry's own
// UI plots its evidence look by look. It keeps nothing in memory: the run
// is found again by its TagCanaryID tag.
type RunRecorder struct {
	c *mlflowclient.Client
}

// NewRunRecorder returns a recorder writing through c.
func NewRunRecorder(c *mlflowclient.Client) *RunRecorder { return &RunRecorder{c: c} }

// CanaryID names one canary: environment, versions and the analysis' start,
// so the same versions canaried again later get a run of their own.
func CanaryID(s Spec, st analysis.State) string {
	return fmt.Sprintf("%s/%s/v%d-v%d/%d", s.Model, s.Environment, s.StableVersion, s.CandidateVersion, st.Started.UTC().Unix())
}

// Record logs the look that produced d into the canary's run, creating the
// run (with its parameters) on the first look. The metric step is the
// look number, so a look recorded twice after a retry lands on the same
// step. A promote or rollback ends the run.
func (r *RunRecorder) Record(ctx context.Context, s Spec, st analysis.State, d analysis.Decision) error {
	where := fmt.Sprintf("model %s environment %s", s.Model, s.Environment)
	expID, err := r.c.EnsureExperiment(ctx, ExperimentName(s.Model))
	if err != nil {
		return fmt.Errorf("record canary of %s: %w", where, err)
	}
	id := CanaryID(s, st)
	runID, err := r.findRun(ctx, expID, id)
	if err != nil {
		return fmt.Errorf("record canary of %s: %w", where, err)
	}
	if runID == "" {
		run, err := r.c.CreateRun(ctx, mlflowclient.CreateRunRequest{
			ExperimentID: expID,
			RunName:      fmt.Sprintf("%s v%d→v%d", s.Environment, s.StableVersion, s.CandidateVersion),
			StartTime:    st.Started,
			Tags:         map[string]string{TagCanaryID: id, TagEnvironment: s.Environment},
		})
		if err != nil {
			return fmt.Errorf("record canary of %s: %w", where, err)
		}
		runID = run.Info.RunID
		if err := r.c.LogBatch(ctx, runID, nil, runParams(s), nil); err != nil {
			return fmt.Errorf("record canary of %s: %w", where, err)
		}
	}
	reason := d.Reason
	if len(reason) > maxTagValue {
		reason = reason[:maxTagValue]
	}
	tags := map[string]string{TagDecision: string(d.Action), TagReason: reason}
	if err := r.c.LogBatch(ctx, runID, lookMetrics(st, d), nil, tags); err != nil {
		return fmt.Errorf("record canary of %s: %w", where, err)
	}
	if d.Action == analysis.ActionPromote || d.Action == analysis.ActionRollback {
		status := mlflowclient.RunFinished
		if d.Action == analysis.ActionRollback {
			status = mlflowclient.RunFailed
		}
		if _, err := r.c.UpdateRun(ctx, runID, status, d.At); err != nil {
			return fmt.Errorf("record canary of %s: %w", where, err)
		}
	}
	return nil
}

func (r *RunRecorder) findRun(ctx context.Context, expID, id string) (string, error) {
	runs, _, err := r.c.SearchRuns(ctx, mlflowclient.SearchRunsRequest{
		ExperimentIDs: []string{expID},
		Filter:        "tags.`" + TagCanaryID + "` = '" + strings.ReplaceAll(id, "'", "\\'") + "'",
		MaxResults:    1,
		OrderBy:       []string{"attributes.start_time ASC"},
	})
	if err != nil || len(runs) == 0 {
		return "", err
	}
	return runs[0].Info.RunID, nil
}

func runParams(s Spec) map[string]string {
	steps := make([]string, len(s.Config.Steps))
	for i, w := range s.Config.Steps {
		steps[i] = strconv.Itoa(w)
	}
	p := map[string]string{
		"stable_version":    strconv.Itoa(s.StableVersion),
		"candidate_version": strconv.Itoa(s.CandidateVersion),
		"steps":             strings.Join(steps, ","),
		"alpha":             strconv.FormatFloat(orFloat(s.Config.Alpha, analysis.DefaultAlpha), 'g', -1, 64),
		"step_duration":     orDur(s.Config.StepDuration, analysis.DefaultStepDuration).String(),
		"min_samples":       strconv.FormatInt(orInt(s.Config.MinSamples, analysis.DefaultMinSamples), 10),
	}
	for _, m := range s.Config.Metrics {
		p["margin."+metricKey(m.Name)] = strconv.FormatFloat(m.Margin, 'g', -1, 64)
	}
	return p
}

// lookMetrics are the look's figures: counts per arm since the analysis
// started, each metric's rate-ratio estimate and bounds, and the weight.
func lookMetrics(st analysis.State, d analysis.Decision) []mlflowclient.Metric {
	ts, step := d.At.UnixMilli(), int64(st.Looks)
	var out []mlflowclient.Metric
	add := func(k string, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return // MLflow 2.9 refuses non-finite values in some stores
		}
		out = append(out, mlflowclient.Metric{Key: k, Value: mlflowclient.Float(v), Timestamp: ts, Step: step})
	}
	add("weight", float64(d.Weight))
	var reqC, reqS int64
	for _, w := range st.Windows {
		reqC += w.Requests.Canary.Total
		reqS += w.Requests.Stable.Total
	}
	add("requests.canary", float64(reqC))
	add("requests.stable", float64(reqS))
	for _, m := range d.Metrics {
		k := metricKey(m.Name)
		add(k+".canary.bad", float64(m.Canary.Bad))
		add(k+".canary.total", float64(m.Canary.Total))
		add(k+".stable.bad", float64(m.Stable.Bad))
		add(k+".stable.total", float64(m.Stable.Total))
		add(k+".ratio.estimate", m.Estimate)
		add(k+".ratio.lower", m.Lower)
		add(k+".ratio.upper", m.Upper)
	}
	return out
}

// metricKey keeps a metric name within MLflow's key alphabet.
func metricKey(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '.':
			return r
		}
		return '_'
	}, name)
}

func orFloat(v, d float64) float64 {
	if v == 0 {
		return d
	}
	return v
}

func orDur(v, d time.Duration) time.Duration {
	if v == 0 {
		return d
	}
	return v
}

func orInt(v, d int64) int64 {
	if v == 0 {
		return d
	}
	return v
}
