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
	a, b, c, d, e := fakeTree(1, "a"), fakeTree(2, "b"), fakeTree(3, "c"), fakeTree(4, "d"), fakeTree(5, "e")
	one := treeSize(a) // same size for all five
	cache := newTreeCache(4 * one)
	for _, tr := range []*object.Tree{a, b, c, d} {
		cache.put(tr)
	}
	if _, ok := cache.get(a.Hash); !ok { // a is now the most recently used
		t.Fatal("a missing before the cache was full")
	}
	cache.put(e)
	if _, ok := cache.get(b.Hash); ok {
		t.Error("b, the least recently used, was kept past the bound")
	}
	for _, want := range []*object.Tree{a, c, d, e} {
		if got, ok := cache.get(want.Hash); !ok || got != want {
			t.Errorf("tree %s: got %v, %v", want.Hash, got, ok)
		}
	}
	if cache.size != 4*one || len(cache.byHash) != 4 || cache.order.Len() != 4 {
		t.Errorf("size %d with %d/%d entries, want %d with 4", cache.size, len(cache.byHash), cache.order.Len(), 4*one)
	}
}

// A directory too large for a quarter of the cache is kept apart, the last
// two read: before, one larger than the whole cache was never kept, and
// every lookup below it (every model under a 50,000-entry models/) decoded
// it again.
func TestTreeCacheKeepsLargeDirectoriesApart(t *testing.T) {
	small := fakeTree(1, "a")
	one := treeSize(small)
	cache := newTreeCache(4 * one)
	cache.put(small)
	bigs := []*object.Tree{fakeTree(2, "p", "q", "r", "s", "t", "u"), fakeTree(3, "v", "w", "x", "y", "z", "zz"), fakeTree(4, "k", "l", "m", "n", "o", "oo")}
	cache.put(bigs[0])
	cache.put(bigs[1])
	for _, want := range []*object.Tree{small, bigs[0], bigs[1]} {
		if got, ok := cache.get(want.Hash); !ok || got != want {
			t.Errorf("tree %s: got %v, %v", want.Hash, got, ok)
		}
	}
	if cache.size != one || len(cache.byHash) != 1 {
		t.Errorf("large trees counted in the bound: size %d with %d entries, want %d with 1", cache.size, len(cache.byHash), one)
	}
	// bigs[1] was read last, so a third large tree displaces bigs[0].
	cache.put(bigs[2])
	if _, ok := cache.get(bigs[0].Hash); ok {
		t.Error("more than two large trees kept")
	}
	for _, want := range []*object.Tree{bigs[1], bigs[2], small} {
		if _, ok := cache.get(want.Hash); !ok {
			t.Errorf("tree %s dropped", want.Hash)
		}
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

// Large directory objects are kept apart from the object cache's bound,
// the last maxLargeTrees; large blobs are not kept at all, as before.
func TestObjectCacheKeepsLargeTreesApart(t *testing.T) {
	obj := func(typ plumbing.ObjectType, size int, id byte) plumbing.EncodedObject {
		o := &plumbing.MemoryObject{}
		o.SetType(typ)
		if _, err := o.Write(append(make([]byte, size-1), id)); err != nil {
			t.Fatal(err)
		}
		return o
	}
	c := newObjectCache(4 << 10)
	small := obj(plumbing.TreeObject, 100, 0)
	c.Put(small)
	var trees []plumbing.EncodedObject
	for i := range maxLargeTrees + 1 {
		tr := obj(plumbing.TreeObject, 3<<10, byte(i+1))
		trees = append(trees, tr)
		c.Put(tr)
	}
	if _, ok := c.Get(trees[0].Hash()); ok {
		t.Errorf("the oldest of %d large trees was kept, want the last %d", len(trees), maxLargeTrees)
	}
	for _, tr := range append(trees[1:], small) {
		if got, ok := c.Get(tr.Hash()); !ok || got != tr {
			t.Errorf("object %s dropped", tr.Hash())
		}
	}
	blob := obj(plumbing.BlobObject, 8<<10, 99)
	c.Put(blob)
	if _, ok := c.Get(blob.Hash()); ok {
		t.Error("a blob larger than the bound was kept")
	}
	c.Clear()
	if _, ok := c.Get(trees[1].Hash()); ok {
		t.Error("Clear kept a large tree")
	}
}
