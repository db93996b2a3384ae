package repo_test

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/modelsync/modelsync/internal/gitsource"

	"github.com/modelsync/modelsync/internal/repo"
	"github.com/modelsync/modelsync/test/testenv"
)

// SameRefs tells the controller whether a fetch can reuse the desired
// state of an earlier one: only when no branch or release tag moved.
func TestSameRefs(t *testing.T) {
	w := testenv.NewWorkdir(t, "")
	w.WriteFile("models/churn/model.yaml", "name: churn\n")
	w.Commit("seed")
	w.Tag("churn/v1.0.0", "release")
	git := newRepository(t, w.Dir)
	sync := func(*repo.Snapshot) *repo.Snapshot {
		t.Helper()
		next, err := git.Sync(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return next
	}
	snap := sync(nil)

	same := sync(snap)
	if !same.SameRefs(snap) || !snap.SameRefs(same) {
		t.Error("a fetch that moved nothing has other refs")
	}
	w.Tag("not-a-release", "other") // not something the desired state reads
	if unrelated := sync(same); !unrelated.SameRefs(snap) {
		t.Error("a tag that is no release tag changed SameRefs")
	}

	w.WriteFile("models/churn/model.yaml", "name: churn\nrev: 2\n")
	w.Commit("rev")
	moved := sync(same)
	if moved.SameRefs(snap) {
		t.Error("a moved branch kept SameRefs")
	}
	w.Tag("churn/v1.1.0", "release")
	tagged := sync(moved)
	if tagged.SameRefs(moved) {
		t.Error("a new release tag kept SameRefs")
	}

	other, err := newRepository(t, w.Dir).Sync(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if other.SameRefs(tagged) {
		t.Error("snapshots of two Sources compared equal; their trees are not interchangeable")
	}
	if tagged.SameRefs(nil) {
		t.Error("SameRefs(nil) = true")
	}
}

func newRepository(t *testing.T, url string) *repo.Repository {
	t.Helper()
	git, err := repo.New(t.Context(), repo.Options{URL: url, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { git.Close() })
	return git
}

// A snapshot answers from the refs of its own fetch: after a later fetch
// moved the branch and a new tag appeared, an earlier snapshot still names
// the old head and the old tags, and resolves names as it did.
func TestSnapshotIsImmutable(t *testing.T) {
	w := testenv.NewWorkdir(t, "")
	w.WriteFile("models/churn/model.yaml", "name: churn\n")
	first := w.Commit("seed")
	w.Tag("churn/v1.0.0", "release")
	git := newRepository(t, w.Dir)
	before, err := git.Sync(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	w.WriteFile("models/churn/model.yaml", "name: churn\nrev: 2\n")
	second := w.Commit("rev")
	w.Tag("churn/v1.1.0", "release")
	after, err := git.Sync(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		snap *repo.Snapshot
		head string
		tags int
	}{{before, first, 1}, {after, second, 2}} {
		got, err := c.snap.BranchHead("main")
		if err != nil {
			t.Fatal(err)
		}
		if got.Hash != c.head {
			t.Errorf("BranchHead(main) = %.12s, want %.12s", got.Hash, c.head)
		}
		if n := len(c.snap.ReleaseTags()); n != c.tags {
			t.Errorf("%d release tags, want %d", n, c.tags)
		}
		if h, err := c.snap.Resolve("main"); err != nil || h != c.head {
			t.Errorf("Resolve(main) = %.12s, %v; want %.12s", h, err, c.head)
		}
	}
	if _, err := before.Resolve("churn/v1.1.0"); err == nil {
		t.Error("the earlier snapshot resolves a tag pushed after it")
	}
	// Objects are shared: the earlier snapshot reads the newer commit by
	// hash, as the gate does for a pull request head.
	if _, err := before.Commit(second); err != nil {
		t.Errorf("earlier snapshot cannot read a later commit by hash: %v", err)
	}
	if h, err := after.Resolve(second[:8]); err != nil || h != second {
		t.Errorf("Resolve(%s) = %.12s, %v", second[:8], h, err)
	}
}

// The file size limit is the owner's to set: a file over it is refused
// (gitsource.ErrTooLarge, naming the file), the default reads it.
func TestMaxBlobSize(t *testing.T) {
	w := testenv.NewWorkdir(t, "")
	w.WriteFile("models/churn/serving/weights.bin", strings.Repeat("w", 4096))
	head := w.Commit("weights")
	for _, c := range []struct {
		limit   int64
		refused bool
	}{{0, false}, {4096, false}, {4095, true}} {
		snap, err := repo.Open(t.Context(), repo.Options{URL: w.Dir, CacheDir: t.TempDir(), MaxBlobSize: c.limit})
		if err != nil {
			t.Fatal(err)
		}
		tree, err := snap.Tree(head)
		if err != nil {
			t.Fatal(err)
		}
		_, err = fs.ReadFile(tree, "models/churn/serving/weights.bin")
		if c.refused != errors.Is(err, gitsource.ErrTooLarge) || (!c.refused && err != nil) {
			t.Errorf("limit %d: %v", c.limit, err)
		}
		if c.refused && (!strings.Contains(err.Error(), "models/churn/serving/weights.bin") || !strings.Contains(err.Error(), "4096 bytes")) {
			t.Errorf("limit %d: error %q does not name the file and its size", c.limit, err)
		}
		if fi, err := fs.Stat(tree, "models/churn/serving/weights.bin"); err != nil || fi.Size() != 4096 {
			t.Errorf("limit %d: Stat = %v, %v; want the size whatever the limit", c.limit, fi, err)
		}
		snap.Source().Close()
	}
	if _, err := repo.Open(t.Context(), repo.Options{URL: w.Dir, CacheDir: t.TempDir(), MaxBlobSize: -1}); err == nil {
		t.Error("a negative limit was accepted")
	}
}
