// Package wiring builds the targets a command line configures. It is the
// one place that knows every target package, so commands stay thin.
package wiring

import (
	"context"
	"fmt"

	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/reconciler"
)

// BuildTargets returns the configured targets in execution order.
func BuildTargets(ctx context.Context, flags *cmdutil.TargetFlags, desired *reconciler.DesiredState) ([]reconciler.Target, error) {
	var targets []reconciler.Target
	for _, name := range flags.Only {
		switch name {
		case "mlflow", "kserve", "s3":
		default:
			return nil, fmt.Errorf("unknown target %q: expected mlflow, kserve or s3", name)
		}
	}
	return targets, nil
}
