package policy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"errors"

	"github.com/modelsync/modelsync/internal/cmd/policy"
	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/wiring"
)

// run executes `policy ARGS` as the binary does: the error printed as
// root.Main prints it and turned into the exit code the process returns.
// (The root command's own tests prove that policy is registered.)
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	if len(args) == 0 || args[0] != "policy" {
		t.Fatalf("run wants a policy command line, got %q", args)
	}
	var out, errOut bytes.Buffer
	f := wiring.New(cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, func(string) string { return "" }, "test")
	cmd := policy.NewCmdPolicy(f, nil)
	cmd.SetArgs(args[1:])
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	var ee *cmdutil.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.Err == nil) {
		errOut.WriteString("Error: " + err.Error() + "\n")
	}
	return cmdutil.ExitCode(err), out.String(), errOut.String()
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

const rule = `package modelsync.rules.x

deny contains "no" if input.bad

warn contains "hm" if input.odd
`

const passingTest = `package modelsync.rules.x_test

import data.modelsync.rules.x

test_denies_bad if {
	x.deny == {"no"} with input as {"bad": true}
}
`

func TestPolicyTestBuiltinBundlePasses(t *testing.T) {
	code, out, errOut := run(t, "policy", "test", "--coverage")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "PASS: ") || strings.Contains(out, "FAIL") {
		t.Fatalf("output:\n%s", out)
	}
	// Coverage lists policy files only, with a total.
	if !strings.Contains(out, "/rules/approvals.rego") || !strings.Contains(out, "TOTAL") || strings.Contains(out, "_test.rego  ") {
		t.Fatalf("coverage output:\n%s", out)
	}
}

func TestPolicyTestUserDirPassesAndVerboseListsEveryTest(t *testing.T) {
	dir := writeBundle(t, map[string]string{"x.rego": rule, "x_test.rego": passingTest})
	code, out, _ := run(t, "policy", "test", dir)
	if code != 0 || strings.TrimSpace(out) != "PASS: 1/1" {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
	code, out, _ = run(t, "policy", "test", dir, "-v", "--coverage")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"x_test.rego:\n",
		"data.modelsync.rules.x_test.test_denies_bad: PASS (",
		"PASS: 1/1",
		// warn is never evaluated by the test: line 5 is not covered,
		// and the total counts policy lines only, not the test's own.
		"x.rego", "not covered: 5", "TOTAL     50.00%",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("verbose output lacks %q:\n%s", want, out)
		}
	}
}

func TestPolicyTestFailingTestExits1(t *testing.T) {
	dir := writeBundle(t, map[string]string{"x.rego": rule, "x_test.rego": passingTest + `
test_wrong_expectation if {
	print("deny is", x.deny)
	count(x.deny) == 1 with input as {}
}
`})
	code, out, _ := run(t, "policy", "test", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	for _, want := range []string{"data.modelsync.rules.x_test.test_wrong_expectation: FAIL (", "PASS: 1/2", "FAIL: 1/2"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Without -v a passing test is not listed.
	if strings.Contains(out, "test_denies_bad") {
		t.Errorf("non-verbose output lists a passing test:\n%s", out)
	}
	code, out, _ = run(t, "policy", "test", dir, "-o", "json")
	if code != 1 {
		t.Fatalf("json: exit %d", code)
	}
	var rep struct {
		Passed, Failed int
		Results        []struct{ Name, Result string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.Passed != 1 || rep.Failed != 1 || len(rep.Results) != 2 {
		t.Fatalf("json report = %+v", rep)
	}
}

func TestPolicyTestCouldNotRunExits2(t *testing.T) {
	syntax := writeBundle(t, map[string]string{"x.rego": rule, "x_test.rego": "package modelsync.rules.x_test\n\ntest_broken if {\n\tinput.a ==\n}\n"})
	noTests := writeBundle(t, map[string]string{"x.rego": rule})
	for name, args := range map[string][]string{
		"syntax error": {"policy", "test", syntax},
		"no tests":     {"policy", "test", noTests},
		"missing dir":  {"policy", "test", filepath.Join(t.TempDir(), "nope")},
		// A bundle from a models repository may not reach the network.
		"network built-in": {"policy", "test", writeBundle(t, map[string]string{"x.rego": rule, "x_test.rego": passingTest + `
test_calls_out if {
	http.send({"method": "GET", "url": "http://127.0.0.1:1/"}).status_code == 200
}
`})},
	} {
		code, out, errOut := run(t, args...)
		if code != 2 {
			t.Errorf("%s: exit %d, want 2\n%s%s", name, code, out, errOut)
		}
		if !strings.Contains(errOut, "policy test ") {
			t.Errorf("%s: error does not name what was tested: %q", name, errOut)
		}
	}
	code, _, errOut := run(t, "policy", "test", syntax)
	if code != 2 || !strings.Contains(errOut, "x_test.rego:") {
		t.Errorf("syntax error does not name the file: %q", errOut)
	}
}
