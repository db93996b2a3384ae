package check_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/policy"
	"github.com/modelsync/modelsync/test/testenv"
)

// registerVersion creates a run with metrics and a model version from it.
func registerVersion(t *testing.T, c *mlflowclient.Client, exp, model string, metrics map[string]float64, tags map[string]string) int {
	t.Helper()
	ctx := context.Background()
	run, err := c.CreateRun(ctx, mlflowclient.CreateRunRequest{ExperimentID: exp, RunName: model})
	if err != nil {
		t.Fatal(err)
	}
	var ms []mlflowclient.Metric
	for k, v := range metrics {
		ms = append(ms, mlflowclient.Metric{Key: k, Value: mlflowclient.Float(v), Timestamp: time.Now().UnixMilli()})
	}
	if err := c.LogBatch(ctx, run.Info.RunID, ms, nil, nil); err != nil {
		t.Fatal(err)
	}
	mv, err := c.CreateModelVersion(ctx, mlflowclient.CreateModelVersionRequest{Name: model, Source: "runs:/" + run.Info.RunID + "/model", RunID: run.Info.RunID, Tags: tags})
	if err != nil {
		t.Fatal(err)
	}
	return mv.Version
}

// With registry facts from a real MLflow server, a well-soaked version
// with good metrics passes the performance and promotion rules; only the
// approval rules remain.
func TestCheckWithMLflowRegistryFacts(t *testing.T) {
	srv := testenv.NewMLflow(t, testenv.MLflowOptions{Major: 3})
	c, err := mlflowclient.New(mlflowclient.Config{TrackingURI: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const model = "customer-churn-predictor"
	if _, err := c.CreateRegisteredModel(ctx, mlflowclient.CreateRegisteredModelRequest{Name: model}); err != nil {
		t.Fatal(err)
	}
	exp, err := c.EnsureExperiment(ctx, "churn-training")
	if err != nil {
		t.Fatal(err)
	}
	good := map[string]float64{"accuracy": 0.91, "precision": 0.88, "recall": 0.90, "f1": 0.89}
	soaked := map[string]string{policy.AuditTagPrefix + "staging" + policy.AuditSinceTagSuffix: time.Now().Add(-72 * time.Hour).UTC().Format(time.RFC3339)}
	for i := 1; i <= 4; i++ {
		tags := map[string]string{}
		if i == 4 {
			tags = soaked
		}
		registerVersion(t, c, exp, model, good, tags)
	}
	if err := c.SetAlias(ctx, model, "prod", 3); err != nil {
		t.Fatal(err)
	}

	dir := exampleRepo(t)
	promoteBranch(t, dir, "promote")
	code, out, stderr := runCheck(t, "--repo", dir, "--base", "main", "--head", "promote", "--mlflow-uri", srv.URL)
	if code != 1 || !strings.Contains(out, "[approvals.too_few]") {
		t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
	}
	for _, unwanted := range []string{"performance.", "promotion."} {
		if strings.Contains(out, unwanted) {
			t.Errorf("registry facts were not used: %s rule fired\n%s", unwanted, out)
		}
	}

	// A version with a weak metric and no staging record is denied by
	// the registry rules.
	weak := map[string]float64{"accuracy": 0.70, "precision": 0.88, "recall": 0.90, "f1": 0.89}
	v5 := registerVersion(t, c, exp, model, weak, nil)
	if v5 != 5 {
		t.Fatalf("registered version %d, want 5", v5)
	}
	git(t, dir, "checkout", "--quiet", "-b", "promote-weak", "main")
	edit(t, dir, churnFile, "    prod:\n      version: 3\n", "    prod:\n      version: 5\n")
	git(t, dir, "commit", "--quiet", "-am", "Promote churn v5 to prod")
	git(t, dir, "checkout", "--quiet", "main")
	_, out, _ = runCheck(t, "--repo", dir, "--base", "main", "--head", "promote-weak", "--mlflow-uri", srv.URL)
	for _, want := range []string{"[performance.metric_below_minimum]", "accuracy is 0.7", "[promotion."} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
