// Package rollback moves one model in one environment back to an earlier
// MLflow version the GitOps way: the change is a commit to the models
// repository (a pull request by default, or straight to the branch on
// request), so the PR gate, the audit trail and the reconciler all see it.
// Optionally it also applies the change at once and pins it on a running
// controller, so the reconcile loop does not undo it before the Git change
// lands.
package rollback

import (
	"fmt"
	"slices"
	"strings"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/release"
	"github.com/modelsync/modelsync/reconciler"
)

// MaxHistory bounds how many commits of a branch are searched for the
// previous version; the search is by first parent, so it is the number of
// states the branch has been in.
const MaxHistory = 10_000

// Change is a resolved rollback: which model, where, from what, to what.
type Change struct {
	Model       string
	Environment string
	// Releases is true when the environment follows release tags.
	Releases bool
	// Branch is where the manifest change is committed: the environment's
	// source branch, or the config branch for a releases environment.
	Branch string
	// From is the version the environment runs now, as Git says.
	From int
	// FromRevision is where From comes from: the branch head or the
	// current release tag, e.g. churn/v1.1.0@sha1:<hash>.
	FromRevision string
	// CurrentRelease is the release tag the environment runs, for
	// releases environments.
	CurrentRelease string
	// To is the version to roll back to.
	To int
	// ToRevision is the newest earlier revision in which the environment
	// ran To, when there is one (always, unless --to named a version the
	// environment never ran).
	ToRevision string
	// Config is modelsync.yaml at the config branch head.
	Config *manifest.RepoConfig

	releaseCommit string
}

// NoPreviousVersionError means Git history holds no earlier version of the
// model in the environment: nothing to roll back to without --to.
type NoPreviousVersionError struct {
	Model, Environment string
	Current            int
	// Searched says what was looked at, e.g. "3 commits of branch main".
	Searched string
}

func (e *NoPreviousVersionError) Error() string {
	return fmt.Sprintf("no previous version of model %s in environment %s: %s always name version %d; pass --to VERSION to choose one",
		e.Model, e.Environment, e.Searched, e.Current)
}

// SameVersionError means the environment already runs the requested version.
type SameVersionError struct {
	Model, Environment string
	Version            int
}

func (e *SameVersionError) Error() string {
	return fmt.Sprintf("model %s already runs version %d in environment %s; nothing to roll back", e.Model, e.Version, e.Environment)
}

// Resolve reads the checked-out config branch and works out the change:
// the environment's current version and the version to go back to, which is
// to when it is non-zero and otherwise the version the environment ran
// before the current one. For a branch environment that is the newest
// earlier state of models/<model>/model.yaml on its source branch (first
// parents, so each state the branch was in) naming another version; for a
// releases environment, the newest earlier release tag of the model whose
// manifest names another version. Commits or tags at which the model did
// not validate are skipped: the reconciler never ran them.
func (c *Checkout) Resolve(model, env string, to int) (*Change, error) {
	if err := release.ValidateModelName(model); err != nil {
		return nil, err
	}
	if to < 0 {
		return nil, fmt.Errorf("version %d for model %s in environment %s: versions start at 1", to, model, env)
	}
	configBranch := c.branch
	head, err := c.Head()
	if err != nil {
		return nil, err
	}
	files, err := c.Files(head.Hash)
	if err != nil {
		return nil, err
	}
	cfg, cfgErrs, err := manifest.LoadConfig(files)
	if err != nil {
		return nil, err
	}
	if len(cfgErrs) > 0 {
		return nil, fmt.Errorf("modelsync.yaml on branch %s is invalid:\n%w", configBranch, cfgErrs)
	}
	ec, ok := cfg.Environment(env)
	if !ok {
		names := make([]string, len(cfg.Environments))
		for i, e := range cfg.Environments {
			names[i] = e.Name
		}
		return nil, fmt.Errorf("environment %q is not in modelsync.yaml on branch %s; expected one of %s", env, configBranch, strings.Join(names, ", "))
	}
	ch := &Change{Model: model, Environment: env, Config: cfg, To: to}
	if ec.FollowsReleases() {
		ch.Releases, ch.Branch = true, configBranch
		err = c.resolveReleases(ch, ec)
	} else {
		ch.Branch = ec.Source
		if err = c.UseBranch(ec.Source); err == nil {
			err = c.resolveBranch(ch)
		}
	}
	if err != nil {
		return nil, err
	}
	if ch.To == ch.From {
		return nil, &SameVersionError{Model: model, Environment: env, Version: ch.From}
	}
	return ch, nil
}

// versionAt reads the environment's version from the model manifest of
// one commit. ok is false when the model is not valid there; present is
// false when it is valid but does not run in the environment (or is absent).
func (c *Checkout) versionAt(commit string, ch *Change) (version int, present, ok bool, err error) {
	files, err := c.Files(commit)
	if err != nil {
		return 0, false, false, err
	}
	m, _, problems, err := manifest.LoadModel(files, ch.Model, ch.Config)
	if err != nil {
		return 0, false, false, fmt.Errorf("reading model %s at %s: %w", ch.Model, commit, err)
	}
	if len(problems) > 0 {
		if missing(problems) {
			return 0, false, true, nil
		}
		return 0, false, false, nil
	}
	spec, present := m.Spec.Environments[ch.Environment]
	return spec.Version, present, true, nil
}

// missing reports whether the only problem is a missing model.yaml.
func missing(problems manifest.ErrorList) bool {
	return len(problems) == 1 && problems[0].Line == 0 && strings.HasPrefix(problems[0].Message, "not found")
}

func (c *Checkout) resolveBranch(ch *Change) error {
	head, err := c.Head()
	if err != nil {
		return err
	}
	v, present, ok, err := c.versionAt(head.Hash, ch)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("model %s is invalid at the head of branch %s (%s); fix it before rolling back: run modelsync validate", ch.Model, ch.Branch, head.Hash)
	case !present:
		return fmt.Errorf("model %s does not run in environment %s at the head of branch %s", ch.Model, ch.Environment, ch.Branch)
	}
	ch.From, ch.FromRevision = v, reconciler.Revision(ch.Branch, head.Hash)
	path := manifest.ModelPath(ch.Model)
	var lastBlob string
	lastVersion := v
	n := 0
	for commit := head.Hash; n < MaxHistory; n++ {
		blob, found, err := c.ws.PathHash(commit, path)
		if err != nil {
			return fmt.Errorf("history of branch %s: %w", ch.Branch, err)
		}
		if !found {
			break
		}
		if blob != lastBlob {
			lastBlob = blob
			ver, present, ok, err := c.versionAt(commit, ch)
			if err != nil {
				return err
			}
			if ok && !present {
				break
			}
			if ok {
				lastVersion = ver
			}
		}
		if lastVersion != ch.From {
			if ch.To == 0 {
				ch.To = lastVersion
			}
			if ch.To == lastVersion && ch.ToRevision == "" {
				ch.ToRevision = reconciler.Revision(ch.Branch, commit)
				return nil
			}
		}
		parent, ok, err := c.ws.FirstParent(commit)
		if err != nil {
			return fmt.Errorf("history of branch %s: %w", ch.Branch, err)
		}
		if !ok {
			// The root commit, or where shallow history ends.
			n++
			break
		}
		commit = parent
	}
	if ch.To == 0 {
		return &NoPreviousVersionError{Model: ch.Model, Environment: ch.Environment, Current: ch.From,
			Searched: fmt.Sprintf("the %d commit(s) of branch %s that have %s", n, ch.Branch, path)}
	}
	return nil
}

func (c *Checkout) resolveReleases(ch *Change, ec manifest.Environment) error {
	tags, _, err := c.ReleaseTags()
	if err != nil {
		return err
	}
	var mine []release.Tag
	for _, t := range tags {
		if t.Model == ch.Model && (ec.Prerelease || !t.Version.IsPrerelease()) {
			mine = append(mine, t)
		}
	}
	if len(mine) == 0 {
		return fmt.Errorf("model %s has no release tag (%s/vX.Y.Z), so environment %s runs nothing of it", ch.Model, ch.Model, ch.Environment)
	}
	// Tags are sorted ascending; the newest is what the environment runs.
	slices.Reverse(mine)
	cur := mine[0]
	v, present, ok, err := c.versionAt(cur.Commit, ch)
	switch {
	case err != nil:
		return fmt.Errorf("release %s of model %s: %w", cur.Name, ch.Model, err)
	case !ok:
		return fmt.Errorf("release %s of model %s is invalid, so environment %s does not run it; fix the model and release again", cur.Name, ch.Model, ch.Environment)
	case !present:
		return fmt.Errorf("model %s does not run in environment %s at release %s", ch.Model, ch.Environment, cur.Name)
	}
	ch.From, ch.FromRevision, ch.CurrentRelease, ch.releaseCommit = v, reconciler.Revision(cur.Name, cur.Commit), cur.Name, cur.Commit
	for _, t := range mine[1:] {
		ver, present, ok, err := c.versionAt(t.Commit, ch)
		if err != nil {
			return fmt.Errorf("release %s of model %s: %w", t.Name, ch.Model, err)
		}
		if !ok || !present || ver == ch.From {
			continue
		}
		if ch.To == 0 {
			ch.To = ver
		}
		if ver == ch.To {
			ch.ToRevision = reconciler.Revision(t.Name, t.Commit)
			return nil
		}
	}
	if ch.To == 0 {
		return &NoPreviousVersionError{Model: ch.Model, Environment: ch.Environment, Current: ch.From,
			Searched: fmt.Sprintf("the %d release tag(s) of model %s up to %s", len(mine), ch.Model, cur.Name)}
	}
	return nil
}
