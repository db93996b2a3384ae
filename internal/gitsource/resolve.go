package gitsource

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
)

// minAbbrev is the shortest abbreviated hash Resolve accepts, as git does.
const minAbbrev = 4

// maxAncestry bounds the generations one revision may walk (main~N), so a
// crafted argument cannot make Resolve read a whole history.
const maxAncestry = 10000

// Resolve returns the commit rev names, as `git rev-parse` would in the
// repository the cache mirrors, looked up in refs (a SyncResult.Refs, so
// the answer belongs to one sync and not to whatever the cache holds now).
//
// A name is tried as git orders it (gitrevisions(7)): HEAD (also "@"), a
// full ref name, then refs/<name>, refs/tags/<name>, refs/heads/<name>,
// refs/remotes/<name> and refs/remotes/<name>/HEAD; annotated tags are
// peeled. Otherwise rev must be a full or abbreviated (at least four hex
// digits, unambiguous) hash of a commit in the cache. Any of these may be
// followed by ~N, ^N (N-th parent; ^0 the commit itself), ~, ^, ^{} or
// ^{commit}: "origin/main~2", "HEAD^2", "@~1".
func (s *Source) Resolve(refs map[string]string, rev string) (string, error) {
	if rev == "" {
		return "", fmt.Errorf("gitsource: resolve in %s: empty revision", s.URL())
	}
	name, steps, err := splitRevision(rev)
	if err != nil {
		return "", fmt.Errorf("gitsource: resolve %q in %s: %w", rev, s.URL(), err)
	}
	h, err := s.resolveName(refs, name)
	if err != nil {
		return "", err
	}
	if len(steps) == 0 {
		return h, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := plumbing.NewHash(h)
	for _, st := range steps {
		for range st.times {
			c, err := readCommit(s.repo, s.objs, cur)
			if err != nil {
				if errors.Is(err, plumbing.ErrObjectNotFound) {
					// A shallow clone ends its history early.
					return "", fmt.Errorf("%w: resolve %q in %s: commit %s is not in the clone (a shallow clone?)", ErrNotFound, rev, s.URL(), cur)
				}
				return "", fmt.Errorf("gitsource: resolve %q in %s: read commit %s: %w", rev, s.URL(), cur, err)
			}
			if st.parent > len(c.ParentHashes) {
				return "", fmt.Errorf("%w: resolve %q in %s: commit %s has %d parent(s), not a parent %d", ErrNotFound, rev, s.URL(), cur, len(c.ParentHashes), st.parent)
			}
			cur = c.ParentHashes[st.parent-1]
		}
	}
	if _, err := s.commitLocked(cur); err != nil {
		return "", fmt.Errorf("resolve %q: %w", rev, err)
	}
	return cur.String(), nil
}

// ancestry is one suffix of a revision: take parent number parent, times
// times (~3 is {1, 3}, ^2 is {2, 1}).
type ancestry struct {
	parent, times int
}

// splitRevision separates a revision into the name and its ~ and ^
// suffixes. Ref names cannot contain either character (git-check-ref-format),
// so the first one starts the suffixes.
func splitRevision(rev string) (string, []ancestry, error) {
	i := strings.IndexAny(rev, "~^")
	if i < 0 {
		return rev, nil, nil
	}
	name, rest := rev[:i], rev[i:]
	if name == "" {
		return "", nil, errors.New("no name before ~ or ^")
	}
	var steps []ancestry
	total := 0
	for rest != "" {
		op := rest[0]
		rest = rest[1:]
		if op != '~' && op != '^' {
			return "", nil, fmt.Errorf("unexpected %q after the name; expected ~N or ^N", op)
		}
		if op == '^' && strings.HasPrefix(rest, "{") {
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				return "", nil, errors.New("unterminated ^{")
			}
			switch rest[1:end] {
			case "", "commit":
				// Every name already resolves to a commit.
			default:
				return "", nil, fmt.Errorf("^{%s}: only ^{} and ^{commit} are supported", rest[1:end])
			}
			rest = rest[end+1:]
			continue
		}
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		n := 1
		if j > 0 {
			var err error
			if n, err = strconv.Atoi(rest[:j]); err != nil || n > maxAncestry {
				return "", nil, fmt.Errorf("%c%s: at most %d generations", op, rest[:j], maxAncestry)
			}
		}
		rest = rest[j:]
		switch {
		case op == '~':
			steps = append(steps, ancestry{parent: 1, times: n})
			total += n
		case n > 0: // ^0 is the commit itself
			steps = append(steps, ancestry{parent: n, times: 1})
			total++
		}
		if total > maxAncestry {
			return "", nil, fmt.Errorf("at most %d generations", maxAncestry)
		}
	}
	return name, steps, nil
}

// resolveName resolves a revision without suffixes; see Resolve.
func (s *Source) resolveName(refs map[string]string, rev string) (string, error) {
	if rev == "@" {
		rev = "HEAD"
	}
	if len(rev) == 40 && isHex(rev) {
		rev = strings.ToLower(rev)
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, err := s.commitLocked(plumbing.NewHash(rev)); err != nil {
			return "", err
		}
		return rev, nil
	}
	for _, name := range []string{rev, "refs/" + rev, "refs/tags/" + rev, "refs/heads/" + rev, "refs/remotes/" + rev, "refs/remotes/" + rev + "/HEAD"} {
		if name != "HEAD" && !strings.HasPrefix(name, "refs/") {
			continue
		}
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
	if len(rev) < minAbbrev || len(rev) > 40 || !isHex(rev) {
		return "", fmt.Errorf("%w: %q is no branch, tag or commit of %s", ErrNotFound, rev, s.URL())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return abbreviated(s, strings.ToLower(rev))
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s + strings.Repeat("0", len(s)%2))
	return err == nil
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
