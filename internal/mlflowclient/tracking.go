package mlflowclient

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// ServerVersion returns the server's version string (GET /version, which
// sits outside the API prefix and answers plain text).
func (c *Client) ServerVersion(ctx context.Context) (string, error) {
	var out rawText
	if err := c.call(ctx, http.MethodGet, "/version", nil, &out); err != nil {
		return "", fmt.Errorf("get server version: %w", err)
	}
	return strings.TrimSpace(out.s), nil
}

// rawText receives a body that is not JSON.
type rawText struct{ s string }

// ---- experiments ----

// CreateExperiment creates an experiment and returns its id.
func (c *Client) CreateExperiment(ctx context.Context, name, artifactLocation string, tags map[string]string) (string, error) {
	if err := need("experiment name", name); err != nil {
		return "", err
	}
	p := params{}.must("name", name).str("artifact_location", artifactLocation)
	if t := mapToTags(tags); t != nil {
		p = p.json("tags", t)
	}
	var out struct {
		ExperimentID string `json:"experiment_id"`
	}
	if err := c.call(ctx, http.MethodPost, "experiments/create", p, &out); err != nil {
		return "", fmt.Errorf("create experiment %q: %w", name, err)
	}
	return out.ExperimentID, nil
}

// GetExperimentByName returns an experiment; a missing one fails with
// IsNotFound.
func (c *Client) GetExperimentByName(ctx context.Context, name string) (*Experiment, error) {
	if err := need("experiment name", name); err != nil {
		return nil, err
	}
	var out struct {
		Experiment wireExperiment `json:"experiment"`
	}
	if err := c.call(ctx, http.MethodGet, "experiments/get-by-name", params{}.must("experiment_name", name), &out); err != nil {
		return nil, fmt.Errorf("get experiment %q: %w", name, err)
	}
	e := out.Experiment.toModel()
	return &e, nil
}

// EnsureExperiment returns the id of the named experiment, creating it when
// it does not exist (a concurrent creator wins without error).
func (c *Client) EnsureExperiment(ctx context.Context, name string) (string, error) {
	e, err := c.GetExperimentByName(ctx, name)
	if err == nil {
		return e.ExperimentID, nil
	}
	if !IsNotFound(err) {
		return "", err
	}
	id, cerr := c.CreateExperiment(ctx, name, "", nil)
	if cerr == nil {
		return id, nil
	}
	if !IsAlreadyExists(cerr) && definitelyFailed(cerr) {
		return "", cerr
	}
	// Someone else created it, or our create may have landed: read again.
	e, err = c.GetExperimentByName(ctx, name)
	if err != nil {
		return "", fmt.Errorf("%w (re-read after create: %v)", cerr, err)
	}
	return e.ExperimentID, nil
}

// ---- runs ----

// CreateRunRequest is the input of CreateRun.
type CreateRunRequest struct {
	ExperimentID string
	RunName      string
	UserID       string
	StartTime    time.Time // zero means now
	Tags         map[string]string
}

// CreateRun starts a run.
func (c *Client) CreateRun(ctx context.Context, r CreateRunRequest) (*Run, error) {
	if err := need("experiment id", r.ExperimentID); err != nil {
		return nil, err
	}
	start := r.StartTime
	if start.IsZero() {
		start = time.Now()
	}
	p := params{}.must("experiment_id", r.ExperimentID).str("run_name", r.RunName).str("user_id", r.UserID).
		num("start_time", start.UnixMilli())
	if t := mapToTags(r.Tags); t != nil {
		p = p.json("tags", t)
	}
	var out struct {
		Run wireRun `json:"run"`
	}
	if err := c.call(ctx, http.MethodPost, "runs/create", p, &out); err != nil {
		return nil, fmt.Errorf("create run in experiment %s: %w", r.ExperimentID, err)
	}
	run := out.Run.toModel()
	return &run, nil
}

// GetRun returns a run with its info, latest metrics, params and tags.
func (c *Client) GetRun(ctx context.Context, runID string) (*Run, error) {
	if err := need("run id", runID); err != nil {
		return nil, err
	}
	var out struct {
		Run wireRun `json:"run"`
	}
	if err := c.call(ctx, http.MethodGet, "runs/get", params{}.must("run_id", runID), &out); err != nil {
		return nil, fmt.Errorf("get run %s: %w", runID, err)
	}
	run := out.Run.toModel()
	return &run, nil
}

// LogBatch logs metrics, params and tags to a run in one request. A metric
// with a zero Timestamp is stamped with the current time. Not idempotent
// (metric history grows), so it is resent only when surely not delivered.
func (c *Client) LogBatch(ctx context.Context, runID string, metrics []Metric, runParams, tags map[string]string) error {
	if err := need("run id", runID); err != nil {
		return err
	}
	p := params{}.must("run_id", runID)
	if len(metrics) > 0 {
		now := time.Now().UnixMilli()
		ms := make([]Metric, len(metrics))
		for i, m := range metrics {
			if m.Timestamp == 0 {
				m.Timestamp = now
			}
			ms[i] = m
		}
		p = p.json("metrics", ms)
	}
	if t := mapToTags(runParams); t != nil {
		p = p.json("params", t)
	}
	if t := mapToTags(tags); t != nil {
		p = p.json("tags", t)
	}
	if err := c.call(ctx, http.MethodPost, "runs/log-batch", p, nil); err != nil {
		return fmt.Errorf("log batch to run %s: %w", runID, err)
	}
	return nil
}

// UpdateRun sets a run's status (RunFinished, ...) and end time (zero = now
// for terminal statuses, unset otherwise).
func (c *Client) UpdateRun(ctx context.Context, runID, status string, end time.Time) (*RunInfo, error) {
	if err := need("run id", runID); err != nil {
		return nil, err
	}
	if end.IsZero() && (status == RunFinished || status == RunFailed || status == RunKilled) {
		end = time.Now()
	}
	p := params{}.must("run_id", runID).str("status", status)
	if !end.IsZero() {
		p = p.num("end_time", end.UnixMilli())
	}
	var out struct {
		RunInfo wireRunInfo `json:"run_info"`
	}
	if err := c.call(ctx, http.MethodPost, "runs/update", p, &out); err != nil {
		return nil, fmt.Errorf("update run %s to %s: %w", runID, status, err)
	}
	info := out.RunInfo.toModel()
	return &info, nil
}

// SearchRunsRequest is the input of SearchRuns.
type SearchRunsRequest struct {
	ExperimentIDs []string
	// Filter is MLflow's search filter, e.g. "tags.`a.b` = 'x'".
	Filter     string
	MaxResults int
	OrderBy    []string
	PageToken  string
}

// SearchRuns returns one page of active runs matching the request and the
// token of the next page ("" at the end).
func (c *Client) SearchRuns(ctx context.Context, r SearchRunsRequest) ([]Run, string, error) {
	if len(r.ExperimentIDs) == 0 {
		return nil, "", fmt.Errorf("%w: no experiment ids", ErrInvalidArgument)
	}
	p := params{}.json("experiment_ids", r.ExperimentIDs).str("filter", r.Filter).str("page_token", r.PageToken)
	if r.MaxResults > 0 {
		p = p.json("max_results", r.MaxResults)
	}
	if len(r.OrderBy) > 0 {
		p = p.json("order_by", r.OrderBy)
	}
	var out struct {
		Runs          []wireRun `json:"runs"`
		NextPageToken string    `json:"next_page_token"`
	}
	if err := c.call(ctx, http.MethodPost, "runs/search", p, &out); err != nil {
		return nil, "", fmt.Errorf("search runs in experiments %v: %w", r.ExperimentIDs, err)
	}
	runs := make([]Run, len(out.Runs))
	for i, w := range out.Runs {
		runs[i] = w.toModel()
	}
	return runs, out.NextPageToken, nil
}

// GetMetricHistory returns every logged value of one metric of a run, in
// the server's order (one page of up to the server's default limit).
func (c *Client) GetMetricHistory(ctx context.Context, runID, key string) ([]Metric, error) {
	if err := need("run id", runID); err != nil {
		return nil, err
	}
	if err := need("metric key", key); err != nil {
		return nil, err
	}
	var out struct {
		Metrics []wireMetric `json:"metrics"`
	}
	if err := c.call(ctx, http.MethodGet, "metrics/get-history", params{}.must("run_id", runID).must("metric_key", key), &out); err != nil {
		return nil, fmt.Errorf("get history of metric %q of run %s: %w", key, runID, err)
	}
	ms := make([]Metric, len(out.Metrics))
	for i, w := range out.Metrics {
		ms[i] = Metric{Key: w.Key, Value: w.Value, Timestamp: int64(w.Timestamp), Step: int64(w.Step)}
	}
	return ms, nil
}
