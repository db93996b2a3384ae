package canary

import (
	"context"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/analysis"
	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/test/testenv"
)

// A canary is one MLflow run in modelsync-canary/<model>: parameters once,
// a metric per look with step = look number, decision tags, and a recorder
// that starts afresh (a restarted controller) continues the same run.
func TestRunRecorderOnMLflow(t *testing.T) {
	testenv.RequireE2E(t)
	for _, opts := range []testenv.MLflowOptions{{Major: 3}, {Major: 2}, {Major: 2, Floor: true}} {
		name := "mlflow" + map[int]string{2: "2", 3: "3"}[opts.Major]
		if opts.Floor {
			name += "-floor"
		}
		t.Run(name, func(t *testing.T) {
			opts.BasicAuth = true
			srv := testenv.NewMLflow(t, opts)
			c, err := mlflowclient.New(mlflowclient.Config{TrackingURI: srv.URL, Username: srv.Username, Password: srv.Password, Timeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			recordCanary(t, c)
		})
	}
}

func recordCanary(t *testing.T, c *mlflowclient.Client) {
	ctx := context.Background()
	model := testenv.UniqueName("llm")
	a := &manifest.Analysis{Provider: &manifest.AnalysisProvider{Address: "http://prom:9090"},
		Metrics: []manifest.AnalysisMetric{{Kind: manifest.MetricErrors}, {Kind: manifest.MetricLatency, LE: "500", Margin: 1.5}}}
	s, _, err := SpecFor(model, desiredEnv("prod", []int{10, 50}, 10, a), model)
	if err != nil {
		t.Fatal(err)
	}
	an, err := analysis.New(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1_800_000_000, 0)
	st := an.Start(start)
	look := func(min int, canaryBad int64) analysis.Decision {
		var d analysis.Decision
		l := analysis.Look{At: start.Add(time.Duration(min) * time.Minute), Metrics: map[string]analysis.Arms{
			"errors":  {Canary: analysis.Counts{Bad: canaryBad, Total: int64(200 * min)}, Stable: analysis.Counts{Bad: int64(18 * min), Total: int64(1800 * min)}},
			"latency": {Canary: analysis.Counts{Bad: int64(10 * min), Total: int64(200 * min)}, Stable: analysis.Counts{Bad: int64(90 * min), Total: int64(1800 * min)}},
		}}
		if st, d, err = an.Look(st, l); err != nil {
			t.Fatal(err)
		}
		return d
	}

	rec := NewRunRecorder(c)
	for m := 1; m <= 2; m++ {
		if err := rec.Record(ctx, s, st, look(m, int64(2*m))); err != nil {
			t.Fatalf("look %d: %v", m, err)
		}
	}
	// A restarted controller has a new recorder and the same state.
	rec = NewRunRecorder(c)
	d := look(3, 200) // ten times stable's error rate
	if d.Action != analysis.ActionRollback {
		t.Fatalf("decision %s: %s", d.Action, d.Reason)
	}
	if err := rec.Record(ctx, s, st, d); err != nil {
		t.Fatal(err)
	}

	exp, err := c.GetExperimentByName(ctx, ExperimentName(model))
	if err != nil {
		t.Fatal(err)
	}
	runs, _, err := c.SearchRuns(ctx, mlflowclient.SearchRunsRequest{ExperimentIDs: []string{exp.ExperimentID}})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 {
		t.Fatalf("%d runs, want one per canary", len(runs))
	}
	run := runs[0]
	if run.Params["stable_version"] != "3" || run.Params["candidate_version"] != "4" || run.Params["steps"] != "10,50" ||
		run.Params["alpha"] != "0.05" || run.Params["margin.errors"] != "1.2" || run.Params["margin.latency"] != "1.5" {
		t.Errorf("params %v", run.Params)
	}
	if run.Tags[TagDecision] != "rollback" || run.Tags[TagReason] != d.Reason || run.Tags[TagCanaryID] != CanaryID(s, st) {
		t.Errorf("tags %v", run.Tags)
	}
	if run.Info.Status != mlflowclient.RunFailed || run.Info.EndTime == 0 {
		t.Errorf("run status %s end %d, want FAILED with an end time after a rollback", run.Info.Status, run.Info.EndTime)
	}
	hist, err := c.GetMetricHistory(ctx, run.Info.RunID, "errors.canary.bad")
	if err != nil {
		t.Fatal(err)
	}
	byStep := map[int64]float64{}
	for _, m := range hist {
		byStep[m.Step] = float64(m.Value)
	}
	if len(byStep) != 3 || byStep[1] != 2 || byStep[2] != 4 || byStep[3] != 200 {
		t.Errorf("errors.canary.bad by look = %v, want 1:2 2:4 3:200", byStep)
	}
	if w, err := c.GetMetricHistory(ctx, run.Info.RunID, "errors.ratio.upper"); err != nil || len(w) != 3 {
		t.Errorf("ratio bound history %v, %v", w, err)
	}
}
