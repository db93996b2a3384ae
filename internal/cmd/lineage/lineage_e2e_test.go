package lineage_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/cmd/lineage"
	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/wiring"
	"github.com/modelsync/modelsync/test/testenv"
)

// TestLineageShowsLoggedDatasets registers a model through the MLflow
// Python client from a run that logged its training data with
// mlflow.log_input, on the oldest supported release (2.9.2) and the newest
// 3.x, and checks that lineage shows that dataset in text and JSON.
func TestLineageShowsLoggedDatasets(t *testing.T) {
	for _, opts := range []testenv.MLflowOptions{{Major: 2, Floor: true}, {Major: 3}} {
		name := "mlflow" + map[int]string{2: "2", 3: "3"}[opts.Major]
		if opts.Floor {
			name += "-floor"
		}
		// One server at a time: each imports MLflow and scikit-learn twice
		// (server and client), which is heavy on a shared machine.
		t.Run(name, func(t *testing.T) {
			s := testenv.NewMLflow(t, opts)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			model := testenv.UniqueName("churn")
			// Credentials in a source URI must not be printed.
			runID, err := s.LogModelWithDataset(ctx, model, "https://reader:hunter2@data.example.com/churn/train.csv?sig=s3cr3t")
			if err != nil {
				t.Fatal(err)
			}

			jsonOut := run(t, s, model, "-o", "json")
			var got struct {
				RunID         string `json:"runId"`
				DatasetInputs []struct {
					Name, Digest, Context, SourceType, Source string
				} `json:"datasetInputs"`
			}
			if err := json.Unmarshal([]byte(jsonOut), &got); err != nil {
				t.Fatalf("%v\n%s", err, jsonOut)
			}
			if got.RunID != runID || len(got.DatasetInputs) != 1 {
				t.Fatalf("run %q (want %s), dataset inputs %+v:\n%s", got.RunID, runID, got.DatasetInputs, jsonOut)
			}
			in := got.DatasetInputs[0]
			if in.Name != "churn-train" || in.Context != "training" || in.Digest == "" || in.SourceType == "" ||
				!strings.Contains(in.Source, "data.example.com/churn/train.csv") {
				t.Fatalf("dataset input %+v", in)
			}

			text := run(t, s, model)
			for _, want := range []string{"Dataset inputs:", "training", "churn-train", in.Digest, "data.example.com/churn/train.csv"} {
				if !strings.Contains(text, want) {
					t.Errorf("text output lacks %q:\n%s", want, text)
				}
			}
			for _, out := range []string{text, jsonOut} {
				if strings.Contains(out, "hunter2") || strings.Contains(out, "s3cr3t") {
					t.Fatalf("a credential of the dataset source was printed:\n%s", out)
				}
			}
		})
	}
}

func run(t *testing.T, s *testenv.MLflow, model string, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	env := map[string]string{"MLFLOW_TRACKING_URI": s.URL}
	f := wiring.New(cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, func(k string) string { return env[k] }, "test")
	cmd := lineage.NewCmdLineage(f, nil)
	cmd.SetArgs(append([]string{model, "1"}, args...))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("lineage %s 1 %v: %v\n%s", model, args, err, errOut.String())
	}
	return out.String()
}
