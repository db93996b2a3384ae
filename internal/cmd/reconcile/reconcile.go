// Package reconcile implements `modelsync reconcile`: ask a running
// controller to reconcile a model now instead of at its next interval.
package reconcile

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/modelsync/modelsync/internal/controller"
	"github.com/modelsync/modelsync/internal/controller/apiclient"
	"github.com/modelsync/modelsync/internal/wiring"
)

// Options are the inputs of reconcile.
type Options struct {
	Factory     *wiring.Factory
	Model       string
	Environment string
	Server      string
	Timeout     time.Duration
}

// NewCmdReconcile builds the command; runF replaces the work in tests of flags.
func NewCmdReconcile(f *wiring.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f}
	cmd := &cobra.Command{
		Use:   "reconcile MODEL",
		Short: "Ask the controller to reconcile a model now",
		Long: `Reconcile queues MODEL (in every environment, or only --env) at the front of a
running controller's work queue, skipping any retry backoff. Sync windows
still apply: a closed environment stays held.

The server is --server, else $MODELSYNC_SERVER, else ` + apiclient.DefaultServer + `.
$MODELSYNC_TOKEN (else $MODELSYNC_API_TOKEN) is sent as a bearer token; with
Kubernetes authentication the caller needs create on reconciles.modelsync.io.`,
		Example: `  modelsync reconcile customer-churn-predictor
  modelsync reconcile customer-churn-predictor --env prod --server http://modelsync.ml-system:8080`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Model = args[0]
			opts.Server = apiclient.ServerURL(opts.Server, f.Getenv)
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return Run(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Environment, "env", "", "only this environment (default: every environment of the model)")
	cmd.Flags().StringVar(&opts.Server, "server", "", "controller URL (default $MODELSYNC_SERVER or "+apiclient.DefaultServer+")")
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", 30*time.Second, "how long to wait for the controller")
	return cmd
}

// Run posts the request.
func Run(ctx context.Context, opts *Options) error {
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
	}
	req := controller.ReconcileRequest{Model: opts.Model, Environment: opts.Environment}
	if err := apiclient.New(opts.Server, opts.Factory.Getenv, nil).Reconcile(ctx, req); err != nil {
		return err
	}
	where := "every environment"
	if opts.Environment != "" {
		where = "environment " + opts.Environment
	}
	fmt.Fprintf(opts.Factory.IO.Out, "Queued %s (%s) for reconciliation.\n", opts.Model, where)
	return nil
}
