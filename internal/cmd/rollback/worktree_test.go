package rollback

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// exampleWorkTree is the repository `make example-repo` builds (no
// origin), or with upstream a clone of it whose origin is a bare copy.
func exampleWorkTree(t *testing.T, upstream bool) (work, bare string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "example")
	if out, err := exec.Command("../../../test/scripts/example-repo.sh", src).CombinedOutput(); err != nil {
		t.Fatalf("example-repo.sh: %v\n%s", err, out)
	}
	if !upstream {
		return src, ""
	}
	bare = filepath.Join(t.TempDir(), "shared.git")
	git(t, src, "clone", "--quiet", "--bare", src, bare)
	work = filepath.Join(t.TempDir(), "work")
	git(t, src, "clone", "--quiet", bare, work)
	return work, bare
}

var authorEnv = map[string]string{"GIT_AUTHOR_NAME": "Erin Ops", "GIT_AUTHOR_EMAIL": "erin@example.com"}

// An explicit --repo naming a work tree is the repository written to, not
// its origin; its checked-out branch moves with its work tree, as a pull
// would move them.
func TestRollbackDirectWritesTheNamedWorkTree(t *testing.T) {
	for _, upstream := range []bool{false, true} {
		name := "example-repo without origin"
		if upstream {
			name = "clone whose origin is another repository"
		}
		t.Run(name, func(t *testing.T) {
			work, bare := exampleWorkTree(t, upstream)
			before := git(t, work, "rev-parse", "HEAD")
			var sharedBefore string
			if upstream {
				sharedBefore = git(t, bare, "rev-parse", "main")
			}
			code, out, errOut := run(t, authorEnv, "customer-churn-predictor", "--env", "staging", "--to", "3", "--direct", "--repo", work, "--cache-dir", t.TempDir())
			if code != 0 {
				t.Fatalf("exit %d\n%s%s", code, out, errOut)
			}
			after := git(t, work, "rev-parse", "main")
			if after == before || git(t, work, "rev-parse", "main~1") != before {
				t.Fatalf("main of %s: %s -> %s, want one new commit", work, before, after)
			}
			if got := git(t, work, "log", "-1", "--format=%an", "main"); got != "Erin Ops" {
				t.Errorf("commit author %q", got)
			}
			if st := git(t, work, "status", "--porcelain"); st != "" {
				t.Errorf("work tree not updated with the branch:\n%s", st)
			}
			b, err := os.ReadFile(filepath.Join(work, churn))
			if err != nil {
				t.Fatal(err)
			}
			if staging := string(b[strings.Index(string(b), "staging:"):]); !strings.Contains(staging[:min(len(staging), 200)], "version: 3") {
				t.Errorf("work tree file does not name version 3 for staging:\n%s", b)
			}
			if upstream {
				if got := git(t, bare, "rev-parse", "main"); got != sharedBefore {
					t.Errorf("origin %s was written (main %s -> %s), not the repository named", bare, sharedBefore, got)
				}
			}
		})
	}
}

// A work tree with uncommitted changes on the branch is refused, saying
// what to do, and nothing is written anywhere.
func TestRollbackDirectRefusesDirtyWorkTree(t *testing.T) {
	work, _ := exampleWorkTree(t, false)
	before := git(t, work, "rev-parse", "HEAD")
	p := filepath.Join(work, "models", "llama2-7b-alpaca", "model.yaml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, append(b, []byte("# local edit\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, authorEnv, "customer-churn-predictor", "--env", "staging", "--to", "3", "--direct", "--repo", work, "--cache-dir", t.TempDir())
	if code == 0 {
		t.Fatalf("rollback into a dirty work tree succeeded:\n%s", out)
	}
	for _, want := range []string{"uncommitted changes", "commit or stash", work} {
		if !strings.Contains(errOut, want) {
			t.Errorf("error does not say %q:\n%s", want, errOut)
		}
	}
	if got := git(t, work, "rev-parse", "HEAD"); got != before {
		t.Errorf("branch moved to %s", got)
	}
	if st := git(t, work, "status", "--porcelain"); st != "M models/llama2-7b-alpaca/model.yaml" {
		t.Errorf("local edit not kept as it was: %q", st)
	}
}
