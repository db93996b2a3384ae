// Package prcheck compares the models repository at two commits (a base and
// a head) and judges the difference with the policy gate. It knows nothing
// about GitHub: `modelsync check` and the GitHub PR gate both build on it,
// so a developer's local check and the required status agree.
package prcheck

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/release"
	"github.com/modelsync/modelsync/internal/repo"
	"github.com/modelsync/modelsync/policy"
	"github.com/modelsync/modelsync/reconciler"
)

// PolicyDir is the directory of the models repository that may hold a
// policy bundle. It is read from the base commit only.
const PolicyDir = "policy"

// Repository is a synced models repository: commits, trees, release tags
// and file differences between two commits.
type Repository interface {
	reconciler.Snapshot
	ChangedPaths(fromHash, toHash string) ([]string, error)
}

// FromSnapshot returns a repository snapshot as a Repository.
func FromSnapshot(s *repo.Snapshot) Repository { return s }

// Refs names the two commits compared.
type Refs struct {
	// BaseBranch is the branch the base commit stands for: environments
	// whose source is this branch read the base commit in the base view
	// and the head commit in the head view.
	BaseBranch string `json:"baseBranch"`
	// BaseRef and HeadRef are what the user or GitHub called the commits.
	BaseRef string `json:"baseRef"`
	HeadRef string `json:"headRef"`
	BaseSHA string `json:"baseSHA"`
	HeadSHA string `json:"headSHA"`
}

// Comparison is what the head changes relative to the base.
type Comparison struct {
	Refs Refs
	// Base and Head are the desired states as they are now and as they
	// would be once the head is merged and, for environments that follow
	// release tags, released.
	Base, Head *reconciler.DesiredState
	// BaseRepo and HeadRepo are the parsed manifests at the two commits.
	BaseRepo, HeadRepo *manifest.Repo
	// Changes lists every model and environment whose rollout differs.
	Changes []policy.Change
	// ConfigChanges lists what the head changes in modelsync.yaml, per
	// environment it touches.
	ConfigChanges []policy.ConfigChange
	// ManifestErrors are the head's broken manifests the change answers
	// for, modelsync.yaml's included.
	ManifestErrors []policy.ManifestError
	// HeadConfigInvalid is set when modelsync.yaml is broken at the head,
	// so nothing can be planned and Changes is empty.
	HeadConfigInvalid bool
	// Models are the manifests before and after, with field lines.
	Models map[string]policy.ModelDoc
	// Releases holds, for models whose released environments change, the
	// newest release tag and the one the next release would get.
	Releases map[string]policy.ReleaseChange
	// Plan carries the head's unresolvable models as plan errors; a PR
	// check observes no live targets, so it has no actions.
	Plan *reconciler.Plan
	// ChangedFiles are the repository paths that differ, sorted.
	ChangedFiles []string
	// PolicyChanged is set when the head edits the policy directory; the
	// edit takes effect only after merge, so policy owners must review it.
	PolicyChanged bool
}

// view presents the repository as it is at one commit: the base branch
// resolves to that commit, every other branch to its real head, and the
// release tags are the given list.
type view struct {
	reconciler.Snapshot
	branch string
	commit reconciler.Commit
	tags   []release.Tag
	index  *release.Index
}

func (v view) BranchHead(b string) (reconciler.Commit, error) {
	if b == v.branch {
		return v.commit, nil
	}
	return v.Snapshot.BranchHead(b)
}

func (v view) ReleaseTags() []release.Tag { return v.tags }

// ReleaseIndex implements reconciler.ReleaseIndexer: each view indexes its
// own list, which is not the repository's on the head side.
func (v view) ReleaseIndex() *release.Index { return v.index }

// Compare computes both desired states and their differences.
//
// Environments that follow release tags (prod in the example repository)
// do not change when a branch changes: they change at the next release.
// The head view therefore gives every model whose folder the head touches
// a prospective next patch release at the head commit, so the gate judges
// what merging and releasing would put into those environments. The base
// view uses the real tags.
func Compare(ctx context.Context, r Repository, refs Refs) (*Comparison, error) {
	if refs.BaseBranch == "" {
		return nil, fmt.Errorf("comparing %s..%s: base branch is empty", refs.BaseRef, refs.HeadRef)
	}
	baseCommit, err := r.Commit(refs.BaseSHA)
	if err != nil {
		return nil, fmt.Errorf("base %s: %w", refs.BaseRef, err)
	}
	headCommit, err := r.Commit(refs.HeadSHA)
	if err != nil {
		return nil, fmt.Errorf("head %s: %w", refs.HeadRef, err)
	}
	changed, err := r.ChangedPaths(refs.BaseSHA, refs.HeadSHA)
	if err != nil {
		return nil, fmt.Errorf("diff %s..%s: %w", refs.BaseRef, refs.HeadRef, err)
	}
	c := &Comparison{Refs: refs, ChangedFiles: changed}
	for _, p := range changed {
		if p == PolicyDir || strings.HasPrefix(p, PolicyDir+"/") {
			c.PolicyChanged = true
		}
	}
	baseTags := r.ReleaseTags()
	// Indexed once: a change touching every model asks for each one's
	// newest release, which a scan of all tags made quadratic.
	baseIndex := release.NewIndex(baseTags)
	touched := touchedModels(changed)
	headTags := slices.Clone(baseTags)
	prospective := map[string][2]string{}
	for _, m := range touched {
		next, after, err := baseIndex.NextRelease(m, release.BumpPatch)
		if err != nil {
			return nil, err
		}
		before := ""
		if after != nil {
			before = "v" + after.Version.String()
		}
		next.Commit = headCommit.Hash
		headTags = append(headTags, next)
		prospective[m] = [2]string{before, "v" + next.Version.String()}
	}

	baseView := view{Snapshot: r, branch: refs.BaseBranch, commit: baseCommit, tags: baseTags, index: baseIndex}
	headView := view{Snapshot: r, branch: refs.BaseBranch, commit: headCommit, tags: headTags, index: release.NewIndex(headTags)}
	// A broken modelsync.yaml plans nothing; on the head that is the
	// change's own problem (a deny, see ManifestErrors), on the base one
	// the change may be repairing. Neither may stop the check.
	var headConfig *reconciler.ConfigError
	// One cache of decoded manifests for both sides and both loads: a
	// pull request changes a few models, and each of the four reads
	// decoded every model of the repository before.
	manifests := manifest.NewCache()
	if c.Base, err = desired(baseView, refs.BaseBranch, manifests, nil); err != nil {
		return nil, fmt.Errorf("desired state at base %s: %w", refs.BaseRef, err)
	}
	if c.Head, err = desired(headView, refs.BaseBranch, manifests, &headConfig); err != nil {
		return nil, fmt.Errorf("desired state at head %s: %w", refs.HeadRef, err)
	}
	c.Head.Revision = reconciler.Revision(refs.HeadRef, refs.HeadSHA)
	if c.BaseRepo, err = loadRepo(r, refs.BaseSHA, manifests); err != nil {
		return nil, fmt.Errorf("base %s: %w", refs.BaseRef, err)
	}
	if c.HeadRepo, err = loadRepo(r, refs.HeadSHA, manifests); err != nil {
		return nil, fmt.Errorf("head %s: %w", refs.HeadRef, err)
	}
	c.Changes = []policy.Change{}
	if headConfig == nil {
		// With modelsync.yaml broken at the head nothing would change on
		// merge: the reconciler plans nothing until it is fixed.
		c.Changes = policy.BuildChanges(c.Base, c.Head)
	}
	c.HeadConfigInvalid = headConfig != nil
	c.Models = policy.BuildModels(c.BaseRepo, c.HeadRepo, nil)
	c.ConfigChanges = policy.BuildConfigChanges(c.BaseRepo, c.HeadRepo)
	var configProblems manifest.ErrorList
	if headConfig != nil {
		configProblems = headConfig.Problems
	}
	c.ManifestErrors = policy.BuildManifestErrors(c.BaseRepo, c.HeadRepo, configProblems, changed)
	c.Releases = map[string]policy.ReleaseChange{}
	for _, ch := range c.Changes {
		if !c.followsReleases(ch.Environment) {
			continue
		}
		if p, ok := prospective[ch.Model]; ok {
			c.Releases[ch.Model] = policy.ReleaseChange{Before: p[0], After: p[1]}
		}
	}
	if c.Plan, err = reconciler.BuildPlan(ctx, c.Head, nil); err != nil {
		return nil, fmt.Errorf("plan for head %s: %w", refs.HeadRef, err)
	}
	return c, nil
}

// desired computes the desired state of one side. A broken modelsync.yaml
// yields an empty state, and the problem is stored in *broken when broken
// is not nil.
func desired(v view, branch string, manifests *manifest.Cache, broken **reconciler.ConfigError) (*reconciler.DesiredState, error) {
	d, err := reconciler.ComputeDesiredWith(v, branch, reconciler.DesiredOptions{Manifests: manifests})
	var ce *reconciler.ConfigError
	if errors.As(err, &ce) {
		if broken != nil {
			*broken = ce
		}
		return &reconciler.DesiredState{Revision: ce.Revision}, nil
	}
	return d, err
}

// followsReleases reports whether env takes release tags, as the head
// configures it (or the base, when the head's configuration is broken).
func (c *Comparison) followsReleases(env string) bool {
	for _, d := range []*reconciler.DesiredState{c.Head, c.Base} {
		if d != nil && d.Config != nil {
			e, ok := d.Config.Environment(env)
			return ok && e.FollowsReleases()
		}
	}
	return false
}

// touchedModels lists the model folders with a changed file, sorted.
func touchedModels(paths []string) []string {
	var out []string
	for _, p := range paths {
		rest, ok := strings.CutPrefix(p, manifest.ModelsDir+"/")
		if !ok {
			continue
		}
		name, _, ok := strings.Cut(rest, "/")
		if !ok || release.ValidateModelName(name) != nil {
			continue
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func loadRepo(r Repository, sha string, manifests *manifest.Cache) (*manifest.Repo, error) {
	t, err := r.Tree(sha)
	if err != nil {
		return nil, err
	}
	return manifests.Load(t)
}

// PolicySource returns where the rules for this comparison come from: the
// base commit's policy directory when it has one, else the rules built into
// the binary. The head is never read, so a change cannot rewrite the gate
// that judges it.
func PolicySource(r Repository, refs Refs) (policy.Source, error) {
	t, err := r.Tree(refs.BaseSHA)
	if err != nil {
		return policy.Source{}, fmt.Errorf("base %s: %w", refs.BaseRef, err)
	}
	info, err := fs.Stat(t, PolicyDir)
	switch {
	case err == nil && info.IsDir():
		return policy.FSSource(t, PolicyDir).WithRevision(reconciler.Revision(refs.BaseRef, refs.BaseSHA)), nil
	case err == nil || isNotExist(err):
		return policy.DefaultSource(), nil
	default:
		return policy.Source{}, fmt.Errorf("base %s: reading %s/: %w", refs.BaseRef, PolicyDir, err)
	}
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// AffectedEnvironments lists the environments the changes touch, in the
// repository's promotion order.
func (c *Comparison) AffectedEnvironments() []string {
	set := map[string]bool{}
	for _, ch := range c.Changes {
		set[ch.Environment] = true
	}
	var out []string
	if c.Head != nil && c.Head.Config != nil {
		for _, e := range c.Head.Config.Environments {
			if set[e.Name] {
				out = append(out, e.Name)
				delete(set, e.Name)
			}
		}
	}
	rest := make([]string, 0, len(set))
	for e := range set {
		rest = append(rest, e)
	}
	slices.Sort(rest)
	return append(out, rest...)
}
