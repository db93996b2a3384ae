// Package policy implements `modelsync policy` and its subcommand
// `modelsync policy test`: the Rego unit tests of the built-in policy bundle
// or of a user's bundle, run in-process with OPA's test runner, so a policy
// author needs no separate opa binary of a possibly different version.
package policy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/wiring"
	"github.com/modelsync/modelsync/policy"
)

// Exit codes of policy test, as documented in its help: 0 every test
// passed, 1 a test failed or raised an error, 2 the tests could not run
// (unreadable bundle, Rego syntax or compile error, no tests at all).
const (
	ExitPassed    = cmdutil.ExitOK
	ExitFailed    = cmdutil.ExitFailure
	ExitCouldNot  = 2
	builtinBundle = "built-in bundle"
)

// NewCmdPolicy groups the policy subcommands.
func NewCmdPolicy(f *wiring.Factory, runTest func(context.Context, *TestOptions) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Work with the Rego policy bundle of the pull-request gate",
		Example: `  modelsync policy test
  modelsync policy test ./models/policy -v --coverage`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(NewCmdTest(f, runTest))
	return cmd
}

// TestOptions are the inputs of policy test.
type TestOptions struct {
	Factory *wiring.Factory
	// Dir is the bundle directory; empty means the built-in bundle.
	Dir      string
	Verbose  bool
	Coverage bool
	Output   string
}

// NewCmdTest builds `policy test`; runF replaces the work in tests of flags.
func NewCmdTest(f *wiring.Factory, runF func(context.Context, *TestOptions) error) *cobra.Command {
	opts := &TestOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "test [DIR]",
		Short: "Run the Rego unit tests of the built-in policy bundle or of DIR",
		Long: `Test runs the Rego unit tests (rules named test_* in *_test.rego files) of a
policy bundle with OPA's test runner, in-process. Without DIR it tests the
bundle built into modelsync; with DIR, the bundle in that directory (for
example the policy/ directory of a models repository, which check uses
instead of the built-in rules).

Results are printed as opa test prints them: failures only, or every test
with -v. --coverage adds the share of policy lines (test files excluded)
the tests evaluated, per file.

Exit codes: 0 every test passed, 1 a test failed or raised an error,
2 the tests could not run (unreadable bundle, Rego syntax or compile
error, no tests found).`,
		Example: `  modelsync policy test
  modelsync policy test ./models/policy -v --coverage
  modelsync policy test ./models/policy -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cmdutil.CheckFormat(opts.Output, cmdutil.FormatText, cmdutil.FormatJSON); err != nil {
				return &cmdutil.ExitError{Code: ExitCouldNot, Err: err}
			}
			if len(args) == 1 {
				opts.Dir = args[0]
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return RunTest(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.Verbose, "verbose", "v", false, "print every test, not only failures, with its print() output")
	cmd.Flags().BoolVar(&opts.Coverage, "coverage", false, "print the coverage of each policy file")
	cmd.Flags().StringVarP(&opts.Output, "output", "o", cmdutil.FormatText, "output format: text or json")
	return cmd
}

// RunTest runs the tests and prints the report. The error's exit code
// tells a failed test (1) from tests that could not run (2).
func RunTest(ctx context.Context, opts *TestOptions) error {
	src, name := policy.DefaultSource(), builtinBundle
	if opts.Dir != "" {
		src, name = policy.DirSource(opts.Dir), opts.Dir
	}
	rep, err := policy.RunTests(ctx, src)
	var failed *policy.TestFailureError
	if err != nil && !errors.As(err, &failed) {
		// Nothing trustworthy ran: a syntax error, a missing directory or
		// a bundle without tests must not read as a pass or a failure.
		return &cmdutil.ExitError{Code: ExitCouldNot, Err: fmt.Errorf("policy test %s: %w", name, err)}
	}
	out := opts.Factory.IO.Out
	if opts.Output == cmdutil.FormatJSON {
		err = cmdutil.WriteJSON(out, jsonReport(rep, opts.Coverage))
	} else {
		err = WriteTestText(out, rep, opts.Verbose, opts.Coverage)
	}
	if err != nil {
		return &cmdutil.ExitError{Code: ExitCouldNot, Err: err}
	}
	if failed != nil {
		return &cmdutil.ExitError{Code: ExitFailed}
	}
	return nil
}

// testJSON is the -o json shape: the report, with coverage only when asked
// for and lists never null.
type testJSON struct {
	Passed   int                         `json:"passed"`
	Failed   int                         `json:"failed"`
	Errored  int                         `json:"errored"`
	Skipped  int                         `json:"skipped"`
	Results  []testResultJSON            `json:"results"`
	Coverage *float64                    `json:"coverage,omitempty"`
	Files    map[string]fileCoverageJSON `json:"files,omitempty"`
}

// fileCoverageJSON is policy.FileCoverage with camelCase keys, like every
// modelsync output.
type fileCoverageJSON struct {
	Coverage   float64 `json:"coverage"`
	NotCovered []int   `json:"notCovered"`
}

type testResultJSON struct {
	Package    string  `json:"package"`
	Name       string  `json:"name"`
	Location   string  `json:"location"`
	Result     string  `json:"result"`
	Error      string  `json:"error,omitempty"`
	Output     string  `json:"output,omitempty"`
	DurationMS float64 `json:"durationMs"`
}

func jsonReport(rep policy.TestReport, coverage bool) testJSON {
	out := testJSON{Passed: rep.Passed, Failed: rep.Failed, Errored: rep.Errored, Skipped: rep.Skipped, Results: []testResultJSON{}}
	for _, r := range rep.Results {
		out.Results = append(out.Results, testResultJSON{Package: r.Package, Name: r.Name, Location: r.Location,
			Result: outcome(r), Error: r.Error, Output: r.Output, DurationMS: float64(r.Duration.Microseconds()) / 1000})
	}
	if coverage {
		c := rep.Coverage
		out.Coverage, out.Files = &c, map[string]fileCoverageJSON{}
		for f, fc := range rep.Files {
			nc := fc.NotCovered
			if nc == nil {
				nc = []int{}
			}
			out.Files[f] = fileCoverageJSON{Coverage: fc.Coverage, NotCovered: nc}
		}
	}
	return out
}

func outcome(r policy.TestResult) string {
	switch {
	case r.Error != "":
		return "ERROR"
	case r.Fail:
		return "FAIL"
	case r.Skip:
		return "SKIPPED"
	}
	return "PASS"
}

// WriteTestText prints the report the way opa test does: tests grouped
// under their file, failures always, passes with verbose, then a rule and
// the counts.
func WriteTestText(w io.Writer, rep policy.TestReport, verbose, coverage bool) error {
	byFile := map[string][]policy.TestResult{}
	for _, r := range rep.Results {
		if verbose || r.Fail || r.Error != "" {
			file, _, _ := strings.Cut(r.Location, ":")
			byFile[file] = append(byFile[file], r)
		}
	}
	for _, file := range slices.Sorted(maps.Keys(byFile)) {
		fmt.Fprintf(w, "%s:\n", file)
		for _, r := range byFile[file] {
			fmt.Fprintf(w, "data.%s.%s: %s (%s)\n", r.Package, r.Name, outcome(r), r.Duration.Round(time.Microsecond))
			if r.Error != "" {
				fmt.Fprintf(w, "  %s\n", r.Error)
			}
			if r.Output != "" && (verbose || r.Fail || r.Error != "") {
				for _, line := range strings.Split(strings.TrimRight(r.Output, "\n"), "\n") {
					fmt.Fprintf(w, "  %s\n", line)
				}
			}
		}
		fmt.Fprintln(w)
	}
	if len(byFile) > 0 {
		fmt.Fprintln(w, strings.Repeat("-", 80))
	}
	total := len(rep.Results)
	for _, c := range []struct {
		label string
		n     int
	}{{"PASS", rep.Passed}, {"FAIL", rep.Failed}, {"SKIPPED", rep.Skipped}, {"ERROR", rep.Errored}} {
		if c.n > 0 {
			fmt.Fprintf(w, "%s: %d/%d\n", c.label, c.n, total)
		}
	}
	if coverage {
		writeCoverage(w, rep)
	}
	return nil
}

func writeCoverage(w io.Writer, rep policy.TestReport) {
	fmt.Fprintln(w)
	files := slices.SortedFunc(maps.Keys(rep.Files), func(a, b string) int {
		return cmp.Compare(filepath.ToSlash(a), filepath.ToSlash(b))
	})
	width := len("TOTAL")
	for _, f := range files {
		width = max(width, len(f))
	}
	for _, f := range files {
		fc := rep.Files[f]
		fmt.Fprintf(w, "%-*s  %6.2f%%", width, f, fc.Coverage)
		if len(fc.NotCovered) > 0 {
			fmt.Fprintf(w, "  not covered: %s", lineRanges(fc.NotCovered))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%-*s  %6.2f%%\n", width, "TOTAL", rep.Coverage)
}

// lineRanges compresses sorted line numbers, e.g. [3 4 5 9] into "3-5, 9".
func lineRanges(lines []int) string {
	var parts []string
	for i := 0; i < len(lines); {
		j := i
		for j+1 < len(lines) && lines[j+1] == lines[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, fmt.Sprint(lines[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", lines[i], lines[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}
