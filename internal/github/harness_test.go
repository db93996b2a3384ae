package github_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ghub "github.com/modelsync/modelsync/internal/github"
	"github.com/modelsync/modelsync/internal/github/githubtest"
	"github.com/modelsync/modelsync/internal/prverdict"
	"github.com/modelsync/modelsync/internal/repo"
	"github.com/modelsync/modelsync/test/testenv"
)

const (
	churn     = "customer-churn-predictor"
	churnFile = "models/customer-churn-predictor/model.yaml"
)

var webhookSecret = []byte("webhook-secret-for-tests")

// modelsRepo is the example models repository on a real Git server, with
// a repository policy on main: the default bundle's library, gate and
// approval rules (no registry facts are needed for them).
type modelsRepo struct {
	URL string
	WD  *testenv.Workdir
}

func repoRoot(tb testing.TB) string {
	tb.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		tb.Fatal(err)
	}
	return root
}

func newModelsRepo(tb testing.TB) *modelsRepo {
	tb.Helper()
	gs := testenv.NewGitServer(tb)
	if _, err := gs.NewBareRepo("acme/models"); err != nil {
		tb.Fatal(err)
	}
	url := gs.DaemonURL + "acme/models.git"
	root := repoRoot(tb)
	src := filepath.Join(tb.TempDir(), "example")
	run(tb, "", "bash", filepath.Join(root, "test/scripts/example-repo.sh"), src)
	run(tb, src, "git", "push", "--quiet", url, "refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*")
	wd := testenv.NewWorkdir(tb, url)
	for _, f := range []string{".manifest", "data.json", "lib/lib.rego", "rules/gate.rego", "rules/approvals.rego"} {
		b, err := os.ReadFile(filepath.Join(root, "policy/bundle", f))
		if err != nil {
			tb.Fatal(err)
		}
		wd.WriteFile("policy/"+f, string(b))
	}
	wd.Commit("Add the repository policy")
	wd.Push("HEAD:main")
	return &modelsRepo{URL: url, WD: wd}
}

func run(tb testing.TB, dir, name string, args ...string) string {
	tb.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// branch creates branch name from main with edit applied, pushes it and
// returns the head commit and the changed files.
func (m *modelsRepo) branch(tb testing.TB, name string, edit func(wd *testenv.Workdir)) (string, []string) {
	tb.Helper()
	m.WD.Run("checkout", "--quiet", "-B", name, "origin/main")
	edit(m.WD)
	sha := m.WD.Commit("change on " + name)
	m.WD.Push("--force", "HEAD:refs/heads/"+name)
	return sha, m.files(tb, name)
}

func (m *modelsRepo) files(tb testing.TB, name string) []string {
	tb.Helper()
	m.WD.Run("fetch", "--quiet", "origin")
	out := m.WD.Run("diff", "--name-only", "origin/main...origin/"+name)
	return strings.Fields(out)
}

// setProd rewrites the churn model's prod version.
func setProd(tb testing.TB, wd *testenv.Workdir, from, to string) {
	tb.Helper()
	p := filepath.Join(wd.Dir, churnFile)
	b, err := os.ReadFile(p)
	if err != nil {
		tb.Fatal(err)
	}
	old := "    prod:\n      version: " + from + "\n"
	if !strings.Contains(string(b), old) {
		tb.Fatalf("%s has no prod version %s", churnFile, from)
	}
	wd.WriteFile(churnFile, strings.Replace(string(b), old, "    prod:\n      version: "+to+"\n", 1))
}

// harness is the webhook server and gate against the GitHub stand-in.
type harness struct {
	API  *githubtest.Server
	Gate *ghub.Gate
	URL  string
	// Verdicts is the gate's record of posted verdicts.
	Verdicts *prverdict.Log

	mu        sync.Mutex
	reconcile []string
	rollouts  []string
	n         int
}

func newHarness(tb testing.TB, repoURL string) *harness {
	tb.Helper()
	h := &harness{API: githubtest.New(tb, "acme", "models", "ghp_test_token")}
	// Retries as in production, with backoffs short enough for tests.
	client, err := ghub.NewClient(ghub.ClientOptions{Token: "ghp_test_token", BaseURL: h.API.URL,
		Retry: ghub.RetryPolicy{Attempts: 4, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}})
	if err != nil {
		tb.Fatal(err)
	}
	git, err := repo.New(context.Background(), repo.Options{URL: repoURL, CacheDir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { git.Close() })
	rs := ghub.NewRepoSync(git)
	if h.Verdicts, err = prverdict.Open(prverdict.Options{File: filepath.Join(tb.TempDir(), "pr-verdicts.jsonl")}); err != nil {
		tb.Fatal(err)
	}
	h.Gate, err = ghub.NewGate(ghub.GateOptions{
		Client: client, Repository: acme, Sync: rs.Sync, FetchPull: rs.FetchPullHead, TargetURL: "https://modelsync.example/prs", Verdicts: h.Verdicts,
		Hooks: ghub.Hooks{
			Reconcile: func(_ context.Context, branch, sha string) {
				h.mu.Lock()
				defer h.mu.Unlock()
				h.reconcile = append(h.reconcile, branch+"@"+sha)
			},
			Rollout: func(_ context.Context, model, tag string) {
				h.mu.Lock()
				defer h.mu.Unlock()
				h.rollouts = append(h.rollouts, model+" "+tag)
			},
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(h.Gate.Close)
	wh, err := ghub.NewWebhookHandler(ghub.WebhookOptions{Secret: webhookSecret, Handler: h.Gate})
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(wh)
	tb.Cleanup(srv.Close)
	h.URL = srv.URL + ghub.WebhookPath
	return h
}

// send delivers a signed event and returns the HTTP status, without
// waiting for the work it triggers.
func (h *harness) send(tb testing.TB, event string, payload any) int {
	tb.Helper()
	h.mu.Lock()
	h.n++
	id := fmt.Sprintf("delivery-%d", h.n)
	h.mu.Unlock()
	return githubtest.Deliver(tb, h.URL, githubtest.Delivery{Event: event, ID: id, Payload: payload, Secret: webhookSecret})
}

// sendAs delivers a signed event with a given delivery id, as JSON or
// form-encoded, without waiting for the work it triggers.
func (h *harness) sendAs(tb testing.TB, id string, form bool, event string, payload any) int {
	tb.Helper()
	return githubtest.Deliver(tb, h.URL, githubtest.Delivery{Event: event, ID: id, Payload: payload, Secret: webhookSecret, Form: form})
}

// deliver sends a signed event, expects it accepted and waits for the
// work it triggered.
func (h *harness) deliver(tb testing.TB, event string, payload any) {
	tb.Helper()
	if code := h.send(tb, event, payload); code != 202 {
		tb.Fatalf("%s delivery: status %d, want 202", event, code)
	}
	h.Gate.Wait()
}
