package rollback

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	ghub "github.com/modelsync/modelsync/internal/github"
	"github.com/modelsync/modelsync/internal/github/githubtest"
	"github.com/modelsync/modelsync/internal/gitsource"
	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/test/testenv"
)

func TestRemoveCanary(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"block, last key of the environment",
			"spec:\n  environments:\n    prod:\n      version: 3\n      canary:\n        version: 4\n        steps: [20, 50]\n        # the analysis\n        analysis:\n          interval: 1m\n\n  serving:\n    path: x\n",
			"spec:\n  environments:\n    prod:\n      version: 3\n\n  serving:\n    path: x\n"},
		{"block before the version, comment after it kept",
			"spec:\n  environments:\n    prod:\n      canary:\n        version: 4\n      # stable\n      version: 3\n",
			"spec:\n  environments:\n    prod:\n      # stable\n      version: 3\n"},
		{"flow mapping",
			"spec:\n  environments:\n    prod:\n      version: 3\n      canary: {version: 4, weight: 20}\n    dev:\n      version: 4\n",
			"spec:\n  environments:\n    prod:\n      version: 3\n    dev:\n      version: 4\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pos := positionsOf(t, tc.in)
			got, err := RemoveCanary("model.yaml", []byte(tc.in), pos, "prod")
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
	in := "spec:\n  environments:\n    prod:\n      version: 3\n      \"canary\":\n        version: 4\n"
	_, err := RemoveCanary("model.yaml", []byte(in), positionsOf(t, in), "prod")
	var ne *NotEditableError
	if !errors.As(err, &ne) {
		t.Fatalf("a quoted key: %v, want NotEditableError", err)
	}
}

// positionsOf finds the canary value's position the way the manifest
// decoder records it: the line of the value (a block mapping starts on the
// line after its key; a flow one on the key's line).
func positionsOf(t *testing.T, doc string) manifest.Positions {
	t.Helper()
	lines := strings.Split(doc, "\n")
	for i, l := range lines {
		tl := strings.TrimSpace(l)
		if strings.HasPrefix(tl, "canary:") || strings.HasPrefix(tl, "\"canary\":") {
			if strings.Contains(tl, "{") {
				return manifest.NewPositions(map[string]manifest.Pos{CanaryField("prod"): {Line: i + 1, Column: strings.Index(l, "{") + 1}})
			}
			return manifest.NewPositions(map[string]manifest.Pos{CanaryField("prod"): {Line: i + 2, Column: 9}})
		}
	}
	t.Fatal("no canary in test document")
	return manifest.Positions{}
}

const canaryFile = "models/customer-churn-predictor/model.yaml"

// canaryRepo serves the example models repository on a Git server, with
// staging at v4 running canary v5.
func canaryRepo(t *testing.T) (*testenv.GitServer, *testenv.Workdir) {
	t.Helper()
	g := testenv.NewGitServer(t)
	if _, err := g.NewBareRepo("models"); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "src")
	if out, err := exec.Command("../../test/scripts/example-repo.sh", src).CombinedOutput(); err != nil {
		t.Fatalf("example-repo.sh: %v\n%s", err, out)
	}
	push := exec.Command("git", "-C", src, "push", "--quiet", "--tags", g.AuthHTTPURL("models"), "main")
	push.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_GLOBAL=/dev/null")
	if out, err := push.CombinedOutput(); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	w := testenv.NewWorkdir(t, g.AuthHTTPURL("models"))
	const file = canaryFile
	b, err := os.ReadFile(filepath.Join(w.Dir, file))
	if err != nil {
		t.Fatal(err)
	}
	withCanary := strings.Replace(string(b), "    staging:\n      version: 4\n",
		"    staging:\n      version: 4\n      # trying v5\n      canary:\n        version: 5\n        steps: [20, 50]\n", 1)
	if withCanary == string(b) {
		t.Fatal("example manifest changed: no staging version 4")
	}
	w.WriteFile(file, withCanary)
	w.Commit("staging: canary v5")
	w.Push()
	return g, w
}

// A promotion is committed on the environment's branch with the version set
// to the candidate, the canary gone and the evidence in the message; a
// rollback is pushed to its own branch for a pull request, with only the
// canary removed.
func TestWriteCanaryOutcome(t *testing.T) {
	g, w := canaryRepo(t)
	const file = canaryFile
	author := Signature{Name: "modelsync-controller", Email: "modelsync@example.invalid", When: time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)}
	clone := func() *Checkout {
		co, err := Clone(context.Background(), CloneOptions{URL: g.HTTPURL + "models.git", Branch: "main",
			Auth: gitsource.Auth{Username: g.Username, Password: g.Password}, Dir: filepath.Join(t.TempDir(), "clone")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { co.Close() })
		return co
	}
	rb := &CanaryOutcome{Model: "customer-churn-predictor", Environment: "staging", Stable: 4, Candidate: 5,
		Reason: "errors: canary worse than stable", Evidence: []string{"errors: rate ratio 3.1 (1.9..5.2), canary 31/1000, stable 10/1000"}}
	co := clone()
	wr, _, err := co.WriteCanaryOutcome(context.Background(), rb, WriteOptions{Author: author})
	if err != nil {
		t.Fatal(err)
	}
	if !wr.Changed || wr.Branch != "modelsync/canary/customer-churn-predictor-staging-v5-rollback" {
		t.Fatalf("rollback written as %+v", wr)
	}
	got, err := co.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), "    staging:\n      version: 4\n      # trying v5\n    prod:") || strings.Contains(string(got), "version: 5\n        steps") {
		t.Fatalf("rollback edit:\n%s", got)
	}
	msg := w.Run("ls-remote", g.AuthHTTPURL("models"), wr.Branch)
	if !strings.Contains(msg, wr.Commit) {
		t.Fatalf("branch %s not pushed: %s", wr.Branch, msg)
	}

	pr := &CanaryOutcome{Model: "customer-churn-predictor", Environment: "staging", Promote: true, Stable: 4, Candidate: 5,
		Reason: "every metric non-inferior at the last step (50%)", Evidence: []string{"errors: rate ratio 0.98 (0.7..1.15)"}}
	co2 := clone()
	wp, _, err := co2.WriteCanaryOutcome(context.Background(), pr, WriteOptions{Author: author, Direct: true})
	if err != nil {
		t.Fatal(err)
	}
	if wp.Branch != "main" || !wp.Changed {
		t.Fatalf("promotion written as %+v", wp)
	}
	w.Run("pull", "--quiet", "origin", "main")
	got, err = os.ReadFile(filepath.Join(w.Dir, file))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), "    staging:\n      version: 5\n      # trying v5\n    prod:") {
		t.Fatalf("promotion edit:\n%s", got)
	}
	log := w.Run("log", "-1", "--format=%B")
	for _, want := range []string{"canary: promote customer-churn-predictor in staging to v5", "rate ratio 0.98 (0.7..1.15)", "Modelsync-Canary: promote v5 (stable v4)"} {
		if !strings.Contains(log, want) {
			t.Errorf("commit message lacks %q:\n%s", want, log)
		}
	}
	// Git agrees now: writing the same outcome again is a no-op.
	co3 := clone()
	again, _, err := co3.WriteCanaryOutcome(context.Background(), pr, WriteOptions{Author: author, Direct: true})
	if err != nil || again.Changed {
		t.Fatalf("second write: %+v, %v", again, err)
	}

	// The check after promotion finds v5 clearly worse: the revert sets
	// the version Git records back to v4, nothing else.
	rv := &CanaryOutcome{Model: "customer-churn-predictor", Environment: "staging", Revert: true, Stable: 4, Candidate: 5,
		Reason: "check after promotion: errors: canary worse than stable", Evidence: []string{"errors: rate ratio 4 (2.9..5.6)"}}
	wr2, _, err := clone().WriteCanaryOutcome(context.Background(), rv, WriteOptions{Author: author, Direct: true})
	if err != nil || !wr2.Changed {
		t.Fatalf("revert: %+v, %v", wr2, err)
	}
	w.Run("pull", "--quiet", "origin", "main")
	if got, err = os.ReadFile(filepath.Join(w.Dir, file)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), "    staging:\n      version: 4\n      # trying v5\n    prod:") {
		t.Fatalf("revert edit:\n%s", got)
	}
	log = w.Run("log", "-1", "--format=%B")
	for _, want := range []string{"canary: revert customer-churn-predictor in staging to v4 (promoted v5 failed its check after promotion)",
		"weaker evidence than the canary", "rate ratio 4 (2.9..5.6)", "Modelsync-Canary: revert v5 (stable v4)"} {
		if !strings.Contains(log, want) {
			t.Errorf("revert commit message lacks %q:\n%s", want, log)
		}
	}
}

// With pull requests, a promotion and a rollback each push their own
// branch and open a pull request through GitHub's REST API into the
// environment's branch, with the decision and the evidence in its body.
func TestCanaryWriterOpensPullRequests(t *testing.T) {
	g, w := canaryRepo(t)
	hub := githubtest.New(t, "acme", "models", "ghp_canary")
	client, err := ghub.NewClient(ghub.ClientOptions{Token: "ghp_canary", BaseURL: hub.URL + "/api/v3/"})
	if err != nil {
		t.Fatal(err)
	}
	cw := &CanaryWriter{URL: g.HTTPURL + "models.git", Branch: "main", Auth: gitsource.Auth{Username: g.Username, Password: g.Password},
		GitHub: client.REST(), Owner: "acme", Name: "models", TempDir: t.TempDir(), Author: func() Signature {
			return Signature{Name: "modelsync-controller", Email: "modelsync@example.invalid", When: time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)}
		}}
	outcomes := []*CanaryOutcome{
		{Model: "customer-churn-predictor", Environment: "staging", Stable: 4, Candidate: 5,
			Reason: "rollback: errors: canary worse than stable", Evidence: []string{"errors: rate ratio 3.1, 95% bounds 1.9..5.2 (margin 1.2); canary 31 bad of 1000, stable 10 bad of 1000"}},
		{Model: "customer-churn-predictor", Environment: "staging", Promote: true, Stable: 4, Candidate: 5,
			Reason: "promote: every metric non-inferior at the last step (50%)", Evidence: []string{"errors: rate ratio 0.98, 95% bounds 0.7..1.15 (margin 1.2)"}},
	}
	for i, o := range outcomes {
		where, err := cw.WriteBack(context.Background(), o)
		if err != nil {
			t.Fatalf("%s: %v", o.Title(), err)
		}
		prs := hub.PRs()
		if len(prs) != i+1 {
			t.Fatalf("%d pull requests after %d write-backs", len(prs), i+1)
		}
		pr := prs[i]
		if want := hub.URL + "/acme/models/pull/" + strconv.Itoa(pr.Number); where != want {
			t.Fatalf("write-back answered %q, want the pull request %s", where, want)
		}
		if pr.HeadRef != o.BranchName() || pr.BaseRef != "main" || pr.Title != o.Title() || pr.State != "open" {
			t.Fatalf("pull request %+v for %s", pr, o.Title())
		}
		for _, want := range []string{o.Reason, o.Evidence[0], "Opened by the modelsync controller's canary analysis."} {
			if !strings.Contains(pr.Body, want) {
				t.Errorf("pull request body lacks %q:\n%s", want, pr.Body)
			}
		}
		// The branch holds the edit; main is untouched until a merge.
		if out := w.Run("ls-remote", g.AuthHTTPURL("models"), o.BranchName()); !strings.Contains(out, "refs/heads/"+o.BranchName()) {
			t.Fatalf("branch %s not pushed: %s", o.BranchName(), out)
		}
		w.Run("fetch", "--quiet", "origin", o.BranchName())
		edited := w.Run("show", "FETCH_HEAD:"+canaryFile)
		wantStaging := map[bool]string{false: "    staging:\n      version: 4\n      # trying v5\n    prod:", true: "    staging:\n      version: 5\n      # trying v5\n    prod:"}[o.Promote]
		if !strings.Contains(edited, wantStaging) {
			t.Fatalf("%s branch edit:\n%s", o.Title(), edited)
		}
	}
	w.Run("pull", "--quiet", "origin", "main")
	if b, _ := os.ReadFile(filepath.Join(w.Dir, canaryFile)); !strings.Contains(string(b), "canary:\n        version: 5") {
		t.Fatalf("main changed without a merge:\n%s", b)
	}
	// Without a GitHub client nothing is pushed.
	cw.GitHub = nil
	if _, err := cw.WriteBack(context.Background(), outcomes[0]); err == nil || !strings.Contains(err.Error(), "need a GitHub client") {
		t.Fatalf("write-back without GitHub: %v", err)
	}
}
