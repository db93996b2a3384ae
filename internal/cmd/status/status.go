// Package status implements `modelsync status`: the controller's view of
// every model in every environment, read from its HTTP API.
package status

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/controller"
	"github.com/modelsync/modelsync/internal/controller/apiclient"
	"github.com/modelsync/modelsync/internal/wiring"
)

// Options are the inputs of status.
type Options struct {
	Factory *wiring.Factory
	Server  string
	Output  string
	Timeout time.Duration
}

// NewCmdStatus builds the command; runF replaces the work in tests of flags.
func NewCmdStatus(f *wiring.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what the controller sees: desired and live version per model and environment",
		Long: `Status asks a running modelsync controller for its view of every model in every
environment: the version Git wants, the version that runs, drift, serving
health, canary step, sync-window state, pins and the last error.

The server is --server, else $MODELSYNC_SERVER, else ` + apiclient.DefaultServer + `.
$MODELSYNC_TOKEN (else $MODELSYNC_API_TOKEN), when set, is sent as a bearer token:
a static API token of the controller, or a Kubernetes token when the
controller runs with --kube-api-auth.`,
		Example: `  modelsync status
  modelsync status --server http://modelsync.ml-system:8080 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cmdutil.CheckFormat(opts.Output, cmdutil.FormatText, cmdutil.FormatJSON); err != nil {
				return err
			}
			opts.Server = apiclient.ServerURL(opts.Server, f.Getenv)
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return Run(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Server, "server", "", "controller URL (default $MODELSYNC_SERVER or "+apiclient.DefaultServer+")")
	cmd.Flags().StringVarP(&opts.Output, "output", "o", cmdutil.FormatText, "output format: text or json")
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", 30*time.Second, "how long to wait for the controller")
	return cmd
}

// Run fetches and prints the status.
func Run(ctx context.Context, opts *Options) error {
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
	}
	st, err := apiclient.New(opts.Server, opts.Factory.Getenv, nil).Status(ctx)
	if err != nil {
		return err
	}
	out := opts.Factory.IO.Out
	if opts.Output == cmdutil.FormatJSON {
		return cmdutil.WriteJSON(out, st)
	}
	return WriteText(out, st)
}

// WriteText prints the status as a table followed by errors.
func WriteText(w io.Writer, st controller.Status) error {
	role := "standby"
	if st.Leader {
		role = "leader"
	}
	if !st.Ready {
		fmt.Fprintf(w, "Controller %s (%s) has not fetched the repository yet.\n", st.Identity, role)
	} else {
		fmt.Fprintf(w, "Revision %s, controller %s (%s)\n", orDash(st.Revision), st.Identity, role)
	}
	if st.FetchError != "" {
		fmt.Fprintf(w, "Fetch error: %s\n", st.FetchError)
	}
	if len(st.Rows) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tENV\tDESIRED\tLIVE\tSTATE\tDRIFT\tHEALTH\tCANARY\tWINDOW\tPIN")
	var notes []string
	for _, r := range st.Rows {
		drift := "-"
		if r.Drift {
			drift = "yes"
		}
		window := r.Window.State()
		if !r.Window.Open && r.Window.NextOpen != nil {
			window += " until " + r.Window.NextOpen.UTC().Format(time.RFC3339)
		}
		pin := "-"
		if r.Pin != nil {
			pin = fmt.Sprintf("v%d", r.Pin.Version)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Model, r.Environment, r.Desired, r.Live, r.State, drift,
			r.Health, orDash(r.CanaryStep), window, pin)
		where := r.Model
		if r.Environment != "-" {
			where += "/" + r.Environment
		}
		if r.LastError != "" {
			notes = append(notes, where+": "+r.LastError)
		} else if r.Message != "" {
			notes = append(notes, where+": "+r.Message)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
