package prcheck_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelsync/modelsync/internal/github/prcheck"
	"github.com/modelsync/modelsync/internal/repo"
	"github.com/modelsync/modelsync/policy"
)

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

// compare builds the example repository, applies edit on a branch and
// compares main with it.
func compare(t *testing.T, edit func(dir string)) (*prcheck.Comparison, prcheck.Repository) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "models")
	script, _ := filepath.Abs("../../../test/scripts/example-repo.sh")
	cmd := exec.Command("bash", script, dir)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("example-repo.sh: %v\n%s", err, out)
	}
	git(t, dir, "checkout", "--quiet", "-b", "change")
	edit(dir)
	git(t, dir, "add", "-A")
	git(t, dir, "commit", "--quiet", "-m", "change")
	snap, err := repo.Open(context.Background(), repo.Options{URL: dir, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	r := prcheck.FromSnapshot(snap)
	refs := prcheck.Refs{BaseBranch: "main", BaseRef: "main", HeadRef: "change", BaseSHA: git(t, dir, "rev-parse", "main"), HeadSHA: git(t, dir, "rev-parse", "change")}
	c, err := prcheck.Compare(context.Background(), r, refs)
	if err != nil {
		t.Fatal(err)
	}
	return c, r
}

// lineOf is the 1-based line of the first occurrence of s in the file.
func lineOf(t *testing.T, path, s string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(b), s)
	if i < 0 {
		t.Fatalf("%s lacks %q", path, s)
	}
	return strings.Count(string(b[:i]), "\n") + 1
}

func replaceIn(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s lacks %q", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCompareCanaryAndBranchEnvironments(t *testing.T) {
	c, r := compare(t, func(dir string) {
		replaceIn(t, filepath.Join(dir, "models/customer-churn-predictor/model.yaml"),
			"    staging:\n      version: 4\n", "    staging:\n      version: 4\n      canary:\n        version: 5\n        weight: 10\n")
	})
	if len(c.Changes) != 1 {
		t.Fatalf("changes = %+v", c.Changes)
	}
	want := policy.Change{Model: "customer-churn-predictor", Environment: "staging", FromVersion: 4, ToVersion: 4, CanaryTo: 5}
	if c.Changes[0] != want {
		t.Fatalf("change = %+v, want %+v", c.Changes[0], want)
	}
	if envs := c.AffectedEnvironments(); len(envs) != 1 || envs[0] != "staging" {
		t.Fatalf("affected = %v", envs)
	}
	if len(c.Releases) != 0 {
		t.Fatalf("a staging change made a release: %v", c.Releases)
	}
	if c.PolicyChanged {
		t.Fatal("PolicyChanged without a policy edit")
	}
	src, err := prcheck.PolicySource(r, c.Refs)
	if err != nil || src.String() != "embedded" {
		t.Fatalf("policy source = %v, %v; want the embedded default (the base has no policy/)", src, err)
	}
	ev, err := prcheck.LoadPolicy(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := prcheck.Evaluate(context.Background(), c, ev, prcheck.Request{PR: policy.PullRequest{Number: 9, Author: "carol"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Changes) != 1 || rep.Changes[0].From != "v4" || rep.Changes[0].To != "v4 + canary v5 @ 10%" {
		t.Fatalf("rows = %+v", rep.Changes)
	}
	// Without registry facts the canary's metrics are missing: staging is
	// denied, prod (untouched) is not.
	if rep.Passed() || rep.EnvironmentPassed("staging") || !rep.EnvironmentPassed("prod") {
		t.Fatalf("verdicts: overall %v, staging %v, prod %v; denies %+v", rep.Passed(), rep.EnvironmentPassed("staging"), rep.EnvironmentPassed("prod"), rep.Result.Denies)
	}
}

func TestMarkdownEscapesUserText(t *testing.T) {
	rep := &prcheck.Report{
		Refs:   prcheck.Refs{BaseRef: "main", HeadRef: "x`y"},
		Result: policy.Result{Denies: []policy.Violation{{Rule: "r.x", Title: "T", Message: "a | b <script>\nnext", Model: "m", Environment: "prod"}}},
	}
	md := prcheck.Markdown(rep)
	if strings.Contains(md, "<script>") || !strings.Contains(md, `a \| b &lt;script&gt; next`) || strings.Contains(md, "x`y") {
		t.Fatalf("markdown not escaped:\n%s", md)
	}
	if !strings.Contains(md, "denied") {
		t.Fatalf("verdict missing:\n%s", md)
	}
}

// The plan comment shows what modelsync.yaml changes, the release column
// only where the environment follows releases, and counts in the singular
// when there is one (issue 13).
func TestMarkdownPlanIsTruthful(t *testing.T) {
	var pruneLine int
	c, r := compare(t, func(dir string) {
		churn := filepath.Join(dir, "models/customer-churn-predictor/model.yaml")
		replaceIn(t, churn, "    staging:\n      version: 4\n", "    staging:\n      version: 5\n")
		replaceIn(t, churn, "    prod:\n      version: 3\n", "    prod:\n      version: 4\n")
		cfg := filepath.Join(dir, "modelsync.yaml")
		replaceIn(t, cfg, "prune: false", "prune: true")
		pruneLine = lineOf(t, cfg, "prune: true")
	})
	src, err := prcheck.PolicySource(r, c.Refs)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := prcheck.LoadPolicy(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	rep, _ := prcheck.Evaluate(context.Background(), c, ev, prcheck.Request{PR: policy.PullRequest{Number: 9, Author: "carol"}})
	md := prcheck.Markdown(rep)
	for _, want := range []string{
		"| customer-churn-predictor | prod | v3 | v4 | v1.1.0 → v1.1.1 |",
		"| customer-churn-predictor | staging | v4 | v5 | - |",
		"**`modelsync.yaml` changes 3 environment settings.**",
		fmt.Sprintf("| prod | `prune` | false | true | modelsync.yaml:%d |", pruneLine),
		"no registry configured: performance rules cannot be judged",
		"`approvals.config_too_few`",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "the registry has no") {
		t.Errorf("blames the registry although none is configured:\n%s", md)
	}
	if got := rep.Environments(); strings.Join(got, ",") != "prod,staging,dev" {
		t.Errorf("environments = %v", got)
	}
	var text strings.Builder
	if err := prcheck.WriteText(&text, &prcheck.Report{Result: policy.Result{Warnings: []policy.Violation{{Rule: "x", Message: "m"}}}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "Result: passed (1 warning)\n") {
		t.Errorf("singular warning:\n%s", text.String())
	}
}

func TestPlural(t *testing.T) {
	for n, want := range map[int]string{0: "0 changes", 1: "1 change", 2: "2 changes"} {
		if got := prcheck.Plural(n, "change"); got != want {
			t.Errorf("Plural(%d) = %q, want %q", n, got, want)
		}
	}
}
