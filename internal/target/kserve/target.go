package kserve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

	"github.com/modelsync/modelsync/reconciler"
)

// Name is the name actions of this target carry.
const Name = "kserve"

// Action kinds this target plans.
const (
	KindApplyInferenceService  = "apply-inferenceservice"
	KindSetCanaryTraffic       = "set-canary-traffic"
	KindPromoteCanary          = "promote-canary"
	KindDeleteInferenceService = "delete-inferenceservice"
	KindCreateNamespace        = "create-namespace"
)

var namespaceGVR = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}

// Target keeps KServe InferenceServices true to Git. reconciler.Typed
// makes it a reconciler.Target; it also validates actions, waits for
// rollouts (reconciler.Waiter) and reports serving health
// (reconciler.HealthReporter).
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
	_ reconciler.TypedTarget[*observation] = (*Target)(nil)
	_ reconciler.ActionValidator           = (*Target)(nil)
	_ reconciler.Waiter                    = (*Target)(nil)
	_ reconciler.HealthReporter            = (*Target)(nil)
)

// New connects to the cluster. With restConfig nil, credentials are
// loaded from cfg.Kubeconfig/cfg.Context the way kubectl loads them.
// Informers start on the first Observe; Close stops them.
func New(cfg Config, locator reconciler.ArtifactLocator, restConfig *rest.Config) (*Target, error) {
	if locator == nil {
		return nil, errors.New("kserve: an artifact locator is required")
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
	connect := cfg.ConnectTimeout
	if connect <= 0 {
		connect = DefaultConnectTimeout
	}
	if rc.Dial == nil {
		// client-go would wait 30 s for a TCP connection.
		rc.Dial = (&net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}).DialContext
	}
	probe, err := newProber(rc, connect)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kserve: dynamic client: %w", err)
	}
	md, err := metadata.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kserve: metadata client: %w", err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kserve: discovery client: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Target{
		cfg:        cfg,
		locator:    locator,
		dyn:        dyn,
		disc:       memory.NewMemCacheClient(disc),
		caches:     newCaches(dyn, md, ctx.Done(), probe.probe),
		cancel:     cancel,
		dryRuns:    map[string]dryRunOutcome{},
		builds:     map[string]cachedBuild{},
		buildsUsed: map[string]bool{},
	}, nil
}

// Close stops every informer.
func (t *Target) Close() { t.cancel() }

// Name implements reconciler.TypedTarget.
func (t *Target) Name() string { return Name }
