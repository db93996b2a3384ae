package gitsource

import (
	"errors"
	"fmt"
	"strings"

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
