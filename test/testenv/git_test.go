package testenv

import (
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestGitServerSmartHTTPAndDaemon(t *testing.T) {
	g := NewGitServer(t)
	t.Logf("git daemon ready in %s", g.ReadyIn)
	if _, err := g.NewBareRepo("models"); err != nil {
		t.Fatal(err)
	}

	// Push over authenticated smart HTTP.
	w := NewWorkdir(t, g.AuthHTTPURL("models"))
	w.WriteFile("models/churn/model.yaml", "name: churn\n")
	sha := w.Commit("add churn")
	w.Tag("churn/v1.0.0", "release churn 1.0.0")
	w.Push()
	if got := w.Run("rev-parse", "--abbrev-ref", "HEAD"); got != "main" {
		t.Fatalf("branch = %q, want main", got)
	}

	// Deterministic identity and clock: the same content yields the same id.
	w2 := NewWorkdir(t, "")
	w2.WriteFile("models/churn/model.yaml", "name: churn\n")
	if sha2 := w2.Commit("add churn"); sha2 != sha {
		t.Fatalf("commit ids differ between identical workdirs: %s vs %s", sha, sha2)
	}

	t.Run("clone over HTTP with the right password", func(t *testing.T) {
		c := NewWorkdir(t, g.AuthHTTPURL("models"))
		if got := c.Run("rev-parse", "HEAD"); got != sha {
			t.Fatalf("cloned HEAD = %s, want %s", got, sha)
		}
		if got := c.Run("cat-file", "-t", "churn/v1.0.0"); got != "tag" {
			t.Fatalf("tag type = %q, want annotated tag", got)
		}
		b, err := os.ReadFile(filepath.Join(c.Dir, "models/churn/model.yaml"))
		if err != nil || string(b) != "name: churn\n" {
			t.Fatalf("cloned file = %q, %v", b, err)
		}
	})

	t.Run("clone over HTTP with a wrong password fails", func(t *testing.T) {
		u, err := url.Parse(g.HTTPURL + "models.git")
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(g.Username, "wrong-"+g.Password)
		cmd := exec.Command("git", "-c", "credential.helper=", "clone", u.String(), filepath.Join(t.TempDir(), "c"))
		cmd.Env = append(os.Environ(), gitEnv()...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("clone with a wrong password succeeded:\n%s", out)
		}
		if !strings.Contains(string(out), "Authentication failed") {
			t.Fatalf("clone failed for another reason: %s", out)
		}
	})

	t.Run("anonymous clone without credentials fails over HTTP", func(t *testing.T) {
		cmd := exec.Command("git", "ls-remote", g.HTTPURL+"models.git")
		cmd.Env = append(os.Environ(), gitEnv()...)
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Fatalf("anonymous ls-remote succeeded:\n%s", out)
		}
	})

	t.Run("daemon clone and push", func(t *testing.T) {
		c := NewWorkdir(t, g.DaemonURL+"models.git")
		if got := c.Run("rev-parse", "HEAD"); got != sha {
			t.Fatalf("daemon clone HEAD = %s, want %s", got, sha)
		}
		c.WriteFile("modelsync.yaml", "environments: [dev]\n")
		c.Remove("models/churn")
		next := c.Commit("second")
		c.Push("HEAD:refs/heads/main")
		if got := w.Run("ls-remote", "origin", "refs/heads/main"); !strings.HasPrefix(got, next) {
			t.Fatalf("HTTP view of main after daemon push = %q, want %s", got, next)
		}
	})
}
