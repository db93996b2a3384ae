// Package controller runs modelsync continuously: it fetches the models
// repository on an interval (and at once when a webhook says Git moved),
// computes the desired state, and reconciles every model in every
// environment through a rate-limited work queue keyed by model and
// environment, so a failing model backs off alone and never blocks others.
//
// Every step is idempotent: the queue only holds keys, each item re-reads
// Git's desired state and the targets' live state, so a crash or a lost
// leadership at any point converges on the next pass.
//
// Files by job: fetch.go turns Git into desired state and the keys a change
// affects; triage.go is the full pass over the whole repository (the only
// pass that may prune models that left Git); reconcile.go runs one key
// through named steps and itemstatus.go derives its status from the
// result, in one place; pins.go, window.go and effective.go decide what
// may change; http.go serves the API.
//
// Durable state is one file, <StateDir>/pins.json: the pins set through
// Pin (rollback --now). Everything else is recomputed from Git and the
// targets after a restart.
package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/util/workqueue"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/repo"
	"github.com/modelsync/modelsync/internal/syncwindow"
	"github.com/modelsync/modelsync/reconciler"
)

// Key is one unit of work: a model in an environment. A model that runs in
// no environment (retired) has the key {Model, ""}.
type Key struct {
	Model       string `json:"model"`
	Environment string `json:"environment,omitempty"`
}

func (k Key) String() string {
	if k.Environment == "" {
		return k.Model
	}
	return k.Model + "/" + k.Environment
}

// Item states shown in status.
const (
	StateUnknown    = "unknown"     // not reconciled yet
	StateSynced     = "synced"      // live matches the (effective) desired state
	StateOutOfSync  = "out-of-sync" // planned changes not applied (standby)
	StateHeld       = "held"        // a sync window holds the change back
	StateWaiting    = "waiting"     // a target waits for a precondition (a restore, a ready revision)
	StateSuspended  = "suspended"   // the model is suspended in Git
	StateFailed     = "failed"      // planning or applying failed; retried with backoff
	StateInvalid    = "invalid"     // Git's manifest for the model cannot be resolved
	HealthUnknown   = "unknown"
	ActorController = "modelsync-controller"
)

// Controller reconciles a models repository continuously.
type Controller struct {
	opts    Options
	log     *slog.Logger
	metrics *Metrics
	windows syncwindow.Set
	pins    *pinStore
	// canaries is the dashboard's in-memory reading of running canaries.
	canaries *canaryViews
	audit    *auditLog
	closers  []io.Closer
	// attribution remembers which commit changed each model, so each
	// desired state walks only the commits since the previous one.
	attribution *reconciler.Attribution
	// manifests keeps decoded manifests by content, so the desired state
	// after a push decodes only the files the push changed.
	manifests *manifest.Cache
	// releases keeps each model's release resolution, so a push to a
	// branch re-reads none of the released models.
	releases *reconciler.ReleaseMemo
	targets  []reconciler.Target
	byName   map[string]reconciler.Target
	// servingHealth is the first target that reports serving health.
	servingHealth reconciler.HealthReporter
	queue         workqueue.TypedRateLimitingInterface[Key]
	trigger       chan string
	ready         atomic.Bool
	running       atomic.Bool

	mu        sync.Mutex // guards the fields below
	snap      *repo.Snapshot
	desired   *reconciler.DesiredState
	desiredOf *repo.Snapshot    // the snapshot desired was computed from
	heads     map[string]string // source branch -> head the desired state used
	lastFull  time.Time
	lastFetch time.Time
	fetchErr  string
	items     map[Key]*itemStatus
	// applied is the effective env last applied or found in sync, by
	// pointer into the desired state (or the copy a pin or window made),
	// which must not be modified: a copy per key was 46 MB at 50,000
	// models.
	applied    map[Key]*reconciler.DesiredEnv
	modelLocks map[string]*sync.Mutex

	leaderMu  sync.Mutex
	leaderCtx context.Context // non-nil while this replica may write
	identity  string
}

// New validates opts and prepares a controller; Run starts it.
func New(opts Options) (*Controller, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	ws, err := syncwindow.Compile(opts.Windows)
	if err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	pins, err := openPinStore(opts.StateDir)
	if err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	c := &Controller{
		opts:        opts,
		log:         opts.Logger,
		metrics:     opts.Metrics,
		windows:     ws,
		pins:        pins,
		canaries:    newCanaryViews(),
		audit:       &auditLog{},
		attribution: reconciler.NewAttribution(),
		manifests:   manifest.NewCache(),
		releases:    reconciler.NewReleaseMemo(),
		trigger:     make(chan string, 1),
		items:       map[Key]*itemStatus{},
		applied:     map[Key]*reconciler.DesiredEnv{},
		modelLocks:  map[string]*sync.Mutex{},
		byName:      map[string]reconciler.Target{},
		heads:       map[string]string{},
	}
	if opts.Audit != nil {
		c.audit.writers = append(c.audit.writers, opts.Audit)
	}
	if opts.AuditFile != "" {
		f, err := os.OpenFile(opts.AuditFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("controller: audit log: %w", err)
		}
		c.audit.writers = append(c.audit.writers, f)
		c.closers = append(c.closers, f)
	}
	for _, t := range opts.Targets {
		it := &instrumented{Target: t, m: c.metrics}
		c.targets = append(c.targets, it)
		c.byName[t.Name()] = it
		if h, ok := reconciler.As[reconciler.HealthReporter](t); ok && c.servingHealth == nil {
			c.servingHealth = h
		}
	}
	c.identity = "standalone"
	if le := opts.LeaderElection; le != nil {
		c.identity = le.Identity
		if c.identity == "" {
			c.identity = NewIdentity()
		}
	}
	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[Key](opts.MinRetryDelay, opts.MaxRetryDelay),
		workqueue.TypedRateLimitingQueueConfig[Key]{Name: "modelsync"},
	)
	return c, nil
}

// NewIdentity names a replica for leader election: the host name and a
// random suffix, so two replicas on one host differ too.
func NewIdentity() string {
	host, _ := os.Hostname()
	return host + "_" + strconv.FormatUint(rand.Uint64(), 36)
}

// Close releases the audit file. Call it after Run returned.
func (c *Controller) Close() error {
	var errs []error
	for _, cl := range c.closers {
		errs = append(errs, cl.Close())
	}
	return errors.Join(errs...)
}

// Metrics returns the controller's registry.
func (c *Controller) Metrics() *Metrics { return c.metrics }

// Identity is this replica's leader-election identity ("standalone"
// without leader election).
func (c *Controller) Identity() string { return c.identity }

// IsLeader reports whether this replica may write now.
func (c *Controller) IsLeader() bool { return c.leaderContext() != nil }

// Ready reports whether the first fetch has succeeded.
func (c *Controller) Ready() bool { return c.ready.Load() }

// Trigger asks for a fetch now. Calls made while a fetch is pending
// coalesce into one; reason is logged only.
func (c *Controller) Trigger(reason string) {
	select {
	case c.trigger <- reason:
	default:
	}
}

// Resync fetches now and re-plans every model and environment, as the
// periodic resync does, whether or not Git moved.
func (c *Controller) Resync() {
	c.mu.Lock()
	c.lastFull = time.Time{}
	c.mu.Unlock()
	c.Trigger("resync")
}

// Reconcile queues a model (every environment when env is "") at once,
// ahead of its backoff. It reports false when Git has no such model or
// environment.
func (c *Controller) Reconcile(model, env string) bool {
	c.mu.Lock()
	d := c.desired
	c.mu.Unlock()
	if d == nil {
		return false
	}
	m, ok := d.Model(model)
	if !ok {
		return false
	}
	keys := modelKeys(m)
	if env != "" {
		if _, ok := m.Env(env); !ok {
			return false
		}
		keys = []Key{{Model: model, Environment: env}}
	}
	for _, k := range keys {
		c.queue.Forget(k)
		c.queue.Add(k)
	}
	return true
}

// Run fetches and reconciles until ctx ends. It may be called once.
func (c *Controller) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("controller: Run called twice")
	}
	var wg sync.WaitGroup
	if c.opts.LeaderElection != nil {
		wg.Go(func() { c.runLeaderElection(ctx) })
	} else {
		c.leaderMu.Lock()
		c.leaderCtx = ctx // the first fetch is a full pass anyway
		c.leaderMu.Unlock()
	}
	for range c.opts.Concurrency {
		wg.Go(func() {
			for c.processNext(ctx) {
			}
		})
	}
	c.fetchLoop(ctx)
	c.queue.ShutDown()
	wg.Wait()
	return nil
}
