package check_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/modelsync/modelsync/internal/cmd/check"
	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/github/prcheck"
	"github.com/modelsync/modelsync/internal/wiring"
	"github.com/modelsync/modelsync/policy"
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
	var ee *cmdutil.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("error without an exit code: %v", err)
	}
	if err != nil && ee.Err != nil {
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
	var rep check.JSONReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("json output: %v\n%s", err, out)
	}
	if code != 1 || len(rep.Changes) != 1 || rep.Changes[0].From != 3 || rep.Changes[0].To != 4 || rep.Changes[0].Display != "v3 → v4" || rep.Passed {
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
	if code != 2 || !strings.Contains(stderr, `ref "no-such-ref" is not a branch, tag or commit`) {
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

// branchWith creates branch name from main with edit applied to the working
// tree and committed.
func branchWith(t *testing.T, dir, name string, edit func()) {
	t.Helper()
	git(t, dir, "checkout", "--quiet", "-b", name, "main")
	edit()
	git(t, dir, "add", "-A")
	git(t, dir, "commit", "--quiet", "-m", name)
	git(t, dir, "checkout", "--quiet", "main")
}

const devEnv = "  - name: dev\n    namespace: models-dev\n    source: main\n"

// Each way of rewiring prod through modelsync.yaml that issue 13 found
// passing with "No model changes" and exit 0 is now denied, through the
// real check command.
func TestCheckDeniesConfigRewiring(t *testing.T) {
	dir := exampleRepo(t)
	cases := []struct {
		name string
		edit func()
		want []string
	}{
		{"prod source moved to a listed branch", func() {
			edit(t, dir, "modelsync.yaml", "    source: releases\n", "    source: main\n")
		}, []string{
			"prod  source   releases  main  15",
			"[approvals.config_too_few] modelsync.yaml changes prod: source (releases → main); that needs 2 approving reviews, the pull request has 0 (modelsync.yaml:15)",
			"[approvals.config_owner_missing]",
			"customer-churn-predictor (alice-ml, bob-data), llama2-7b-alpaca (carol-llm)",
		}},
		{"prod source moved to an arbitrary branch", func() {
			edit(t, dir, "modelsync.yaml", "    source: releases\n", "    source: hotfix\n")
		}, []string{
			"modelsync.yaml is invalid at the head: nothing can be planned until it is fixed.",
			`[gate.manifest_invalid] modelsync.yaml:15: environments[2].source: expected "releases" or a branch listed in allowedSources (main), got "hotfix" (modelsync.yaml:15)`,
			"Result: denied (1 violation, 0 warnings)",
		}},
		{"dev given alias prod", func() {
			edit(t, dir, "modelsync.yaml", devEnv, devEnv+"    alias: prod\n")
		}, []string{
			`[gate.manifest_invalid] modelsync.yaml:10: environments[0].alias: expected an alias no other environment uses; "prod" is the alias of environments[2] (prod) too`,
		}},
		{"dev given prod's namespace", func() {
			edit(t, dir, "modelsync.yaml", "namespace: models-dev", "namespace: models-prod")
		}, []string{
			`[gate.manifest_invalid] modelsync.yaml:14: environments[2].namespace: expected a namespace no other environment uses; "models-prod" is already environments[0] (dev)'s namespace`,
		}},
		{"mode both with dev moved last", func() {
			edit(t, dir, "modelsync.yaml", devEnv, "")
			edit(t, dir, "modelsync.yaml", "    source: releases\n", "    source: releases\n"+devEnv)
			edit(t, dir, "modelsync.yaml", "mode: aliases", "mode: both")
		}, []string{
			"prod     defaults.registry.mode  aliases             both",
			"prod     environments            dev, staging, prod  staging, prod, dev",
			"[approvals.config_too_few] modelsync.yaml changes prod: defaults.registry.mode (aliases → both), environments (dev, staging, prod → staging, prod, dev); that needs 2 approving reviews",
		}},
	}
	for i, tc := range cases {
		branch := fmt.Sprintf("rewire-%d", i)
		branchWith(t, dir, branch, tc.edit)
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := runCheck(t, "--repo", dir, "--base", "main", "--head", branch)
			if code != 1 || strings.Contains(out, "Result: passed") || strings.Contains(out, "No model changes") && !strings.Contains(out, "modelsync.yaml changes") {
				t.Fatalf("exit %d, want 1 (denied)\n%s\n%s", code, out, stderr)
			}
			for _, want := range append(tc.want, "Result: denied") {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}

	// The JSON report carries the configuration changes for other tools.
	_, out, _ := runCheck(t, "--repo", dir, "--base", "main", "--head", "rewire-0", "-o", "json")
	var rep check.JSONReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.ConfigChanges) != 1 || rep.ConfigChanges[0].Field != "source" || rep.ConfigChanges[0].To != "main" || rep.Passed {
		t.Fatalf("json report = %+v", rep)
	}
}

// Broken or oversized manifests are denied with file and line; a model is
// not silently dropped from judgement because it does not parse.
func TestCheckDeniesBrokenManifests(t *testing.T) {
	dir := exampleRepo(t)
	write := func(rel, body string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	branchWith(t, dir, "twenty-new", func() {
		for i := range 20 {
			write(fmt.Sprintf("models/bad-%02d/model.yaml", i), "apiVersion: modelsync.dev/v1alpha1\nkind: Model\nmetadata:\n  name: [\n")
		}
	})
	branchWith(t, dir, "huge", func() {
		write("models/huge/model.yaml", "# "+strings.Repeat("x", 5<<20)+"\n")
	})
	branchWith(t, dir, "broken-existing", func() {
		edit(t, dir, churnFile, "    prod:\n      version: 3\n", "    prod:\n      version: three\n")
	})
	branchWith(t, dir, "broken-config", func() {
		edit(t, dir, "modelsync.yaml", "prune: false", "prune: sometimes")
	})
	// The line of prune: in the example configuration, read rather than
	// written down so the test follows edits to the example.
	cfg, err := os.ReadFile(filepath.Join(dir, "modelsync.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	pruneLine := strings.Count(string(cfg[:strings.Index(string(cfg), "\nprune: ")+1]), "\n") + 1
	for _, tc := range []struct {
		branch string
		denies int
		want   []string
	}{
		{"twenty-new", 20, []string{"[gate.manifest_invalid] models/bad-00/model.yaml:4: invalid YAML", "(models/bad-19/model.yaml:4)"}},
		{"huge", 1, []string{"[gate.manifest_invalid] models/huge/model.yaml:1: file is 5242883 bytes; at most 1048576 are accepted (models/huge/model.yaml:1)"}},
		{"broken-existing", 1, []string{`[gate.manifest_invalid] models/customer-churn-predictor/model.yaml:15: spec.environments.prod.version: expected an integer, got "three" (models/customer-churn-predictor/model.yaml:15)`}},
		{"broken-config", 1, []string{fmt.Sprintf(`[gate.manifest_invalid] modelsync.yaml:%[1]d: prune: expected true or false, got "sometimes" (modelsync.yaml:%[1]d)`, pruneLine)}},
	} {
		t.Run(tc.branch, func(t *testing.T) {
			code, out, stderr := runCheck(t, "--repo", dir, "--base", "main", "--head", tc.branch)
			if code != 1 || strings.Count(out, "[gate.manifest_invalid]") != tc.denies {
				t.Fatalf("exit %d, want 1 with %d manifest_invalid denies\n%s\n%s", code, tc.denies, out, stderr)
			}
			for _, want := range tc.want {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			// A broken model keeps what it runs: it is not listed as leaving
			// its environments.
			if strings.Contains(out, "customer-churn-predictor  prod") {
				t.Errorf("a broken model is shown as a change:\n%s", out)
			}
		})
	}
}

// The plan is truthful: the release column only on environments that follow
// releases, a missing registry named as such, and counts in the singular
// when there is one.
func TestCheckPlanIsTruthful(t *testing.T) {
	dir := exampleRepo(t)
	branchWith(t, dir, "promote-both", func() {
		edit(t, dir, churnFile, "    staging:\n      version: 4\n", "    staging:\n      version: 5\n")
		edit(t, dir, churnFile, "    prod:\n      version: 3\n", "    prod:\n      version: 4\n")
	})
	code, out, stderr := runCheck(t, "--repo", dir, "--base", "main", "--head", "promote-both")
	if code != 1 {
		t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
	}
	for _, want := range []string{
		"customer-churn-predictor  prod     v3    v4  v1.1.0 → v1.1.1\n",
		"customer-churn-predictor  staging  v4    v5  -\n",
		"customer-churn-predictor v4 (version in prod): no registry configured: performance rules cannot be judged",
		"customer-churn-predictor v5 (version in staging): no registry configured: performance rules cannot be judged",
		"cannot enter prod: no registry configured: its time in staging cannot be judged",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "the registry has no") {
		t.Errorf("blames the registry although none is configured:\n%s", out)
	}
}

// failingEvaluator stands for a policy whose evaluation fails (a rule
// erroring at run time).
type failingEvaluator struct{}

func (failingEvaluator) Evaluate(context.Context, *policy.Input) (policy.Result, error) {
	return policy.Result{}, errors.New("rego: eval_conflict_error: functions must not produce multiple outputs")
}

// issue 14, point 3: 0 passed, 1 denied, 2 could not be judged; CI tells
// "fix the change" from "fix the job".
func TestCheckExitCodes(t *testing.T) {
	dir := exampleRepo(t)
	promoteBranch(t, dir, "promote")
	branchWith(t, dir, "broken-policy", func() {
		if err := os.MkdirAll(filepath.Join(dir, "policy"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "policy", "bad.rego"), []byte("package modelsync.rules.bad\n\ndeny contains msg if {\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		want int
		says string
	}{
		{"passed", []string{"--base", "main", "--head", "main"}, 0, ""},
		{"denied", []string{"--base", "main", "--head", "promote"}, 1, ""},
		{"unknown flag", []string{"--base", "main", "--head", "promote", "--no-such-flag"}, 2, "unknown flag"},
		{"missing --head", []string{"--base", "main"}, 2, "both --base and --head"},
		{"bad output format", []string{"--base", "main", "--head", "main", "-o", "yaml"}, 2, "unknown output format"},
		{"positional argument", []string{"--base", "main", "--head", "main", "extra"}, 2, "unknown command"},
		{"unknown ref", []string{"--base", "main", "--head", "nope"}, 2, `ref "nope"`},
		{"missing repository", []string{"--base", "main", "--head", "main", "--repo", filepath.Join(dir, "nope")}, 2, "nope"},
		{"policy does not load", []string{"--base", "broken-policy", "--head", "promote"}, 2, "policy from"},
		{"unreadable reviews", []string{"--base", "main", "--head", "promote", "--reviews", filepath.Join(dir, "nope.json")}, 2, "--reviews"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if !slices.Contains(args, "--repo") {
				args = append([]string{"--repo", dir}, args...)
			}
			code, out, stderr := runCheck(t, args...)
			if code != tc.want || !strings.Contains(stderr, tc.says) {
				t.Fatalf("exit %d, want %d with %q\n%s\n%s", code, tc.want, tc.says, out, stderr)
			}
		})
	}

	// A failed evaluation prints the report, fails closed, and exits 2.
	var out, errOut bytes.Buffer
	f := wiring.New(cmdutil.IOStreams{Out: &out, ErrOut: &errOut}, func(k string) string {
		if k == "MODELSYNC_CACHE_DIR" {
			return t.TempDir()
		}
		return ""
	}, "")
	cmd := check.NewCmdCheck(f, func(ctx context.Context, o *check.Options) error {
		o.LoadPolicy = func(context.Context, policy.Source) (prcheck.Evaluator, error) { return failingEvaluator{}, nil }
		return check.Run(ctx, o)
	})
	cmd.SetArgs([]string{"--repo", dir, "--base", "main", "--head", "promote"})
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	if code := cmdutil.ExitCode(err); code != 2 || !strings.Contains(out.String(), "eval_conflict_error") {
		t.Fatalf("failed evaluation: exit %d (%v), want 2 with the report\n%s", code, err, out.String())
	}
}
