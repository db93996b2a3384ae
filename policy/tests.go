package policy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestReport is the outcome of a bundle's Rego unit tests.
type TestReport struct {
	Results []TestResult `json:"results"`
	Passed  int          `json:"passed"`
	Failed  int          `json:"failed"`
	Errored int          `json:"errored"`
	Skipped int          `json:"skipped"`
	// Coverage is the percentage of policy lines (test files excluded) the
	// tests evaluated.
	Coverage float64 `json:"coverage"`
	// Files maps each policy file to its coverage.
	Files map[string]FileCoverage `json:"files"`
}

// FileCoverage is the coverage of one policy file.
type FileCoverage struct {
	Coverage float64 `json:"coverage"`
	// NotCovered lists the lines no test evaluated.
	NotCovered []int `json:"not_covered,omitempty"`
}

// TestResult is one Rego test.
type TestResult struct {
	Package  string        `json:"package"`
	Name     string        `json:"name"`
	Location string        `json:"location"`
	Fail     bool          `json:"fail,omitempty"`
	Skip     bool          `json:"skip,omitempty"`
	Error    string        `json:"error,omitempty"`
	Output   string        `json:"output,omitempty"`
	Duration time.Duration `json:"duration"`
}

// ErrNoTests means a bundle has no Rego tests, which must not count as a
// pass (opa test --fail-on-empty).
var ErrNoTests = errors.New("policy bundle has no Rego tests")

// TestFailureError lists the tests that failed or raised an error.
type TestFailureError struct {
	Tests []string
}

func (e *TestFailureError) Error() string {
	return fmt.Sprintf("%d Rego test(s) failed: %s", len(e.Tests), strings.Join(e.Tests, ", "))
}

// RunTests runs the bundle's _test.rego tests in-process with the OPA test
// runner and measures coverage of the policy files. It returns the report
// together with ErrNoTests when no test ran, or a *TestFailureError when
// any failed.
func RunTests(ctx context.Context, src Source) (TestReport, error) {
	var rep TestReport
	b, err := readBundle(ctx, src)
	if err != nil {
		return rep, err
	}
	store := inmem.NewWithOpts(inmem.OptRoundTripOnWrite(false))
	txn, err := store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		return rep, fmt.Errorf("policy tests %s: %w", src, err)
	}
	defer store.Abort(ctx, txn)
	cov := cover.New()
	// Tests run on bundles read from models repositories too (policy test
	// DIR): the network and runtime built-ins the gate refuses are refused
	// here as well, at compile time.
	blocked := make(map[string]struct{}, len(unsafeBuiltins))
	for _, name := range unsafeBuiltins {
		blocked[name] = struct{}{}
	}
	compiler := ast.NewCompiler().WithUnsafeBuiltins(blocked).WithEnablePrintStatements(true)
	runner := tester.NewRunner().
		SetCompiler(compiler).
		SetStore(store).
		SetBundles(map[string]*bundle.Bundle{"modelsync": b}).
		SetDefaultRegoVersion(ast.RegoV1).
		SetCoverageQueryTracer(cov).
		CapturePrintOutput(true).
		RaiseBuiltinErrors(true).
		SetTimeout(30 * time.Second)
	ch, err := runner.RunTests(ctx, txn)
	if err != nil {
		return rep, fmt.Errorf("policy tests %s: %w", src, err)
	}
	var failed []string
	for r := range ch {
		tr := TestResult{
			Package:  strings.TrimPrefix(r.Package, "data."),
			Name:     r.Name,
			Fail:     r.Fail,
			Skip:     r.Skip,
			Output:   string(r.Output),
			Duration: r.Duration,
		}
		if r.Location != nil {
			tr.Location = fmt.Sprintf("%s:%d", r.Location.File, r.Location.Row)
		}
		switch {
		case r.Error != nil:
			tr.Error = r.Error.Error()
			rep.Errored++
			failed = append(failed, tr.Package+"."+tr.Name)
		case r.Fail:
			rep.Failed++
			failed = append(failed, tr.Package+"."+tr.Name)
		case r.Skip:
			rep.Skipped++
		default:
			rep.Passed++
		}
		rep.Results = append(rep.Results, tr)
	}
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("policy tests %s: %w", src, err)
	}
	slices.SortFunc(rep.Results, func(a, b TestResult) int {
		return cmp.Or(strings.Compare(a.Package, b.Package), strings.Compare(a.Name, b.Name))
	})
	cr := cov.Report(policyModules(b))
	rep.Files = map[string]FileCoverage{}
	var covered, notCovered int
	for file, fr := range cr.Files {
		// The tracer also reports the test modules it ran; they are not
		// policy and would only inflate the figures, the total included.
		if isTestFile(file) {
			continue
		}
		covered, notCovered = covered+fr.CoveredLines, notCovered+fr.NotCoveredLines
		fc := FileCoverage{Coverage: fr.Coverage}
		for _, rg := range fr.NotCovered {
			for row := rg.Start.Row; row <= rg.End.Row; row++ {
				fc.NotCovered = append(fc.NotCovered, row)
			}
		}
		slices.Sort(fc.NotCovered)
		fc.NotCovered = slices.Compact(fc.NotCovered)
		rep.Files[file] = fc
	}
	if covered+notCovered > 0 {
		rep.Coverage = 100 * float64(covered) / float64(covered+notCovered)
	}
	if len(rep.Results) == 0 || rep.Passed+rep.Failed+rep.Errored == 0 {
		return rep, fmt.Errorf("policy tests %s: %w", src, ErrNoTests)
	}
	if len(failed) > 0 {
		slices.Sort(failed)
		return rep, &TestFailureError{Tests: failed}
	}
	return rep, nil
}
