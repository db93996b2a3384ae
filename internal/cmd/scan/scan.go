// Package scan implements `modelsync scan`: the artifact scanner run on
// local files and directories before anything is registered, with text,
// JSON and SARIF output.
package scan

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/scan"
	"github.com/modelsync/modelsync/internal/textio"
	"github.com/modelsync/modelsync/internal/wiring"
)

// Exit codes of scan, documented in the README: 0 every file is safe,
// ExitDangerous when anything is dangerous, ExitUnknown when nothing is
// dangerous but something could not be vouched for (a global on neither
// list, a file the scanner could not read through) or the scan failed.
const (
	ExitDangerous = cmdutil.ExitFailure
	ExitUnknown   = 2
)

// FormatSARIF is SARIF 2.1.0, as GitHub code scanning ingests it.
const FormatSARIF = "sarif"

// progressThreshold is the size above which a file gets a progress bar.
const progressThreshold = 64 << 20

// Options are the inputs of scan.
type Options struct {
	IO cmdutil.IOStreams
	// Paths are local files and directories (scan PATH...).
	Paths []string
	// Model and Version select a registered version (scan MODEL VERSION),
	// and All every version an environment references; they are served by
	// the registry form of the command, not by the local one.
	Model   string
	Version string
	All     bool
	Output  string
	// AllowGlobals are extra module.name (or module.*) globals judged safe.
	AllowGlobals []string
	NoProgress   bool
	// Terminal says whether ErrOut is a terminal (replaced in tests).
	Terminal func() bool
}

// Target is the report on one PATH argument.
type Target struct {
	// Path is the argument as given; file paths in Report are relative to
	// it when it is a directory.
	Path   string      `json:"path"`
	Report scan.Report `json:"report"`
}

// JSONReport is scan's JSON output.
type JSONReport struct {
	Verdict scan.Verdict `json:"verdict"`
	Scanner string       `json:"scanner"`
	Targets []Target     `json:"targets"`
}

// NewCmdScan builds the command; runF replaces the work in tests of flags.
func NewCmdScan(f *wiring.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{IO: f.IO}
	ro := &RegistryOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "scan PATH... | scan MODEL VERSION | scan --all",
		Short: "Scan model artifacts for code that loading them would run",
		Long: `Scan reads every file under each PATH once, as a stream, and reports what
loading it would import or trust: every global a pickle names (bare, in
joblib files, in PyTorch zip archives, in NumPy object arrays), safetensors
headers that lie about sizes or offsets, ONNX external data that leaves the
model directory, archive members with ".." or absolute names. Nothing is
loaded or executed. Every file gets a SHA-256, and each PATH an artifact
digest over the sorted list.

Verdicts: dangerous (a denied global such as os.system or builtins.eval, or
a structure that escapes its bounds), unknown (a global on neither list, or
a file the scanner could not read through), safe.

MODEL VERSION scans a registered version's artifacts where MLflow stores
them (get-download-uri; s3:// or mlflow-artifacts:/ with
--artifacts-destination, through --s3-endpoint), checks its dependencies
(spec.dependencies, requirements.txt, conda.yaml, python_env.yaml) against
OSV advisories (--advisories or security.advisories in modelsync.yaml), and
records the result on the version as modelsync.scan.* tags. Unchanged
artifacts (same listing and scanner version) are not read again. --all
does this for every version an environment of --repo references.

Exit code 0 when everything is safe, 1 when anything is dangerous, 2 when
something is unknown (and nothing dangerous) or the scan failed.`,
		Example: `  # before registering a model
  modelsync scan ./model

  # for GitHub code scanning
  modelsync scan -o sarif ./model > scan.sarif

  # a model's own classes are expected
  modelsync scan --allow-global 'mypkg.models.*' model.pkl

  # a registered version, result kept as tags on it
  modelsync scan customer-churn-predictor 4 --s3 --s3-endpoint http://127.0.0.1:9000 --s3-path-style

  # every version the repository's environments reference
  modelsync scan --all --repo . --advisories ./advisory-database/vulns`,
		Args: func(cmd *cobra.Command, args []string) error {
			if opts.All {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.MinimumNArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Paths = args
			if err := cmdutil.CheckFormat(opts.Output, cmdutil.FormatText, cmdutil.FormatJSON, FormatSARIF); err != nil {
				return &cmdutil.ExitError{Code: ExitUnknown, Err: err}
			}
			if opts.All || registryArgs(args) {
				if !opts.All {
					opts.Paths, opts.Model, opts.Version = nil, args[0], args[1]
				}
				if runF != nil {
					return runF(cmd.Context(), opts)
				}
				return RunRegistry(cmd.Context(), opts, ro)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return Run(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Output, "output", "o", cmdutil.FormatText, "output format: text, json or sarif")
	cmd.Flags().StringArrayVar(&opts.AllowGlobals, "allow-global", nil, "also judge this module.name (or module.*) global safe; denied globals stay dangerous")
	cmd.Flags().BoolVar(&opts.NoProgress, "no-progress", false, "no progress bar on stderr, even on a terminal")
	addRegistryFlags(cmd, f, opts, ro)
	return cmd
}

// Run scans opts.Paths and prints the report.
func Run(ctx context.Context, opts *Options) error {
	rep, err := ScanPaths(ctx, opts)
	if err != nil {
		return &cmdutil.ExitError{Code: ExitUnknown, Err: err}
	}
	if err := Print(opts.IO.Out, opts.Output, rep); err != nil {
		return &cmdutil.ExitError{Code: ExitUnknown, Err: err}
	}
	return ExitFor(rep.Verdict)
}

// ExitFor is the exit status of a verdict.
func ExitFor(v scan.Verdict) error {
	switch v {
	case scan.Safe:
		return nil
	case scan.Unknown:
		return &cmdutil.ExitError{Code: ExitUnknown}
	default:
		return &cmdutil.ExitError{Code: ExitDangerous}
	}
}

// ScanPaths scans each PATH as its own artifact tree.
func ScanPaths(ctx context.Context, opts *Options) (JSONReport, error) {
	out := JSONReport{Verdict: scan.Safe, Scanner: scan.ScannerVersion, Targets: []Target{}}
	var bar *progressBar
	if !opts.NoProgress && opts.Output != "" && opts.IO.ErrOut != nil && opts.isTerminal() {
		bar = &progressBar{w: opts.IO.ErrOut}
	}
	for _, p := range opts.Paths {
		sopts := scan.Options{AllowGlobals: opts.AllowGlobals}
		if bar != nil {
			sopts.Progress = bar.update
		}
		rep, err := scan.Scan(ctx, scan.DirSource(p), sopts)
		if bar != nil {
			bar.clear()
		}
		if err != nil {
			return out, fmt.Errorf("scan %s: %w", p, err)
		}
		out.Targets = append(out.Targets, Target{Path: p, Report: rep})
		out.Verdict = out.Verdict.Worst(rep.Verdict)
	}
	return out, nil
}

func (o *Options) isTerminal() bool {
	if o.Terminal != nil {
		return o.Terminal()
	}
	f, ok := o.IO.ErrOut.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Print writes rep in format.
func Print(w io.Writer, format string, rep JSONReport) error {
	switch format {
	case cmdutil.FormatJSON:
		return cmdutil.WriteJSON(w, rep)
	case FormatSARIF:
		return cmdutil.WriteJSON(w, SARIF(rep))
	}
	return printText(w, rep)
}

// displayPath is a file's path as the user named it.
func displayPath(target, file string) string {
	if info, err := os.Stat(target); err == nil && !info.IsDir() {
		return filepath.ToSlash(target)
	}
	return path.Join(filepath.ToSlash(target), file)
}

func printText(w io.Writer, rep JSONReport) error {
	var counts = map[scan.Verdict]int{}
	files := 0
	for _, t := range rep.Targets {
		for _, f := range t.Report.Files {
			files++
			counts[f.Verdict]++
			fmt.Fprintf(w, "%-9s  %s  (%s, %s, sha256:%.12s)\n", strings.ToUpper(string(f.Verdict)), displayPath(t.Path, f.Path), f.Format, textio.FormatBytes(f.Size), f.SHA256)
			for _, fd := range f.Findings {
				where := fmt.Sprintf("offset %d", fd.Offset)
				if member, ok := strings.CutPrefix(fd.Path, f.Path+"!"); ok {
					where = member + " " + where
				}
				what := fd.Rule
				if fd.Global != "" {
					what = strings.TrimSpace(fd.Opcode+" "+fd.Global) + "  " + fd.Rule
				}
				fmt.Fprintf(w, "    %s  %s  %s: %s\n", fd.Verdict, where, what, fd.Message)
			}
		}
		fmt.Fprintf(w, "%s: artifact digest %s\n", t.Path, t.Report.Digest)
	}
	_, err := fmt.Fprintf(w, "%d file(s) scanned by %s: %d dangerous, %d unknown, %d safe. Verdict: %s.\n",
		files, rep.Scanner, counts[scan.Dangerous], counts[scan.Unknown], counts[scan.Safe], rep.Verdict)
	return err
}

// progressBar draws one line on a terminal for files large enough to
// take a while.
type progressBar struct {
	w     io.Writer
	drawn bool
}

func (b *progressBar) update(name string, done, total int64) {
	if total < progressThreshold {
		return
	}
	const width = 30
	frac := float64(done) / float64(total)
	if frac > 1 {
		frac = 1
	}
	n := int(frac * width)
	if len(name) > 40 {
		name = "…" + name[len(name)-39:]
	}
	fmt.Fprintf(b.w, "\r\033[K%s [%s%s] %3.0f%% %s/%s", name, strings.Repeat("#", n), strings.Repeat("-", width-n), frac*100, textio.FormatBytes(done), textio.FormatBytes(total))
	b.drawn = true
}

func (b *progressBar) clear() {
	if b.drawn {
		fmt.Fprint(b.w, "\r\033[K")
		b.drawn = false
	}
}
