package kserve

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"
)

// InferenceServiceGVR is the resource modelsync manages.
var inferenceServiceGVR = schema.GroupVersionResource{Group: KServeGroup, Version: KServeVersion, Resource: "inferenceservices"}

// InferenceServiceGVR returns the InferenceService resource modelsync writes.
func InferenceServiceGVR() schema.GroupVersionResource { return inferenceServiceGVR }

// objKey names one object of one resource.
type objKey struct {
	GVR       schema.GroupVersionResource
	Namespace string
	Name      string
}

func (k objKey) String() string { return k.Namespace + "/" + k.Name }

// nsWatch is the pair of informers for one resource in one namespace:
// full objects carrying modelsync's managed-by label, and metadata only
// for every other object, so an unlabelled object of a desired name is
// seen (and left alone) without a GET.
type nsWatch struct {
	namespace string
	managed   cache.SharedIndexInformer
	foreign   cache.SharedIndexInformer

	mu      sync.Mutex
	lastErr error // the latest LIST/WATCH failure, until the caches sync
}

func (w *nsWatch) synced() bool { return w.managed.HasSynced() && w.foreign.HasSynced() }

func (w *nsWatch) failure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastErr
}

// caches owns every informer the target started. Informers run until
// Close; each namespace costs one LIST+WATCH per informer, after which
// observing reads only memory.
type caches struct {
	dyn  dynamic.Interface
	meta metadata.Interface
	done <-chan struct{}
	// reach checks that the API server answers; ensure calls it until it
	// succeeds once, before starting informers that would otherwise retry
	// an unreachable server silently until the sync timeout.
	reach   func(context.Context) error
	reached atomic.Bool

	mu      sync.Mutex
	watches map[schema.GroupVersionResource]map[string]*nsWatch
	// changed is closed and replaced on every informer event, waking waiters.
	changed chan struct{}
	// written holds the resourceVersion of modelsync's own last write per
	// object, and deleted the UID it deleted, until the cache shows them:
	// a plan made right after an apply must not see the state before it.
	written map[objKey]string
	deleted map[objKey]types.UID
	// keepAll stores objects as listed, without the slim transforms; only
	// the tests that compare plans with and without them set it.
	keepAll bool
}

func newCaches(dyn dynamic.Interface, meta metadata.Interface, done <-chan struct{}, reach func(context.Context) error) *caches {
	return &caches{
		dyn: dyn, meta: meta, done: done, reach: reach,
		watches: map[schema.GroupVersionResource]map[string]*nsWatch{},
		changed: make(chan struct{}),
		written: map[objKey]string{},
		deleted: map[objKey]types.UID{},
	}
}

func (c *caches) notify() {
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

func (c *caches) changes() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

var managedSelector = LabelManagedBy + "=" + ManagedByValue

// ensure starts the informers for gvr in each namespace that has none yet
// and waits until all of them have listed.
func (c *caches) ensure(ctx context.Context, gvr schema.GroupVersionResource, namespaces []string, timeout time.Duration) error {
	if c.reach != nil && !c.reached.Load() {
		if err := c.reach(ctx); err != nil {
			return err
		}
		c.reached.Store(true)
	}
	var pending []*nsWatch
	c.mu.Lock()
	byNS := c.watches[gvr]
	if byNS == nil {
		byNS = map[string]*nsWatch{}
		c.watches[gvr] = byNS
	}
	for _, ns := range namespaces {
		w := byNS[ns]
		if w == nil {
			w = c.start(gvr, ns)
			byNS[ns] = w
		}
		if !w.synced() {
			pending = append(pending, w)
		}
	}
	c.mu.Unlock()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for len(pending) > 0 {
		changed := c.changes()
		rest := pending[:0]
		for _, w := range pending {
			if w.synced() {
				continue
			}
			// A missing CRD or missing permissions never heal by
			// retrying; say so now instead of at the timeout.
			if err := w.failure(); err != nil && permanent(err) {
				if apierrors.IsForbidden(err) {
					// modelsync's access is granted per namespace; a
					// namespace without its RoleBinding (or that does not
					// exist yet) answers 403 to the LIST.
					return fmt.Errorf("listing %s in namespace %s: %w (modelsync needs a RoleBinding there; see Install in the README)", gvr.GroupResource(), w.namespace, err)
				}
				return fmt.Errorf("listing %s in namespace %s: %w", gvr.GroupResource(), w.namespace, err)
			}
			rest = append(rest, w)
		}
		pending = rest
		if len(pending) == 0 {
			break
		}
		select {
		case <-changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline.C:
			err := pending[0].failure()
			if err == nil {
				// The informer got no answer at all (no error either).
				return fmt.Errorf("listing %s in %v: caches did not sync within %s: no answer from the API server", gvr.GroupResource(), namespaces, timeout)
			}
			return fmt.Errorf("listing %s in %v: caches did not sync within %s: %w", gvr.GroupResource(), namespaces, timeout, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func permanent(err error) bool {
	return apierrors.IsNotFound(err) || apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) ||
		meta.IsNoMatchError(err)
}

func (c *caches) start(gvr schema.GroupVersionResource, ns string) *nsWatch {
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.notify() },
		UpdateFunc: func(any, any) { c.notify() },
		DeleteFunc: func(any) { c.notify() },
	}
	mf := dynamicinformer.NewFilteredDynamicSharedInformerFactory(c.dyn, 0, ns, func(o *metav1.ListOptions) {
		o.LabelSelector = managedSelector
	})
	managed := mf.ForResource(gvr).Informer()
	// The complement selector also matches objects without the label.
	ff := metadatainformer.NewFilteredSharedInformerFactory(c.meta, 0, ns, func(o *metav1.ListOptions) {
		o.LabelSelector = LabelManagedBy + "!=" + ManagedByValue
	})
	foreign := ff.ForResource(gvr).Informer()
	if !c.keepAll {
		// Set before Run, so no object is ever stored whole.
		_ = managed.SetTransform(slimManaged)
		_ = foreign.SetTransform(slimForeign)
	}
	w := &nsWatch{namespace: ns, managed: managed, foreign: foreign}
	onErr := func(_ *cache.Reflector, err error) {
		w.mu.Lock()
		w.lastErr = err
		w.mu.Unlock()
		c.notify()
	}
	_ = managed.SetWatchErrorHandler(onErr)
	_ = foreign.SetWatchErrorHandler(onErr)
	_, _ = managed.AddEventHandler(handler)
	_, _ = foreign.AddEventHandler(handler)
	go managed.Run(c.done)
	go foreign.Run(c.done)
	return w
}

// managedObject returns the cached managed object, or nil. Callers must not
// modify it.
func (c *caches) managedObject(k objKey) *unstructured.Unstructured {
	c.mu.Lock()
	w := c.watches[k.GVR][k.Namespace]
	c.mu.Unlock()
	if w == nil {
		return nil
	}
	o, ok, _ := w.managed.GetStore().GetByKey(k.Namespace + "/" + k.Name)
	if !ok {
		return nil
	}
	u, _ := o.(*unstructured.Unstructured)
	return u
}

func (c *caches) foreignObject(k objKey) *metav1.PartialObjectMetadata {
	c.mu.Lock()
	w := c.watches[k.GVR][k.Namespace]
	c.mu.Unlock()
	if w == nil {
		return nil
	}
	o, ok, _ := w.foreign.GetStore().GetByKey(k.Namespace + "/" + k.Name)
	if !ok {
		return nil
	}
	m, _ := o.(*metav1.PartialObjectMetadata)
	return m
}

// listManaged returns every cached managed object of gvr in namespace ns.
func (c *caches) listManaged(gvr schema.GroupVersionResource, ns string) []*unstructured.Unstructured {
	c.mu.Lock()
	w := c.watches[gvr][ns]
	c.mu.Unlock()
	if w == nil {
		return nil
	}
	var out []*unstructured.Unstructured
	for _, o := range w.managed.GetStore().List() {
		if u, ok := o.(*unstructured.Unstructured); ok {
			out = append(out, u)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}

func (c *caches) streamPast(k objKey, rv string) bool {
	c.mu.Lock()
	w := c.watches[k.GVR][k.Namespace]
	c.mu.Unlock()
	if w == nil {
		return false
	}
	for _, inf := range []cache.SharedIndexInformer{w.managed, w.foreign} {
		if last := inf.LastSyncResourceVersion(); last != "" && last != rv && rvAtLeast(last, rv) {
			return true
		}
	}
	return false
}

func (c *caches) recordWrite(k objKey, rv string) {
	c.mu.Lock()
	c.written[k] = rv
	delete(c.deleted, k)
	c.mu.Unlock()
}

func (c *caches) recordDelete(k objKey, uid types.UID) {
	c.mu.Lock()
	c.deleted[k] = uid
	delete(c.written, k)
	c.mu.Unlock()
}

// catchUp waits until the caches show modelsync's own recent writes. When
// they do not within the timeout the plan goes on with what is cached: every
// action is idempotent, so a stale read costs at most a repeated apply.
func (c *caches) catchUp(ctx context.Context, timeout time.Duration) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		ch := c.changes()
		if c.settle() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// settle drops the recorded writes the caches now reflect and reports
// whether none is left.
func (c *caches) settle() bool {
	c.mu.Lock()
	written := make(map[objKey]string, len(c.written))
	for k, v := range c.written {
		written[k] = v
	}
	deleted := make(map[objKey]types.UID, len(c.deleted))
	for k, v := range c.deleted {
		deleted[k] = v
	}
	c.mu.Unlock()
	var done []objKey
	for k, rv := range written {
		cur := ""
		if o := c.managedObject(k); o != nil {
			cur = o.GetResourceVersion()
		} else if m := c.foreignObject(k); m != nil {
			cur = m.GetResourceVersion()
		}
		// Past the write in either informer's stream also counts: the
		// object may have been changed or deleted by someone else since.
		if cur != "" && rvAtLeast(cur, rv) || c.streamPast(k, rv) {
			done = append(done, k)
		}
	}
	var gone []objKey
	for k, uid := range deleted {
		o := c.managedObject(k)
		if o == nil || o.GetUID() != uid {
			gone = append(gone, k)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range done {
		if c.written[k] == written[k] {
			delete(c.written, k)
		}
	}
	for _, k := range gone {
		if c.deleted[k] == deleted[k] {
			delete(c.deleted, k)
		}
	}
	return len(c.written) == 0 && len(c.deleted) == 0
}

// rvAtLeast compares resourceVersions. They are opaque by contract but
// etcd-backed servers issue increasing integers, which client-go's own
// mutation cache relies on too; anything else falls back to equality.
func rvAtLeast(cur, want string) bool {
	a, errA := strconv.ParseUint(cur, 10, 64)
	b, errB := strconv.ParseUint(want, 10, 64)
	if errA != nil || errB != nil {
		return cur == want
	}
	return a >= b
}
