package controller

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/repo"
	"github.com/modelsync/modelsync/reconciler"
)

func (c *Controller) jittered() time.Duration {
	f := 1 + (rand.Float64()*2-1)*c.opts.JitterPercent/100
	return time.Duration(float64(c.opts.Interval) * f)
}

func (c *Controller) fetchLoop(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		var reason string
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			reason = "interval"
		case reason = <-c.trigger:
		}
		if err := c.fetch(ctx, reason); err != nil && ctx.Err() == nil {
			c.log.Error("fetch failed", "reason", reason, "error", err)
		}
		timer.Reset(c.jittered())
	}
}

// fetch syncs the repository and, when Git moved or a full resync is due,
// computes the desired state and queues the keys it affects.
func (c *Controller) fetch(ctx context.Context, reason string) error {
	fctx, cancel := context.WithTimeout(ctx, c.opts.GitTimeout)
	defer cancel()
	start := time.Now()
	c.mu.Lock()
	old, oldDesired, desiredOf, oldHeads := c.snap, c.desired, c.desiredOf, maps.Clone(c.heads)
	full := oldDesired == nil || c.opts.Now().Sub(c.lastFull) >= c.opts.ResyncInterval
	c.mu.Unlock()

	// The repository is shared: another component's fetch may have moved
	// the cache since ours, so "changed" is judged against our own last
	// snapshot, not by whether this fetch downloaded anything.
	snap, err := c.opts.Git.Sync(fctx)
	c.metrics.gitFetch.Observe(time.Since(start).Seconds())
	if err != nil {
		c.mu.Lock()
		c.fetchErr = err.Error()
		c.mu.Unlock()
		return fmt.Errorf("fetching %s: %w", c.opts.Git.URL(), err)
	}
	changed := !snap.SameRefs(old)
	c.ready.Store(true)
	for _, bad := range snap.BadTags() {
		c.log.Warn("ignoring tag", "error", bad)
	}
	if !changed && !full {
		c.mu.Lock()
		c.snap, c.fetchErr, c.lastFetch = snap, "", c.opts.Now()
		c.mu.Unlock()
		return nil
	}
	// A periodic resync re-observes the targets; Git's side only needs
	// recomputing when a ref moved since the desired state was computed.
	// Re-reading every manifest of a quiet repository was most of a
	// resync's CPU time and allocations.
	d := oldDesired
	if d == nil || !snap.SameRefs(desiredOf) {
		var err error
		if d, err = reconciler.ComputeDesiredWith(snap, c.opts.Branch, reconciler.DesiredOptions{Attribution: c.attribution, Manifests: c.manifests, Releases: c.releases}); err != nil {
			c.mu.Lock()
			c.snap, c.fetchErr, c.lastFetch = snap, err.Error(), c.opts.Now()
			c.mu.Unlock()
			return err
		}
	}
	heads := branchHeads(snap, d)
	var keys []Key
	if full {
		// Publish the new desired state first: triage's status rows and
		// any key queued meanwhile must see it.
		ws := c.windowsFor(d)
		c.mu.Lock()
		c.windows = ws
		c.snap, c.desired, c.desiredOf, c.heads = snap, d, snap, heads
		c.pruneLocked(d)
		c.mu.Unlock()
		keys = c.triage(ctx, d)
	} else {
		keys = append(c.changedKeys(snap, oldDesired, d, oldHeads, heads), goneKeys(oldDesired, d)...)
	}
	ws := c.windowsFor(d)
	c.mu.Lock()
	c.windows = ws
	c.snap, c.desired, c.desiredOf, c.heads, c.fetchErr, c.lastFetch = snap, d, snap, heads, "", c.opts.Now()
	if full {
		c.lastFull = c.opts.Now()
	}
	c.pruneLocked(d)
	c.mu.Unlock()
	c.log.Info("desired state computed", "revision", d.Revision, "reason", reason, "full", full, "queued", len(keys), "errors", len(d.Errors))
	for _, k := range keys {
		c.queue.Add(k)
	}
	return nil
}

// branchHeads maps each branch an environment follows to its head.
func branchHeads(snap *repo.Snapshot, d *reconciler.DesiredState) map[string]string {
	heads := map[string]string{}
	for _, e := range d.Config.Environments {
		if e.FollowsReleases() {
			continue
		}
		if c, err := snap.BranchHead(e.Source); err == nil {
			heads[e.Source] = c.Hash
		}
	}
	return heads
}

func modelKeys(m *reconciler.DesiredModel) []Key {
	if len(m.Environments) == 0 {
		return []Key{{Model: m.Name}}
	}
	keys := make([]Key, 0, len(m.Environments))
	for _, e := range m.Environments {
		keys = append(keys, Key{Model: m.Name, Environment: e.Environment})
	}
	return keys
}

func allKeys(d *reconciler.DesiredState) []Key {
	n := 0
	for i := range d.Models {
		n += max(1, len(d.Models[i].Environments))
	}
	keys := make([]Key, 0, n)
	for i := range d.Models {
		keys = append(keys, modelKeys(&d.Models[i])...)
	}
	return keys
}

// hasKey reports whether k is one of allKeys(d).
func hasKey(d *reconciler.DesiredState, k Key) bool {
	m, ok := d.Model(k.Model)
	switch {
	case !ok:
		return false
	case len(m.Environments) == 0:
		return k.Environment == ""
	}
	_, ok = m.Env(k.Environment)
	return ok
}

// goneKeys are the keys of models that left Git between two desired
// states: each one's run prunes what the targets hold of it. A model that
// only broke (it has an error now) is still in Git and keeps everything.
func goneKeys(old, cur *reconciler.DesiredState) []Key {
	var keys []Key
	for _, m := range old.Models {
		if _, ok := cur.Model(m.Name); !ok && !cur.Broken(m.Name) {
			keys = append(keys, Key{Model: m.Name})
		}
	}
	return keys
}

// changedKeys narrows a new revision to the keys it can affect: models
// whose files changed on a followed branch, environments whose resolved
// state differs (release tags move without any branch changing), and models
// that appeared, disappeared or changed suspension. A change outside
// models/ (modelsync.yaml, a shared base) affects everything.
func (c *Controller) changedKeys(snap *repo.Snapshot, old, cur *reconciler.DesiredState, oldHeads, heads map[string]string) []Key {
	if !reflect.DeepEqual(old.Config, cur.Config) {
		return allKeys(cur)
	}
	touched := map[string]map[string]bool{} // model -> env set; "*" means every env
	mark := func(model, env string) {
		if touched[model] == nil {
			touched[model] = map[string]bool{}
		}
		touched[model][env] = true
	}
	for branch, head := range heads {
		from := oldHeads[branch]
		if from == head {
			continue
		}
		paths, err := snap.Source().ChangedPaths(from, head)
		if err != nil {
			c.log.Warn("diffing revisions failed; re-planning everything", "branch", branch, "error", err)
			return allKeys(cur)
		}
		envs := envsFollowing(cur.Config, branch)
		for _, p := range paths {
			rest, ok := strings.CutPrefix(p, manifest.ModelsDir+"/")
			name, _, nested := strings.Cut(rest, "/")
			if !ok || !nested {
				return allKeys(cur)
			}
			for _, e := range envs {
				mark(name, e)
			}
			if branch == c.opts.Branch {
				mark(name, "*")
			}
		}
	}
	for i := range cur.Models {
		m := &cur.Models[i]
		om, ok := old.Model(m.Name)
		if !ok || om.Suspended != m.Suspended || len(om.Environments) != len(m.Environments) {
			mark(m.Name, "*")
			continue
		}
		for _, e := range m.Environments {
			oe, ok := om.Env(e.Environment)
			if !ok || !sameEnv(*oe, e) {
				mark(m.Name, "*") // version tags and lifecycle span environments
			}
		}
	}
	var keys []Key
	for _, name := range slices.Sorted(maps.Keys(touched)) {
		m, ok := cur.Model(name)
		if !ok {
			continue
		}
		envs := touched[name]
		for _, k := range modelKeys(m) {
			if envs["*"] || envs[k.Environment] {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

func envsFollowing(cfg *manifest.RepoConfig, branch string) []string {
	var out []string
	for _, e := range cfg.Environments {
		if !e.FollowsReleases() && e.Source == branch {
			out = append(out, e.Name)
		}
	}
	return out
}

// sameEnv compares what decides the plan; the revision string changes with
// every commit on a branch and is not part of it.
func sameEnv(a, b reconciler.DesiredEnv) bool {
	if a.Version != b.Version || a.Namespace != b.Namespace || a.Alias != b.Alias || a.Release != b.Release || a.Serving != b.Serving {
		return false
	}
	if a.Release != "" && a.Commit.Hash != b.Commit.Hash {
		return false
	}
	return reflect.DeepEqual(a.Canary, b.Canary)
}

// pruneLocked forgets keys of models and environments that left Git.
// Each key is looked up in d rather than d's keys gathered into a set
// first: that set was 40 MB of garbage per fetch at 50,000 models.
func (c *Controller) pruneLocked(d *reconciler.DesiredState) {
	for k := range c.items {
		if !hasKey(d, k) {
			delete(c.items, k)
			delete(c.applied, k)
			c.metrics.setModelInfo(k, 0)
		}
	}
}
