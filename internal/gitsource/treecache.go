package gitsource

import (
	"container/list"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// DefaultCacheSize is the memory a Source's caches may hold unless
// Options.CacheSize says otherwise: half for go-git's object cache, half for
// decoded directories. A pass over 1,000 models reads about 0.75 MiB of
// objects and decodes about 0.5 MiB of directories, so this holds the
// working set of a few thousand models; beyond that, reads go to the pack
// files again. go-git's own default is 96 MiB for the object cache alone,
// which a long-running controller slowly fills with objects of commits it
// never reads again: that memory was live for good.
const DefaultCacheSize int64 = 8 << 20

// Estimated heap bytes of a decoded tree: the object.Tree and the slack of
// its appended entries slice, and per entry the 40-byte TreeEntry plus its
// name, a separate allocation. Generous rather than exact: it only has to
// keep the cache's real size near its bound.
const (
	treeOverhead  = 96
	entryOverhead = 80
)

// treeCache keeps decoded trees by object hash for every TreeFS of one
// Source. Consecutive commits share almost all their subtrees, so one copy
// serves them all. Before, each TreeFS decoded and kept its own copy of
// every directory it visited, and since a controller keeps the TreeFS of
// each environment's last applied commit, every commit between two full
// resyncs stayed live: 1.2 MiB per commit of a 1,000-model repository. It
// is a least-recently-used cache bounded by an estimate of the trees'
// memory. Callers hold the lock that guards the Source's storage; it has
// none of its own.
//
// A directory larger than a quarter of the bound (models/ of a repository
// of tens of thousands of models) is kept apart, the last two read,
// outside the bound. Inside it such a tree either did not fit at all or
// evicted every small one; then every lookup below it decoded it again,
// and a pass over n models cost n decodings of n entries. The memory is
// that of the repository's two largest listings, which the desired state
// holds in some form anyway.
type treeCache struct {
	max, size int64
	order     *list.List // front is most recently used; values are *cachedTree
	byHash    map[plumbing.Hash]*list.Element
	large     [2]*object.Tree // most recent first
}

type cachedTree struct {
	tree *object.Tree
	size int64
}

func newTreeCache(max int64) *treeCache {
	return &treeCache{max: max, order: list.New(), byHash: map[plumbing.Hash]*list.Element{}}
}

func (c *treeCache) get(h plumbing.Hash) (*object.Tree, bool) {
	for i, t := range c.large {
		if t != nil && t.Hash == h {
			if i > 0 {
				c.large[0], c.large[i] = t, c.large[0]
			}
			return t, true
		}
	}
	e, ok := c.byHash[h]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*cachedTree).tree, true
}

func (c *treeCache) put(t *object.Tree) {
	if _, ok := c.byHash[t.Hash]; ok {
		return
	}
	size := treeSize(t)
	if size > c.max/4 {
		if c.large[0] == nil || c.large[0].Hash != t.Hash {
			c.large[1], c.large[0] = c.large[0], t
		}
		return
	}
	c.byHash[t.Hash] = c.order.PushFront(&cachedTree{tree: t, size: size})
	c.size += size
	for c.size > c.max {
		last := c.order.Back()
		ct := last.Value.(*cachedTree)
		c.order.Remove(last)
		delete(c.byHash, ct.tree.Hash)
		c.size -= ct.size
	}
}

func treeSize(t *object.Tree) int64 {
	n := int64(treeOverhead)
	for _, e := range t.Entries {
		n += entryOverhead + int64(len(e.Name))
	}
	return n
}
