package kserve

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/restmapper"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/reconciler"
)

// step is one planned write, in the order it must run.
type step struct {
	kind    string
	op      reconciler.Op
	key     objKey
	obj     *unstructured.Unstructured
	uid     types.UID
	force   bool
	drift   bool
	from    string
	to      string
	reason  string
	version int
	// final marks the write the item converges to; it is dry-run.
	final bool
}

// item is one model in one environment.
type item struct {
	model, env, revision string
	version              int
	rendered             *Rendered
	err                  error
	// keys are the objects the render asks for, changed or not.
	keys  []objKey
	steps []step
	waits []string
}

// observation is what Observe hands to Plan.
type observation struct {
	items    []*item
	createNS []string
	// orphans are managed objects no successful render asks for; Plan
	// decides which of them may be pruned.
	orphans []orphan
	// errs are problems not tied to one model.
	errs []reconciler.ModelError
}

type orphan struct {
	key        objKey
	kind       string
	uid        types.UID
	model, env string
	version    string
}

// Observe implements reconciler.TypedTarget. It renders every model (the
// renders need the artifact locator, which does I/O), reads live objects
// from the informer caches, and dry-runs only the objects whose cheap
// comparison shows a difference.
func (t *Target) Observe(ctx context.Context, desired *reconciler.DesiredState) (*observation, error) {
	obs := &observation{}
	policy := servingPolicy(desired)
	namespaces := envNamespaces(desired)
	gvrs := []schema.GroupVersionResource{inferenceServiceGVR}
	if len(policy.ExtraKinds) > 0 {
		extra, err := t.extraResources(policy.ExtraKinds)
		if err != nil {
			obs.errs = append(obs.errs, reconciler.ModelError{Target: Name, Message: err.Error()})
		}
		gvrs = append(gvrs, extra...)
	}
	for _, gvr := range gvrs {
		if err := t.caches.ensure(ctx, gvr, namespaces, t.cfg.syncTimeout()); err != nil {
			return nil, err
		}
	}
	t.caches.catchUp(ctx, t.cfg.catchUpTimeout())

	wanted := map[objKey]bool{}
	createNS := map[string]bool{}
	for mi := range desired.Models {
		m := &desired.Models[mi]
		if m.Suspended {
			continue
		}
		for ei := range m.Environments {
			env := &m.Environments[ei]
			it := &item{model: m.Name, env: env.Environment, revision: env.Revision, version: env.Version}
			if env.Canary != nil {
				it.version = env.Canary.Version
			}
			obs.items = append(obs.items, it)
			r, err := render(ctx, m, env, policy, t.locator, t.cachingBuild(env.Commit.Hash))
			if err != nil {
				it.err = err
				continue
			}
			it.rendered = r
			if err := t.decide(it, r, policy); err != nil {
				it.err = err
				it.steps, it.waits = nil, nil
				continue
			}
			for _, k := range it.keys {
				wanted[k] = true
			}
		}
	}
	t.sweepBuilds()
	// Whether an environment namespace exists is learnt from the dry-run of
	// the write itself, never from a GET of the Namespace: modelsync's RBAC
	// is per namespace, and reading Namespaces needs a cluster-wide grant.
	create := desired.Config != nil && desired.Config.CreateNamespaces
	for _, it := range obs.items {
		if it.err == nil {
			t.dryRunFinal(ctx, it, create, createNS)
		}
	}
	for ns := range createNS {
		obs.createNS = append(obs.createNS, ns)
	}
	sort.Strings(obs.createNS)
	for _, gvr := range gvrs {
		for _, ns := range namespaces {
			for _, o := range t.caches.listManaged(gvr, ns) {
				k := objKey{gvr, ns, o.GetName()}
				if wanted[k] {
					continue
				}
				l := o.GetLabels()
				obs.orphans = append(obs.orphans, orphan{key: k, kind: o.GetKind(), uid: o.GetUID(),
					model: l[LabelModel], env: l[LabelEnvironment], version: l[LabelVersion]})
			}
		}
	}
	return obs, nil
}

// cachingBuild memoises build for one commit. Without a commit hash, or
// with remote bases (whose content may change under the same commit),
// every render builds afresh.
func (t *Target) cachingBuild(commit string) buildFunc {
	build := t.cfg.renderLimits().build
	return func(files fs.FS, modelRoot, servingDir, env string, policy manifest.ServingPolicy) ([]*unstructured.Unstructured, string, error) {
		if commit == "" || policy.AllowRemoteBases {
			return build(files, modelRoot, servingDir, env, policy)
		}
		key := strings.Join([]string{commit, modelRoot, servingDir, env}, "\x00")
		t.mu.Lock()
		c, ok := t.builds[key]
		t.buildsUsed[key] = true
		t.mu.Unlock()
		if !ok {
			c.objs, c.buildDir, c.err = build(files, modelRoot, servingDir, env, policy)
			t.mu.Lock()
			t.builds[key] = c
			t.mu.Unlock()
		}
		if c.err != nil {
			return nil, c.buildDir, c.err
		}
		out := make([]*unstructured.Unstructured, len(c.objs))
		for i, o := range c.objs {
			out[i] = o.DeepCopy()
		}
		return out, c.buildDir, nil
	}
}

func (t *Target) sweepBuilds() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.builds {
		if !t.buildsUsed[k] {
			delete(t.builds, k)
		}
	}
	clear(t.buildsUsed)
}

func servingPolicy(d *reconciler.DesiredState) manifest.ServingPolicy {
	if d.Config == nil {
		return manifest.ServingPolicy{}
	}
	return d.Config.Serving
}

// envNamespaces lists every environment namespace, also those no model
// uses now: objects left there are what pruning looks for.
func envNamespaces(d *reconciler.DesiredState) []string {
	set := map[string]bool{}
	if d.Config != nil {
		for _, e := range d.Config.Environments {
			if e.Namespace != "" {
				set[e.Namespace] = true
			}
		}
	}
	for _, m := range d.Models {
		for _, e := range m.Environments {
			if e.Namespace != "" {
				set[e.Namespace] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for ns := range set {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}

// restMapper is built on first use: only repositories with extra kinds
// need discovery.
func (t *Target) restMapper() meta.ResettableRESTMapper {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mapper == nil {
		t.mapper = restmapper.NewDeferredDiscoveryRESTMapper(t.disc)
	}
	return t.mapper
}

func (t *Target) mapping(gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	m := t.restMapper()
	rm, err := m.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		m.Reset()
		rm, err = m.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("no resource for %s: %w", gvk, err)
	}
	if rm.Scope.Name() != meta.RESTScopeNameNamespace {
		return nil, fmt.Errorf("%w: %s is cluster-scoped; only namespaced extra kinds are applied", ErrKindNotAllowed, gvk.Kind)
	}
	return rm, nil
}

// extraResources resolves serving.extraKinds ("Kind" or "Kind.group") to
// namespaced resources through discovery.
func (t *Target) extraResources(kinds []string) ([]schema.GroupVersionResource, error) {
	out, err := t.resolveKinds(kinds)
	if err != nil {
		// A kind installed since the last look needs fresh discovery.
		t.disc.Invalidate()
		out, err = t.resolveKinds(kinds)
	}
	return out, err
}

func (t *Target) resolveKinds(kinds []string) ([]schema.GroupVersionResource, error) {
	lists, err := t.disc.ServerPreferredNamespacedResources()
	if err != nil && len(lists) == 0 {
		return nil, fmt.Errorf("discovering extra kinds %v: %w", kinds, err)
	}
	var out []schema.GroupVersionResource
	var missing []string
	for _, want := range kinds {
		kind, group, _ := strings.Cut(want, ".")
		found := false
		for _, l := range lists {
			gv, perr := schema.ParseGroupVersion(l.GroupVersion)
			if perr != nil {
				continue
			}
			for _, r := range l.APIResources {
				if r.Kind == kind && (group == "" || gv.Group == group) && !strings.Contains(r.Name, "/") {
					out = append(out, gv.WithResource(r.Name))
					found = true
				}
			}
		}
		if !found {
			missing = append(missing, want)
		}
	}
	if len(missing) > 0 {
		return out, fmt.Errorf("serving.extraKinds %v are not served by the cluster (or are cluster-scoped)", missing)
	}
	return out, nil
}

// dryRunFinal asks the API server what the item's final write would
// produce. It validates against the CRD schema (a malformed object fails
// here, at plan time, for this model only), reports conflicts with the
// managers' names, and drops a write the server would not change anything
// with. A write into a namespace that does not exist fails the item, or,
// with createNamespaces, adds the namespace to createNS (the write then
// follows its creation unchecked, as nothing can be dry-run in it yet).
func (t *Target) dryRunFinal(ctx context.Context, it *item, createNamespaces bool, createNS map[string]bool) {
	for i, s := range it.steps {
		if !s.final {
			continue
		}
		if createNS[s.key.Namespace] {
			return
		}
		live := t.caches.managedObject(s.key)
		body, err := json.Marshal(s.obj.Object)
		if err != nil {
			it.err = t.modelErr(it, err)
			return
		}
		sum := sha256.Sum256(body)
		liveRV := ""
		if live != nil {
			liveRV = live.GetResourceVersion()
		}
		cacheKey := fmt.Sprintf("%v|%s|%s|%t|%s", s.key.GVR, s.key, liveRV, s.force, hex.EncodeToString(sum[:]))
		t.mu.Lock()
		out, seen := t.dryRuns[cacheKey]
		t.mu.Unlock()
		if !seen {
			res, err := t.dyn.Resource(s.key.GVR).Namespace(s.key.Namespace).Apply(ctx, s.key.Name, s.obj,
				metav1.ApplyOptions{FieldManager: t.cfg.fieldManager(), Force: s.force, DryRun: []string{metav1.DryRunAll}})
			if err != nil {
				if ctx.Err() != nil {
					it.err = t.modelErr(it, ctx.Err())
					return
				}
				if namespaceNotFound(err, s.key.Namespace) {
					// Not remembered: the namespace may be created
					// before the next plan.
					if createNamespaces {
						createNS[s.key.Namespace] = true
						return
					}
					it.err = t.applyError(s.key, s.version, it.model, it.env, err)
					it.steps, it.waits = nil, nil
					return
				}
				out.err = t.applyError(s.key, s.version, it.model, it.env, err)
			} else {
				if !t.caches.keepAll {
					// The live object is slimmed in the cache; compare like with like.
					slimObject(res)
				}
				out.same = live != nil && len(it.steps) == 1 && sameServedObject(res, live)
			}
			t.mu.Lock()
			if len(t.dryRuns) > 4096 {
				clear(t.dryRuns)
			}
			t.dryRuns[cacheKey] = out
			t.mu.Unlock()
		}
		if out.err != nil {
			it.err = out.err
			it.steps, it.waits = nil, nil
			return
		}
		if out.same {
			it.steps = append(it.steps[:i], it.steps[i+1:]...)
		}
		return
	}
}
