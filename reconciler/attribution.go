package reconciler

import (
	"fmt"
	"io/fs"
	"slices"
	"sync"

	"github.com/modelsync/modelsync/internal/manifest"
)

// History is what a Snapshot offers beyond Snapshot to find which commit
// changed a model: the first parent of a commit (false at a root, or at
// the boundary of a shallow clone) and the hash of each entry of a
// directory at a commit. Snapshots without it credit the branch head, as
// before.
type History interface {
	FirstParent(hash string) (string, bool, error)
	DirEntries(hash, dir string) (map[string]string, error)
}

// EntryDiffer is History that names the entries of a directory that
// differ between two commits without listing either directory: a walk
// over a branch of tens of thousands of models then compares two
// directory objects per step instead of building two listings of every
// model.
type EntryDiffer interface {
	ChangedEntries(older, newer, dir string) ([]string, error)
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
// comparing per step the hashes of modelsync.yaml and of each pending
// model's folder (one root and one models/ directory object read per
// commit and compared on their bytes, see gitsource.Source.ChangedEntries;
// a full tree diff decoded every model folder and cost ~30 ms a step on a
// 1,000-model repository). The answer is kept with the
// head it was found at, so the next pass walks only the commits since that
// head; a model untouched by them keeps its previous answer. The first pass
// walks back to the oldest model's last change (once per process). Entries
// of models and branches a pass no longer resolves are dropped, so memory
// follows the repository, not its history. Safe for concurrent use; the
// controller keeps one for its lifetime.
type Attribution struct {
	mu      sync.Mutex
	entries map[attrKey]attrEntry
	// commits holds each change commit's header and files for the answers
	// in entries: every pass hands them to the environments it credits,
	// and reading them again cost a commit and a root directory per
	// distinct change commit and pass.
	commits map[string]changeCommit
}

type changeCommit struct {
	commit Commit
	files  fs.FS
}

type attrKey struct{ branch, model string }

type attrEntry struct {
	tip    string // branch head the answer was found at
	change string // the commit that last changed the model, at tip
}

// NewAttribution returns an empty cache.
func NewAttribution() *Attribution {
	return &Attribution{entries: map[attrKey]attrEntry{}, commits: map[string]changeCommit{}}
}

// changeCommit returns what rememberCommit kept of hash; a nil a
// remembers nothing.
func (a *Attribution) changeCommit(hash string) (changeCommit, bool) {
	if a == nil {
		return changeCommit{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.commits[hash]
	return c, ok
}

func (a *Attribution) rememberCommit(hash string, c changeCommit) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.commits[hash] = c
}

// resolveBranch finds the change commit of each model on branch at tip. It
// returns the answers and the number of commits it diffed.
func (a *Attribution) resolveBranch(h History, branch, tip string, models []string) (map[string]string, int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]string, len(models))
	pending := map[string]attrEntry{} // model -> previous entry (zero: none)
	// byTip names the pending models by the head their previous answer
	// was found at: the walk looks up each commit it reaches here, rather
	// than going over every pending model at each commit (10,000 models
	// times 200 commits on a first pass, where none has an answer).
	byTip := map[string][]string{}
	for _, m := range models {
		e, ok := a.entries[attrKey{branch, m}]
		if ok && e.tip == tip {
			out[m] = e.change
			continue
		}
		pending[m] = e
		if ok {
			byTip[e.tip] = append(byTip[e.tip], m)
		}
	}
	steps := 0
	c := tip
	var cRoot, cModels map[string]string
	differ, _ := h.(EntryDiffer)
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
		steps++
		var credited []string
		if differ != nil {
			credited, err = diffStep(differ, p, c, pending)
		} else {
			credited, cRoot, cModels, err = listStep(h, p, c, cRoot, cModels, pending)
		}
		if err != nil {
			return nil, steps, fmt.Errorf("history of branch %q: %w", branch, err)
		}
		for _, m := range credited {
			out[m] = c
			delete(pending, m)
		}
		// A model unchanged since a head it was resolved at keeps that
		// answer: the walk has reached what the previous pass knew.
		for _, m := range byTip[p] {
			if e, ok := pending[m]; ok {
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

// diffStep returns the pending models that commit c changed over its
// parent p: all of them when modelsync.yaml changed.
func diffStep(d EntryDiffer, p, c string, pending map[string]attrEntry) ([]string, error) {
	root, err := d.ChangedEntries(p, c, "")
	if err != nil {
		return nil, err
	}
	var credited []string
	switch {
	case slices.Contains(root, manifest.ConfigFile):
		for m := range pending {
			credited = append(credited, m)
		}
	case slices.Contains(root, manifest.ModelsDir):
		changed, err := d.ChangedEntries(p, c, manifest.ModelsDir)
		if err != nil {
			return nil, err
		}
		for _, m := range changed {
			if _, ok := pending[m]; ok {
				credited = append(credited, m)
			}
		}
	}
	return credited, nil
}

// listStep is diffStep from the listings of both commits' root and
// models/ directories; cRoot and cModels are c's (nil: not read yet), and
// it returns p's for the next step.
func listStep(h History, p, c string, cRoot, cModels map[string]string, pending map[string]attrEntry) (credited []string, pRoot, pModels map[string]string, err error) {
	if cRoot == nil {
		if cRoot, cModels, err = dirState(h, c, nil, nil); err != nil {
			return nil, nil, nil, err
		}
	}
	if pRoot, pModels, err = dirState(h, p, cRoot, cModels); err != nil {
		return nil, nil, nil, err
	}
	switch {
	case pRoot[manifest.ConfigFile] != cRoot[manifest.ConfigFile]:
		for m := range pending {
			credited = append(credited, m)
		}
	case pRoot[manifest.ModelsDir] != cRoot[manifest.ModelsDir]:
		for m := range pending {
			if pModels[m] != cModels[m] {
				credited = append(credited, m)
			}
		}
	}
	return credited, pRoot, pModels, nil
}

// dirState reads the root and models/ entries of a commit; the models/
// entries of the commit after it are reused when the folder is the same.
func dirState(h History, commit string, nextRoot, nextModels map[string]string) (root, models map[string]string, err error) {
	if root, err = h.DirEntries(commit, ""); err != nil {
		return nil, nil, err
	}
	if nextRoot != nil && root[manifest.ModelsDir] == nextRoot[manifest.ModelsDir] {
		return root, nextModels, nil
	}
	if models, err = h.DirEntries(commit, manifest.ModelsDir); err != nil {
		return nil, nil, err
	}
	return root, models, nil
}

// keep drops every entry not in used.
func (a *Attribution) keep(used map[attrKey]bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	live := map[string]bool{}
	for k, e := range a.entries {
		if !used[k] {
			delete(a.entries, k)
			continue
		}
		live[e.change] = true
	}
	for h := range a.commits {
		if !live[h] {
			delete(a.commits, h)
		}
	}
}
