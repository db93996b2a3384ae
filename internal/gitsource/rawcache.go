package gitsource

import "github.com/go-git/go-git/v5/plumbing"

// maxRawTrees is how many directory object bodies rawTrees keeps: the
// models/ directories of the last few commits of a history walk, which
// are also the delta bases of the next ones.
const maxRawTrees = 8

// maxSpareBodies is how many evicted bodies rawTrees keeps for reuse, the
// largest.
const maxSpareBodies = 2

// rawTrees keeps the last few large directory objects ChangedEntries read,
// as the bytes Git stores ("<mode> <name>\x00<20-byte hash>" per entry),
// by object hash and by where they are in a pack. A walk down a branch
// compares each commit with its parent, so the parent's directories are
// the next step's newer side: kept here, each step reads one object per
// directory instead of two. Git stores the versions of a directory as
// deltas against each other, mostly the older against the newer, so the
// older side's delta base is usually here too (see packedTree). Kept raw
// rather than decoded because decoding a models/ directory of 10,000
// models into go-git values (a string per name) was most of the walk's
// cost and garbage, and the comparison needs no values for the entries
// both sides share.
//
// The memory is that of maxRawTrees directories and maxSpareBodies more:
// the buffers of evicted bodies, which the next reads fill again, so a
// walk allocates no directory-sized buffers (each would bring the next
// collection of a large heap closer, and fresh pages cost faults).
//
// Callers hold the Source's storage lock; it has none of its own. A body
// rawTree returned is held, neither evicted nor reused, until release.
type rawTrees struct {
	slots  []rawTree // most recently used first
	spares [][]byte  // free buffers, largest kept
	delta  []byte    // reused for delta data
	unpack inflater
}

type rawTree struct {
	hash plumbing.Hash // zero: read as a delta base, by offset only
	at   packOffset    // zero: not read from a pack
	body []byte
	held bool
}

// byHash returns the body of object h.
func (c *rawTrees) byHash(h plumbing.Hash) ([]byte, bool) {
	return c.find(func(t *rawTree) bool { return t.hash == h && !h.IsZero() })
}

// byOffset returns the body of the object at a pack offset.
func (c *rawTrees) byOffset(at packOffset) ([]byte, bool) {
	return c.find(func(t *rawTree) bool { return t.at == at && at.pack != nil })
}

// find moves the first slot that matches to the front.
func (c *rawTrees) find(match func(*rawTree) bool) ([]byte, bool) {
	for i := range c.slots {
		if t := c.slots[i]; match(&t) {
			copy(c.slots[1:i+1], c.slots[:i])
			c.slots[0] = t
			return t.body, true
		}
	}
	return nil, false
}

// holdFront names the front body object h (zero: unknown) and holds it
// until release.
func (c *rawTrees) holdFront(h plumbing.Hash) {
	if !h.IsZero() {
		c.slots[0].hash = h
	}
	c.slots[0].held = true
}

// nameFront names the front body object h, without holding it: a
// TreeFS decodes the body at once.
func (c *rawTrees) nameFront(h plumbing.Hash) {
	c.slots[0].hash = h
}

// buffer returns a buffer of length n, a spare one when one is large
// enough.
func (c *rawTrees) buffer(n int64) []byte {
	for i, b := range c.spares {
		if int64(cap(b)) >= n {
			c.spares = append(c.spares[:i], c.spares[i+1:]...)
			return b[:n]
		}
	}
	return make([]byte, n)
}

// put adds a body at the front, evicting the least recently used body not
// held. Its buffer is a spare at once: nothing but a held body and the
// front ones is in use while the lock is held.
func (c *rawTrees) put(h plumbing.Hash, at packOffset, body []byte) {
	if len(c.slots) >= maxRawTrees {
		for i := len(c.slots) - 1; i >= 0; i-- {
			if !c.slots[i].held {
				c.spare(c.slots[i].body)
				c.slots = append(c.slots[:i], c.slots[i+1:]...)
				break
			}
		}
	}
	c.slots = append(c.slots, rawTree{})
	copy(c.slots[1:], c.slots)
	c.slots[0] = rawTree{hash: h, at: at, body: body}
}

// spare keeps b for reuse if it is among the largest buffers evicted.
func (c *rawTrees) spare(b []byte) {
	if len(c.spares) < maxSpareBodies {
		c.spares = append(c.spares, b[:0])
		return
	}
	small := 0
	for i := range c.spares {
		if cap(c.spares[i]) < cap(c.spares[small]) {
			small = i
		}
	}
	if cap(b) > cap(c.spares[small]) {
		c.spares[small] = b[:0]
	}
}

// release ends the hold on the bodies rawTree returned.
func (c *rawTrees) release() {
	for i := range c.slots {
		c.slots[i].held = false
	}
}
