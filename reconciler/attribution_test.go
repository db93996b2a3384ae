package reconciler_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modelsync/modelsync/internal/repo"
	"github.com/modelsync/modelsync/reconciler"
)

// countingSnapshot counts the commits the attribution walk steps over.
type countingSnapshot struct {
	*repo.Snapshot
	diffs *atomic.Int64
	reads *atomic.Int64 // commits read by hash, when not nil
}

func (s countingSnapshot) Commit(hash string) (reconciler.Commit, error) {
	if s.reads != nil {
		s.reads.Add(1)
	}
	return s.Snapshot.Commit(hash)
}

func (s countingSnapshot) FirstParent(hash string) (string, bool, error) {
	s.diffs.Add(1)
	return s.Snapshot.FirstParent(hash)
}

// listingSnapshot is a Snapshot with History but without EntryDiffer, so
// the walk compares full listings of models/ as it does for snapshots
// other than a Git cache's.
type listingSnapshot struct {
	reconciler.Snapshot
	reconciler.History
}

func gitIn(t *testing.T, dir, author string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	name, email, _ := strings.Cut(author, " <")
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME="+name, "GIT_AUTHOR_EMAIL="+strings.TrimSuffix(email, ">"),
		"GIT_COMMITTER_NAME="+name, "GIT_COMMITTER_EMAIL="+strings.TrimSuffix(email, ">"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func snapshot(t *testing.T, r *repo.Repository, diffs *atomic.Int64) countingSnapshot {
	t.Helper()
	s, err := r.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return countingSnapshot{Snapshot: s, diffs: diffs}
}

// viewOf is s as ComputeDesired sees it: with or without EntryDiffer.
func viewOf(s countingSnapshot, listings bool) reconciler.Snapshot {
	if listings {
		return listingSnapshot{s, s}
	}
	return s
}

func credited(t *testing.T, d *reconciler.DesiredState, model, env string) reconciler.DesiredEnv {
	t.Helper()
	m, ok := d.Model(model)
	if !ok {
		t.Fatalf("model %s not desired", model)
	}
	e, ok := m.Env(env)
	if !ok {
		t.Fatalf("model %s has no environment %s", model, env)
	}
	return *e
}

// A branch environment is credited to the commit that last changed its
// model (or modelsync.yaml), not to the branch head; the next pass walks
// only the commits since the head it saw.
func TestDesiredCreditsTheCommitThatChangedTheModel(t *testing.T) {
	t.Run("entry diffs", func(t *testing.T) { testCredits(t, false) })
	t.Run("listings", func(t *testing.T) { testCredits(t, true) })
}

func testCredits(t *testing.T, listings bool) {
	src := filepath.Join(t.TempDir(), "models")
	if out, err := exec.Command("../test/scripts/example-repo.sh", src).CombinedOutput(); err != nil {
		t.Fatalf("example-repo.sh: %v\n%s", err, out)
	}
	// History: 1 Alice adds models, 2 Bob changes churn (prod v3; staging
	// runs v4), 3 Dana only adds fraud-detector-xgb.
	bob := gitIn(t, src, "x <x@x>", "rev-parse", "HEAD~1")
	alice := gitIn(t, src, "x <x@x>", "rev-parse", "HEAD~2")
	dana := gitIn(t, src, "x <x@x>", "rev-parse", "HEAD")
	r, err := repo.New(context.Background(), repo.Options{URL: src, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	var diffs atomic.Int64
	a := reconciler.NewAttribution()
	d, err := reconciler.ComputeDesiredWith(viewOf(snapshot(t, r, &diffs), listings), "main", reconciler.DesiredOptions{Attribution: a})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ model, env, commit, author string }{
		{"customer-churn-predictor", "staging", bob, "Bob Data"},
		{"customer-churn-predictor", "dev", bob, "Bob Data"},
		{"fraud-detector-xgb", "dev", dana, "Dana Risk"},
		{"llama2-7b-alpaca", "staging", alice, "Alice ML"},
	} {
		e := credited(t, d, tc.model, tc.env)
		if e.Commit.Hash != tc.commit || e.Commit.AuthorName != tc.author || e.Revision != "main@sha1:"+tc.commit {
			t.Errorf("%s in %s credited to %s (%s, %s), want %s (%s)", tc.model, tc.env, e.Commit.AuthorName, e.Commit.Hash, e.Revision, tc.author, tc.commit)
		}
	}
	if e := credited(t, d, "customer-churn-predictor", "staging"); e.Version != 4 {
		t.Fatalf("churn runs v%d in staging, want v4", e.Version)
	}
	// The files rendered are the model's as at the head.
	if e := credited(t, d, "customer-churn-predictor", "staging"); e.Files == nil {
		t.Error("no files")
	}

	// Erin changes only llama; then Frank edits modelsync.yaml, which
	// rewires every environment of every model.
	llama := filepath.Join(src, "models", "llama2-7b-alpaca", "model.yaml")
	b, err := os.ReadFile(llama)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(llama, append(b, []byte("# tuned\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	gitIn(t, src, "Erin Ops <erin@example.com>", "commit", "-qam", "llama note")
	erin := gitIn(t, src, "x <x@x>", "rev-parse", "HEAD")
	diffs.Store(0)
	var reads atomic.Int64
	view := snapshot(t, r, &diffs)
	view.reads = &reads
	d, err = reconciler.ComputeDesiredWith(viewOf(view, listings), "main", reconciler.DesiredOptions{Attribution: a})
	if err != nil {
		t.Fatal(err)
	}
	// The change commits of the earlier pass (Alice's, Bob's, Dana's) are
	// remembered with their files; only Erin's new one is read, and the
	// release tags' commits (no ReleaseMemo here).
	if n, releases := reads.Load(), int64(len(view.ReleaseTags())); n > 1+releases {
		t.Errorf("the pass after one commit read %d commits, want at most %d (Erin's and the releases')", n, 1+releases)
	}
	if e := credited(t, d, "customer-churn-predictor", "staging"); e.Commit.Hash != bob || e.Commit.AuthorName != "Bob Data" {
		t.Errorf("after Erin's commit churn staging is credited to %s (%s), want Bob Data", e.Commit.AuthorName, e.Commit.Hash)
	}
	if e := credited(t, d, "llama2-7b-alpaca", "staging"); e.Commit.Hash != erin {
		t.Errorf("llama staging credited to %s, want Erin's %s", e.Commit.Hash, erin)
	}
	if n := diffs.Load(); n != 1 {
		t.Errorf("the pass after one commit stepped over %d commits, want 1 (incremental from the previous head)", n)
	}

	cfg := filepath.Join(src, "modelsync.yaml")
	if b, err = os.ReadFile(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, append(b, []byte("# rewired\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	gitIn(t, src, "Frank Platform <frank@example.com>", "commit", "-qam", "wiring")
	frank := gitIn(t, src, "x <x@x>", "rev-parse", "HEAD")
	d, err = reconciler.ComputeDesiredWith(viewOf(snapshot(t, r, &diffs), listings), "main", reconciler.DesiredOptions{Attribution: a})
	if err != nil {
		t.Fatal(err)
	}
	if e := credited(t, d, "customer-churn-predictor", "staging"); e.Commit.Hash != frank {
		t.Errorf("after a modelsync.yaml change churn staging is credited to %s, want Frank's %s", e.Commit.AuthorName, frank)
	}
	// Release environments stay with their tag.
	if e := credited(t, d, "customer-churn-predictor", "prod"); e.Release != "customer-churn-predictor/v1.1.0" || e.Commit.Hash != bob {
		t.Errorf("prod = %s at %s", e.Release, e.Commit.Hash)
	}
}
