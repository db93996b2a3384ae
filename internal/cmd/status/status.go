// Package status implements `modelsync status`: the controller's view of
// every model in every environment, read from its HTTP API.
package status

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
	// Now is the clock for relative times in the table (tests).
	Now func() time.Time
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

The default table fits 120 columns: long names are shortened with "…" and
a canary reads "v4 20%→50% (2/4)" (version, live share → desired share,
step of steps). -o wide prints every field in full (revision names,
traffic lists, exact times); -o json prints everything, for programs.

The server is --server, else $MODELSYNC_SERVER, else ` + apiclient.DefaultServer + `.
$MODELSYNC_TOKEN (else $MODELSYNC_API_TOKEN), when set, is sent as a bearer token:
a static API token of the controller, or a Kubernetes token when the
controller runs with --kube-api-auth.`,
		Example: `  modelsync status
  modelsync status -o wide
  modelsync status --server http://modelsync.ml-system:8080 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cmdutil.CheckFormat(opts.Output, cmdutil.FormatText, FormatWide, cmdutil.FormatJSON); err != nil {
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
	cmd.Flags().StringVarP(&opts.Output, "output", "o", cmdutil.FormatText, "output format: text (fits 120 columns), wide (every detail) or json")
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
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	return WriteText(out, st, opts.Output == FormatWide, now())
}

// Output formats of status beyond cmdutil's: wide is the full table, as
// kubectl get -o wide.
const FormatWide = "wide"

// MaxWidth is the width the default table keeps within, so it reads in a
// terminal and in CI logs; -o wide and -o json carry the full detail.
const MaxWidth = 120

// WriteText prints the status as a table followed by errors: compact
// columns within MaxWidth unless wide, which prints every field in full.
func WriteText(w io.Writer, st controller.Status, wide bool, now time.Time) error {
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
	rows := [][]string{{"MODEL", "ENV", "DESIRED", "LIVE", "STATE", "DRIFT", "HEALTH", "CANARY", "WINDOW", "PIN"}}
	var notes, windows []string
	seenWindow := map[string]bool{}
	for _, r := range st.Rows {
		if wide {
			rows = append(rows, wideRow(r))
		} else {
			rows = append(rows, compactRow(r))
			// Windows belong to environments: say once per environment
			// when each reopens, rather than widen every row.
			if !r.Window.Open && !seenWindow[r.Environment] {
				seenWindow[r.Environment] = true
				windows = append(windows, windowNote(r, now))
			}
		}
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
	if !wide {
		fitColumns(rows, MaxWidth)
	}
	writeTable(w, rows)
	if len(windows) > 0 {
		fmt.Fprintln(w)
		for _, n := range windows {
			fmt.Fprintln(w, n)
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
	return nil
}

// wideRow is every field in full: revision names, traffic lists, exact
// window times.
func wideRow(r controller.StatusRow) []string {
	window := r.Window.State()
	if !r.Window.Open && r.Window.NextOpen != nil {
		window += " until " + r.Window.NextOpen.UTC().Format(time.RFC3339)
	}
	return []string{r.Model, r.Environment, r.Desired, r.Live, r.State, drift(r), r.Health, orDash(r.CanaryStep), window, pin(r)}
}

// windowNote says when an environment's closed window reopens, in UTC and
// relative to now, and why it is closed.
func windowNote(r controller.StatusRow, now time.Time) string {
	s := "Sync window of " + r.Environment + " is closed"
	if next := r.Window.NextOpen; next != nil {
		s += " until " + next.UTC().Format(time.RFC3339)
		if d := next.Sub(now); d > 0 {
			s += " (in " + strings.TrimSuffix(d.Round(time.Minute).String(), "0s") + ")"
		}
	}
	if r.Window.Reason != "" {
		s += ": " + r.Window.Reason
	}
	return s
}

// compactRow keeps each cell short: versions without their canary (which
// has its own column) and the canary as "v4 20%→50% (2/4)".
func compactRow(r controller.StatusRow) []string {
	desired := r.Desired
	switch {
	case r.DesiredVersion > 0:
		desired = "v" + strconv.Itoa(r.DesiredVersion)
	case r.Environment == "-":
		desired = "none"
	}
	live, _, _ := strings.Cut(r.Live, " (")
	canary := "-"
	if r.Canary != nil {
		canary = r.Canary.Compact()
	} else if r.CanaryStep != "" {
		canary = r.CanaryStep
	}
	return []string{r.Model, r.Environment, desired, live, r.State, drift(r), r.Health, canary, r.Window.State(), pin(r)}
}

// columnCaps bound every column but MODEL, which gets what is left of
// the width (never less than minModel).
var columnCaps = [...]int{0, 12, 8, 12, 11, 5, 11, 18, 6, 6}

const minModel = 12

// fitColumns truncates cells so the table is at most width columns wide;
// a cut cell ends in "…".
func fitColumns(rows [][]string, width int) {
	natural := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			natural[i] = max(natural[i], utf8.RuneCountInString(c))
		}
	}
	used := 2 * (len(natural) - 1)
	for i := 1; i < len(natural); i++ {
		used += min(natural[i], columnCaps[i])
	}
	modelWidth := max(width-used, minModel)
	for _, r := range rows {
		r[0] = truncEnd(r[0], modelWidth)
		for i := 1; i < len(r); i++ {
			r[i] = truncEnd(r[i], columnCaps[i])
		}
	}
}

func truncEnd(s string, n int) string {
	rs := []rune(s)
	if len(rs) <= n {
		return s
	}
	return string(rs[:n-1]) + "…"
}

// writeTable pads by runes, not bytes, so "→" and "…" keep columns aligned.
func writeTable(w io.Writer, rows [][]string) {
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+2))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

func drift(r controller.StatusRow) string {
	if r.Drift {
		return "yes"
	}
	return "-"
}

func pin(r controller.StatusRow) string {
	if r.Pin == nil {
		return "-"
	}
	return "v" + strconv.Itoa(r.Pin.Version)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
