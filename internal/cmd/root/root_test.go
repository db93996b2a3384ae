package root

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/wiring"
	"github.com/modelsync/modelsync/test/fixture"
)

func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	f := wiring.New(cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, func(k string) string { return env[k] }, "test")
	code := Main(context.Background(), f, args)
	return code, out.String(), errOut.String()
}

// exampleRepo builds the example repository with history and tags.
func exampleRepo(t *testing.T) string { return fixture.ExampleRepo(t) }

func TestValidateExample(t *testing.T) {
	code, out, _ := run(t, nil, "validate", "../../../manifests-example")
	if code != 0 || !strings.Contains(out, "4 model(s) valid, 0 invalid.") {
		t.Fatalf("code %d out %q", code, out)
	}
}

func TestValidateReportsEveryProblemAndExits1(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, "../../../manifests-example", dir)
	churn := filepath.Join(dir, "models/customer-churn-predictor/model.yaml")
	b, _ := os.ReadFile(churn)
	os.WriteFile(churn, bytes.Replace(b, []byte("      version: 3"), []byte("      version: three"), 1), 0o644)
	llama := filepath.Join(dir, "models/llama2-7b-alpaca/model.yaml")
	b, _ = os.ReadFile(llama)
	os.WriteFile(llama, bytes.Replace(b, []byte("steps: [20, 50, 80]"), []byte("steps: [50, 20]"), 1), 0o644)

	code, out, _ := run(t, nil, "validate", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{
		"models/customer-churn-predictor/model.yaml:15:16: spec.environments.prod.version: expected an integer, got \"three\"",
		"models/llama2-7b-alpaca/model.yaml:18:21: spec.environments.prod.canary.steps[1]: steps must be strictly ascending; 20 follows 50",
		"2 model(s) valid, 2 invalid.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = run(t, nil, "validate", dir, "-o", "json")
	var rep struct {
		Valid    bool
		Problems []struct {
			File, Field string
			Line        int
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 || rep.Valid || len(rep.Problems) != 2 || rep.Problems[0].Line != 15 {
		t.Fatalf("json: code %d err %v %+v", code, err, rep)
	}
}

func TestDesiredOnExampleRepo(t *testing.T) {
	dir := exampleRepo(t)
	env := map[string]string{"MODELSYNC_CACHE_DIR": t.TempDir()}
	code, out, errOut := run(t, env, "desired", "--repo", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"customer-churn-predictor  prod     v3",
		"customer-churn-predictor/v1.1.0@sha1:",
		"llama2-7b-alpaca          prod     v3       v4 @ 20%",
		"fraud-detector-xgb        dev      v2",
		"sentiment-bert-legacy     -        -        -         -        -               (in no environment)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("desired lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = run(t, env, "desired", "--repo", dir, "-o", "json")
	var d struct {
		Revision string
		Models   []struct {
			Name         string
			Environments []struct {
				Environment string
				Version     int
				Release     string
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil || code != 0 {
		t.Fatalf("json: %v %d", err, code)
	}
	if d.Models[0].Name != "customer-churn-predictor" || d.Models[0].Environments[2].Release != "customer-churn-predictor/v1.1.0" {
		t.Fatalf("desired json = %+v", d.Models[0])
	}
	code, out, _ = run(t, env, "desired", "--repo", dir, "-o", "yaml")
	if code != 0 || !strings.Contains(out, "revision: main@sha1:") {
		t.Fatalf("yaml output: %d %s", code, out)
	}
}

func TestPlanWithoutTargetsRefuses(t *testing.T) {
	dir := exampleRepo(t)
	code, _, errOut := run(t, map[string]string{"MODELSYNC_CACHE_DIR": t.TempDir()}, "plan", "--repo", dir)
	if code != 1 || !strings.Contains(errOut, "no targets configured") {
		t.Fatalf("exit %d stderr %q", code, errOut)
	}
}

func TestReleaseTagsNextVersion(t *testing.T) {
	dir := exampleRepo(t)
	env := map[string]string{"GIT_COMMITTER_NAME": "Rel Bot", "GIT_COMMITTER_EMAIL": "rel@example.com"}
	// Nothing under models/customer-churn-predictor changed since v1.1.0.
	code, _, errOut := run(t, env, "release", "customer-churn-predictor", "-C", dir)
	if code != 1 || !strings.Contains(errOut, "nothing under models/customer-churn-predictor changed since customer-churn-predictor/v1.1.0") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	churn := filepath.Join(dir, "models/customer-churn-predictor/model.yaml")
	b, _ := os.ReadFile(churn)
	os.WriteFile(churn, bytes.Replace(b, []byte("      version: 3"), []byte("      version: 4"), 1), 0o644)
	code, _, errOut = run(t, env, "release", "customer-churn-predictor", "-C", dir)
	if code != 1 || !strings.Contains(errOut, "uncommitted changes (models/customer-churn-predictor/model.yaml)") {
		t.Fatalf("dirty tree: exit %d: %s", code, errOut)
	}
	git(t, dir, "commit", "-qam", "Promote churn v4")
	code, out, errOut := run(t, env, "release", "customer-churn-predictor", "-C", dir, "--bump", "minor")
	if code != 0 || !strings.Contains(out, "Created tag customer-churn-predictor/v1.2.0") {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	if got := git(t, dir, "cat-file", "-t", "customer-churn-predictor/v1.2.0"); got != "tag" {
		t.Fatalf("tag object type %q, want an annotated tag", got)
	}
	if got := git(t, dir, "tag", "-l", "--format=%(taggername) %(contents:subject)", "customer-churn-predictor/v1.2.0"); got != "Rel Bot Release customer-churn-predictor v1.2.0" {
		t.Fatalf("tag = %q", got)
	}
}

func TestFlagsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"release", "churn", "--bump", "huge"}, `--bump must be major, minor or patch, got "huge"`},
		{[]string{"desired", "-o", "xml"}, `unknown output format "xml"`},
		{[]string{"plan", "--target", "mlflow", "extra"}, `unknown command "extra"`},
	} {
		code, _, errOut := run(t, nil, tc.args...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d stderr %q, want %q", tc.args, code, errOut, tc.want)
		}
	}
	for _, c := range NewCmdRoot(wiring.New(cmdutil.IOStreams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}, func(string) string { return "" }, "")).Commands() {
		if c.Example == "" {
			t.Errorf("command %s has no example in --help", c.Name())
		}
	}
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=T", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=T", "GIT_COMMITTER_EMAIL=t@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-R", src+"/.", dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
}

// The original design's arithmetic: 100 versions of a 7 GB model cost about
// $16.1 a month in STANDARD and $2.8 in GLACIER_IR (S3 bills GB = 2^30).
func TestCostEstimateReproducesDesignArithmetic(t *testing.T) {
	code, out, errOut := run(t, nil, "cost", "--estimate", "100x7GiB")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	flat := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{"STANDARD $16.10 $0.00 (0%)", "GLACIER_IR $2.80 $13.30 (83%)", "GLACIER $2.52", "DEEP_ARCHIVE $0.69"} {
		if !strings.Contains(flat, want) {
			t.Errorf("estimate lacks %q:\n%s", want, out)
		}
	}
	if code, _, errOut := run(t, nil, "cost", "--estimate", "lots"); code != 1 || !strings.Contains(errOut, "expected VERSIONSxSIZE") {
		t.Errorf("bad estimate: exit %d %s", code, errOut)
	}
}

// validate refuses an environment following a branch that is neither listed
// in allowedSources nor --branch, and two environments sharing a namespace
// (issue 13), naming file, line and field.
func TestValidateRefusesRewiredEnvironments(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, "../../../manifests-example", dir)
	cfg := filepath.Join(dir, "modelsync.yaml")
	b, _ := os.ReadFile(cfg)
	b = bytes.Replace(b, []byte("    source: releases\n"), []byte("    source: hotfix\n"), 1)
	b = bytes.Replace(b, []byte("namespace: models-staging"), []byte("namespace: models-prod"), 1)
	os.WriteFile(cfg, b, 0o644)
	code, out, _ := run(t, nil, "validate", dir)
	for _, want := range []string{
		`modelsync.yaml:14:16: environments[2].namespace: expected a namespace no other environment uses; "models-prod" is already environments[1] (staging)'s namespace`,
		`modelsync.yaml:15:13: environments[2].source: expected "releases" or a branch listed in allowedSources (main), got "hotfix"`,
		"modelsync.yaml is invalid",
	} {
		if code != 1 || !strings.Contains(out, want) {
			t.Errorf("exit %d, output lacks %q:\n%s", code, want, out)
		}
	}

	// Without allowedSources the --branch is the one branch allowed.
	b = bytes.Replace(b, []byte("allowedSources: [main]\n"), nil, 1)
	b = bytes.Replace(b, []byte("namespace: models-prod"), []byte("namespace: models-staging"), 1)
	os.WriteFile(cfg, b, 0o644)
	code, out, _ = run(t, nil, "validate", dir)
	if want := `modelsync.yaml:15:13: environments[2].source: expected "releases" or "main" (the branch modelsync.yaml is read from), got "hotfix"; list other branches in allowedSources`; code != 1 || !strings.Contains(out, want) {
		t.Errorf("exit %d, output lacks %q:\n%s", code, want, out)
	}
	if code, out, _ = run(t, nil, "validate", dir, "--branch", "hotfix"); code != 1 || !strings.Contains(out, `environments[0].source: expected "releases" or "hotfix"`) {
		t.Errorf("--branch hotfix: exit %d:\n%s", code, out)
	}
}

// issue 14, point 1: in a CI-shaped checkout (a clone detached on a merge
// commit no ref points at, branches only under refs/remotes/origin/) the
// command's own help example works, and so does desired.
func TestCheckAndDesiredInCICheckout(t *testing.T) {
	origin := exampleRepo(t)
	git(t, origin, "checkout", "-q", "-b", "dev-v4")
	churn := filepath.Join(origin, "models/customer-churn-predictor/model.yaml")
	b, _ := os.ReadFile(churn)
	os.WriteFile(churn, bytes.Replace(b, []byte("    dev:\n      version: 5\n"), []byte("    dev:\n      version: 4\n"), 1), 0o644)
	git(t, origin, "commit", "-qam", "dev back to v4")
	git(t, origin, "checkout", "-q", "main")
	ci, merge := fixture.CIClone(t, origin, "dev-v4", false)
	env := map[string]string{"MODELSYNC_CACHE_DIR": t.TempDir()}

	for _, base := range []string{"origin/main", "refs/remotes/origin/main", "main", "HEAD~1", "@^1", merge[:8] + "^"} {
		code, out, errOut := run(t, env, "check", "--repo", ci, "--base", base, "--head", "HEAD")
		if code != 0 || !strings.Contains(out, "customer-churn-predictor  dev  v5    v4") || !strings.Contains(out, "Result: passed") {
			t.Errorf("check --base %s --head HEAD: exit %d\n%s%s", base, code, out, errOut)
		}
	}
	code, out, errOut := run(t, env, "check", "--repo", ci, "--base", "origin/main", "--head", "@", "-o", "json")
	var rep struct {
		Refs struct{ BaseBranch, HeadSHA string }
	}
	if err := json.Unmarshal([]byte(out), &rep); code != 0 || err != nil || rep.Refs.BaseBranch != "main" || rep.Refs.HeadSHA != merge {
		t.Errorf("check -o json: exit %d, refs %+v (%v), want base branch main, head %s\n%s", code, rep.Refs, err, merge, errOut)
	}
	code, out, errOut = run(t, env, "desired", "--repo", ci, "-o", "json")
	if code != 0 || !strings.Contains(out, "customer-churn-predictor") || !strings.Contains(out, "customer-churn-predictor/v1.1.0") {
		t.Errorf("desired in the CI checkout: exit %d\n%s%s", code, out, errOut)
	}
}

// issue 14, point 6: a CI checkout fetched without tags cannot say what
// prod runs; desired and check say so instead of leaving prod out.
func TestTaglessCloneWarnsOfReleaseEnvironments(t *testing.T) {
	origin := exampleRepo(t)
	git(t, origin, "checkout", "-q", "-b", "dev-v4")
	churn := filepath.Join(origin, "models/customer-churn-predictor/model.yaml")
	b, _ := os.ReadFile(churn)
	os.WriteFile(churn, bytes.Replace(b, []byte("    dev:\n      version: 5\n"), []byte("    dev:\n      version: 4\n"), 1), 0o644)
	git(t, origin, "commit", "-qam", "dev back to v4")
	git(t, origin, "checkout", "-q", "main")
	ci, _ := fixture.CIClone(t, origin, "dev-v4", true)
	env := map[string]string{"MODELSYNC_CACHE_DIR": t.TempDir()}

	code, out, errOut := run(t, env, "desired", "--repo", ci)
	if code != 0 || !strings.Contains(out, "! customer-churn-predictor/prod: left out: prod follows releases, expected a release tag customer-churn-predictor/vX.Y.Z, and the repository has no release tags at all") {
		t.Errorf("desired text: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = run(t, env, "desired", "--repo", ci, "-o", "json")
	var d struct {
		Warnings []struct{ Model, Environment, Message string }
	}
	if err := json.Unmarshal([]byte(out), &d); code != 0 || err != nil || len(d.Warnings) != 2 {
		t.Errorf("desired JSON: exit %d, %v, warnings %+v (want churn and llama prod)\n%s", code, err, d.Warnings, out)
	}
	// The change to churn would cut its first release as far as this clone
	// knows, so prod is gated (denied); llama's prod is named as unknown.
	code, out, errOut = run(t, env, "check", "--repo", ci, "--base", "origin/main", "--head", "HEAD")
	if code != 1 || !strings.Contains(out, "Left out of the check") || strings.Count(out, "! llama2-7b-alpaca/prod: left out") != 1 {
		t.Errorf("check text: exit %d\n%s%s", code, out, errOut)
	}
	_, out, _ = run(t, env, "check", "--repo", ci, "--base", "origin/main", "--head", "HEAD", "-o", "json")
	var rep struct {
		DesiredWarnings []struct{ Model, Environment string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.DesiredWarnings) != 2 || rep.DesiredWarnings[0].Environment != "prod" {
		t.Errorf("check JSON: %v %+v\n%s", err, rep.DesiredWarnings, out)
	}
}
