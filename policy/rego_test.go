package policy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestRegoUnitTests runs every _test.rego of the default bundle through the
// OPA test runner: a failing Rego test fails go test, and so does a bundle
// with no tests at all.
func TestRegoUnitTests(t *testing.T) {
	rep, err := RunTests(context.Background(), DefaultSource())
	for _, r := range rep.Results {
		if r.Fail || r.Error != "" {
			t.Errorf("%s %s.%s failed: %s\n%s", r.Location, r.Package, r.Name, r.Error, r.Output)
		}
	}
	if err != nil {
		t.Fatalf("RunTests: %v", err)
	}
	if rep.Passed == 0 {
		t.Fatal("no Rego test passed")
	}
	// Every rule package has tests of its own.
	perPackage := map[string]int{}
	for _, r := range rep.Results {
		perPackage[r.Package]++
	}
	for _, pkg := range []string{"approvals", "canary", "compliance", "dependencies", "gate", "modelcard", "performance", "promotion", "releases"} {
		if perPackage["modelsync.rules."+pkg+"_test"] == 0 {
			t.Errorf("no Rego tests for modelsync.rules.%s", pkg)
		}
	}
	t.Logf("%d Rego tests passed, coverage %.1f%%", rep.Passed, rep.Coverage)
	for file, fc := range rep.Files {
		if len(fc.NotCovered) > 0 {
			t.Errorf("%s: lines %v are not covered by any Rego test", file, fc.NotCovered)
		}
	}
}

func writeBundle(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestRunTestsFailsWithoutTests(t *testing.T) {
	dir := writeBundle(t, map[string]string{
		"p.rego": "package modelsync.rules.x\n\ndeny contains \"no\" if input.bad\n",
	})
	_, err := RunTests(context.Background(), DirSource(dir))
	if !errors.Is(err, ErrNoTests) {
		t.Fatalf("RunTests on a bundle without tests: err = %v, want ErrNoTests", err)
	}
}

func TestRunTestsReportsFailures(t *testing.T) {
	dir := writeBundle(t, map[string]string{
		"p.rego": "package modelsync.rules.x\n\ndeny contains \"no\" if input.bad\n",
		"p_test.rego": `package modelsync.rules.x_test

import data.modelsync.rules.x

test_denies_bad if {
	x.deny == {"no"} with input as {"bad": true}
}

test_wrong_expectation if {
	count(x.deny) == 1 with input as {}
}

test_builtin_error if {
	to_number("nan?") == 1
}
`,
	})
	rep, err := RunTests(context.Background(), DirSource(dir))
	var tf *TestFailureError
	if !errors.As(err, &tf) {
		t.Fatalf("err = %v, want *TestFailureError", err)
	}
	if rep.Passed != 1 || rep.Failed+rep.Errored != 2 {
		t.Fatalf("passed %d, failed %d, errored %d; want 1 passed and 2 failed or errored", rep.Passed, rep.Failed, rep.Errored)
	}
	if len(tf.Tests) != 2 {
		t.Fatalf("failed tests = %v", tf.Tests)
	}
}
