package gitsource

import (
	"bytes"
	"container/list"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// packedReader reads objects straight from a repository's packs for a
// TreeFS. A Source is one; a workspace has none and reads through go-git.
// Callers hold the owner's storage lock and have checked the object's
// header (objectHeaders.check) against the limit they pass.
type packedReader interface {
	// treeBody returns the body of directory h, valid until the next
	// read; ok is false when h is not in a pack.
	treeBody(h plumbing.Hash, info objectInfo) (body []byte, ok bool, err error)
	// blobBody returns the content of blob h, the caller's to keep; ok is
	// false when h is not in a pack.
	blobBody(h plumbing.Hash, info objectInfo, limit int64) (body []byte, ok bool, err error)
}

// maxKeptBody is the largest object bodyCache keeps: a model's files and
// directories, the objects a desired-state pass reads by the thousand and
// that Git stores as deltas against each other. A larger blob (a model
// artifact) is read and handed over, not kept.
const maxKeptBody = 64 << 10

// bodyOverhead estimates a kept body's bookkeeping (list element, map
// entry, slice header) in bytes.
const bodyOverhead = 128

// bodyCache keeps the contents of small objects TreeFS resolved from
// packs, by pack offset, least recently used first out, bounded by their
// bytes. Git stores a model's model.yaml as a delta against another
// model's, in chains up to 50 deep (pack.depth), so reading one blob means
// resolving its base; kept here, a pass over n models resolves each delta
// once. Before, go-git did this keeping, but it named each resolved object
// by its SHA-1 computed again over the content, and copied it twice on the
// way. A body here is never written again nor reused: a reader may keep
// the slice it got while the cache drops it.
//
// Callers hold the Source's storage lock; it has none of its own.
type bodyCache struct {
	max, size int64
	order     *list.List // front is most recently used; values are *keptBody
	byAt      map[packOffset]*list.Element
	delta     []byte // reused for delta data up to maxKeptBody
}

type keptBody struct {
	at   packOffset
	body []byte
}

func newBodyCache(max int64) *bodyCache {
	return &bodyCache{max: max, order: list.New(), byAt: map[packOffset]*list.Element{}}
}

func (c *bodyCache) get(at packOffset) ([]byte, bool) {
	e, ok := c.byAt[at]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*keptBody).body, true
}

// put keeps body unless it is larger than maxKeptBody or the bound.
func (c *bodyCache) put(at packOffset, body []byte) bool {
	size := int64(len(body)) + bodyOverhead
	if len(body) > maxKeptBody || size > c.max {
		return false
	}
	if _, ok := c.byAt[at]; ok {
		return true
	}
	c.byAt[at] = c.order.PushFront(&keptBody{at: at, body: body})
	c.size += size
	for c.size > c.max {
		last := c.order.Back()
		kb := last.Value.(*keptBody)
		c.order.Remove(last)
		delete(c.byAt, kb.at)
		c.size -= int64(len(kb.body)) + bodyOverhead
	}
	return true
}

// deltaBuffer returns a buffer of n bytes for delta data: a reused one for
// small deltas, a new one for a large delta, which is not kept.
func (c *bodyCache) deltaBuffer(n int64) []byte {
	if n > maxKeptBody {
		return make([]byte, n)
	}
	if int64(cap(c.delta)) < n {
		c.delta = make([]byte, maxKeptBody)
	}
	return c.delta[:n]
}

// treeBody implements packedReader. A large directory goes through s.raw,
// whose bodies ChangedEntries shares; a small one through s.bodies.
// info is h's header, where check found it.
func (s *Source) treeBody(h plumbing.Hash, info objectInfo) ([]byte, bool, error) {
	if b, ok := s.raw.byHash(h); ok {
		return b, true, nil
	}
	at := info.at
	if at.pack == nil {
		return nil, false, nil
	}
	if info.size >= minPackedTree {
		b, err := s.packedTree(at)
		if err != nil {
			return nil, false, err
		}
		s.raw.nameFront(h)
		return b, true, nil
	}
	b, _, err := s.resolvePacked(at, packTree, maxMetaSize)
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}

// blobBody implements packedReader; info is h's header, where check
// found it.
func (s *Source) blobBody(h plumbing.Hash, info objectInfo, limit int64) ([]byte, bool, error) {
	if info.at.pack == nil {
		return nil, false, nil
	}
	b, kept, err := s.resolvePacked(info.at, packBlob, limit)
	if err != nil {
		return nil, false, err
	}
	if kept {
		// The kept body may be another reader's delta base.
		b = bytes.Clone(b)
	}
	return b, true, nil
}

// resolvePacked returns the content of the object of pack type typ at a
// pack offset, applying its deltas down from the nearest base in s.bodies
// or stored whole, and keeping each step's result there. Every length read
// from a header is checked against limit before anything that size is
// allocated, as objectHeaders.check checked the whole chain's cost; a
// chain that reaches an object of another type is refused, as go-git
// types a delta by its base. kept reports whether the result is in
// s.bodies, so shared.
func (s *Source) resolvePacked(at packOffset, typ byte, limit int64) (body []byte, kept bool, err error) {
	var chain []packHeader
	var chainAt []packOffset
	for {
		if b, ok := s.bodies.get(at); ok {
			body, kept = b, true
			break
		}
		if len(chain) > maxDeltaDepth {
			return nil, false, fmt.Errorf("%s: delta chain deeper than %d", at.pack.name, maxDeltaDepth)
		}
		hdr, err := at.pack.header(at.off)
		if err != nil {
			return nil, false, err
		}
		if hdr.length > limit {
			return nil, false, fmt.Errorf("%s: %d bytes at offset %d: %w", at.pack.name, hdr.length, at.off, ErrTooLarge)
		}
		if hdr.typ == typ {
			body = make([]byte, hdr.length)
			if err := s.raw.unpack.inflate(at.pack, hdr.dataAt, body); err != nil {
				return nil, false, fmt.Errorf("%s: object at offset %d: %w", at.pack.name, at.off, err)
			}
			kept = s.bodies.put(at, body)
			break
		}
		chain, chainAt = append(chain, hdr), append(chainAt, at)
		if at, err = s.deltaBase(at, hdr, typ); err != nil {
			return nil, false, err
		}
	}
	alloc := func(n int64) []byte { return make([]byte, n) }
	for i := len(chain) - 1; i >= 0; i-- {
		hdr, at := chain[i], chainAt[i]
		delta := s.bodies.deltaBuffer(hdr.length)
		if err := s.raw.unpack.inflate(at.pack, hdr.dataAt, delta); err != nil {
			return nil, false, fmt.Errorf("%s: delta at offset %d: %w", at.pack.name, at.off, err)
		}
		next, err := patchDelta(body, delta, limit, alloc)
		if err != nil {
			return nil, false, fmt.Errorf("%s: delta at offset %d: %w", at.pack.name, at.off, err)
		}
		body = next
		kept = s.bodies.put(at, body)
	}
	return body, kept, nil
}

// decodeTree builds directory h from its body, accepting and refusing
// what go-git's Tree.Decode does (nextRawEntry). The names are cut from
// one string of the whole body, one allocation instead of one per entry;
// the listing holds the body's memory, about what separate names cost.
func decodeTree(h plumbing.Hash, body []byte) (*object.Tree, error) {
	t := &object.Tree{Hash: h}
	if len(body) == 0 {
		return t, nil
	}
	// Every entry has a NUL after its name, so this bounds the count
	// (hash bytes may be zero too).
	t.Entries = make([]object.TreeEntry, 0, bytes.Count(body, []byte{0}))
	text := string(body)
	for off := 0; off < len(body); {
		e, n, err := nextRawEntry(body[off:])
		if err != nil {
			return nil, err
		}
		nameAt := off + n - len(plumbing.ZeroHash) - 1 - len(e.name)
		te := object.TreeEntry{Name: text[nameAt : nameAt+len(e.name)], Mode: e.mode}
		copy(te.Hash[:], e.hash)
		t.Entries = append(t.Entries, te)
		off += n
	}
	return t, nil
}

// deltaBase returns where the base of the delta hdr, stored at at, lies;
// an object that is neither a delta nor of type want ends the chain with
// an error.
func (s *Source) deltaBase(at packOffset, hdr packHeader, want byte) (packOffset, error) {
	switch hdr.typ {
	case packOFSDelta:
		return packOffset{at.pack, hdr.baseOffset}, nil
	case packREFDelta:
		p, off, ok, err := s.objs.findPacked(hdr.baseHash)
		if err != nil {
			return packOffset{}, err
		}
		if !ok {
			return packOffset{}, fmt.Errorf("%s: delta at offset %d: base %s is not in a pack", at.pack.name, at.off, hdr.baseHash)
		}
		return packOffset{p, off}, nil
	default:
		return packOffset{}, fmt.Errorf("%s: object at offset %d is a %s, not a %s", at.pack.name, at.off, packTypes[hdr.typ], packTypes[want])
	}
}
