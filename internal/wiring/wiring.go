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
	"github.com/modelsync/modelsync/internal/mlflow"
	"github.com/modelsync/modelsync/internal/registry"
	"github.com/modelsync/modelsync/internal/serving"
	"github.com/modelsync/modelsync/internal/storage"
	"github.com/modelsync/modelsync/reconciler"
)

// Target names, in the order a reconcile runs them.
var targetOrder = []string{registry.Name, serving.TargetName, storage.TargetName}

// BuildTargets returns the configured targets in execution order.
func BuildTargets(ctx context.Context, getenv func(string) string, flags *cmdutil.TargetFlags, _ *reconciler.DesiredState) ([]reconciler.Target, error) {
	for _, name := range flags.Only {
		if !slices.Contains(targetOrder, name) {
			return nil, fmt.Errorf("unknown target %q: expected one of %v", name, targetOrder)
		}
	}
	wanted := func(name string) bool { return len(flags.Only) == 0 || slices.Contains(flags.Only, name) }
	var targets []reconciler.Target
	mcfg := mlflow.ConfigFromEnv(getenv)
	if flags.MLflowURI != "" {
		mcfg.TrackingURI = flags.MLflowURI
	}
	if flags.MLflowObserve != nil {
		mcfg.Observe = flags.MLflowObserve
	}
	var client *mlflow.Client
	if mcfg.TrackingURI != "" {
		c, err := mlflow.New(mcfg)
		if err != nil {
			return nil, err
		}
		client = c
	}
	if client != nil && wanted(registry.Name) {
		targets = append(targets, registry.New(client))
	}
	var locator *registry.Locator
	if client != nil {
		locator = &registry.Locator{Client: client, ArtifactsDestination: flags.ArtifactsDestination}
	}
	if flags.KServe && wanted(serving.TargetName) {
		if locator == nil {
			return nil, fmt.Errorf("--kserve needs the MLflow registry for storageUri: set MLFLOW_TRACKING_URI or --mlflow-uri")
		}
		t, err := serving.NewTarget(serving.Config{Kubeconfig: flags.Kubeconfig, Context: flags.KubeContext, AllowEmpty: flags.AllowEmpty}, locator, nil)
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
	}
	if flags.S3 && wanted(storage.TargetName) {
		if client == nil {
			return nil, fmt.Errorf("--s3 needs the MLflow registry to find artifacts: set MLFLOW_TRACKING_URI or --mlflow-uri")
		}
		s3c, err := storage.NewClient(ctx, storage.ClientOptions{Endpoint: flags.S3Endpoint, PathStyle: flags.S3PathStyle})
		if err != nil {
			return nil, err
		}
		t, err := storage.New(storage.Config{
			Client:   s3c,
			Locator:  locator,
			Versions: registry.VersionLister{Client: client},
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
func progress(w io.Writer) func(storage.ProgressEvent) {
	if w == nil {
		return nil
	}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			return storage.NewProgressBar(w).Update
		}
	}
	return storage.NewProgressLog(slog.New(slog.NewTextHandler(w, nil)), 10*time.Second, time.Now).Update
}
