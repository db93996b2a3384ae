// Package reconciler turns a models repository into desired state, compares
// it with what each target observes, and produces an immutable plan of small
// typed actions that Apply executes. The PR check and the controller share
// this planner, so what a reviewer sees is what the reconciler does.
package reconciler

import (
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/release"
)

// Commit is what the reconciler needs to know about a Git commit.
type Commit struct {
	Hash        string    `json:"hash"`
	AuthorName  string    `json:"authorName,omitempty"`
	AuthorEmail string    `json:"authorEmail,omitempty"`
	When        time.Time `json:"when"`
}

// Snapshot is a read-only view of the models repository at one fetch: its
// branch heads, its release tags, and the files of any commit.
type Snapshot interface {
	BranchHead(branch string) (Commit, error)
	Commit(hash string) (Commit, error)
	Tree(hash string) (fs.FS, error)
	ReleaseTags() []release.Tag
}

// ReleaseIndexer is a Snapshot that indexes its release tags by model once
// per fetch. Without it, ComputeDesired indexes ReleaseTags itself, once
// per computation.
type ReleaseIndexer interface {
	ReleaseIndex() *release.Index
}

// releaseIndex returns snap's release tags indexed by model.
func releaseIndex(snap Snapshot) *release.Index {
	if ix, ok := snap.(ReleaseIndexer); ok {
		if t := ix.ReleaseIndex(); t != nil {
			return t
		}
	}
	return release.NewIndex(snap.ReleaseTags())
}

// DesiredState is what Git says should run, per model and environment,
// deterministic and sorted.
type DesiredState struct {
	// Revision is the config branch head, e.g. main@sha1:<sha>.
	Revision string               `json:"revision"`
	Config   *manifest.RepoConfig `json:"-"`
	Models   []DesiredModel       `json:"models"`
	// Errors are models that could not be resolved; each blocks only itself.
	Errors []ModelError `json:"errors"`
	// Warnings are environments a model declares but that the state leaves
	// out, such as a release environment of a model with no release tag
	// (never released, or read from a clone without tags). The model's
	// other environments are resolved as usual.
	Warnings []ModelError `json:"warnings"`
	// Scope says which models this state speaks for. A model outside it
	// may exist in Git all the same, so no target may delete, archive or
	// retire anything of it. The zero Scope covers exactly the models in
	// Models and Errors; only ComputeDesired, which read the whole
	// repository, marks a state as covering everything.
	Scope Scope `json:"-"`
}

// Scope is the set of models a desired state is authoritative for.
type Scope struct {
	whole bool
	// names, when non-nil, lists the models covered, sorted. A name may be
	// absent from Models: the state then says that model runs nowhere.
	names []string
}

// WholeRepository is the scope of a state computed from every model file
// of the repository: live objects of models it does not list may be pruned.
func WholeRepository() Scope { return Scope{whole: true} }

// ModelsScope covers exactly the named models.
func ModelsScope(names ...string) Scope {
	s := slices.Clone(names)
	slices.Sort(s)
	return Scope{names: slices.Compact(s)}
}

// String describes the scope for errors and logs.
func (s Scope) String() string {
	switch {
	case s.whole:
		return "the whole repository"
	case s.names == nil:
		return "the models listed"
	}
	return "models " + strings.Join(s.names, ", ")
}

// Whole reports whether the state speaks for every model of the repository,
// which pruning and retiring models that left Git require.
func (d *DesiredState) Whole() bool { return d.Scope.whole }

// Covers reports whether the state speaks for model: a target may plan
// actions for a model only when its desired state covers it.
func (d *DesiredState) Covers(model string) bool {
	switch {
	case d.Scope.whole:
		return true
	case d.Scope.names != nil:
		_, found := slices.BinarySearch(d.Scope.names, model)
		return found
	}
	if _, ok := d.Model(model); ok {
		return true
	}
	return d.Broken(model)
}

// Broken reports whether model is in Git but could not be resolved: it has
// an error of its own. Such a model keeps everything it has live.
func (d *DesiredState) Broken(model string) bool {
	return slices.ContainsFunc(d.Errors, func(e ModelError) bool { return e.Model == model })
}

// Subset returns a state that covers only the named models: their desired
// models and errors, with the same revision and configuration. Targets
// planning from it leave every other model alone, whatever the
// configuration says about pruning.
func (d *DesiredState) Subset(names ...string) *DesiredState {
	sub := &DesiredState{Revision: d.Revision, Config: d.Config, Scope: ModelsScope(names...)}
	// Looked up by name: a controller work item takes one model out of
	// thousands, so this must not cost a pass over all of them.
	for _, n := range sub.Scope.names {
		if m, ok := d.Model(n); ok {
			sub.Models = append(sub.Models, *m)
		}
	}
	for _, e := range d.Warnings {
		if e.Model != "" && sub.Covers(e.Model) {
			sub.Warnings = append(sub.Warnings, e)
		}
	}
	for _, e := range d.Errors {
		if e.Model != "" && sub.Covers(e.Model) {
			sub.Errors = append(sub.Errors, e)
		}
	}
	return sub
}

// DesiredModel is one model with everything that follows from its manifest.
type DesiredModel struct {
	Name            string             `json:"name"`
	RegisteredModel string             `json:"registeredModel"`
	Owners          []string           `json:"owners"`
	Suspended       bool               `json:"suspended"`
	Lifecycle       manifest.Lifecycle `json:"lifecycle"`
	// Environments are in the order modelsync.yaml lists them; an
	// environment the model does not run in is absent.
	Environments []DesiredEnv `json:"environments"`
	// Manifest is the model file at the config branch head.
	Manifest *manifest.Model `json:"-"`
}

// DesiredEnv is what should run for one model in one environment.
type DesiredEnv struct {
	Environment string         `json:"environment"`
	Namespace   string         `json:"namespace"`
	Alias       string         `json:"alias"`
	Version     int            `json:"version"`
	Canary      *DesiredCanary `json:"canary,omitempty"`
	Serving     DesiredServing `json:"serving"`
	// Revision names where this state came from: a branch head or a release tag.
	Revision string `json:"revision"`
	Commit   Commit `json:"commit"`
	// Release is the release tag this state came from, for release environments.
	Release string `json:"release,omitempty"`
	// Files is the repository tree at Commit, for rendering serving manifests.
	Files fs.FS `json:"-"`
}

// DesiredCanary is a candidate version taking part of the traffic.
type DesiredCanary struct {
	Version int    `json:"version"`
	Alias   string `json:"alias"`
	Weight  int    `json:"weight"`
	Steps   []int  `json:"steps"`
	// Analysis is the canary's analysis with modelsync.yaml's defaults
	// merged in (manifest.Analysis.Resolved); nil without one.
	Analysis *manifest.Analysis `json:"analysis,omitempty"`
}

// DesiredServing locates and describes the model's serving manifests.
type DesiredServing struct {
	// Dir is the kustomize directory, relative to the repository root.
	Dir         string `json:"dir"`
	ModelFormat string `json:"modelFormat"`
	Runtime     string `json:"runtime,omitempty"`
}

// Model returns the desired model by name.
func (d *DesiredState) Model(name string) (*DesiredModel, bool) {
	i := sort.Search(len(d.Models), func(i int) bool { return d.Models[i].Name >= name })
	if i < len(d.Models) && d.Models[i].Name == name {
		return &d.Models[i], true
	}
	return nil, false
}

// Env returns the model's desired state in one environment.
func (m *DesiredModel) Env(name string) (*DesiredEnv, bool) {
	for i := range m.Environments {
		if m.Environments[i].Environment == name {
			return &m.Environments[i], true
		}
	}
	return nil, false
}

// ReferencedVersions lists every version some environment or canary uses.
func (m *DesiredModel) ReferencedVersions() []int {
	var vs []int
	for _, e := range m.Environments {
		vs = append(vs, e.Version)
		if e.Canary != nil {
			vs = append(vs, e.Canary.Version)
		}
	}
	slices.Sort(vs)
	return slices.Compact(vs)
}

// ConfigError means modelsync.yaml itself is broken, so nothing can be
// planned. It carries every problem found.
type ConfigError struct {
	Revision string
	Problems manifest.ErrorList
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("modelsync.yaml at %s is invalid:\n%s", e.Revision, e.Problems.Error())
}

func (e *ConfigError) Unwrap() error { return e.Problems }

// Revision formats a Git revision the way Flux does: "main@sha1:<hash>" or
// "churn/v2.1.0@sha1:<hash>". A "refs/heads/" or "refs/tags/" prefix is
// dropped; an empty ref yields "sha1:<hash>". It is the one formatter of
// revision strings: status, audit entries, plans and pull request checks
// must agree on them.
func Revision(ref, hash string) string {
	ref = strings.TrimPrefix(ref, "refs/heads/")
	ref = strings.TrimPrefix(ref, "refs/tags/")
	if ref == "" {
		return "sha1:" + hash
	}
	return ref + "@sha1:" + hash
}

// ComputeDesired resolves every model in every environment. modelsync.yaml
// and the list of models come from configBranch; each environment then takes
// each model from its own source (a branch head, or the model's newest
// release tag). A model that is broken at its source is reported in Errors.
func ComputeDesired(snap Snapshot, configBranch string) (*DesiredState, error) {
	return ComputeDesiredWith(snap, configBranch, DesiredOptions{})
}

// DesiredOptions tune ComputeDesiredWith.
type DesiredOptions struct {
	// Attribution remembers which commit changed each model between
	// passes; nil finds them afresh (see Attribution).
	Attribution *Attribution
	// Manifests keeps decoded manifests by content between passes, so a
	// pass after a push decodes only the files the push changed; it is
	// swept at the end of each computation. nil decodes every manifest
	// once per computation (a model's release commit and the branch head
	// still share the decoding when the file is the same).
	Manifests *manifest.Cache
	// Releases remembers each model's release resolution between passes,
	// so a push to a branch does not read every released model again; it
	// is swept at the end of each computation. nil resolves afresh.
	Releases *ReleaseMemo
}

// ComputeDesiredWith is ComputeDesired with options. Each branch
// environment's Commit and Revision name the commit that last changed what
// it runs for the model (see Attribution), when snap offers History.
func ComputeDesiredWith(snap Snapshot, configBranch string, opts DesiredOptions) (*DesiredState, error) {
	head, err := snap.BranchHead(configBranch)
	if err != nil {
		return nil, fmt.Errorf("resolving config branch %q: %w", configBranch, err)
	}
	cache := opts.Manifests
	if cache == nil {
		cache = manifest.NewCache()
	} else {
		defer cache.Sweep()
	}
	defer opts.Releases.sweep()
	r := &resolver{snap: snap, tags: releaseIndex(snap), manifests: cache, releases: opts.Releases, repos: map[string]*manifest.Repo{}, trees: map[string]fs.FS{}}
	rev := Revision(configBranch, head.Hash)
	base, err := r.repoAt(head.Hash)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", rev, err)
	}
	if len(base.ConfigErrors) > 0 {
		return nil, &ConfigError{Revision: rev, Problems: base.ConfigErrors}
	}
	// Only here is the config branch known: without allowedSources it is
	// the one branch environments may follow.
	if problems := base.SourceErrors(configBranch); len(problems) > 0 {
		return nil, &ConfigError{Revision: rev, Problems: problems}
	}
	cfg := base.Config
	d := &DesiredState{Revision: rev, Config: cfg, Scope: WholeRepository()}
	for _, name := range base.ModelNames() {
		m := base.Models[name]
		dm := DesiredModel{
			Name:            name,
			RegisteredModel: m.RegisteredModel(),
			Owners:          m.Spec.Owners,
			Suspended:       m.Spec.Suspend,
			Lifecycle:       cfg.EffectiveLifecycle(m),
			Manifest:        m,
			// Sized once: grown by append, three environments took a
			// slice of four (1 KiB against 704 bytes), 15 MB of a
			// controller's heap at 50,000 models.
			Environments: make([]DesiredEnv, 0, len(cfg.Environments)),
		}
		failed := false
		for _, env := range cfg.Environments {
			de, ok, err := r.resolveEnv(cfg, env, name, configBranch, head)
			if err != nil {
				d.Errors = append(d.Errors, ModelError{Model: name, Environment: env.Name, Message: err.Error()})
				failed = true
				continue
			}
			if ok {
				dm.Environments = append(dm.Environments, de)
			} else if w, unknown := missingRelease(r.tags, m, env); w != "" {
				d.Warnings = append(d.Warnings, ModelError{Model: name, Environment: env.Name, Message: w, Unknown: unknown})
			}
		}
		if len(dm.Environments) == 0 {
			dm.Environments = nil // as before: no environments is null in JSON
		}
		if failed {
			// A half-resolved model could archive versions that a broken
			// environment still runs; plan nothing for it.
			continue
		}
		d.Models = append(d.Models, dm)
	}
	for _, name := range sortedProblemNames(base) {
		d.Errors = append(d.Errors, ModelError{Model: name, Message: base.Problems[name].Error()})
	}
	sortModelErrors(d.Errors)
	if h, ok := snap.(History); ok {
		a := opts.Attribution
		if a == nil {
			a = NewAttribution()
		}
		if err := r.attribute(d, h, a); err != nil {
			return nil, fmt.Errorf("reading %s: %w", rev, err)
		}
	}
	return d, nil
}

// missingRelease explains why a release environment m declares is left
// out of the desired state, or returns "" when it is not (m does not
// declare env, or env follows a branch, or a release exists). Leaving it
// out silently would read as "this model does not run there" when the
// likely cause is a clone that fetched no tags. unknown is set when the
// repository has no release tags at all: then this view cannot say what
// env runs, and the plan keeps what is live there.
func missingRelease(tags *release.Index, m *manifest.Model, env manifest.Environment) (msg string, unknown bool) {
	if !env.FollowsReleases() {
		return "", false
	}
	if _, declared := m.Spec.Environments[env.Name]; !declared {
		return "", false
	}
	if _, ok := tags.Latest(m.Metadata.Name, env.Prerelease); ok {
		return "", false
	}
	want := fmt.Sprintf("a release tag %s/vX.Y.Z", m.Metadata.Name)
	if _, ok := tags.Latest(m.Metadata.Name, true); ok {
		return fmt.Sprintf("left out: %s follows releases and takes no pre-release (prerelease: false), and the model has only pre-release tags; expected %s", env.Name, want), false
	}
	if tags.Len() == 0 {
		return fmt.Sprintf("left out: %s follows releases, expected %s, and the repository has no release tags at all: nothing was released yet (modelsync release %s), or this is a clone without tags (git clone --depth, a CI checkout) that cannot say what %s runs (git fetch --tags); what runs in %s is kept", env.Name, want, m.Metadata.Name, env.Name, env.Name), true
	}
	return fmt.Sprintf("left out: %s follows releases and the model has no release yet; expected %s (modelsync release %s)", env.Name, want, m.Metadata.Name), false
}

// attribute credits each branch environment to the commit that last
// changed its model on that branch: Commit, Revision and Files move there.
// The files under models/<model>/ and modelsync.yaml are the same at that
// commit as at the head, so what renders is unchanged.
func (r *resolver) attribute(d *DesiredState, h History, a *Attribution) error {
	source := map[string]string{}
	for _, e := range d.Config.Environments {
		if !e.FollowsReleases() {
			source[e.Name] = e.Source
		}
	}
	type branchModels struct {
		tip    string
		models []string
	}
	branches := map[string]*branchModels{}
	var order []string
	for _, m := range d.Models {
		for _, e := range m.Environments {
			b, ok := source[e.Environment]
			if !ok || e.Release != "" {
				continue
			}
			bm := branches[b]
			if bm == nil {
				bm = &branchModels{tip: e.Commit.Hash}
				branches[b] = bm
				order = append(order, b)
			}
			if n := len(bm.models); n == 0 || bm.models[n-1] != m.Name {
				bm.models = append(bm.models, m.Name)
			}
		}
	}
	used := map[attrKey]bool{}
	changes := map[string]map[string]string{}
	for _, b := range order {
		bm := branches[b]
		ch, _, err := a.resolveBranch(h, b, bm.tip, bm.models)
		if err != nil {
			return err
		}
		changes[b] = ch
		for _, m := range bm.models {
			used[attrKey{b, m}] = true
		}
	}
	a.keep(used)
	commits := map[string]changeCommit{}
	for i := range d.Models {
		m := &d.Models[i]
		for j := range m.Environments {
			e := &m.Environments[j]
			b, ok := source[e.Environment]
			if !ok || e.Release != "" {
				continue
			}
			hash := changes[b][m.Name]
			if hash == "" || hash == e.Commit.Hash {
				continue
			}
			c, ok := commits[hash]
			if !ok {
				if c, ok = a.changeCommit(hash); !ok {
					var err error
					if c.commit, err = r.snap.Commit(hash); err != nil {
						return fmt.Errorf("commit %s that last changed model %s on branch %q: %w", hash, m.Name, b, err)
					}
					if c.files, err = r.tree(hash); err != nil {
						return fmt.Errorf("commit %s that last changed model %s on branch %q: %w", hash, m.Name, b, err)
					}
					a.rememberCommit(hash, c)
				}
				commits[hash] = c
			}
			e.Commit, e.Revision, e.Files = c.commit, Revision(b, hash), c.files
		}
	}
	return nil
}

func sortedProblemNames(r *manifest.Repo) []string {
	names := make([]string, 0, len(r.Problems))
	for n := range r.Problems {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// resolver caches parsed repositories per commit: environments that share a
// branch share one parse.
type resolver struct {
	snap      Snapshot
	tags      *release.Index
	manifests *manifest.Cache
	releases  *ReleaseMemo
	repos     map[string]*manifest.Repo
	trees     map[string]fs.FS
}

func (r *resolver) tree(hash string) (fs.FS, error) {
	if t, ok := r.trees[hash]; ok {
		return t, nil
	}
	t, err := r.snap.Tree(hash)
	if err != nil {
		return nil, err
	}
	r.trees[hash] = t
	return t, nil
}

// modelAt reads one model at a release commit. Release tags usually point
// at commits no branch environment uses, so only that model is parsed;
// when the whole commit was parsed already, its result is reused.
func (r *resolver) modelAt(hash, model string, cfg *manifest.RepoConfig) (*manifest.Model, manifest.ErrorList, error) {
	if repo, ok := r.repos[hash]; ok {
		if problems, bad := repo.Problems[model]; bad {
			return nil, problems, nil
		}
		if m, ok := repo.Models[model]; ok {
			return m, nil, nil
		}
	}
	t, err := r.tree(hash)
	if err != nil {
		return nil, nil, err
	}
	m, _, problems, err := r.manifests.LoadModel(t, model, cfg)
	return m, problems, err
}

func (r *resolver) repoAt(hash string) (*manifest.Repo, error) {
	if repo, ok := r.repos[hash]; ok {
		return repo, nil
	}
	t, err := r.tree(hash)
	if err != nil {
		return nil, err
	}
	repo, err := r.manifests.Load(t)
	if err != nil {
		return nil, err
	}
	r.repos[hash] = repo
	return repo, nil
}

func (r *resolver) resolveEnv(cfg *manifest.RepoConfig, env manifest.Environment, model, configBranch string, configHead Commit) (DesiredEnv, bool, error) {
	var (
		commit  Commit
		rev     string
		tagName string
		m       *manifest.Model
		files   fs.FS
	)
	if env.FollowsReleases() {
		tag, ok := r.tags.Latest(model, env.Prerelease)
		if !ok {
			return DesiredEnv{}, false, nil
		}
		key := releaseKey{cfg: cfg, model: model, tag: tag.Name, commit: tag.Commit}
		rel, known := r.releases.get(key)
		if !known {
			var err error
			if rel.commit, err = r.snap.Commit(tag.Commit); err != nil {
				return DesiredEnv{}, false, fmt.Errorf("release %s: %w", tag.Name, err)
			}
			var problems manifest.ErrorList
			if rel.model, problems, err = r.modelAt(rel.commit.Hash, model, cfg); err != nil {
				return DesiredEnv{}, false, fmt.Errorf("release %s: %w", tag.Name, err)
			}
			if len(problems) > 0 {
				return DesiredEnv{}, false, fmt.Errorf("release %s is invalid: %w", tag.Name, problems)
			}
			if rel.files, err = r.tree(rel.commit.Hash); err != nil {
				return DesiredEnv{}, false, fmt.Errorf("release %s: %w", tag.Name, err)
			}
			r.releases.put(key, rel)
		}
		files = rel.files
		c, mm := rel.commit, rel.model
		commit, rev, tagName, m = c, Revision(tag.Name, c.Hash), tag.Name, mm
	} else {
		c := configHead
		if env.Source != configBranch {
			var err error
			if c, err = r.snap.BranchHead(env.Source); err != nil {
				return DesiredEnv{}, false, fmt.Errorf("branch %q: %w", env.Source, err)
			}
		}
		repo, err := r.repoAt(c.Hash)
		if err != nil {
			return DesiredEnv{}, false, fmt.Errorf("branch %q: %w", env.Source, err)
		}
		if problems, bad := repo.Problems[model]; bad {
			return DesiredEnv{}, false, fmt.Errorf("%s@sha1:%s is invalid: %w", env.Source, c.Hash, problems)
		}
		mm, ok := repo.Models[model]
		if !ok {
			return DesiredEnv{}, false, nil
		}
		commit, rev, m = c, Revision(env.Source, c.Hash), mm
	}
	spec, ok := m.Spec.Environments[env.Name]
	if !ok {
		return DesiredEnv{}, false, nil
	}
	if files == nil {
		var err error
		if files, err = r.tree(commit.Hash); err != nil {
			return DesiredEnv{}, false, err
		}
	}
	de := DesiredEnv{
		Environment: env.Name,
		Namespace:   env.Namespace,
		Alias:       env.AliasName(),
		Version:     spec.Version,
		Serving: DesiredServing{
			Dir:         m.ServingDir(),
			ModelFormat: m.Spec.Serving.ModelFormat,
			Runtime:     m.Spec.Serving.Runtime,
		},
		Revision: rev,
		Commit:   commit,
		Release:  tagName,
		Files:    files,
	}
	if c := spec.Canary; c != nil {
		w := c.Weight
		if w == 0 && len(c.Steps) > 0 {
			w = c.Steps[0]
		}
		de.Canary = &DesiredCanary{Version: c.Version, Alias: env.AliasName() + manifest.CanarySuffix, Weight: w, Steps: slices.Clone(c.Steps)}
		if c.Analysis != nil {
			// Defaults come from modelsync.yaml on the config branch, the
			// one place a repository's provider and credentials are named.
			var defaults *manifest.AnalysisDefaults
			if cfg != nil {
				defaults = cfg.Analysis
			}
			a := c.Analysis.Resolved(defaults)
			de.Canary.Analysis = &a
		}
	}
	return de, true, nil
}

// String renders a one-line summary, e.g. "prod: v3 (canary v4 at 20%)".
func (e DesiredEnv) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: v%d", e.Environment, e.Version)
	if e.Canary != nil {
		fmt.Fprintf(&b, " (canary v%d at %d%%)", e.Canary.Version, e.Canary.Weight)
	}
	return b.String()
}
