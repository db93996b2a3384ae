// Package apply implements `modelsync apply`: compute the plan and execute
// it, printing each change.
package apply

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/syncwindow"
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
	// OverrideWindow applies changes a closed sync window holds, for
	// emergencies; each closed environment is recorded in the audit log.
	OverrideWindow bool
	// AuditLog, when set, is a file the override records are appended to
	// (JSON lines); they always go to stderr.
	AuditLog string
	// Now is the clock windows are evaluated at (default time.Now).
	Now func() time.Time
}

// NewCmdApply builds the command; runF replaces the work in tests of flags.
func NewCmdApply(f *wiring.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f, Now: time.Now}
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Make MLflow, KServe and S3 match Git",
		Long: `Apply computes the same plan as 'modelsync plan' and executes it. The plan is
validated before the first write. If an action fails, the rest of that model's
actions are skipped and other models go on; every action is idempotent, so the
next apply converges from wherever this one stopped.

Sync windows in modelsync.yaml bind apply as they bind the controller: deny
wins over allow, and the changes of an environment a window closes are held
(listed, not applied; exit code 2). --override-window applies them anyway for
emergencies, and writes who overrode which window to the audit log (stderr,
and --audit-log FILE).`,
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
	cmd.Flags().BoolVar(&opts.OverrideWindow, "override-window", false, "apply changes a closed sync window holds (emergencies; recorded in the audit log)")
	cmd.Flags().StringVar(&opts.AuditLog, "audit-log", "", "also append window overrides (JSON lines) to this file")
	return cmd
}

// Run plans and applies.
func Run(ctx context.Context, opts *Options) error {
	opts.Factory.Flags.Progress = opts.Factory.IO.ErrOut
	d, p, targets, err := opts.Factory.PlanDesired(ctx, opts.Repo)
	if err != nil {
		return err
	}
	defer wiring.CloseTargets(targets)
	windows, err := syncwindow.ForConfig(d.Config)
	if err != nil {
		return fmt.Errorf("refusing to apply: %w", err)
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	hold := windows.Split(p, now())
	out := opts.Factory.IO.Out
	text := opts.Output == cmdutil.FormatText
	if text {
		if err := reconciler.WritePlanText(out, p); err != nil {
			return err
		}
		if err := hold.WriteText(out); err != nil {
			return err
		}
		if p.HasChanges() {
			fmt.Fprintln(out)
		}
	}
	held := len(hold.Held) > 0 && !opts.OverrideWindow
	if held {
		p = hold.Allowed
	} else if len(hold.Held) > 0 {
		// Recorded before anything is written: an override that fails
		// halfway was still an override.
		if err := recordOverrides(opts, hold.Overrides(actor(opts.Factory.Getenv), d.Revision, now())); err != nil {
			return fmt.Errorf("refusing to override the sync window: the audit record could not be written: %w", err)
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
		// HeldByWindow are the actions closed sync windows held back
		// (empty with --override-window).
		HeldByWindow []reconciler.Action `json:"heldByWindow"`
	}{p, res, heldActions(hold, held)}); werr != nil {
		return werr
	}
	if err != nil || !res.OK() || len(p.Errors()) > 0 {
		return cmdutil.ErrSilent
	}
	if held {
		fmt.Fprintf(opts.Factory.IO.ErrOut, "%d change(s) held by sync windows were not applied; apply again once they open, or pass --override-window in an emergency\n", len(hold.Held))
		return &cmdutil.ExitError{Code: cmdutil.ExitChanges}
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

func heldActions(h syncwindow.Hold, held bool) []reconciler.Action {
	if !held {
		return []reconciler.Action{}
	}
	return h.Held
}

// actor names who runs the command in the audit log: the login name, as
// the controller names CLI callers "cli:<user>".
func actor(getenv func(string) string) string {
	for _, k := range []string{"USER", "LOGNAME", "USERNAME"} {
		if u := getenv(k); u != "" {
			return "cli:" + u
		}
	}
	return "cli:unknown"
}

// recordOverrides writes the override records as JSON lines to stderr and,
// with --audit-log, appends them to that file.
func recordOverrides(opts *Options, records []syncwindow.Override) error {
	var b []byte
	for _, r := range records {
		line, err := json.Marshal(r)
		if err != nil {
			return err
		}
		b = append(append(b, line...), '\n')
	}
	fmt.Fprintf(opts.Factory.IO.ErrOut, "warning: overriding sync windows; audit record:\n%s", b)
	if opts.AuditLog == "" {
		return nil
	}
	f, err := os.OpenFile(opts.AuditLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
