// Package analysis implements `modelsync analysis`: one environment's
// canary analysis as the controller sees it, read from its HTTP API.
package analysis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	stats "github.com/modelsync/modelsync/internal/analysis"
	"github.com/modelsync/modelsync/internal/canary"
	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/controller/apiclient"
	"github.com/modelsync/modelsync/internal/wiring"
)

// Options are the inputs of analysis.
type Options struct {
	Factory *wiring.Factory
	Model   string
	Env     string
	Server  string
	Output  string
	Timeout time.Duration
}

// NewCmdAnalysis builds the command; runF replaces the work in tests of flags.
func NewCmdAnalysis(f *wiring.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f}
	cmd := &cobra.Command{
		Use:   "analysis MODEL --env ENV",
		Short: "Show a canary's analysis: step, counts per arm, each metric's bounds, the decision and what happens next",
		Long: `Analysis asks a running modelsync controller for the canary analysis of one
model in one environment: the current step and its live weight, the requests
and bad events per arm, each metric's estimated rate ratio (canary ÷ stable)
with its confidence bounds against the margin, the sample-ratio check, the
last decision with its reason, and what happens next.

The evidence is the controller's record in the cluster, so any replica
answers with what the leader saw. -o json prints the whole record, for
programs (schema: internal/manifest/schema/analysis.schema.json).

The server is --server, else $MODELSYNC_SERVER, else ` + apiclient.DefaultServer + `;
$MODELSYNC_TOKEN (else $MODELSYNC_API_TOKEN) is sent as a bearer token.`,
		Example: `  modelsync analysis llama2-7b-alpaca --env prod
  modelsync analysis llama2-7b-alpaca --env prod -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Model = args[0]
			if opts.Env == "" {
				return errors.New("--env is required: the environment whose canary to show")
			}
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
	cmd.Flags().StringVarP(&opts.Env, "env", "e", "", "environment of the canary (required)")
	cmd.Flags().StringVar(&opts.Server, "server", "", "controller URL (default $MODELSYNC_SERVER or "+apiclient.DefaultServer+")")
	cmd.Flags().StringVarP(&opts.Output, "output", "o", cmdutil.FormatText, "output format: text or json")
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", 30*time.Second, "how long to wait for the controller")
	return cmd
}

// Run fetches and prints the analysis.
func Run(ctx context.Context, opts *Options) error {
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
	}
	st, err := apiclient.New(opts.Server, opts.Factory.Getenv, nil).Analysis(ctx, opts.Model, opts.Env)
	if err != nil {
		return err
	}
	if opts.Output == cmdutil.FormatJSON {
		return cmdutil.WriteJSON(opts.Factory.IO.Out, st)
	}
	return WriteText(opts.Factory.IO.Out, st)
}

// WriteText prints the analysis for people.
func WriteText(w io.Writer, st canary.Status) error {
	fmt.Fprintf(w, "Canary of %s in %s: v%d (candidate) against v%d (stable)\n", st.Model, st.Environment, st.CandidateVersion, st.StableVersion)
	if st.Revisions.Canary != "" {
		fmt.Fprintf(w, "Revisions: canary %s, stable %s\n", st.Revisions.Canary, st.Revisions.Stable)
	}
	s := st.State
	if len(s.Windows) == 0 {
		fmt.Fprintf(w, "Weight: %d%% (no look yet)\n", st.Weight)
	} else {
		cur := s.Windows[s.Step]
		fmt.Fprintf(w, "Step %d of the steps walked so far, live weight %d%%, since %s\n", s.Step+1, st.Weight, cur.Started.UTC().Format(time.RFC3339))
		fmt.Fprintf(w, "Looks: %d since %s (%d without data from the metrics provider)\n", s.Looks, s.Started.UTC().Format(time.RFC3339), s.ProviderErrors)
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "STEP\tWEIGHT\tCANARY REQUESTS\tSTABLE REQUESTS")
		for i, win := range s.Windows {
			fmt.Fprintf(tw, "%d\t%d%%\t%d\t%d\n", i+1, win.Weight, win.Requests.Canary.Total, win.Requests.Stable.Total)
		}
		tw.Flush()
	}
	if d := st.Decision; d != nil {
		if len(d.Metrics) > 0 {
			fmt.Fprintln(w)
			writeMetrics(w, "", "CANARY", "STABLE", d.Metrics)
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "Split: canary share %.4f observed, %.2f routed", d.SRM.ObservedShare, d.SRM.RoutedShare)
		if d.SRM.Mismatch {
			fmt.Fprint(w, " — MISMATCH: no decision on skewed data")
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "Decision: %s at %s — %s\n", d.Action, d.At.UTC().Format(time.RFC3339), d.Reason)
	}
	if len(s.History) > 0 {
		fmt.Fprintln(w, "History:")
		for _, h := range s.History {
			fmt.Fprintf(w, "  %s  %-12s %3d%%  %s\n", h.At.UTC().Format(time.RFC3339), h.Action, h.Weight, h.Reason)
		}
	}
	if v := st.Verification; v != nil {
		writeVerification(w, st, v)
	}
	fmt.Fprintf(w, "Next: %s\n", st.Next)
	return nil
}

// writeVerification prints the check after promotion: the two windows,
// their counts and the verdict.
func writeVerification(w io.Writer, st canary.Status, v *canary.Verification) {
	fmt.Fprintln(w)
	result := string(v.Result)
	if v.Result == canary.VerifyPending {
		result = "pending"
	}
	fmt.Fprintf(w, "Check after promotion (%s before against %s after; weaker than the canary): %s\n", v.PostPromotion.Duration, v.PostPromotion.Duration, result)
	if v.PromotedAt.IsZero() {
		fmt.Fprintln(w, "  starts once the promotion is applied")
		return
	}
	fmt.Fprintf(w, "  v%d (%s) from %s to %s against v%d (%s) from %s\n", st.CandidateVersion, v.Promoted,
		v.PromotedAt.UTC().Format(time.RFC3339), v.WindowEnd().UTC().Format(time.RFC3339), st.StableVersion, v.Previous,
		v.PromotedAt.Add(-v.PostPromotion.Duration).UTC().Format(time.RFC3339))
	if v.ProviderErrors > 0 {
		fmt.Fprintf(w, "  %d looks without data from the metrics provider\n", v.ProviderErrors)
	}
	d := v.Decision
	if d == nil {
		return
	}
	writeMetrics(w, "  ", "PROMOTED", "PREVIOUS", d.Metrics)
	fmt.Fprintf(w, "  Decision: %s at %s — %s\n", d.Action, d.At.UTC().Format(time.RFC3339), d.Reason)
}

// writeMetrics prints each metric's counts per arm, rate ratio, bounds,
// margin and verdict; newArm and oldArm head the two arms' columns.
func writeMetrics(w io.Writer, indent, newArm, oldArm string, ms []stats.MetricResult) {
	if len(ms) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%sMETRIC\t%s BAD/TOTAL\t%s BAD/TOTAL\tRATIO\tBOUNDS\tMARGIN\tVERDICT\n", indent, newArm, oldArm)
	for _, m := range ms {
		fmt.Fprintf(tw, "%s%s\t%d/%d\t%d/%d\t%s\t%s..%s\t%s\t%s\n", indent, m.Name, m.Canary.Bad, m.Canary.Total, m.Stable.Bad, m.Stable.Total,
			num(m.Estimate), num(m.Lower), num(m.Upper), num(m.Margin), verdict(m))
	}
	tw.Flush()
}

// verdict says in words where a metric's test stands.
func verdict(m stats.MetricResult) string {
	switch {
	case m.Harmful:
		return "worse than stable"
	case m.NonInferior:
		return "within margin"
	}
	return "undecided"
}

func num(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "∞"
	case math.IsNaN(f):
		return "-"
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", f), "0"), ".")
}
