package repo_test

import (
	"testing"

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
	snap, err := repo.Open(t.Context(), repo.Options{URL: w.Dir, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snap.Source().Close() })
	sync := func(prev *repo.Snapshot) *repo.Snapshot {
		t.Helper()
		next, _, err := prev.Sync(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return next
	}

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

	other, err := repo.Open(t.Context(), repo.Options{URL: w.Dir, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Source().Close() })
	if other.SameRefs(tagged) {
		t.Error("snapshots of two Sources compared equal; their trees are not interchangeable")
	}
	if tagged.SameRefs(nil) {
		t.Error("SameRefs(nil) = true")
	}
}
