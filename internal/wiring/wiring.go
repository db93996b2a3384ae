package wiring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/modelsync/modelsync/internal/target/kserve"
	"github.com/modelsync/modelsync/internal/target/mlflow"
	"github.com/modelsync/modelsync/internal/target/s3"
	"github.com/modelsync/modelsync/reconciler"
)

// Target names, in the order a reconcile runs them.
var targetOrder = []string{mlflow.Name, kserve.Name, s3.Name}

// ErrNoTargets is returned by Targets when nothing is configured: an empty
// plan would look like "in sync" when nothing was checked.
var ErrNoTargets = errors.New("no targets configured: set MLFLOW_TRACKING_URI (or --mlflow-uri) for the MLflow registry, --kserve for KServe, --s3 for artifact storage")

// configuredTargets builds the targets f.Flags configure, in execution
// order, from the factory's clients. It refuses to return none. It is what
// Factory.Targets does unless a test puts other targets there.
func (f *Factory) configuredTargets(ctx context.Context) ([]reconciler.Target, error) {
	flags := &f.Flags
	for _, name := range flags.Only {
		if !slices.Contains(targetOrder, name) {
			return nil, fmt.Errorf("unknown target %q: expected one of %v", name, targetOrder)
		}
	}
	wanted := func(name string) bool { return len(flags.Only) == 0 || slices.Contains(flags.Only, name) }
	hasMLflow := f.HasMLflow()
	var targets []reconciler.Target
	if hasMLflow && wanted(mlflow.Name) {
		c, err := f.MLflow()
		if err != nil {
			return nil, err
		}
		targets = append(targets, reconciler.Typed(mlflow.New(c)))
	}
	if flags.KServe && wanted(kserve.Name) {
		if !hasMLflow {
			return nil, fmt.Errorf("--kserve needs the MLflow registry for storageUri: set MLFLOW_TRACKING_URI or --mlflow-uri")
		}
		loc, err := f.Locator()
		if err != nil {
			return nil, err
		}
		rc, err := f.KubeConfig()
		if err != nil {
			return nil, err
		}
		t, err := kserve.New(kserve.Config{AllowEmpty: flags.AllowEmpty, ConnectTimeout: flags.ConnectTimeout}, loc, rc)
		if err != nil {
			CloseTargets(targets)
			return nil, err
		}
		targets = append(targets, reconciler.Typed(t))
	}
	if flags.S3 && wanted(s3.Name) {
		if !hasMLflow {
			CloseTargets(targets)
			return nil, fmt.Errorf("--s3 needs the MLflow registry to find artifacts: set MLFLOW_TRACKING_URI or --mlflow-uri")
		}
		if err := f.addS3(ctx, &targets); err != nil {
			CloseTargets(targets)
			return nil, err
		}
	}
	if len(flags.Only) > 0 && len(targets) < len(flags.Only) {
		var missing []string
		for _, n := range flags.Only {
			if !slices.ContainsFunc(targets, func(t reconciler.Target) bool { return t.Name() == n }) {
				missing = append(missing, n)
			}
		}
		CloseTargets(targets)
		return nil, fmt.Errorf("--target %v asked for, but not configured: %v", flags.Only, missing)
	}
	if len(targets) == 0 {
		return nil, ErrNoTargets
	}
	return targets, nil
}

func (f *Factory) addS3(ctx context.Context, targets *[]reconciler.Target) error {
	c, err := f.MLflow()
	if err != nil {
		return err
	}
	loc, err := f.Locator()
	if err != nil {
		return err
	}
	s3c, err := f.S3(ctx)
	if err != nil {
		return err
	}
	t, err := s3.New(s3.Config{
		Client:   s3c,
		Locator:  loc,
		Versions: mlflow.VersionLister{Client: c},
		Progress: progress(f.Flags.Progress),
	})
	if err != nil {
		return err
	}
	*targets = append(*targets, reconciler.Typed(t))
	return nil
}

// CloseTargets releases what targets hold open (informers, connections).
func CloseTargets(targets []reconciler.Target) {
	for _, t := range targets {
		if c, ok := reconciler.As[io.Closer](t); ok {
			_ = c.Close()
		} else if c, ok := reconciler.As[interface{ Close() }](t); ok {
			c.Close()
		}
	}
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
