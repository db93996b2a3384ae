package rollback

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/apiauth"
	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/controller"
	"github.com/modelsync/modelsync/internal/gitsource"
	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/internal/repo"
	"github.com/modelsync/modelsync/internal/wiring"
	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/test/testenv"
)

const churn = "models/customer-churn-predictor/model.yaml"

func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	f := wiring.New(cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, func(k string) string { return env[k] }, "test")
	cmd := NewCmdRollback(f, nil)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	if err != nil {
		fmt.Fprintln(&errOut, "Error:", err)
	}
	return cmdutil.ExitCode(err), out.String(), errOut.String()
}

// fixture is the example repository on a real Git server, with one more
// commit on main that promotes churn v5 to staging (with comments in the
// manifest) and one that touches nothing of the model.
type fixture struct {
	git  *testenv.GitServer
	url  string // without credentials
	env  map[string]string
	work *testenv.Workdir
	// stagingV4 is the last commit at which staging ran v4.
	stagingV4 string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	g := testenv.NewGitServer(t)
	if _, err := g.NewBareRepo("models"); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "src")
	if out, err := exec.Command("../../../test/scripts/example-repo.sh", src).CombinedOutput(); err != nil {
		t.Fatalf("example-repo.sh: %v\n%s", err, out)
	}
	push := exec.Command("git", "-C", src, "push", "--quiet", "--tags", g.AuthHTTPURL("models"), "main")
	push.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_GLOBAL=/dev/null")
	if out, err := push.CombinedOutput(); err != nil {
		t.Fatalf("pushing the example repository: %v\n%s", err, out)
	}
	w := testenv.NewWorkdir(t, g.AuthHTTPURL("models"))
	fx := &fixture{git: g, url: g.HTTPURL + "models.git", work: w, stagingV4: w.Run("rev-parse", "HEAD")}
	b, err := os.ReadFile(filepath.Join(w.Dir, churn))
	if err != nil {
		t.Fatal(err)
	}
	promoted := strings.Replace(string(b), "    staging:\n      version: 4\n",
		"    # staging takes a candidate after a week in dev\n    staging:\n      version: 5   # promoted 2026-01-20\n", 1)
	if promoted == string(b) {
		t.Fatal("example manifest changed shape; update the fixture")
	}
	w.WriteFile(churn, promoted)
	w.Commit("Promote customer-churn-predictor v5 to staging")
	w.WriteFile("README.md", "models for modelsync tests\n")
	w.Commit("Add a README")
	w.Push()
	fx.env = map[string]string{
		gitsource.EnvUsername: g.Username,
		gitsource.EnvPassword: g.Password,
		"GIT_AUTHOR_NAME":     "Erin Oncall",
		"GIT_AUTHOR_EMAIL":    "erin@example.com",
		"MODELSYNC_CACHE_DIR": t.TempDir(),
	}
	return fx
}

// remote runs git against the server's current state.
func (fx *fixture) remote(t *testing.T, args ...string) string {
	t.Helper()
	fx.work.Run("fetch", "--quiet", "--prune", "--tags", "--force", "origin", "+refs/heads/*:refs/remotes/origin/*")
	return fx.work.Run(args...)
}

type pullRequest struct {
	Path, Auth              string
	Title, Head, Base, Body string
}

// newGitHub stands in for GitHub's REST API as documented for "Create a
// pull request": POST /repos/{owner}/{repo}/pulls with title, head, base
// and body, answered with 201 and the pull request.
func newGitHub(t *testing.T) (*httptest.Server, func() []pullRequest) {
	var mu sync.Mutex
	var got []pullRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/pulls") {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"message":"Not Found","documentation_url":"https://docs.github.com/rest"}`)
			return
		}
		var req struct{ Title, Head, Base, Body string }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"message":"Problems parsing JSON"}`)
			return
		}
		mu.Lock()
		got = append(got, pullRequest{Path: r.URL.Path, Auth: r.Header.Get("Authorization"), Title: req.Title, Head: req.Head, Base: req.Base, Body: req.Body})
		n := len(got) + 40
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{
			"id": 1000 + n, "number": n, "state": "open", "title": req.Title, "body": req.Body,
			"html_url": fmt.Sprintf("https://ghe.example.com/acme/models/pull/%d", n),
			"head":     map[string]any{"ref": req.Head}, "base": map[string]any{"ref": req.Base},
		})
	}))
	t.Cleanup(srv.Close)
	return srv, func() []pullRequest {
		mu.Lock()
		defer mu.Unlock()
		return append([]pullRequest(nil), got...)
	}
}

func TestRollbackOpensPullRequestWithMinimalEdit(t *testing.T) {
	fx := newFixture(t)
	gh, requests := newGitHub(t)
	env := fx.env
	env["GITHUB_TOKEN"] = "ghp_test_token"
	mainBefore := fx.remote(t, "rev-parse", "origin/main")

	code, out, errOut := run(t, env, "customer-churn-predictor", "--env", "staging", "--repo", fx.url,
		"--reason", "latency regression in v5", "--github-url", gh.URL, "--github-repo", "acme/models")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	// The previous version comes from history: staging ran v4 until the
	// promotion two commits back.
	for _, want := range []string{
		"Rolling back customer-churn-predictor in staging: v5 -> v4",
		"back to: v4, last run from main@sha1:" + fx.stagingV4,
		"Opened pull request #41: https://ghe.example.com/acme/models/pull/41",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	branch := "modelsync/rollback/customer-churn-predictor-staging-v4"
	prs := requests()
	if len(prs) != 1 {
		t.Fatalf("pull requests opened: %+v", prs)
	}
	pr := prs[0]
	if pr.Path != "/api/v3/repos/acme/models/pulls" || pr.Head != branch || pr.Base != "main" || pr.Auth != "Bearer ghp_test_token" ||
		pr.Title != "rollback: customer-churn-predictor in staging from v5 to v4" ||
		!strings.Contains(pr.Body, "**Reason:** latency regression in v5") || !strings.Contains(pr.Body, "main@sha1:"+fx.stagingV4) ||
		strings.Contains(pr.Body, "modelsync release") {
		t.Errorf("pull request = %+v", pr)
	}

	// main is untouched; the branch differs from it in exactly one line,
	// with the comments of that line and around it kept.
	if got := fx.remote(t, "rev-parse", "origin/main"); got != mainBefore {
		t.Errorf("main moved: %s -> %s", mainBefore, got)
	}
	before := strings.Split(fx.work.Run("show", "origin/main:"+churn), "\n")
	after := strings.Split(fx.work.Run("show", "origin/"+branch+":"+churn), "\n")
	if len(before) != len(after) {
		t.Fatalf("line count %d -> %d", len(before), len(after))
	}
	changed := 0
	for i := range before {
		if before[i] != after[i] {
			changed++
			if before[i] != "      version: 5   # promoted 2026-01-20" || after[i] != "      version: 4   # promoted 2026-01-20" {
				t.Errorf("line %d: %q -> %q", i+1, before[i], after[i])
			}
		}
	}
	if changed != 1 || !strings.Contains(strings.Join(after, "\n"), "    # staging takes a candidate after a week in dev\n    staging:") {
		t.Errorf("%d lines changed:\n%s", changed, strings.Join(after, "\n"))
	}
	msg := fx.work.Run("log", "-1", "--format=%an <%ae>%n%B", "origin/"+branch)
	for _, want := range []string{"Erin Oncall <erin@example.com>", "rollback: customer-churn-predictor in staging from v5 to v4",
		"Reason: latency regression in v5", "Modelsync-Rollback-To: v4 (main@sha1:" + fx.stagingV4 + ")"} {
		if !strings.Contains(msg, want) {
			t.Errorf("commit message lacks %q:\n%s", want, msg)
		}
	}
	if parent := fx.work.Run("rev-parse", "origin/"+branch+"^"); parent != mainBefore {
		t.Errorf("branch starts at %s, want main %s", parent, mainBefore)
	}

	// Proposing the same rollback again finds the branch and stops.
	code, _, errOut = run(t, env, "customer-churn-predictor", "--env", "staging", "--repo", fx.url, "--github-url", gh.URL, "--github-repo", "acme/models")
	if code != 1 || !strings.Contains(errOut, "branch already exists on the remote") || len(requests()) != 1 {
		t.Errorf("second proposal: exit %d, %d PRs\n%s", code, len(requests()), errOut)
	}

	// prod follows release tags: its previous version is the previous
	// release's, and the PR says a release must follow the merge, and what
	// else that release would ship: here a serving change and a model card
	// edit made on main since v1.1.0 (staging's promotion does not count).
	fx.work.Run("pull", "--quiet", "--ff-only", "origin", "main")
	fx.work.WriteFile("models/customer-churn-predictor/serving/overlays/prod/kustomization.yaml",
		fx.work.Run("show", "HEAD:models/customer-churn-predictor/serving/overlays/prod/kustomization.yaml")+"\ncommonLabels:\n  team: customer-analytics\n")
	b, err := os.ReadFile(filepath.Join(fx.work.Dir, churn))
	if err != nil {
		t.Fatal(err)
	}
	fx.work.WriteFile(churn, strings.Replace(string(b), "license: Proprietary", "license: Apache-2.0", 1))
	fx.work.Commit("Relabel churn serving, relicense")
	fx.work.Push()
	code, out, errOut = run(t, env, "customer-churn-predictor", "--env", "prod", "--repo", fx.url, "--github-url", gh.URL, "--github-repo", "acme/models")
	if code != 0 {
		t.Fatalf("prod: exit %d\n%s%s", code, out, errOut)
	}
	prs = requests()
	pr = prs[len(prs)-1]
	if pr.Head != "modelsync/rollback/customer-churn-predictor-prod-v2" || pr.Base != "main" ||
		!strings.Contains(pr.Body, "modelsync release customer-churn-predictor --push") ||
		!strings.Contains(out, "after merging, run\n  modelsync release customer-churn-predictor --push") ||
		!strings.Contains(out, "back to: v2, last run from customer-churn-predictor/v1.0.0@sha1:") {
		t.Errorf("prod pull request = %+v\n%s", pr, out)
	}
	for _, want := range []string{"- `models/customer-churn-predictor/model.yaml: spec.modelCard`", "- `models/customer-churn-predictor/serving/overlays/prod/kustomization.yaml`"} {
		if !strings.Contains(pr.Body, want) || !strings.Contains(errOut, strings.Trim(want, "- `")) {
			t.Errorf("unreleased change %s not reported:\n%s\n%s", want, pr.Body, errOut)
		}
	}
	if strings.Contains(pr.Body, "staging") {
		t.Errorf("staging's promotion is not part of a prod release:\n%s", pr.Body)
	}
	if tags := fx.remote(t, "tag", "--list", "customer-churn-predictor/*"); tags != "customer-churn-predictor/v1.0.0\ncustomer-churn-predictor/v1.1.0" {
		t.Errorf("a pull request must not tag a release; tags:\n%s", tags)
	}
}

func TestRollbackWithoutPreviousVersionFails(t *testing.T) {
	fx := newFixture(t)
	mainBefore := fx.remote(t, "rev-parse", "origin/main")
	code, out, errOut := run(t, fx.env, "fraud-detector-xgb", "--env", "dev", "--repo", fx.url, "--direct")
	if code != 1 || !strings.Contains(errOut, "no previous version of model fraud-detector-xgb in environment dev: the 3 commit(s) of branch main that have models/fraud-detector-xgb/model.yaml always name version 2; pass --to VERSION") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if got := fx.remote(t, "rev-parse", "origin/main"); got != mainBefore {
		t.Errorf("main moved: %s -> %s", mainBefore, got)
	}
	// Asking for the version already running is refused too. --repo names
	// a local checkout here, whose origin (with credentials in the URL) is
	// what gets cloned; the password never shows.
	env := map[string]string{"GIT_AUTHOR_NAME": "Erin Oncall", "GIT_AUTHOR_EMAIL": "erin@example.com"}
	code, _, errOut = run(t, env, "customer-churn-predictor", "--env", "prod", "--to", "3", "--repo", fx.work.Dir, "--direct")
	if code != 1 || !strings.Contains(errOut, "model customer-churn-predictor already runs version 3 in environment prod") || strings.Contains(errOut, fx.git.Password) {
		t.Errorf("--to current: exit %d %s", code, errOut)
	}
	// A pull request needs a token, checked before anything is pushed.
	code, _, errOut = run(t, fx.env, "customer-churn-predictor", "--env", "prod", "--repo", fx.url)
	if code != 1 || !strings.Contains(errOut, "needs a GitHub token in $GITHUB_TOKEN") {
		t.Errorf("no token: exit %d %s", code, errOut)
	}
	if got := fx.remote(t, "rev-parse", "origin/main"); got != mainBefore || fx.work.Run("branch", "--remotes", "--list", "origin/modelsync/*") != "" {
		t.Errorf("refused rollbacks changed the remote")
	}
}

func TestFlags(t *testing.T) {
	f := wiring.New(cmdutil.IOStreams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}, func(string) string { return "" }, "")
	var got *Options
	parse := func(args ...string) error {
		got = nil
		cmd := NewCmdRollback(f, func(_ context.Context, o *Options) error { got = o; return nil })
		cmd.SetArgs(args)
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		return cmd.Execute()
	}
	if err := parse("churn", "--env", "prod", "--to", "4", "--now", "--server", "http://ctl:8080", "--reason", "r", "--github-url", "https://ghe/api/v3", "--mlflow-uri", "http://m"); err != nil {
		t.Fatal(err)
	}
	if got.Model != "churn" || got.Env != "prod" || got.To != 4 || !got.Now || got.Direct || got.Server != "http://ctl:8080" || got.Reason != "r" ||
		got.GitHubURL != "https://ghe/api/v3" || f.Flags.MLflowURI != "http://m" || got.Repo.Branch != "main" {
		t.Errorf("options = %+v", got)
	}
	var help bytes.Buffer
	cmd := NewCmdRollback(f, nil)
	cmd.SetArgs([]string{"--help"})
	cmd.SetOut(&help)
	if err := cmd.Execute(); err != nil || !strings.Contains(help.String(), "Examples:\n  # propose going back") || !strings.Contains(help.String(), "--direct") {
		t.Errorf("help: %v\n%s", err, help.String())
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"churn"}, "--env is required"},
		{[]string{"churn", "--env", "prod", "--server", "http://x"}, "needs --now"},
		{[]string{"churn", "--env", "prod", "--to", "-1"}, "versions start at 1"},
		{[]string{"--env", "prod"}, "accepts 1 arg"},
	} {
		if err := parse(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) || got != nil {
			t.Errorf("%v: err %v, want %q", tc.args, err, tc.want)
		}
	}
}

// registerExample registers the example models in MLflow with enough
// versions for every environment of the example repository.
func registerExample(t *testing.T, c *mlflowclient.Client) {
	t.Helper()
	ctx := context.Background()
	for name, versions := range map[string]int{"customer-churn-predictor": 5, "llama2-7b-alpaca": 4, "fraud-detector-xgb": 2, "sentiment-bert-legacy": 3} {
		if _, err := c.CreateRegisteredModel(ctx, mlflowclient.CreateRegisteredModelRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
		for v := 1; v <= versions; v++ {
			if _, err := c.CreateModelVersion(ctx, mlflowclient.CreateModelVersionRequest{Name: name, Source: fmt.Sprintf("s3://models/%s/%d", name, v)}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestRollbackDirectReleaseNowPinsOnController(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	srv := testenv.NewMLflow(t, testenv.MLflowOptions{Major: 3})
	admin, err := mlflowclient.New(mlflowclient.Config{TrackingURI: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	registerExample(t, admin)
	auth := gitsource.Auth{Username: fx.git.Username, Password: fx.git.Password}

	// MLflow starts where Git is: apply the repository once.
	snap, err := repo.Open(ctx, repo.Options{URL: fx.url, CacheDir: t.TempDir(), Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	d, err := reconciler.ComputeDesired(snap, "main")
	if err != nil {
		t.Fatal(err)
	}
	wf := wiring.New(cmdutil.IOStreams{Out: io.Discard, ErrOut: io.Discard}, func(string) string { return "" }, "test")
	wf.Flags.MLflowURI = srv.URL
	targets, err := wf.Targets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p, err := reconciler.BuildPlan(ctx, d, targets)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := reconciler.Apply(ctx, p, targets, reconciler.ApplyOptions{}); err != nil || !res.OK() {
		t.Fatalf("initial apply: %+v %v", res, err)
	}
	if a, err := admin.ReadAliases(ctx, "customer-churn-predictor"); err != nil || a["prod"] != 3 || a["staging"] != 5 {
		t.Fatalf("aliases before: %v %v", a, err)
	}

	// The real controller serves the pins API.
	models, err := repo.New(context.Background(), repo.Options{URL: fx.url, CacheDir: t.TempDir(), Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { models.Close() })
	// The on-call engineer's token: the pin is recorded under its name.
	tokens := apiauth.NewStaticTokens()
	if err := tokens.Add("oncall-token-0123456789", "erin"); err != nil {
		t.Fatal(err)
	}
	c, err := controller.New(controller.Options{Git: models, Interval: time.Hour, APIAuth: []apiauth.Provider{tokens}})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done; c.Close() })
	for deadline := time.Now().Add(time.Minute); !c.Ready(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("controller did not complete its first fetch")
		}
	}
	api := httptest.NewServer(c.Handler())
	t.Cleanup(api.Close)

	env := fx.env
	env["MLFLOW_TRACKING_URI"] = srv.URL
	env["MODELSYNC_TOKEN"] = "oncall-token-0123456789"
	// The server comes from $MODELSYNC_SERVER, as for status and reconcile.
	env["MODELSYNC_SERVER"] = api.URL
	code, out, errOut := run(t, env, "customer-churn-predictor", "--env", "prod", "--repo", fx.url, "--direct", "--now",
		"--reason", "incident 4711")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	// Git: a commit on main and the next patch release on it.
	head := fx.remote(t, "rev-parse", "origin/main")
	if tagged := fx.work.Run("rev-parse", "customer-churn-predictor/v1.1.1^{commit}"); tagged != head {
		t.Errorf("release v1.1.1 at %s, main at %s", tagged, head)
	}
	if !strings.Contains(fx.work.Run("show", "customer-churn-predictor/v1.1.1:"+churn), "    prod:\n      version: 2\n") {
		t.Error("release v1.1.1 does not name version 2 for prod")
	}
	if !strings.Contains(out, "Tagged and pushed release customer-churn-predictor/v1.1.1") || strings.Contains(errOut, "also ships") {
		t.Errorf("output:\n%s", out)
	}
	// MLflow: the alias moved at once, recorded with the release revision.
	a, err := admin.ReadAliases(ctx, "customer-churn-predictor")
	if err != nil || a["prod"] != 2 || a["staging"] != 5 || a["dev"] != 5 {
		t.Errorf("aliases after: %v %v", a, err)
	}
	v2, err := admin.GetModelVersion(ctx, "customer-churn-predictor", 2)
	if err != nil || v2.Tags[mlflowclient.TagRevision] != "customer-churn-predictor/v1.1.1@sha1:"+head || v2.Tags[mlflowclient.TagEnvironments] != "prod" ||
		v2.Tags[mlflowclient.TagDeployedBy] != "Erin Oncall <erin@example.com>" {
		t.Errorf("version 2 tags %v %v", v2.Tags, err)
	}
	// The controller holds the pin.
	pins := c.Pins()
	if len(pins) != 1 || pins[0].Model != "customer-churn-predictor" || pins[0].Environment != "prod" || pins[0].Version != 2 ||
		!strings.HasPrefix(pins[0].Revision, "customer-churn-predictor/v1.0.0@sha1:") || pins[0].Actor != "token:erin" {
		t.Errorf("pins = %+v", pins)
	}

	// Without --server or $MODELSYNC_SERVER the rollback is applied, not
	// pinned, and says so.
	delete(env, "MODELSYNC_SERVER")
	code, out, errOut = run(t, env, "customer-churn-predictor", "--env", "staging", "--repo", fx.url, "--direct", "--now")
	if code != 0 || !strings.Contains(errOut, "warning: no --server or $MODELSYNC_SERVER given, the rollback is not pinned") {
		t.Fatalf("staging: exit %d\n%s%s", code, out, errOut)
	}
	if a, err := admin.ReadAliases(ctx, "customer-churn-predictor"); err != nil || a["staging"] != 4 || a["prod"] != 2 {
		t.Errorf("aliases after staging rollback: %v %v", a, err)
	}
	// A controller that refuses the pin — here, no token — fails the
	// command, which says the rollback is applied but not pinned.
	delete(env, "MODELSYNC_TOKEN")
	code, _, errOut = run(t, env, "customer-churn-predictor", "--env", "dev", "--to", "4", "--repo", fx.url, "--direct", "--now", "--server", api.URL)
	if code != 1 || !strings.Contains(errOut, "is applied but not pinned") || !strings.Contains(errOut, "HTTP 401") || !strings.Contains(errOut, "MODELSYNC_TOKEN") {
		t.Errorf("refused pin: exit %d %s", code, errOut)
	}
}
