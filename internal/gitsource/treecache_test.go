package gitsource

import (
	"io/fs"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/modelsync/modelsync/test/testenv"
)

func fakeTree(id byte, names ...string) *object.Tree {
	t := &object.Tree{Hash: plumbing.Hash{id}}
	for _, n := range names {
		t.Entries = append(t.Entries, object.TreeEntry{Name: n, Mode: filemode.Regular})
	}
	return t
}

func TestTreeCacheEvictsLeastRecentlyUsed(t *testing.T) {
	a, b, c := fakeTree(1, "a"), fakeTree(2, "b"), fakeTree(3, "c")
	one := treeSize(a) // same size for all three
	cache := newTreeCache(2 * one)
	cache.put(a)
	cache.put(b)
	if _, ok := cache.get(a.Hash); !ok { // a is now the most recently used
		t.Fatal("a missing before the cache was full")
	}
	cache.put(c)
	if _, ok := cache.get(b.Hash); ok {
		t.Error("b, the least recently used, was kept past the bound")
	}
	for _, want := range []*object.Tree{a, c} {
		if got, ok := cache.get(want.Hash); !ok || got != want {
			t.Errorf("tree %s: got %v, %v", want.Hash, got, ok)
		}
	}
	if cache.size != 2*one || len(cache.byHash) != 2 || cache.order.Len() != 2 {
		t.Errorf("size %d with %d/%d entries, want %d with 2", cache.size, len(cache.byHash), cache.order.Len(), 2*one)
	}
	big := fakeTree(4, "v", "w", "x", "y", "z")
	cache.put(big)
	if _, ok := cache.get(big.Hash); ok {
		t.Error("a tree larger than the whole cache was cached")
	}
	if _, ok := cache.get(a.Hash); !ok {
		t.Error("an oversized tree evicted the others")
	}
}

// Trees of consecutive commits share every directory that did not change;
// the Source decodes and keeps such a directory once for all of them.
func TestTreesSharedAcrossCommits(t *testing.T) {
	w := testenv.NewWorkdir(t, "")
	w.WriteFile("models/churn/model.yaml", "name: churn\n")
	w.WriteFile("models/fraud/model.yaml", "name: fraud\n")
	commits := []string{w.Commit("seed")}
	for _, rev := range []string{"1", "2", "3", "4"} {
		w.WriteFile("models/churn/model.yaml", "name: churn\nrev: "+rev+"\n")
		commits = append(commits, w.Commit("rev "+rev))
	}
	src := syncedSource(t, w.Dir)
	var trees []fs.FS
	for _, c := range commits {
		fsys, err := src.Tree(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"models/churn/model.yaml", "models/fraud/model.yaml"} {
			if _, err := fs.ReadFile(fsys, name); err != nil {
				t.Fatal(err)
			}
		}
		trees = append(trees, fsys)
	}
	// Per commit its own root, models/ and models/churn; models/fraud once.
	if got, want := len(src.trees.byHash), 3*len(commits)+1; got != want {
		t.Errorf("%d decoded directories cached for %d commits, want %d", got, len(trees), want)
	}
}
