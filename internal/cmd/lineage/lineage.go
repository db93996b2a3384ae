// Package lineage implements `modelsync lineage`: where a registry version
// came from (run, parameters, metrics, datasets, artifacts) and which Git
// revisions deployed it.
package lineage

import (
	"context"
	"encoding/json"
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
	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/internal/redact"
	"github.com/modelsync/modelsync/internal/scan"
	"github.com/modelsync/modelsync/internal/scanrecord"
	"github.com/modelsync/modelsync/internal/wiring"
	"github.com/modelsync/modelsync/reconciler"
)

// Options are the inputs of lineage.
type Options struct {
	Factory *wiring.Factory
	Model   string
	Version int
	Output  string
}

// Lineage is the command's JSON output.
type Lineage struct {
	Model       string             `json:"model"`
	Version     int                `json:"version"`
	Status      string             `json:"status"`
	Stage       string             `json:"stage,omitempty"`
	Aliases     []string           `json:"aliases"`
	CreatedAt   time.Time          `json:"createdAt"`
	Source      string             `json:"source"`
	ArtifactURI string             `json:"artifactUri,omitempty"`
	ArtifactErr string             `json:"artifactError,omitempty"`
	RunID       string             `json:"runId,omitempty"`
	Params      map[string]string  `json:"params,omitempty"`
	Metrics     map[string]float64 `json:"metrics,omitempty"`
	// DatasetInputs are the datasets the run logged with mlflow.log_input.
	DatasetInputs []DatasetInput `json:"datasetInputs"`
	// Datasets are tags whose key mentions a dataset, on the version or its
	// run ("run:" prefix): how datasets were recorded before log_input.
	Datasets   map[string]string `json:"datasets,omitempty"`
	Deployment Deployment        `json:"deployment"`
	// Scan is the artifact scan recorded on the version (modelsync scan,
	// check --scan or the reconciler), nil when it was never scanned.
	Scan        *Scan             `json:"scan"`
	VersionTags map[string]string `json:"versionTags,omitempty"`
	TrackingURI string            `json:"trackingUri"`
}

// DatasetInput is one dataset the version's run used.
type DatasetInput struct {
	Name       string `json:"name"`
	Digest     string `json:"digest,omitempty"`
	Context    string `json:"context,omitempty"`
	SourceType string `json:"sourceType,omitempty"`
	// Source is MLflow's JSON description of the source, e.g. {"uri": "s3://..."}.
	Source string            `json:"source,omitempty"`
	Tags   map[string]string `json:"tags,omitempty"`
}

// Deployment is what modelsync recorded on the version.
type Deployment struct {
	Revision     string `json:"revision,omitempty"`
	Environments string `json:"environments,omitempty"`
	DeployedBy   string `json:"deployedBy,omitempty"`
	Lifecycle    string `json:"lifecycle,omitempty"`
	ArchivedAt   string `json:"archivedAt,omitempty"`
}

// Scan is the version's recorded artifact scan, read from its tags.
type Scan struct {
	Result    scan.Verdict `json:"result"`
	Digest    string       `json:"digest"`
	Scanner   string       `json:"scanner"`
	ScannedAt time.Time    `json:"scannedAt"`
	// Current is false when another scanner version made the record: the
	// gate and the reconciler scan again before trusting it.
	Current  bool                     `json:"current"`
	Findings scanrecord.Findings      `json:"findings"`
	Files    []ScanFile               `json:"files"`
	Deps     *scanrecord.Dependencies `json:"dependencies,omitempty"`
	// Approved maps environments to the digest first served there.
	Approved map[string]string `json:"approved"`
	// OmittedFiles counts files without findings the tags leave out.
	OmittedFiles int `json:"omittedFiles,omitempty"`
}

// ScanFile is one file of the recorded scan with its findings.
type ScanFile struct {
	Path     string         `json:"path"`
	Format   string         `json:"format"`
	Verdict  scan.Verdict   `json:"verdict"`
	SHA256   string         `json:"sha256,omitempty"`
	Findings []scan.Finding `json:"findings"`
}

// scanOf reads the scan tags; nil when the version was never scanned.
func scanOf(tags map[string]string) *Scan {
	rec, ok := scanrecord.FromTags(tags)
	if !ok {
		return nil
	}
	s := &Scan{Result: rec.Result, Digest: rec.Digest, Scanner: rec.Scanner, ScannedAt: rec.ScannedAt, Current: rec.Current(),
		Findings: rec.Findings, Files: []ScanFile{}, Deps: rec.Dependencies, Approved: rec.Approved}
	if rec.Files != nil {
		s.OmittedFiles = rec.Files.OmittedFiles
		for _, fr := range rec.Files.Reports() {
			s.Files = append(s.Files, ScanFile{Path: fr.Path, Format: fr.Format, Verdict: fr.Verdict, SHA256: fr.SHA256, Findings: fr.Findings})
		}
	}
	return s
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
	l, err := Read(ctx, client, loc, opts.Model, opts.Version)
	if err != nil {
		return err
	}
	if opts.Output == cmdutil.FormatJSON {
		return cmdutil.WriteJSON(opts.Factory.IO.Out, l)
	}
	return writeText(opts.Factory.IO.Out, l)
}

// Read gathers the lineage of one version.
func Read(ctx context.Context, c *mlflowclient.Client, loc reconciler.ArtifactLocator, model string, version int) (*Lineage, error) {
	mv, err := c.GetModelVersion(ctx, model, version)
	if err != nil {
		return nil, err
	}
	l := &Lineage{
		Model: model, Version: version, Status: mv.Status, Stage: mv.CurrentStage, Aliases: slices.Sorted(slices.Values(mv.Aliases)),
		CreatedAt: time.UnixMilli(mv.CreationTimestamp).UTC(), Source: mv.Source, RunID: mv.RunID, TrackingURI: c.TrackingURI(),
		Datasets: map[string]string{}, VersionTags: map[string]string{},
		Deployment: Deployment{
			Revision: mv.Tags[mlflowclient.TagRevision], Environments: mv.Tags[mlflowclient.TagEnvironments], DeployedBy: mv.Tags[mlflowclient.TagDeployedBy],
			Lifecycle: mv.Tags[mlflowclient.TagLifecycle], ArchivedAt: mv.Tags[mlflowclient.TagArchivedAt],
		},
	}
	if l.Aliases == nil {
		l.Aliases = []string{}
	}
	l.Scan = scanOf(mv.Tags)
	l.DatasetInputs = []DatasetInput{}
	for k, v := range mv.Tags {
		if !strings.HasPrefix(k, mlflowclient.TagPrefix) {
			l.VersionTags[k] = v
		}
		if strings.Contains(strings.ToLower(k), "dataset") {
			l.Datasets[k] = v
		}
	}
	uri, err := loc.ArtifactURI(ctx, model, version)
	if err != nil {
		l.ArtifactErr = err.Error()
	}
	l.ArtifactURI = uri
	if mv.RunID != "" {
		run, err := c.GetRun(ctx, mv.RunID)
		if err != nil {
			return nil, fmt.Errorf("model %s version %d: run %s: %w", model, version, mv.RunID, err)
		}
		l.Params = run.Params
		l.Metrics = run.MetricMap()
		for k, v := range run.Tags {
			if strings.Contains(strings.ToLower(k), "dataset") {
				l.Datasets["run:"+k] = v
			}
		}
		for _, in := range run.Inputs {
			l.DatasetInputs = append(l.DatasetInputs, DatasetInput{
				Name: in.Name, Digest: in.Digest, Context: in.Context, SourceType: in.SourceType, Source: safeSource(in.Source), Tags: in.Tags,
			})
		}
	}
	return l, nil
}

func writeText(w io.Writer, l *Lineage) error {
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

func writeScan(w io.Writer, l *Lineage) {
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

// safeSource passes every URL in a dataset source description through
// redact.URL: a source logged as a presigned or userinfo URL would
// otherwise print its credentials. A description that is not a JSON
// object is redacted as one URL.
func safeSource(src string) string {
	var fields map[string]any
	if json.Unmarshal([]byte(src), &fields) != nil {
		return redact.URL(src)
	}
	changed := false
	for k, v := range fields {
		if s, ok := v.(string); ok && strings.Contains(s, "://") {
			if r := redact.URL(s); r != s {
				fields[k], changed = r, true
			}
		}
	}
	if !changed {
		return src
	}
	b, err := json.Marshal(fields)
	if err != nil {
		return ""
	}
	return string(b)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
