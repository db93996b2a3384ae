// Package lineage implements `modelsync lineage`: where a registry version
// came from (run, parameters, metrics, datasets, artifacts) and which Git
// revisions deployed it.
package lineage

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/lineage"
	"github.com/modelsync/modelsync/internal/scan"
	"github.com/modelsync/modelsync/internal/wiring"
)

// Options are the inputs of lineage.
type Options struct {
	Factory *wiring.Factory
	Model   string
	Version int
	Output  string
}

// NewCmdLineage builds the command; runF replaces the work in tests of flags.
func NewCmdLineage(f *wiring.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f}
	cmd := &cobra.Command{
		Use:   "lineage MODEL VERSION",
		Short: "Show where a model version came from and which Git revisions deployed it",
		Example: `  MLFLOW_TRACKING_URI=http://127.0.0.1:5000 modelsync lineage customer-churn-predictor 3
  modelsync lineage llama2-7b-alpaca 4 --mlflow-uri https://mlflow.example.com -o json`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Model = args[0]
			v, err := strconv.Atoi(args[1])
			if err != nil || v <= 0 {
				return fmt.Errorf("VERSION must be a positive integer, got %q", args[1])
			}
			opts.Version = v
			if err := cmdutil.CheckFormat(opts.Output, cmdutil.FormatText, cmdutil.FormatJSON); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return Run(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&f.Flags.MLflowURI, "mlflow-uri", "", "MLflow tracking URI (default $MLFLOW_TRACKING_URI)")
	cmd.Flags().StringVar(&f.Flags.ArtifactsDestination, "artifacts-destination", "", "storage URI behind mlflow-artifacts:/ (the MLflow server's --artifacts-destination)")
	cmd.Flags().StringVarP(&opts.Output, "output", "o", cmdutil.FormatText, "output format: text or json")
	return cmd
}

// Run reads the lineage from MLflow and prints it.
func Run(ctx context.Context, opts *Options) error {
	client, err := opts.Factory.MLflow()
	if err != nil {
		return err
	}
	loc, err := opts.Factory.Locator()
	if err != nil {
		return err
	}
	l, err := lineage.Read(ctx, client, loc, opts.Model, opts.Version)
	if err != nil {
		return err
	}
	if opts.Output == cmdutil.FormatJSON {
		return cmdutil.WriteJSON(opts.Factory.IO.Out, l)
	}
	return writeText(opts.Factory.IO.Out, l)
}

func writeText(w io.Writer, l *lineage.Lineage) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("Model", fmt.Sprintf("%s version %d (%s)", l.Model, l.Version, l.TrackingURI))
	row("Status", l.Status)
	row("Stage", l.Stage)
	row("Aliases", strings.Join(l.Aliases, ", "))
	row("Created", l.CreatedAt.Format(time.RFC3339))
	row("Source", l.Source)
	row("Artifacts", l.ArtifactURI)
	row("Artifacts", l.ArtifactErr)
	row("Run", l.RunID)
	row("Deployed by revision", l.Deployment.Revision)
	row("Environments", l.Deployment.Environments)
	row("Deployed by", l.Deployment.DeployedBy)
	row("Lifecycle", strings.TrimSpace(l.Deployment.Lifecycle+" "+l.Deployment.ArchivedAt))
	tw.Flush()
	section := func(title string, m map[string]string) {
		if len(m) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s:\n", title)
		for _, k := range slices.Sorted(maps.Keys(m)) {
			fmt.Fprintf(w, "  %s = %s\n", k, m[k])
		}
	}
	metrics := map[string]string{}
	for k, v := range l.Metrics {
		metrics[k] = strconv.FormatFloat(v, 'g', -1, 64)
	}
	section("Metrics", metrics)
	section("Parameters", l.Params)
	if len(l.DatasetInputs) > 0 {
		fmt.Fprintf(w, "\nDataset inputs:\n")
		itw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(itw, "  CONTEXT\tNAME\tDIGEST\tSOURCE")
		for _, in := range l.DatasetInputs {
			src := in.Source
			if in.SourceType != "" {
				src = in.SourceType + " " + src
			}
			fmt.Fprintf(itw, "  %s\t%s\t%s\t%s\n", orDash(in.Context), orDash(in.Name), orDash(in.Digest), orDash(src))
		}
		itw.Flush()
	}
	writeScan(w, l)
	section("Dataset tags", l.Datasets)
	section("Version tags", l.VersionTags)
	return nil
}

func writeScan(w io.Writer, l *lineage.Lineage) {
	s := l.Scan
	if s == nil {
		fmt.Fprintf(w, "\nScan: not scanned; run: modelsync scan %s %d\n", l.Model, l.Version)
		return
	}
	fmt.Fprintf(w, "\nScan: %s (%s, %s)\n", s.Result, s.Scanner, s.ScannedAt.Format(time.RFC3339))
	if !s.Current {
		fmt.Fprintf(w, "  made by another scanner version than this modelsync's (%s): the next check or reconcile scans again\n", scan.ScannerVersion)
	}
	fmt.Fprintf(w, "  artifact digest    %s\n", s.Digest)
	fmt.Fprintf(w, "  findings           %d dangerous, %d unknown in %d file(s)\n", s.Findings.Dangerous, s.Findings.Unknown, s.Findings.Files)
	if g := s.Findings.Globals.Dangerous; len(g) > 0 {
		fmt.Fprintf(w, "  dangerous globals  %s\n", strings.Join(g, ", "))
	}
	if g := s.Findings.Globals.Unknown; len(g) > 0 {
		fmt.Fprintf(w, "  unknown globals    %s\n", strings.Join(g, ", "))
	}
	for _, f := range s.Files {
		if len(f.Findings) == 0 {
			continue
		}
		fmt.Fprintf(w, "  %s  %s (%s)\n", strings.ToUpper(string(f.Verdict)), f.Path, f.Format)
		for _, fd := range f.Findings {
			where := fmt.Sprintf("offset %d", fd.Offset)
			if member, ok := strings.CutPrefix(fd.Path, f.Path+"!"); ok {
				where = member + " " + where
			}
			what := strings.TrimSpace(fd.Opcode + " " + fd.Global + "  " + fd.Rule)
			fmt.Fprintf(w, "      %s  %s  %s: %s\n", fd.Verdict, where, what, fd.Message)
		}
	}
	if len(s.Files) == 0 {
		// A record from before the per-file list: its first findings.
		for _, f := range s.Findings.First {
			fmt.Fprintf(w, "      %s\n", f)
		}
	}
	if d := s.Deps; d != nil {
		fmt.Fprintf(w, "  dependencies       %d requirement(s) against %d advisories: %d vulnerable, %d unpinned\n", d.Requirements, d.Advisories, len(d.Vulnerabilities), len(d.Unpinned))
		for _, v := range d.Vulnerabilities {
			note := ""
			if v.Allowed {
				note = " (allowed until " + v.AllowExpires.Format(time.DateOnly) + ")"
			}
			fmt.Fprintf(w, "      %s==%s  %s (%s)%s\n", v.Package, v.Version, v.ID, v.Severity, note)
		}
	}
	for _, env := range slices.Sorted(maps.Keys(s.Approved)) {
		mark := ""
		if s.Approved[env] != s.Digest {
			mark = "  CHANGED since approval (integrity.artifact_changed)"
		}
		fmt.Fprintf(w, "  approved in %s  %s%s\n", env, s.Approved[env], mark)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
