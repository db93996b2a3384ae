package gitsource

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// DirEntries returns the object hash of every entry of directory dir at a
// commit, by name: one directory object decoded, none below it. A missing
// directory is an empty map. Comparing two commits' maps tells which
// entries changed without diffing the trees under them.
func (s *Source) DirEntries(hash, dir string) (map[string]string, error) {
	h, err := parseHash(hash)
	if err != nil {
		return nil, fmt.Errorf("gitsource: %s in %s: %w", dir, s.URL(), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	root, err := commitTree(s.repo, s.objs, h, s.URL())
	if err != nil {
		return nil, err
	}
	t := root
	if d := strings.Trim(dir, "/"); d != "" {
		e, err := root.FindEntry(d)
		if errors.Is(err, object.ErrEntryNotFound) || errors.Is(err, object.ErrDirectoryNotFound) {
			return map[string]string{}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("gitsource: %s at %s in %s: %w", dir, h, s.URL(), err)
		}
		if e.Mode.IsFile() {
			return map[string]string{}, nil
		}
		if t, err = readTree(s.repo, s.objs, e.Hash); err != nil {
			return nil, fmt.Errorf("gitsource: %s at %s in %s: %w", dir, h, s.URL(), err)
		}
	}
	out := make(map[string]string, len(t.Entries))
	for _, e := range t.Entries {
		out[e.Name] = e.Hash.String()
	}
	return out, nil
}

// ChangedEntries names the entries of directory dir that differ between
// commits older and newer: added, removed or with another object hash. It
// compares the two directory objects entry by entry in Git's order,
// without building a listing of either, and shares decoded directories
// with Tree, so a walk down a branch's history decodes each commit's
// directory once. A directory missing at a commit counts as empty.
func (s *Source) ChangedEntries(older, newer, dir string) ([]string, error) {
	var roots [2]plumbing.Hash
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, c := range []string{older, newer} {
		h, err := parseHash(c)
		if err != nil {
			return nil, fmt.Errorf("gitsource: %s in %s: %w", dir, s.URL(), err)
		}
		commit, err := readCommit(s.repo, s.objs, h)
		if err != nil {
			if errors.Is(err, plumbing.ErrObjectNotFound) {
				return nil, fmt.Errorf("%w: commit %s in %s", ErrNotFound, h, s.URL())
			}
			return nil, fmt.Errorf("gitsource: read commit %s of %s: %w", h, s.URL(), err)
		}
		roots[i] = commit.TreeHash
	}
	var trees [2]*object.Tree
	for i, root := range roots {
		t, err := s.dirAt(root, strings.Trim(dir, "/"))
		if err != nil {
			return nil, fmt.Errorf("gitsource: %s at %s in %s: %w", dir, []string{older, newer}[i], s.URL(), err)
		}
		trees[i] = t
	}
	if trees[0] != nil && trees[1] != nil && trees[0].Hash == trees[1].Hash {
		return nil, nil
	}
	var a, b []object.TreeEntry
	if trees[0] != nil {
		a = trees[0].Entries
	}
	if trees[1] != nil {
		b = trees[1].Entries
	}
	var changed []string
	for len(a) > 0 || len(b) > 0 {
		switch c := compareEntries(a, b); {
		case c < 0:
			changed, a = append(changed, a[0].Name), a[1:]
		case c > 0:
			changed, b = append(changed, b[0].Name), b[1:]
		default:
			if a[0].Hash != b[0].Hash || a[0].Mode != b[0].Mode {
				changed = append(changed, a[0].Name)
			}
			a, b = a[1:], b[1:]
		}
	}
	slices.Sort(changed)
	return slices.Compact(changed), nil
}

// compareEntries orders the first entries of a and b by name as Git sorts
// them (a directory's name with a trailing "/"); an exhausted side sorts
// last.
func compareEntries(a, b []object.TreeEntry) int {
	switch {
	case len(a) == 0:
		return 1
	case len(b) == 0:
		return -1
	}
	key := b[0].Name
	if b[0].Mode == filemode.Dir {
		key += "/"
	}
	return compareKey(a[0], key)
}

// dirAt returns directory dir below root tree, nil when it is missing or
// not a directory, decoding through the shared cache. Callers hold s.mu.
func (s *Source) dirAt(root plumbing.Hash, dir string) (*object.Tree, error) {
	fsys := &TreeFS{store: s.repo.Storer, objs: s.objs, root: root, trees: s.trees}
	t, err := fsys.treeAt(root)
	if err != nil || dir == "" {
		return t, err
	}
	for _, comp := range strings.Split(dir, "/") {
		e, ok := findEntry(t, comp)
		if !ok || e.Mode != filemode.Dir {
			return nil, nil
		}
		if t, err = fsys.treeAt(e.Hash); err != nil {
			return nil, err
		}
	}
	return t, nil
}
