// Package apply implements `modelsync apply`: compute the plan and execute
// it, printing each change.
package apply

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/wiring"
	"github.com/modelsync/modelsync/reconciler"
)

// Options are the inputs of apply.
type Options struct {
	Factory *wiring.Factory
	Repo    cmdutil.RepoFlags
	Output  string
	// Concurrency is how many models are applied side by side.
	Concurrency int
	// Wait waits up to WaitTimeout for every applied InferenceService to
	// become Healthy.
	Wait        bool
	WaitTimeout time.Duration
}

// NewCmdApply builds the command; runF replaces the work in tests of flags.
func NewCmdApply(f *wiring.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f}
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Make MLflow, KServe and S3 match Git",
		Long: `Apply computes the same plan as 'modelsync plan' and executes it. The plan is
validated before the first write. If an action fails, the rest of that model's
actions are skipped and other models go on; every action is idempotent, so the
next apply converges from wherever this one stopped.`,
		Example: `  MLFLOW_TRACKING_URI=http://127.0.0.1:5000 modelsync apply --repo ./models
  modelsync apply --repo https://github.com/acme/models.git --kserve --s3 -o json`,
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
	cmd.Flags().IntVar(&opts.Concurrency, "concurrency", 4, "models applied side by side (each model's actions stay in order)")
	cmd.Flags().BoolVar(&opts.Wait, "wait", false, "wait for every applied InferenceService to become Healthy")
	cmd.Flags().DurationVar(&opts.WaitTimeout, "timeout", 10*time.Minute, "how long --wait waits for each InferenceService")
	return cmd
}

// Run plans and applies.
func Run(ctx context.Context, opts *Options) error {
	opts.Factory.Flags.Progress = opts.Factory.IO.ErrOut
	p, targets, err := opts.Factory.Plan(ctx, opts.Repo)
	if err != nil {
		return err
	}
	defer wiring.CloseTargets(targets)
	out := opts.Factory.IO.Out
	text := opts.Output == cmdutil.FormatText
	if text {
		if err := reconciler.WritePlanText(out, p); err != nil {
			return err
		}
		if p.HasChanges() {
			fmt.Fprintln(out)
		}
	}
	res, err := reconciler.Apply(ctx, p, targets, reconciler.ApplyOptions{
		Concurrency: opts.Concurrency,
		OnAction: func(a reconciler.Action, err error) {
			if !text {
				return
			}
			status := "done"
			if err != nil {
				status = "FAILED: " + err.Error()
			}
			fmt.Fprintf(out, "%s/%s %s %s %s: %s\n", a.Target, a.Model, a.Environment, a.Kind, a.Resource, status)
		},
	})
	if err != nil && res == nil {
		return err
	}
	if text {
		fmt.Fprintf(out, "\nApply: %d applied, %d failed, %d skipped.\n", len(res.Applied), len(res.Failed), len(res.Skipped))
	} else if werr := cmdutil.WriteJSON(out, struct {
		Plan   *reconciler.Plan        `json:"plan"`
		Result *reconciler.ApplyResult `json:"result"`
	}{p, res}); werr != nil {
		return werr
	}
	if err != nil || !res.OK() || len(p.Errors()) > 0 {
		return cmdutil.ErrSilent
	}
	if opts.Wait {
		return waitHealthy(ctx, out, targets, res.Applied, opts.WaitTimeout)
	}
	return nil
}

// waitHealthy waits for what the apply left to settle (InferenceServices
// rolling out), target by target through reconciler.Waiter, reporting the
// failing condition of each that does not become healthy in time.
func waitHealthy(ctx context.Context, out io.Writer, targets []reconciler.Target, applied []reconciler.Action, timeout time.Duration) error {
	waiters := map[string]reconciler.Waiter{}
	for _, t := range targets {
		if w, ok := reconciler.As[reconciler.Waiter](t); ok {
			waiters[t.Name()] = w
		}
	}
	seen := map[string]bool{}
	var failed []error
	for _, a := range applied {
		w, ok := waiters[a.Target]
		if !ok {
			continue
		}
		what := w.WaitFor(a)
		if what == "" || seen[what] {
			continue
		}
		seen[what] = true
		fmt.Fprintf(out, "waiting for %s to become Healthy...\n", what)
		if err := w.Wait(ctx, a, timeout); err != nil {
			failed = append(failed, err)
			continue
		}
		fmt.Fprintf(out, "%s is Healthy\n", what)
	}
	return errors.Join(failed...)
}
