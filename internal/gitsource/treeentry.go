package gitsource

import (
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

func findEntry(t *object.Tree, name string) (object.TreeEntry, bool) {
	// Git sorts a tree's entries by name, comparing a directory's as
	// "name/", so the entry is found by binary search under one of two
	// keys. A scan of every entry made each lookup under models/ cost the
	// number of models, and loading n models n² comparisons.
	for _, key := range [2]string{name, name + "/"} {
		i := sort.Search(len(t.Entries), func(i int) bool { return compareKey(t.Entries[i], key) >= 0 })
		if i < len(t.Entries) && t.Entries[i].Name == name {
			return t.Entries[i], true
		}
	}
	// A tree written out of order by a tool other than git still reads:
	// only a miss pays for the scan.
	for _, e := range t.Entries {
		if e.Name == name {
			return e, true
		}
	}
	return object.TreeEntry{}, false
}

// compareKey compares the name git sorts e by (a directory's with a
// trailing "/") with key, without building that name.
func compareKey(e object.TreeEntry, key string) int {
	n := e.Name
	if e.Mode != filemode.Dir {
		return strings.Compare(n, key)
	}
	if len(key) <= len(n) {
		if c := strings.Compare(n[:len(key)], key); c != 0 {
			return c
		}
		return 1 // key is a prefix of n, so of n + "/"
	}
	if c := strings.Compare(n, key[:len(n)]); c != 0 {
		return c
	}
	return strings.Compare("/", key[len(n):])
}
