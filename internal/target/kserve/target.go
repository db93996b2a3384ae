package kserve

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/reconciler"
)

// TargetName is the name actions of this target carry.
const TargetName = "kserve"

// Action kinds this target plans.
const (
	KindApplyInferenceService  = "apply-inferenceservice"
	KindSetCanaryTraffic       = "set-canary-traffic"
	KindPromoteCanary          = "promote-canary"
	KindDeleteInferenceService = "delete-inferenceservice"
	KindCreateNamespace        = "create-namespace"
)

var namespaceGVR = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}

// Target keeps KServe InferenceServices true to Git. It implements
// reconciler.Target and reconciler.ActionValidator.
type Target struct {
	cfg     Config
	locator reconciler.ArtifactLocator
	dyn     dynamic.Interface
	// disc caches discovery in memory: extra kinds resolve once, not per resync.
	disc   discovery.CachedDiscoveryInterface
	caches *caches
	cancel context.CancelFunc

	mu     sync.Mutex
	mapper meta.ResettableRESTMapper
	// namespaces known to exist, so only the first create in a namespace reads it.
	namespaces map[string]bool
	// dryRuns remembers dry-run outcomes per object, live resourceVersion
	// and desired content, so a difference the server normalises away
	// costs one dry-run, not one per resync.
	dryRuns map[string]dryRunOutcome
	// builds caches kustomize output per commit, model folder and
	// environment: the same commit always builds the same objects, and
	// kustomize dominates the CPU cost of a resync. Entries not used by the
	// latest Observe are dropped.
	builds     map[string]cachedBuild
	buildsUsed map[string]bool
}

type cachedBuild struct {
	objs     []*unstructured.Unstructured
	buildDir string
	err      error
}

type dryRunOutcome struct {
	same bool
	err  error
}

var (
	_ reconciler.Target          = (*Target)(nil)
	_ reconciler.ActionValidator = (*Target)(nil)
)

// NewTarget connects to the cluster. With restConfig nil, credentials are
// loaded from cfg.Kubeconfig/cfg.Context the way kubectl loads them.
// Informers start on the first Observe; Close stops them.
func NewTarget(cfg Config, locator reconciler.ArtifactLocator, restConfig *rest.Config) (*Target, error) {
	if locator == nil {
		return nil, errors.New("serving: an artifact locator is required")
	}
	if restConfig == nil {
		rc, err := LoadRESTConfig(cfg.Kubeconfig, cfg.Context)
		if err != nil {
			return nil, err
		}
		restConfig = rc
	}
	rc := rest.CopyConfig(restConfig)
	if rc.UserAgent == "" {
		rc.UserAgent = "modelsync"
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("serving: dynamic client: %w", err)
	}
	md, err := metadata.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("serving: metadata client: %w", err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("serving: discovery client: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Target{
		cfg:        cfg,
		locator:    locator,
		dyn:        dyn,
		disc:       memory.NewMemCacheClient(disc),
		caches:     newCaches(dyn, md, ctx.Done()),
		cancel:     cancel,
		namespaces: map[string]bool{},
		dryRuns:    map[string]dryRunOutcome{},
		builds:     map[string]cachedBuild{},
		buildsUsed: map[string]bool{},
	}, nil
}

// Close stops every informer.
func (t *Target) Close() { t.cancel() }

// Name implements reconciler.Target.
func (t *Target) Name() string { return TargetName }

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

// observation is this target's Observation.
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

// Observe implements reconciler.Target. It renders every model (the
// renders need the artifact locator, which does I/O), reads live objects
// from the informer caches, and dry-runs only the objects whose cheap
// comparison shows a difference.
func (t *Target) Observe(ctx context.Context, desired *reconciler.DesiredState) (reconciler.Observation, error) {
	obs := &observation{}
	policy := servingPolicy(desired)
	namespaces := envNamespaces(desired)
	gvrs := []schema.GroupVersionResource{inferenceServiceGVR}
	if len(policy.ExtraKinds) > 0 {
		extra, err := t.extraResources(policy.ExtraKinds)
		if err != nil {
			obs.errs = append(obs.errs, reconciler.ModelError{Target: TargetName, Message: err.Error()})
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
			for _, s := range it.steps {
				if s.op != reconciler.OpCreate {
					continue
				}
				exists, err := t.namespaceExists(ctx, s.key.Namespace)
				if err != nil {
					return nil, err
				}
				if !exists {
					if desired.Config == nil || !desired.Config.CreateNamespaces {
						it.err = &ModelError{Model: it.model, Environment: it.env, Version: it.version,
							Err: fmt.Errorf("%w: %s", ErrNamespaceMissing, s.key.Namespace)}
						it.steps, it.waits = nil, nil
						break
					}
					createNS[s.key.Namespace] = true
				}
			}
		}
	}
	t.sweepBuilds()
	for _, it := range obs.items {
		if it.err == nil {
			t.dryRunFinal(ctx, it, createNS)
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
	return func(files fs.FS, modelRoot, servingDir, env string, allowRemote bool) ([]*unstructured.Unstructured, string, error) {
		if commit == "" || allowRemote {
			return build(files, modelRoot, servingDir, env, allowRemote)
		}
		key := strings.Join([]string{commit, modelRoot, servingDir, env}, "\x00")
		t.mu.Lock()
		c, ok := t.builds[key]
		t.buildsUsed[key] = true
		t.mu.Unlock()
		if !ok {
			c.objs, c.buildDir, c.err = build(files, modelRoot, servingDir, env, allowRemote)
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

func (t *Target) namespaceExists(ctx context.Context, ns string) (bool, error) {
	t.mu.Lock()
	known := t.namespaces[ns]
	t.mu.Unlock()
	if known {
		return true, nil
	}
	_, err := t.dyn.Resource(namespaceGVR).Get(ctx, ns, metav1.GetOptions{})
	switch {
	case err == nil:
		t.mu.Lock()
		t.namespaces[ns] = true
		t.mu.Unlock()
		return true, nil
	case apierrors.IsNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("reading namespace %s: %w", ns, err)
	}
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

// decide plans the writes that bring one model's objects in one
// environment to what Git says. It reads only the caches.
func (t *Target) decide(it *item, r *Rendered, policy manifest.ServingPolicy) error {
	if err := t.decideISVC(it, r, policy); err != nil {
		return err
	}
	for _, o := range r.Extras {
		rm, err := t.mapping(o.GroupVersionKind())
		if err != nil {
			return t.modelErr(it, err)
		}
		if err := t.decideGeneric(it, objKey{rm.Resource, o.GetNamespace(), o.GetName()}, o, policy); err != nil {
			return err
		}
	}
	return nil
}

func (t *Target) modelErr(it *item, err error) error {
	var me *ModelError
	if errors.As(err, &me) {
		return err
	}
	return &ModelError{Model: it.model, Environment: it.env, Version: it.version, Err: err}
}

// adoptOrRefuse handles a desired object that exists without modelsync's
// label: modelsync adopts it back only if its own field manager wrote it
// (someone removed the label by hand); anything else is left alone.
func (t *Target) adoptOrRefuse(it *item, key objKey, f *metav1.PartialObjectMetadata) error {
	var managers []string
	for _, e := range f.GetManagedFields() {
		if e.Manager == t.cfg.fieldManager() {
			return nil
		}
		managers = append(managers, e.Manager)
	}
	sort.Strings(managers)
	return t.modelErr(it, fmt.Errorf("%w: %s %s (field managers: %s); rename it in the kustomization or delete it",
		ErrNotManaged, kindOf(key), key, strings.Join(managers, ", ")))
}

func kindOf(k objKey) string {
	if k.GVR == inferenceServiceGVR {
		return InferenceServiceKind
	}
	return k.GVR.Resource
}

func (t *Target) decideISVC(it *item, r *Rendered, policy manifest.ServingPolicy) error {
	key := objKey{inferenceServiceGVR, r.Namespace, r.Name}
	it.keys = append(it.keys, key)
	desired := r.InferenceService
	live := t.caches.managedObject(key)
	if live == nil {
		obj := desired
		if r.CanaryVersion > 0 {
			// KServe gives a new object's only revision 100% whatever the
			// percentage says, so the stable version goes first and the
			// canary follows once it has rolled out.
			obj = withPredictor(desired, r.StableURI, r.StableVersion, nil)
			it.waits = append(it.waits, fmt.Sprintf("canary v%d at %d%% starts after v%d has rolled out", r.CanaryVersion, r.CanaryWeight, r.StableVersion))
		}
		s := step{kind: KindApplyInferenceService, op: reconciler.OpCreate, key: key, obj: obj,
			to: describe(obj), version: r.PredictorVersion(), final: true, reason: "InferenceService missing"}
		if f := t.caches.foreignObject(key); f != nil {
			if err := t.adoptOrRefuse(it, key, f); err != nil {
				return err
			}
			s.op, s.drift, s.reason = reconciler.OpUpdate, true, "the "+LabelManagedBy+" label was removed by hand; restoring it"
		}
		it.steps = append(it.steps, s)
		return nil
	}

	if r.CanaryVersion > 0 {
		if mode, source := t.deploymentMode(r, live); mode != "" && !knativeMode(mode) {
			return t.modelErr(it, fmt.Errorf("%w: %s is in %s mode (%s), where KServe ignores canaryTrafficPercent without a warning; remove the canary or use Knative mode",
				ErrCanaryUnsupported, key, mode, source))
		}
	}
	liveURI, _, _ := unstructured.NestedString(live.Object, "spec", "predictor", "model", "storageUri")
	livePct := canaryPercent(live)
	prog := ProgressOf(live)
	rollbackOf := live.GetAnnotations()[AnnotationRollbackOf]
	target := desired
	reason := ""
	switch {
	case r.CanaryVersion > 0:
		if liveURI != r.CanaryURI && prog.LatestRolledoutRevision == "" {
			target = withPredictor(desired, r.StableURI, r.StableVersion, nil)
			it.waits = append(it.waits, fmt.Sprintf("canary v%d at %d%% waits until the current revision has rolled out (status.components.predictor.latestRolledoutRevision is empty)", r.CanaryVersion, r.CanaryWeight))
		} else if liveURI != r.CanaryURI {
			reason = fmt.Sprintf("start canary v%d at %d%% (the rest stays on %s)", r.CanaryVersion, r.CanaryWeight, prog.LatestRolledoutRevision)
		}
	case livePct != nil && liveURI != r.StableURI:
		return t.planRollback(it, key, r, live, *livePct, prog, policy)
	case livePct != nil && rollbackOf != "" && liveURI == r.StableURI:
		ready := prog.LatestReadyRevision != "" && prog.LatestReadyRevision == prog.LatestCreatedRevision && prog.LatestCreatedRevision != rollbackOf
		if !ready {
			zero := int64(0)
			target = withPredictor(desired, r.StableURI, r.StableVersion, &zero)
			it.waits = append(it.waits, fmt.Sprintf("rollback to v%d: traffic stays on %s until the restored revision is ready (latest created %s, latest ready %s)",
				r.StableVersion, nonEmpty(prog.LatestRolledoutRevision, "the last rolled-out revision"), nonEmpty(prog.LatestCreatedRevision, "-"), nonEmpty(prog.LatestReadyRevision, "-")))
		} else {
			reason = fmt.Sprintf("rollback to v%d: restored revision %s is ready; give it all traffic", r.StableVersion, prog.LatestReadyRevision)
		}
	case livePct != nil && liveURI == r.StableURI:
		reason = fmt.Sprintf("promote v%d: the canary is now the version in Git", r.StableVersion)
	}
	diffs := diffObjects(target, live, t.cfg.fieldManager())
	if len(diffs) == 0 {
		return nil
	}
	trafficOnly := true
	for _, d := range diffs {
		if !d.hasPrefix("spec", "predictor", "canaryTrafficPercent") {
			trafficOnly = false
		}
	}
	target = target.DeepCopy()
	if trafficOnly {
		carryBookkeeping(target, live)
	}
	drift, force, driftReason := t.driftOf(live, diffs, policy)
	s := step{key: key, obj: target, op: reconciler.OpUpdate, force: force, drift: drift,
		version: predictorVersion(target), final: true, reason: reason}
	if drift {
		s.reason = driftReason
	}
	newPct := canaryPercent(target)
	switch {
	case trafficOnly && newPct != nil:
		s.kind, s.from, s.to = KindSetCanaryTraffic, pctString(livePct), pctString(newPct)
	case trafficOnly:
		s.kind, s.from, s.to = KindPromoteCanary, describe(live), describe(target)
	default:
		s.kind, s.from, s.to = KindApplyInferenceService, describe(live), describe(target)
		if s.reason == "" {
			s.reason = "changed: " + joinPaths(diffs, 4)
		}
	}
	it.steps = append(it.steps, s)
	return nil
}

// planRollback handles a canary removed from Git while the stable version
// stayed: first all traffic goes back to the last rolled-out revision (a
// route change, no new revision), then the stable model is restored with
// canaryTrafficPercent held at 0. Removing the percentage at once would
// route 100% to the latest *ready* revision, which until the restored one
// is ready is the canary being rolled back; a later plan removes it once
// the restored revision is ready.
func (t *Target) planRollback(it *item, key objKey, r *Rendered, live *unstructured.Unstructured, livePct int64, prog Progress, policy manifest.ServingPolicy) error {
	zero := int64(0)
	if livePct != 0 {
		first := withPredictor(r.InferenceService, "", 0, &zero)
		liveURI, _, _ := unstructured.NestedString(live.Object, "spec", "predictor", "model", "storageUri")
		_ = unstructured.SetNestedField(first.Object, liveURI, "spec", "predictor", "model", "storageUri")
		labels := first.GetLabels()
		labels[LabelVersion] = live.GetLabels()[LabelVersion]
		first.SetLabels(labels)
		carryBookkeeping(first, live)
		diffs := diffObjects(first, live, t.cfg.fieldManager())
		drift, force, _ := t.driftOf(live, diffs, policy)
		it.steps = append(it.steps, step{kind: KindSetCanaryTraffic, op: reconciler.OpUpdate, key: key, obj: first,
			force: force, drift: drift, from: pctString(&livePct), to: "0%", version: predictorVersion(first),
			reason: fmt.Sprintf("rollback: canary removed from Git; all traffic back to %s", nonEmpty(prog.LatestRolledoutRevision, "the last rolled-out revision"))})
	}
	second := withPredictor(r.InferenceService, r.StableURI, r.StableVersion, &zero)
	ann := second.GetAnnotations()
	ann[AnnotationRollbackOf] = nonEmpty(live.GetAnnotations()[AnnotationRollbackOf], nonEmpty(prog.LatestCreatedRevision, "unknown"))
	second.SetAnnotations(ann)
	diffs := diffObjects(second, live, t.cfg.fieldManager())
	drift, force, _ := t.driftOf(live, diffs, policy)
	it.steps = append(it.steps, step{kind: KindApplyInferenceService, op: reconciler.OpUpdate, key: key, obj: second,
		force: force, drift: drift, from: describe(live), to: describe(second), version: r.StableVersion, final: true,
		reason: fmt.Sprintf("rollback: restore v%d with canaryTrafficPercent held at 0 until its revision is ready", r.StableVersion)})
	return nil
}

func (t *Target) decideGeneric(it *item, key objKey, desired *unstructured.Unstructured, policy manifest.ServingPolicy) error {
	kind := "apply-" + strings.ToLower(desired.GetKind())
	it.keys = append(it.keys, key)
	live := t.caches.managedObject(key)
	if live == nil {
		s := step{kind: kind, op: reconciler.OpCreate, key: key, obj: desired, to: desired.GetKind() + " " + key.Name,
			version: it.version, final: true}
		if f := t.caches.foreignObject(key); f != nil {
			if err := t.adoptOrRefuse(it, key, f); err != nil {
				return err
			}
			s.op, s.drift = reconciler.OpUpdate, true
		}
		it.steps = append(it.steps, s)
		return nil
	}
	diffs := diffObjects(desired, live, t.cfg.fieldManager())
	if len(diffs) == 0 {
		return nil
	}
	drift, force, reason := t.driftOf(live, diffs, policy)
	if !drift {
		reason = "changed: " + joinPaths(diffs, 4)
	}
	it.steps = append(it.steps, step{kind: kind, op: reconciler.OpUpdate, key: key, obj: desired, force: force, drift: drift,
		from: live.GetKind() + " " + key.Name, to: desired.GetKind() + " " + key.Name, version: it.version, final: true, reason: reason})
	return nil
}

// driftOf tells whether differing fields were changed behind modelsync's
// back. A field another manager changed with an update (kubectl edit,
// patch, a script) is drift: Git wins, so the apply takes it back with
// force. A field another manager *applies* is a second source of truth;
// that is a conflict, forced only when serving.forceConflicts says so.
func (t *Target) driftOf(live *unstructured.Unstructured, diffs []fieldPath, policy manifest.ServingPolicy) (drift, force bool, reason string) {
	updaters := map[string]bool{}
	appliers := map[string]bool{}
	var fields []string
	for _, p := range diffs {
		for m, op := range owners(live, p, t.cfg.fieldManager()) {
			if op == metav1.ManagedFieldsOperationUpdate {
				updaters[m] = true
				fields = append(fields, p.String())
			} else {
				appliers[m] = true
			}
		}
	}
	drift = len(updaters) > 0
	force = policy.ForceConflicts || (drift && len(appliers) == 0)
	if drift {
		reason = fmt.Sprintf("drift: %s changed by %s", strings.Join(uniqueSorted(fields), ", "), strings.Join(sortedKeys(updaters), ", "))
	}
	return drift, force, reason
}

func (t *Target) deploymentMode(r *Rendered, live *unstructured.Unstructured) (mode, source string) {
	if r.DeploymentMode != "" {
		return r.DeploymentMode, "annotation " + AnnotationDeploymentMode
	}
	if m, _, _ := unstructured.NestedString(live.Object, "status", "deploymentMode"); m != "" {
		return m, "status.deploymentMode"
	}
	if m := live.GetAnnotations()[AnnotationDeploymentMode]; m != "" {
		return m, "live annotation " + AnnotationDeploymentMode
	}
	if t.cfg.DefaultDeploymentMode != "" {
		return t.cfg.DefaultDeploymentMode, "the cluster default in modelsync's configuration"
	}
	return "", ""
}

func knativeMode(mode string) bool {
	switch strings.ToLower(mode) {
	case "knative", "serverless":
		return true
	}
	return false
}

// withPredictor copies obj pointing the predictor at uri/version (kept
// when uri is "") with the given canary percentage (nil removes it).
func withPredictor(obj *unstructured.Unstructured, uri string, version int, pct *int64) *unstructured.Unstructured {
	out := obj.DeepCopy()
	if uri != "" {
		_ = unstructured.SetNestedField(out.Object, uri, "spec", "predictor", "model", "storageUri")
		labels := out.GetLabels()
		labels[LabelVersion] = fmt.Sprint(version)
		out.SetLabels(labels)
	}
	if pct == nil {
		unstructured.RemoveNestedField(out.Object, "spec", "predictor", "canaryTrafficPercent")
	} else {
		_ = unstructured.SetNestedField(out.Object, *pct, "spec", "predictor", "canaryTrafficPercent")
	}
	return out
}

func carryBookkeeping(dst, live *unstructured.Unstructured) {
	ann := dst.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	for _, k := range bookkeeping {
		if v, ok := live.GetAnnotations()[k]; ok {
			ann[k] = v
		} else {
			delete(ann, k)
		}
	}
	dst.SetAnnotations(ann)
}

func canaryPercent(o *unstructured.Unstructured) *int64 {
	v, found, _ := unstructured.NestedFieldNoCopy(o.Object, "spec", "predictor", "canaryTrafficPercent")
	if !found || v == nil {
		return nil
	}
	n := toInt64(v)
	return &n
}

func predictorVersion(o *unstructured.Unstructured) int {
	var v int
	_, _ = fmt.Sscan(o.GetLabels()[LabelVersion], &v)
	return v
}

func pctString(p *int64) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprintf("%d%%", *p)
}

// describe summarises what an InferenceService serves, e.g. "v4 (canary 10%)".
func describe(o *unstructured.Unstructured) string {
	s := "v" + nonEmpty(o.GetLabels()[LabelVersion], "?")
	if p := canaryPercent(o); p != nil {
		s += fmt.Sprintf(" (canary %d%%)", *p)
	}
	return s
}

func joinPaths(ps []fieldPath, max int) string {
	var out []string
	for i, p := range ps {
		if i == max {
			out = append(out, fmt.Sprintf("and %d more", len(ps)-max))
			break
		}
		out = append(out, p.String())
	}
	return strings.Join(out, ", ")
}

func uniqueSorted(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// dryRunFinal asks the API server what the item's final write would
// produce. It validates against the CRD schema (a malformed object fails
// here, at plan time, for this model only), reports conflicts with the
// managers' names, and drops a write the server would not change anything
// with.
func (t *Target) dryRunFinal(ctx context.Context, it *item, createNS map[string]bool) {
	for i, s := range it.steps {
		if !s.final || createNS[s.key.Namespace] {
			continue
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
				out.err = t.applyError(s.key, s.version, it.model, it.env, err)
			} else {
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

// applyError turns an API error into a model error a reader can act on.
func (t *Target) applyError(key objKey, version int, model, env string, err error) error {
	var status apierrors.APIStatus
	if apierrors.IsConflict(err) && errors.As(err, &status) {
		ce := &ConflictError{Namespace: key.Namespace, Name: key.Name, Message: status.Status().Message}
		if d := status.Status().Details; d != nil {
			for _, c := range d.Causes {
				if c.Type != metav1.CauseTypeFieldManagerConflict {
					continue
				}
				ce.Conflicts = append(ce.Conflicts, FieldConflict{Manager: managerFromCause(c.Message), Field: c.Field})
			}
		}
		if len(ce.Conflicts) > 0 {
			return &ModelError{Model: model, Environment: env, Version: version, Err: ce}
		}
	}
	// A value of the wrong type fails server-side apply while it builds the
	// typed object from the CRD schema; the API server reports that as a
	// 500 rather than a 422, but it is the object that is wrong.
	typeErr := apierrors.IsInternalError(err) && strings.Contains(err.Error(), "failed to create typed patch object")
	if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || typeErr {
		return &ModelError{Model: model, Environment: env, Version: version,
			Err: fmt.Errorf("%w: the API server rejected %s %s: %w", ErrInvalidSpec, kindOf(key), key, err)}
	}
	return &ModelError{Model: model, Environment: env, Version: version,
		Err: fmt.Errorf("applying %s %s: %w", kindOf(key), key, err)}
}

// managerFromCause extracts the manager from a FieldManagerConflict cause,
// whose message reads: conflict with "kubectl-edit" using v1: .spec.x
// (or: conflict with "m" with subresource "scale" using ...).
func managerFromCause(msg string) string {
	_, rest, ok := strings.Cut(msg, `conflict with "`)
	if !ok {
		return msg
	}
	name, _, ok := strings.Cut(rest, `"`)
	if !ok {
		return msg
	}
	return name
}
