// Package wiring builds the targets a command line configures. It is the
// one place that knows every target package, so commands stay thin.
package wiring

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/internal/target/kserve"
	"github.com/modelsync/modelsync/internal/target/mlflow"
	"github.com/modelsync/modelsync/internal/target/s3"
	"github.com/modelsync/modelsync/reconciler"
)

// Target names, in the order a reconcile runs them.
var targetOrder = []string{mlflow.Name, kserve.TargetName, s3.TargetName}

// BuildTargets returns the configured targets in execution order.
func BuildTargets(ctx context.Context, getenv func(string) string, flags *cmdutil.TargetFlags, _ *reconciler.DesiredState) ([]reconciler.Target, error) {
	for _, name := range flags.Only {
		if !slices.Contains(targetOrder, name) {
			return nil, fmt.Errorf("unknown target %q: expected one of %v", name, targetOrder)
		}
	}
	wanted := func(name string) bool { return len(flags.Only) == 0 || slices.Contains(flags.Only, name) }
	var targets []reconciler.Target
	mcfg := mlflowclient.ConfigFromEnv(getenv)
	if flags.MLflowURI != "" {
		mcfg.TrackingURI = flags.MLflowURI
	}
	if flags.MLflowObserve != nil {
		mcfg.Observe = flags.MLflowObserve
	}
	var client *mlflowclient.Client
	if mcfg.TrackingURI != "" {
		c, err := mlflowclient.New(mcfg)
		if err != nil {
			return nil, err
		}
		client = c
	}
	if client != nil && wanted(mlflow.Name) {
		targets = append(targets, mlflow.New(client))
	}
	var locator *mlflow.Locator
	if client != nil {
		locator = &mlflow.Locator{Client: client, ArtifactsDestination: flags.ArtifactsDestination}
	}
	if flags.KServe && wanted(kserve.TargetName) {
		if locator == nil {
			return nil, fmt.Errorf("--kserve needs the MLflow registry for storageUri: set MLFLOW_TRACKING_URI or --mlflow-uri")
		}
		t, err := kserve.NewTarget(kserve.Config{Kubeconfig: flags.Kubeconfig, Context: flags.KubeContext, AllowEmpty: flags.AllowEmpty}, locator, nil)
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
	}
	if flags.S3 && wanted(s3.TargetName) {
		if client == nil {
			return nil, fmt.Errorf("--s3 needs the MLflow registry to find artifacts: set MLFLOW_TRACKING_URI or --mlflow-uri")
		}
		s3c, err := s3.NewClient(ctx, s3.ClientOptions{Endpoint: flags.S3Endpoint, PathStyle: flags.S3PathStyle})
		if err != nil {
			return nil, err
		}
		t, err := s3.New(s3.Config{
			Client:   s3c,
			Locator:  locator,
			Versions: mlflow.VersionLister{Client: client},
			Progress: progress(flags.Progress),
		})
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
	}
	if len(flags.Only) > 0 && len(targets) < len(flags.Only) {
		var missing []string
		for _, n := range flags.Only {
			if !slices.ContainsFunc(targets, func(t reconciler.Target) bool { return t.Name() == n }) {
				missing = append(missing, n)
			}
		}
		return nil, fmt.Errorf("--target %v asked for, but not configured: %v", flags.Only, missing)
	}
	return targets, nil
}

// progress shows copy progress as a bar on a terminal and as a log line
// every 10 seconds anywhere else (CI logs, files).
func progress(w io.Writer) func(s3.ProgressEvent) {
	if w == nil {
		return nil
	}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			return s3.NewProgressBar(w).Update
		}
	}
	return s3.NewProgressLog(slog.New(slog.NewTextHandler(w, nil)), 10*time.Second, time.Now).Update
}
