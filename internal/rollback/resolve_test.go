package rollback

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelsync/modelsync/internal/gitsource"
	"github.com/modelsync/modelsync/test/testenv"
)

// An environment whose source is another branch than the config branch is
// resolved and rolled back on that branch, leaving the config branch alone.
func TestRollbackOnEnvironmentSourceBranch(t *testing.T) {
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
	cfg, err := os.ReadFile(filepath.Join(w.Dir, "modelsync.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	staged := strings.Replace(string(cfg), "namespace: models-staging\n    source: main", "namespace: models-staging\n    source: staging", 1)
	// A branch source must be listed in allowedSources.
	w.WriteFile("modelsync.yaml", strings.Replace(staged, "allowedSources: [main]", "allowedSources: [main, staging]", 1))
	mainHead := w.Commit("staging follows its own branch")
	w.Push()
	w.Run("checkout", "--quiet", "-b", "staging")
	const file = "models/customer-churn-predictor/model.yaml"
	b, err := os.ReadFile(filepath.Join(w.Dir, file))
	if err != nil {
		t.Fatal(err)
	}
	w.WriteFile(file, strings.Replace(string(b), "    staging:\n      version: 4", "    staging:\n      version: 5", 1))
	w.Commit("staging: churn v5")
	w.Push("staging")

	ctx := context.Background()
	co, err := Clone(ctx, CloneOptions{URL: g.HTTPURL + "models.git", Branch: "main",
		Auth: gitsource.Auth{Username: g.Username, Password: g.Password}, Dir: filepath.Join(t.TempDir(), "clone")})
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	ch, err := co.Resolve("customer-churn-predictor", "staging", 0)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Branch != "staging" || ch.Releases || ch.From != 5 || ch.To != 4 || ch.ToRevision != "staging@sha1:"+mainHead {
		t.Fatalf("change = %+v", ch)
	}
	wr, err := co.Write(ctx, ch, WriteOptions{Direct: true, Reason: "test", Author: Signature{Name: "Erin", Email: "erin@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if !wr.Changed || wr.Branch != "staging" || wr.Before != "      version: 5" || wr.After != "      version: 4" {
		t.Fatalf("written = %+v", wr)
	}
	w.Run("fetch", "--quiet", "origin")
	if got := w.Run("rev-parse", "origin/staging"); got != wr.Commit {
		t.Errorf("staging at %s, want the rollback commit %s", got, wr.Commit)
	}
	if got := w.Run("rev-parse", "origin/main"); got != mainHead {
		t.Errorf("main moved to %s", got)
	}
	if !strings.Contains(w.Run("show", "origin/staging:"+file), "    staging:\n      version: 4\n") {
		t.Error("staging branch does not name version 4")
	}
}
