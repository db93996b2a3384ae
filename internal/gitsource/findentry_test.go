package gitsource

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// gitOrdered returns a tree of entries in the order git writes them:
// by name, a directory's compared as "name/".
func gitOrdered(entries ...object.TreeEntry) *object.Tree {
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	slices.SortFunc(entries, func(a, b object.TreeEntry) int { return strings.Compare(key(a), key(b)) })
	return &object.Tree{Entries: entries}
}

// Names that sort differently as a directory than as a file ("a" as a
// directory sorts after "a-b" and "a.b", as a file before them) are all
// found, with their own mode; absent names are not.
func TestFindEntryInGitOrder(t *testing.T) {
	dir, file := filemode.Dir, filemode.Regular
	tree := gitOrdered(
		object.TreeEntry{Name: "a", Mode: dir},
		object.TreeEntry{Name: "a-b", Mode: file},
		object.TreeEntry{Name: "a.b", Mode: dir},
		object.TreeEntry{Name: "a0", Mode: file},
		object.TreeEntry{Name: "b", Mode: file},
		object.TreeEntry{Name: "b.c", Mode: dir},
		object.TreeEntry{Name: "link", Mode: filemode.Symlink},
		object.TreeEntry{Name: "sub", Mode: filemode.Submodule},
	)
	for _, want := range tree.Entries {
		got, ok := findEntry(tree, want.Name)
		if !ok || got != want {
			t.Errorf("findEntry(%q) = %+v, %t; want %+v", want.Name, got, ok, want)
		}
	}
	for _, name := range []string{"", "a/", "a-", "c", "b.", "0"} {
		if got, ok := findEntry(tree, name); ok {
			t.Errorf("findEntry(%q) found %+v", name, got)
		}
	}
	// A tree some other tool wrote out of order still reads.
	slices.Reverse(tree.Entries)
	for _, want := range tree.Entries {
		if got, ok := findEntry(tree, want.Name); !ok || got != want {
			t.Errorf("unsorted tree: findEntry(%q) = %+v, %t", want.Name, got, ok)
		}
	}
}

// A lookup in models/ must not cost the number of models: it is made
// for every model, so a scan made loading n models cost n². The same
// number of lookups in a directory 100 times larger may take several times
// longer (a binary search is 7 steps deeper, and its steps miss the CPU caches), not 100 times.
func TestFindEntryCostDoesNotGrowWithTheDirectory(t *testing.T) {
	const lookups = 2000
	tree := func(n int) (*object.Tree, []string) {
		entries := make([]object.TreeEntry, n)
		for i := range entries {
			entries[i] = object.TreeEntry{Name: fmt.Sprintf("model-%06d", i), Mode: filemode.Dir}
		}
		t := gitOrdered(entries...)
		var names []string
		for i := range lookups {
			names = append(names, t.Entries[(i*7919)%n].Name)
		}
		return t, names
	}
	best := func(n int) time.Duration {
		tr, names := tree(n)
		var min time.Duration
		for range 3 {
			start := time.Now()
			for _, name := range names {
				if _, ok := findEntry(tr, name); !ok {
					t.Fatalf("%s not found", name)
				}
			}
			if took := time.Since(start); min == 0 || took < min {
				min = took
			}
		}
		return min
	}
	small, large := best(1000), best(100000)
	ratio := float64(large) / float64(small)
	t.Logf("%d lookups: 1,000 entries %v, 100,000 entries %v (%.1f×)", lookups, small, large, ratio)
	if ratio > 40 {
		t.Errorf("lookups in a 100,000-entry directory took %.1f× those in a 1,000-entry one, want ≤ 40×", ratio)
	}
}
