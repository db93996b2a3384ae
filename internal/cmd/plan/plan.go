// Package plan implements `modelsync plan`: what apply would change, per
// target, computed by the same planner the PR check and controller use.
package plan

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/syncwindow"
	"github.com/modelsync/modelsync/internal/wiring"
	"github.com/modelsync/modelsync/reconciler"
)

// Options are the inputs of plan.
type Options struct {
	Factory          *wiring.Factory
	Repo             cmdutil.RepoFlags
	Output           string
	DetailedExitCode bool
	// Now is the clock sync windows are evaluated at (default time.Now).
	Now func() time.Time
}

// NewCmdPlan builds the command; runF replaces the work in tests of flags.
func NewCmdPlan(f *wiring.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f}
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what apply would change in MLflow, KServe and S3",
		Long: `Plan computes the desired state from Git, observes each configured target and
prints the actions that would make the targets match, including drift (live
changes made outside Git). It writes nothing.

Exit codes: 0 no changes, 1 error (including a target that could not be
observed: the plan says which, and never "no changes" for it), 2 the plan has
changes (as terraform plan -detailed-exitcode; turn off with
--detailed-exitcode=false).

An endpoint that cannot be reached fails within --connect-timeout (default
10s), naming the endpoint and the cause.

Changes of an environment a sync window of modelsync.yaml closes now are
listed as held: apply will not make them until the window opens (or with
--override-window).`,
		Example: `  MLFLOW_TRACKING_URI=http://127.0.0.1:5000 modelsync plan --repo ./models
  modelsync plan --repo https://github.com/acme/models.git --kserve --context prod -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cmdutil.CheckFormat(opts.Output, cmdutil.FormatText, cmdutil.FormatJSON); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return Run(cmd.Context(), opts)
		},
	}
	cmdutil.AddRepoFlags(cmd, &opts.Repo)
	cmdutil.AddTargetFlags(cmd, &f.Flags)
	cmd.Flags().StringVarP(&opts.Output, "output", "o", cmdutil.FormatText, "output format: text or json")
	cmd.Flags().BoolVar(&opts.DetailedExitCode, "detailed-exitcode", true, "exit 2 when the plan has changes")
	return cmd
}

// Run computes and prints the plan.
func Run(ctx context.Context, opts *Options) error {
	d, p, targets, err := opts.Factory.PlanDesired(ctx, opts.Repo)
	if err != nil {
		return err
	}
	defer wiring.CloseTargets(targets)
	out := opts.Factory.IO.Out
	if opts.Output == cmdutil.FormatJSON {
		err = cmdutil.WriteJSON(out, p)
	} else {
		err = reconciler.WritePlanText(out, p)
		if err == nil {
			err = writeHeld(out, d, p, opts.Now)
		}
	}
	if err != nil {
		return err
	}
	switch {
	case len(p.Unobserved()) > 0:
		// Exit 1, and say on stderr which target, so a CI log that shows
		// only the last line still tells "unreachable" from "no changes".
		return &cmdutil.ExitError{Code: cmdutil.ExitFailure, Err: fmt.Errorf("plan incomplete: target %s could not be observed", strings.Join(p.Unobserved(), ", "))}
	case len(p.Errors()) > 0:
		return cmdutil.ErrSilent
	case p.HasChanges() && opts.DetailedExitCode:
		return &cmdutil.ExitError{Code: cmdutil.ExitChanges}
	}
	return nil
}

// writeHeld lists the changes the sync windows in force hold, as apply
// would hold them.
func writeHeld(out io.Writer, d *reconciler.DesiredState, p *reconciler.Plan, now func() time.Time) error {
	ws, err := syncwindow.ForConfig(d.Config)
	if err != nil {
		return err
	}
	if now == nil {
		now = time.Now
	}
	return ws.Split(p, now()).WriteText(out)
}
