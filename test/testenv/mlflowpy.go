package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// logModelScript registers a small scikit-learn model the way data
// scientists do (mlflow.sklearn.log_model with registered_model_name),
// from a run that logged its training data with mlflow.log_input. It prints
// the run id last. Positional arguments keep it valid on 2.9 and 3.x.
const logModelScript = `
import sys
import mlflow
import pandas as pd
from sklearn.linear_model import LogisticRegression

name, source = sys.argv[1], sys.argv[2]
mlflow.set_experiment("modelsync-testenv")
df = pd.DataFrame({"tenure": [1, 5, 20, 40], "calls": [9, 4, 1, 0], "churned": [1, 1, 0, 0]})
with mlflow.start_run() as run:
    ds = mlflow.data.from_pandas(df, source=source, name="churn-train", targets="churned")
    mlflow.log_input(ds, context="training")
    mlflow.log_param("C", 1.0)
    model = LogisticRegression(C=1.0).fit(df[["tenure", "calls"]], df["churned"])
    mlflow.log_metric("accuracy", float(model.score(df[["tenure", "calls"]], df["churned"])))
    mlflow.sklearn.log_model(model, "model", registered_model_name=name)
print(run.info.run_id)
`

// LogModelWithDataset registers a version of model name through the MLflow
// Python client of the server's own release, from a run that logged a
// pandas dataset (source: the given URI) with mlflow.log_input(context=
// "training"). It returns the run id.
func (m *MLflow) LogModelWithDataset(ctx context.Context, name, source string) (string, error) {
	python := filepath.Join(filepath.Dir(m.bin), "python")
	home, err := os.MkdirTemp("", "modelsync-mlflow-client-")
	if err != nil {
		return "", fmt.Errorf("testenv: mlflow client home: %w", err)
	}
	defer os.RemoveAll(home)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-c", logModelScript, name, source)
	cmd.Dir = home
	cmd.Env = []string{
		"HOME=" + home, "PATH=" + os.Getenv("PATH"), "PYTHONUNBUFFERED=1",
		"MLFLOW_TRACKING_URI=" + m.URL,
		// The client would otherwise check the installed packages against
		// the model's requirements and look for Git metadata.
		"MLFLOW_GIT_PYTHON_DISABLED=true", "GIT_PYTHON_REFRESH=quiet",
	}
	if m.Username != "" {
		cmd.Env = append(cmd.Env, "MLFLOW_TRACKING_USERNAME="+m.Username, "MLFLOW_TRACKING_PASSWORD="+m.Password)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("testenv: %s: log_model with log_input: %w\n%s", m.Name, err, tail(out, 4000))
	}
	lines := strings.Fields(strings.TrimSpace(string(out)))
	if len(lines) == 0 {
		return "", fmt.Errorf("testenv: %s: log_model printed no run id", m.Name)
	}
	return lines[len(lines)-1], nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
