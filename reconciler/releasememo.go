package reconciler

import (
	"io/fs"
	"sync"

	"github.com/modelsync/modelsync/internal/manifest"
)

// ReleaseMemo remembers between desired-state computations what each
// model's release resolved to: the tag's commit and the model as read at
// that commit. A release tag names a commit, and a commit's content never
// changes, so while the tag and the repository configuration stay the
// same the answer does too. Without it every computation reads each
// model's manifest at its own release commit again, and each such read
// decodes that commit's models/ directory: a push to a branch of a
// repository with n released models cost n directory decodes of n entries
// each, all for environments the push could not change.
//
// Entries that a computation does not use are dropped at its end, so the
// memo holds at most one entry per model and release environment. A nil
// *ReleaseMemo remembers nothing.
type ReleaseMemo struct {
	mu      sync.Mutex
	gen     uint64
	entries map[releaseKey]*releaseEntry
}

// NewReleaseMemo returns an empty memo.
func NewReleaseMemo() *ReleaseMemo {
	return &ReleaseMemo{entries: map[releaseKey]*releaseEntry{}}
}

// releaseKey names one resolution. The configuration is compared by
// identity: the manifest cache hands out one *RepoConfig per content, and
// a configuration read afresh simply misses.
type releaseKey struct {
	cfg                *manifest.RepoConfig
	model, tag, commit string
}

type releaseEntry struct {
	commit Commit
	model  *manifest.Model
	// files is the release commit's tree: opening it reads the commit
	// and its root directory, for every released model on every pass.
	files  fs.FS
	usedAt uint64
}

func (m *ReleaseMemo) get(k releaseKey) (releaseEntry, bool) {
	if m == nil {
		return releaseEntry{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[k]
	if !ok {
		return releaseEntry{}, false
	}
	e.usedAt = m.gen
	return *e, true
}

func (m *ReleaseMemo) put(k releaseKey, e releaseEntry) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e.usedAt = m.gen
	m.entries[k] = &e
}

// sweep ends a computation, dropping what it did not use.
func (m *ReleaseMemo) sweep() {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, e := range m.entries {
		if e.usedAt < m.gen {
			delete(m.entries, k)
		}
	}
	m.gen++
}

// Len is the number of remembered releases, for tests.
func (m *ReleaseMemo) Len() int {
	if m == nil {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}
