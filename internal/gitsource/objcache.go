package gitsource

import (
	"sync"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
)

// maxLargeTrees is how many large directory objects objectCache keeps
// apart from its bound.
const maxLargeTrees = 16

// objectCache is go-git's object cache with large directory objects kept
// apart: the last maxLargeTrees tree objects larger than a quarter of the
// bound, outside it. go-git resolves a deltified object by resolving its
// base first and caches each result; a models/ directory of 50,000 models
// is a 2.3 MB object, so the 4 MiB default held one at a time and every
// read of such a directory in an older commit resolved its whole delta
// chain again, hashing each step (a third of the desired state's time at
// 50,000 models, and the step that grew faster than the models). Git
// deltifies a directory's versions against their near neighbours, so a
// walk down the history finds the base among the last few read. Large
// blobs are left to go-git's bound as before: a model artifact must not be
// pinned. The memory is that of maxLargeTrees of the repository's largest
// directories.
type objectCache struct {
	small     *cache.ObjectLRU
	threshold int64

	mu    sync.Mutex
	large []largeObject // most recent first
}

type largeObject struct {
	hash plumbing.Hash
	obj  plumbing.EncodedObject
}

func newObjectCache(max int64) *objectCache {
	return &objectCache{small: cache.NewObjectLRU(cache.FileSize(max)), threshold: max / 4}
}

// Put implements cache.Object.
func (c *objectCache) Put(o plumbing.EncodedObject) {
	if o.Type() != plumbing.TreeObject || o.Size() <= c.threshold {
		c.small.Put(o)
		return
	}
	h := o.Hash()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, l := range c.large {
		if l.hash == h {
			c.large = append(c.large[:i], c.large[i+1:]...)
			break
		}
	}
	c.large = append([]largeObject{{h, o}}, c.large...)
	if len(c.large) > maxLargeTrees {
		c.large[maxLargeTrees] = largeObject{}
		c.large = c.large[:maxLargeTrees]
	}
}

// Get implements cache.Object.
func (c *objectCache) Get(h plumbing.Hash) (plumbing.EncodedObject, bool) {
	c.mu.Lock()
	for i, l := range c.large {
		if l.hash == h {
			copy(c.large[1:i+1], c.large[:i])
			c.large[0] = l
			c.mu.Unlock()
			return l.obj, true
		}
	}
	c.mu.Unlock()
	return c.small.Get(h)
}

// Clear implements cache.Object.
func (c *objectCache) Clear() {
	c.small.Clear()
	c.mu.Lock()
	c.large = nil
	c.mu.Unlock()
}

var _ cache.Object = (*objectCache)(nil)
