package gitsource

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
)

// minAbbrev is the shortest abbreviated hash Resolve accepts, as git does.
const minAbbrev = 4

// Resolve returns the commit rev names, looked up in refs (a
// SyncResult.Refs, so the answer belongs to one sync and not to whatever
// the cache holds now): a full ref name, then a tag, then a branch, as git
// orders them; annotated tags are peeled. Otherwise rev must be a full or
// abbreviated (at least four hex digits, unambiguous) hash of a commit in
// the cache.
func (s *Source) Resolve(refs map[string]string, rev string) (string, error) {
	if rev == "" {
		return "", fmt.Errorf("gitsource: resolve in %s: empty revision", s.URL())
	}
	for _, name := range []string{rev, "refs/tags/" + rev, "refs/heads/" + rev} {
		target, ok := refs[name]
		if !ok {
			continue
		}
		s.mu.Lock()
		c, err := peelToCommit(s.repo, plumbing.NewHash(target))
		s.mu.Unlock()
		if err != nil {
			return "", fmt.Errorf("gitsource: resolve %s in %s: %w", name, s.URL(), err)
		}
		return c.String(), nil
	}
	if len(rev) < minAbbrev || len(rev) > 40 {
		return "", fmt.Errorf("%w: %q is no branch, tag or commit of %s", ErrNotFound, rev, s.URL())
	}
	if _, err := hex.DecodeString(rev + strings.Repeat("0", len(rev)%2)); err != nil {
		return "", fmt.Errorf("%w: %q is no branch, tag or commit of %s", ErrNotFound, rev, s.URL())
	}
	rev = strings.ToLower(rev)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(rev) == 40 {
		if _, err := s.commitLocked(plumbing.NewHash(rev)); err != nil {
			return "", err
		}
		return rev, nil
	}
	return abbreviated(s, rev)
}

// abbreviated finds the one commit whose hash starts with prefix. Callers
// hold mu.
func abbreviated(s *Source, prefix string) (string, error) {
	iter, err := s.repo.Storer.IterEncodedObjects(plumbing.CommitObject)
	if err != nil {
		return "", fmt.Errorf("gitsource: list commits of %s: %w", s.URL(), err)
	}
	defer iter.Close()
	var found []string
	for {
		obj, err := iter.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("gitsource: list commits of %s: %w", s.URL(), err)
		}
		if h := obj.Hash().String(); strings.HasPrefix(h, prefix) {
			found = append(found, h)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%w: %q is no branch, tag or commit of %s", ErrNotFound, prefix, s.URL())
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("gitsource: %q is ambiguous in %s: %d commits start with it", prefix, s.URL(), len(found))
}
