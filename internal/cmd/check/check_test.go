package check_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelsync/modelsync/internal/cmd/check"
	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/github/prcheck"
	"github.com/modelsync/modelsync/internal/wiring"
)

const churnFile = "models/customer-churn-predictor/model.yaml"

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Carol", "GIT_AUTHOR_EMAIL=carol@example.com", "GIT_COMMITTER_NAME=Carol", "GIT_COMMITTER_EMAIL=carol@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// exampleRepo builds the example models repository (history and release
// tags) with the repository's own script.
func exampleRepo(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "models")
	script, err := filepath.Abs("../../../test/scripts/example-repo.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", script, dir)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("example-repo.sh: %v\n%s", err, out)
	}
	return dir
}

func edit(t *testing.T, dir, rel, old, new string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s lacks %q", rel, old)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// promoteBranch creates branch name promoting churn v4 to prod.
func promoteBranch(t *testing.T, dir, name string) {
	t.Helper()
	git(t, dir, "checkout", "--quiet", "-b", name, "main")
	edit(t, dir, churnFile, "    prod:\n      version: 3\n", "    prod:\n      version: 4\n")
	git(t, dir, "commit", "--quiet", "-am", "Promote churn v4 to prod")
	git(t, dir, "checkout", "--quiet", "main")
}

func runCheck(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	cache := t.TempDir()
	f := wiring.New(cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, func(k string) string {
		if k == "MODELSYNC_CACHE_DIR" {
			return cache
		}
		return ""
	}, "")
	cmd := check.NewCmdCheck(f, nil)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	if err != nil && cmdutil.ExitCode(err) != cmdutil.ExitFailure {
		t.Fatalf("unexpected exit: %v", err)
	}
	if err != nil && err != cmdutil.ErrSilent {
		errOut.WriteString(err.Error())
	}
	return cmdutil.ExitCode(err), out.String(), errOut.String()
}

func TestCheckPromotionWithDefaultPolicy(t *testing.T) {
	dir := exampleRepo(t)
	promoteBranch(t, dir, "promote")

	code, out, stderr := runCheck(t, "--repo", dir, "--base", "main", "--head", "promote")
	if code != 1 {
		t.Fatalf("exit %d, want 1 (denied)\n%s\n%s", code, out, stderr)
	}
	for _, want := range []string{
		"customer-churn-predictor  prod  v3    v4",
		"v1.1.0 → v1.1.1",
		"[approvals.too_few]",
		// No registry facts are given, so the performance rule fails closed.
		"[performance.metric_missing]",
		"Policy: modelsync-default (embedded)",
		"Result: denied",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}

	code, out, _ = runCheck(t, "--repo", dir, "--base", "main", "--head", "promote", "-o", "github")
	if code != 1 {
		t.Fatalf("github output: exit %d", code)
	}
	var sawApprovals bool
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(l, "::error file=models/customer-churn-predictor/model.yaml,line=") && !strings.HasPrefix(l, "::warning ") {
			t.Errorf("not a workflow command with a manifest location: %q", l)
		}
		if strings.Contains(l, "(approvals.too_few)::") && strings.Contains(l, "line=14,") {
			sawApprovals = true
		}
	}
	if !sawApprovals {
		t.Errorf("no annotation of approvals.too_few on the prod line (14):\n%s", out)
	}

	code, out, _ = runCheck(t, "--repo", dir, "--base", "main", "--head", "promote", "-o", "json")
	var rep prcheck.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("json output: %v\n%s", err, out)
	}
	if code != 1 || len(rep.Changes) != 1 || rep.Changes[0].Change.FromVersion != 3 || rep.Changes[0].Change.ToVersion != 4 || rep.Passed() {
		t.Fatalf("json report = %+v", rep)
	}
}

func TestCheckNoChangePasses(t *testing.T) {
	dir := exampleRepo(t)
	code, out, stderr := runCheck(t, "--repo", dir, "--base", "main", "--head", "main")
	if code != 0 || !strings.Contains(out, "No model changes") || !strings.Contains(out, "Result: passed") {
		t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
	}
}

func TestCheckResolvesTagsAndAbbreviatedCommits(t *testing.T) {
	dir := exampleRepo(t)
	short := git(t, dir, "rev-parse", "--short=10", "main~1")
	// The head is the release tag of churn v1.1.0 (annotated), the base an
	// abbreviated commit: main~1 is that same commit, so nothing changes.
	code, out, stderr := runCheck(t, "--repo", dir, "--base", short, "--head", "customer-churn-predictor/v1.1.0")
	if code != 0 || !strings.Contains(out, "No model changes") {
		t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
	}
	code, _, stderr = runCheck(t, "--repo", dir, "--base", "main", "--head", "no-such-ref")
	if code != 1 || !strings.Contains(stderr, `ref "no-such-ref" is not a branch, tag or commit`) {
		t.Fatalf("unknown ref: exit %d, stderr %q", code, stderr)
	}
}

// A head that brings its own permissive policy/ is still judged by the
// base's rules (here the embedded default, since the base has none).
func TestCheckIgnoresHeadPolicy(t *testing.T) {
	dir := exampleRepo(t)
	promoteBranch(t, dir, "promote")
	git(t, dir, "checkout", "--quiet", "promote")
	if err := os.MkdirAll(filepath.Join(dir, "policy"), 0o755); err != nil {
		t.Fatal(err)
	}
	permissive := "package modelsync.rules.allow\n\ndeny contains msg if {\n\tfalse\n\tmsg := \"never\"\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "policy", "allow.rego"), []byte(permissive), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "add", "-A")
	git(t, dir, "commit", "--quiet", "-m", "Bring my own policy")
	git(t, dir, "checkout", "--quiet", "main")

	code, out, stderr := runCheck(t, "--repo", dir, "--base", "main", "--head", "promote")
	if code != 1 || !strings.Contains(out, "(embedded)") || !strings.Contains(out, "[approvals.too_few]") || !strings.Contains(out, "edits policy/") {
		t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
	}
}

func TestCheckFlags(t *testing.T) {
	f := wiring.New(cmdutil.IOStreams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}, func(string) string { return "" }, "")
	var got *check.Options
	cmd := check.NewCmdCheck(f, func(_ context.Context, o *check.Options) error { got = o; return nil })
	cmd.SetArgs([]string{"--base", "main", "--head", "feature", "--repo", "/r", "-o", "github"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.Base != "main" || got.Head != "feature" || got.Repo.URL != "/r" || got.Output != "github" {
		t.Fatalf("options = %+v", got)
	}
	for _, args := range [][]string{{"--base", "main"}, {"--base", "a", "--head", "b", "-o", "yaml"}} {
		cmd := check.NewCmdCheck(f, func(context.Context, *check.Options) error { return nil })
		cmd.SetArgs(args)
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		if err := cmd.Execute(); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
