// Package wiring builds the targets a command line configures. It is the
// one place that knows every target package, so commands stay thin.
package wiring

import (
	"context"
	"fmt"
	"slices"

	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/mlflow"
	"github.com/modelsync/modelsync/internal/registry"
	"github.com/modelsync/modelsync/reconciler"
)

// Target names, in the order a reconcile runs them.
var targetOrder = []string{registry.Name, "kserve", "s3"}

// BuildTargets returns the configured targets in execution order.
func BuildTargets(_ context.Context, getenv func(string) string, flags *cmdutil.TargetFlags, _ *reconciler.DesiredState) ([]reconciler.Target, error) {
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
	if mcfg.TrackingURI != "" && wanted(registry.Name) {
		client, err := mlflow.New(mcfg)
		if err != nil {
			return nil, err
		}
		targets = append(targets, registry.New(client))
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
