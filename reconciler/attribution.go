package reconciler

import (
	"fmt"
	"strings"
	"sync"

	"github.com/modelsync/modelsync/internal/manifest"
)

// History is what a Snapshot offers beyond Snapshot to find which commit
// changed a model: the first parent of a commit (false at a root, or at
// the boundary of a shallow clone) and the files that differ between two
// commits. Snapshots without it credit the branch head, as before.
type History interface {
	FirstParent(hash string) (string, bool, error)
	ChangedPaths(fromHash, toHash string) ([]string, error)
}

// Attribution remembers, per branch and model, which commit last changed
// what a branch environment runs for that model: a file under
// models/<model>/ (its manifest and serving directory, the only files its
// render may read) or modelsync.yaml (the wiring of every environment).
// That commit, not the branch head, is credited in the audit records
// (modelsync.revision, modelsync.deployed_by): a later commit that only
// added another model changed nothing this model runs.
//
// Finding it walks the branch's first-parent chain back from the head,
// diffing one commit with its parent per step. The answer is kept with the
// head it was found at, so the next pass walks only the commits since that
// head; a model untouched by them keeps its previous answer. The first pass
// walks back to the oldest model's last change (once per process). Entries
// of models and branches a pass no longer resolves are dropped, so memory
// follows the repository, not its history. Safe for concurrent use; the
// controller keeps one for its lifetime.
type Attribution struct {
	mu      sync.Mutex
	entries map[attrKey]attrEntry
}

type attrKey struct{ branch, model string }

type attrEntry struct {
	tip    string // branch head the answer was found at
	change string // the commit that last changed the model, at tip
}

// NewAttribution returns an empty cache.
func NewAttribution() *Attribution { return &Attribution{entries: map[attrKey]attrEntry{}} }

// resolveBranch finds the change commit of each model on branch at tip. It
// returns the answers and the number of commits it diffed.
func (a *Attribution) resolveBranch(h History, branch, tip string, models []string) (map[string]string, int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]string, len(models))
	pending := map[string]attrEntry{} // model -> previous entry (zero: none)
	for _, m := range models {
		e, ok := a.entries[attrKey{branch, m}]
		if ok && e.tip == tip {
			out[m] = e.change
			continue
		}
		pending[m] = e
	}
	steps := 0
	c := tip
	for len(pending) > 0 {
		p, ok, err := h.FirstParent(c)
		if err != nil {
			return nil, steps, fmt.Errorf("history of branch %q at %s: %w", branch, c, err)
		}
		if !ok {
			// A root commit (or a shallow clone's boundary) introduced
			// whatever is still pending.
			for m := range pending {
				out[m] = c
			}
			break
		}
		paths, err := h.ChangedPaths(p, c)
		steps++
		if err != nil {
			return nil, steps, fmt.Errorf("history of branch %q: diff %s..%s: %w", branch, p, c, err)
		}
		for _, path := range paths {
			if path == manifest.ConfigFile {
				for m := range pending {
					out[m] = c
				}
				clear(pending)
				break
			}
			rest, ok := strings.CutPrefix(path, manifest.ModelsDir+"/")
			if !ok {
				continue
			}
			name, _, _ := strings.Cut(rest, "/")
			if _, ok := pending[name]; ok {
				out[name] = c
				delete(pending, name)
			}
		}
		// A model unchanged since a head it was resolved at keeps that
		// answer: the walk has reached what the previous pass knew.
		for m, e := range pending {
			if e.tip == p {
				out[m] = e.change
				delete(pending, m)
			}
		}
		c = p
	}
	for _, m := range models {
		a.entries[attrKey{branch, m}] = attrEntry{tip: tip, change: out[m]}
	}
	return out, steps, nil
}

// keep drops every entry not in used.
func (a *Attribution) keep(used map[attrKey]bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range a.entries {
		if !used[k] {
			delete(a.entries, k)
		}
	}
}
