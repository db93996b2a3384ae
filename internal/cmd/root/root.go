// Package root assembles the modelsync command tree.
package root

import (
	"context"
	"errors"
	"fmt"

	"github.com/modelsync/modelsync/internal/cmd/analysis"

	"github.com/spf13/cobra"

	"github.com/modelsync/modelsync/internal/cmd/apply"
	"github.com/modelsync/modelsync/internal/cmd/check"
	"github.com/modelsync/modelsync/internal/cmd/cost"
	"github.com/modelsync/modelsync/internal/cmd/desired"
	"github.com/modelsync/modelsync/internal/cmd/lineage"
	"github.com/modelsync/modelsync/internal/cmd/plan"
	policycmd "github.com/modelsync/modelsync/internal/cmd/policy"
	"github.com/modelsync/modelsync/internal/cmd/reconcile"
	"github.com/modelsync/modelsync/internal/cmd/release"
	"github.com/modelsync/modelsync/internal/cmd/rollback"
	scancmd "github.com/modelsync/modelsync/internal/cmd/scan"
	"github.com/modelsync/modelsync/internal/cmd/serve"
	"github.com/modelsync/modelsync/internal/cmd/status"
	"github.com/modelsync/modelsync/internal/cmd/validate"
	"github.com/modelsync/modelsync/internal/cmd/version"
	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/wiring"
)

// NewCmdRoot returns the top-level command with every subcommand.
func NewCmdRoot(f *wiring.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "modelsync",
		Short: "GitOps for machine-learning models: Git decides what runs where",
		Long: `modelsync keeps the MLflow registry, KServe InferenceServices and the storage
classes of model artifacts true to a models Git repository, and gates pull
requests to that repository with policies over the plan.`,
		Example: `  modelsync validate ./models
  modelsync desired --repo ./models
  MLFLOW_TRACKING_URI=http://127.0.0.1:5000 modelsync plan --repo ./models`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.SetOut(f.IO.Out)
	cmd.SetErr(f.IO.ErrOut)
	cmd.AddCommand(
		version.NewCmdVersion(f),
		validate.NewCmdValidate(f, nil),
		desired.NewCmdDesired(f, nil),
		plan.NewCmdPlan(f, nil),
		apply.NewCmdApply(f, nil),
		release.NewCmdRelease(f, nil),
		lineage.NewCmdLineage(f, nil),
		cost.NewCmdCost(f, nil),
		check.NewCmdCheck(f, nil),
		policycmd.NewCmdPolicy(f, nil),
		rollback.NewCmdRollback(f, nil),
		serve.NewCmdServe(f, nil),
		status.NewCmdStatus(f, nil),
		analysis.NewCmdAnalysis(f, nil),
		reconcile.NewCmdReconcile(f, nil),
		scancmd.NewCmdScan(f, nil),
	)
	return cmd
}

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, f *wiring.Factory, args []string) int {
	cmd := NewCmdRoot(f)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	var ee *cmdutil.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.Err == nil) {
		fmt.Fprintln(f.IO.ErrOut, "Error:", err)
	}
	return cmdutil.ExitCode(err)
}
