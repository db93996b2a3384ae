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
// commits older and newer: added, removed or with another object hash or
// mode. It compares the two directories' object hashes first, then merges
// the two directory objects' bodies in Git's order on the bytes, building
// no listing of either and a string only for an entry that differs (see
// rawTrees). A directory missing at a commit counts as empty.
func (s *Source) ChangedEntries(older, newer, dir string) ([]string, error) {
	commits := [2]string{older, newer}
	var dirs [2]plumbing.Hash // zero: no such directory
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.raw.release()
	for i, c := range commits {
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
		if dirs[i], err = s.dirHash(commit.TreeHash, strings.Trim(dir, "/")); err != nil {
			return nil, fmt.Errorf("gitsource: %s at %s in %s: %w", dir, c, s.URL(), err)
		}
	}
	if dirs[0] == dirs[1] {
		return nil, nil
	}
	var bodies [2][]byte
	// The newer side first: in a walk down the history the step before
	// read it as its older side, so it is in s.raw, and Git mostly stores
	// the older version as a delta against it.
	for _, i := range []int{1, 0} {
		if dirs[i].IsZero() {
			continue
		}
		b, err := s.rawTree(dirs[i])
		if err != nil {
			return nil, fmt.Errorf("gitsource: %s at %s in %s: %w", dir, commits[i], s.URL(), err)
		}
		bodies[i] = b
	}
	var changed []string
	err := changedRawEntries(bodies[0], bodies[1], func(name []byte) { changed = append(changed, string(name)) })
	if err != nil {
		return nil, fmt.Errorf("gitsource: %s between %s and %s in %s: %w", dir, older, newer, s.URL(), err)
	}
	slices.Sort(changed)
	return slices.Compact(changed), nil
}

// dirHash returns the object hash of directory dir below root tree, zero
// when it is missing or not a directory, reading the directories above it
// through the shared cache. Callers hold s.mu.
func (s *Source) dirHash(root plumbing.Hash, dir string) (plumbing.Hash, error) {
	if dir == "" {
		return root, nil
	}
	parent, base := "", dir
	if i := strings.LastIndexByte(dir, '/'); i >= 0 {
		parent, base = dir[:i], dir[i+1:]
	}
	t, err := s.dirAt(root, parent)
	if err != nil || t == nil {
		return plumbing.ZeroHash, err
	}
	e, ok := findEntry(t, base)
	if !ok || e.Mode != filemode.Dir {
		return plumbing.ZeroHash, nil
	}
	return e.Hash, nil
}

// dirAt returns directory dir below root tree, nil when it is missing or
// not a directory, decoding through the shared cache. Callers hold s.mu.
func (s *Source) dirAt(root plumbing.Hash, dir string) (*object.Tree, error) {
	fsys := &TreeFS{store: s.repo.Storer, objs: s.objs, packed: s, root: root, trees: s.trees}
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
