package gitsource

import (
	"encoding/hex"
	"fmt"
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
		c, err := peelToCommit(s.repo, s.objs, plumbing.NewHash(target))
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
	// Objects are listed by whole bytes of their hash; an odd last digit
	// is matched on the text. Types come from object headers, so no
	// object is read.
	lister, ok := s.repo.Storer.(interface {
		HashesWithPrefix([]byte) ([]plumbing.Hash, error)
	})
	if !ok {
		return "", fmt.Errorf("gitsource: list commits of %s: storage %T cannot search by prefix", s.URL(), s.repo.Storer)
	}
	whole, err := hex.DecodeString(prefix[:len(prefix)/2*2])
	if err != nil {
		return "", fmt.Errorf("%w: %q is no branch, tag or commit of %s", ErrNotFound, prefix, s.URL())
	}
	hashes, err := lister.HashesWithPrefix(whole)
	if err != nil {
		return "", fmt.Errorf("gitsource: list commits of %s: %w", s.URL(), err)
	}
	seen := map[plumbing.Hash]bool{}
	var found []string
	for _, h := range hashes {
		if seen[h] || !strings.HasPrefix(h.String(), prefix) {
			continue
		}
		seen[h] = true
		info, err := s.objs.info(h)
		if err != nil {
			return "", fmt.Errorf("gitsource: list commits of %s: %w", s.URL(), err)
		}
		if info.typ == plumbing.CommitObject {
			found = append(found, h.String())
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
