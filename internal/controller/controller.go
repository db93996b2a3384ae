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
	"maps"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/util/workqueue"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/repo"
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
	StateSuspended  = "suspended"   // the model is suspended in Git
	StateFailed     = "failed"      // planning or applying failed; retried with backoff
	StateInvalid    = "invalid"     // Git's manifest for the model cannot be resolved
	HealthUnknown   = "unknown"
	ActorController = "modelsync-controller"
)

// standbyRecheck bounds how stale a standby's status of a changing key gets.
const standbyRecheck = 30 * time.Second

// Controller reconciles a models repository continuously.
type Controller struct {
	opts    Options
	log     *slog.Logger
	metrics *Metrics
	windows windowSet
	pins    *pinStore
	audit   *auditLog
	closers []io.Closer
	targets []reconciler.Target
	byName  map[string]reconciler.Target
	queue   workqueue.TypedRateLimitingInterface[Key]
	trigger chan string
	ready   atomic.Bool
	running atomic.Bool

	mu         sync.Mutex // guards the fields below
	snap       *repo.Snapshot
	desired    *reconciler.DesiredState
	desiredOf  *repo.Snapshot    // the snapshot desired was computed from
	heads      map[string]string // source branch -> head the desired state used
	lastFull   time.Time
	lastFetch  time.Time
	fetchErr   string
	items      map[Key]*itemStatus
	applied    map[Key]reconciler.DesiredEnv // effective env last applied or found in sync
	modelLocks map[string]*sync.Mutex

	leaderMu  sync.Mutex
	leaderCtx context.Context // non-nil while this replica may write
	identity  string
}

// itemStatus is what the controller learned about one key from its last
// plan or apply.
type itemStatus struct {
	State        string
	Message      string
	Live         string
	Drift        bool
	Health       string
	CanaryStep   string
	LastRevision string
	LastError    string
	LastAttempt  time.Time
	LastApplied  time.Time
	eventState   string // last state an Event was recorded for
	eventRev     string
}

// windowsFor combines the sync windows of the options with those
// modelsync.yaml declares at this revision, so a window change in Git takes
// effect with the commit. The manifest was validated already; a window that
// still fails to compile is logged and left out.
func (c *Controller) windowsFor(d *reconciler.DesiredState) windowSet {
	all := slices.Clone(c.opts.Windows)
	if d != nil && d.Config != nil {
		for _, w := range d.Config.SyncWindows {
			sw := SyncWindow{Kind: w.Kind, Schedule: w.Schedule, Duration: w.Duration.Duration, Environments: w.Environments}
			if w.TimeZone != "" {
				loc, err := time.LoadLocation(w.TimeZone)
				if err != nil {
					c.log.Error("sync window time zone", "timeZone", w.TimeZone, "error", err)
					continue
				}
				sw.Location = loc
			}
			all = append(all, sw)
		}
	}
	ws, err := compileWindows(all)
	if err != nil {
		c.log.Error("sync windows from modelsync.yaml ignored", "revision", d.Revision, "error", err)
		ws, _ = compileWindows(c.opts.Windows)
	}
	return ws
}

// windowSet returns the sync windows in force.
func (c *Controller) windowSet() windowSet {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.windows
}

// New validates opts and prepares a controller; Run starts it.
func New(opts Options) (*Controller, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	ws, err := compileWindows(opts.Windows)
	if err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	pins, err := openPinStore(opts.StateDir)
	if err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	c := &Controller{
		opts:       opts,
		log:        opts.Logger,
		metrics:    opts.Metrics,
		windows:    ws,
		pins:       pins,
		audit:      &auditLog{},
		trigger:    make(chan string, 1),
		items:      map[Key]*itemStatus{},
		applied:    map[Key]reconciler.DesiredEnv{},
		modelLocks: map[string]*sync.Mutex{},
		byName:     map[string]reconciler.Target{},
		heads:      map[string]string{},
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
	}
	c.identity = "standalone"
	if le := opts.LeaderElection; le != nil {
		c.identity = le.Identity
		if c.identity == "" {
			host, _ := os.Hostname()
			c.identity = host + "_" + strconv.FormatUint(rand.Uint64(), 36)
		}
	}
	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[Key](opts.MinRetryDelay, opts.MaxRetryDelay),
		workqueue.TypedRateLimitingQueueConfig[Key]{Name: "modelsync"},
	)
	return c, nil
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
		if d, err = reconciler.ComputeDesired(snap, c.opts.Branch); err != nil {
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
		keys = c.changedKeys(snap, oldDesired, d, oldHeads, heads)
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
	var keys []Key
	for i := range d.Models {
		keys = append(keys, modelKeys(&d.Models[i])...)
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
func (c *Controller) pruneLocked(d *reconciler.DesiredState) {
	live := map[Key]bool{}
	for _, k := range allKeys(d) {
		live[k] = true
	}
	for k := range c.items {
		if !live[k] {
			delete(c.items, k)
			delete(c.applied, k)
			c.metrics.setModelInfo(k, "")
		}
	}
}

func (c *Controller) modelLock(model string) *sync.Mutex {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.modelLocks[model]
	if !ok {
		l = &sync.Mutex{}
		c.modelLocks[model] = l
	}
	return l
}

func (c *Controller) processNext(ctx context.Context) bool {
	k, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(k)
	after, err := c.reconcile(ctx, k)
	switch {
	case err != nil && ctx.Err() == nil:
		c.log.Warn("reconcile failed; retrying with backoff", "model", k.Model, "environment", k.Environment,
			"retries", c.queue.NumRequeues(k), "error", err)
		c.queue.AddRateLimited(k)
	case after > 0:
		c.queue.Forget(k)
		c.queue.AddAfter(k, after)
	default:
		c.queue.Forget(k)
	}
	return true
}

// heldEnv records why an environment of the model may not change now.
type heldEnv struct {
	window WindowStatus
	// known is true when the state to hold at was substituted into the
	// effective desired state.
	known bool
}

// effective applies pins and sync windows to Git's desired model: a pinned
// environment takes the pinned version; a closed environment keeps what the
// controller last applied there. Pins whose version Git now asks for are
// released.
func (c *Controller) effective(m *reconciler.DesiredModel, now time.Time) (reconciler.DesiredModel, map[string]heldEnv, map[string]Pin) {
	eff := *m
	eff.Environments = slices.Clone(m.Environments)
	held := map[string]heldEnv{}
	pinned := map[string]Pin{}
	for i := range eff.Environments {
		e := &eff.Environments[i]
		k := Key{Model: m.Name, Environment: e.Environment}
		if p, ok := c.pins.get(k); ok {
			if e.Version == p.Version {
				if removed, err := c.pins.remove(k, p.Version); err != nil {
					c.log.Error("releasing pin failed", "model", k.Model, "environment", k.Environment, "version", p.Version, "error", err)
				} else if removed {
					c.log.Info("pin released: Git agrees", "model", k.Model, "environment", k.Environment, "version", p.Version)
					c.writeAudit(AuditEntry{Actor: ActorController, Revision: e.Revision, Model: k.Model, Environment: k.Environment,
						Action: "release-pin", From: "pinned v" + strconv.Itoa(p.Version), To: "git", Result: "applied"})
				}
			} else {
				// Pins are emergency rollbacks: they apply inside deny
				// windows too.
				e.Version, e.Canary = p.Version, nil
				if p.Revision != "" {
					e.Revision = p.Revision
				}
				pinned[e.Environment] = p
				continue
			}
		}
		ws := c.windowSet().status(e.Environment, now)
		if ws.Open {
			continue
		}
		h := heldEnv{window: ws}
		c.mu.Lock()
		last, ok := c.applied[k]
		c.mu.Unlock()
		if ok {
			*e = last
			h.known = true
		}
		held[e.Environment] = h
	}
	return eff, held, pinned
}

// reconcile plans one key and, when this replica leads and the key's
// environment is open, applies the key's actions. It returns a delay after
// which to look again (a held environment) or an error (backoff).
func (c *Controller) reconcile(ctx context.Context, k Key) (time.Duration, error) {
	lock := c.modelLock(k.Model)
	lock.Lock()
	defer lock.Unlock()

	c.mu.Lock()
	d := c.desired
	c.mu.Unlock()
	if d == nil {
		return 0, nil
	}
	m, ok := d.Model(k.Model)
	if !ok {
		return 0, nil
	}
	var gitEnv *reconciler.DesiredEnv
	if k.Environment != "" {
		if gitEnv, ok = m.Env(k.Environment); !ok {
			return 0, nil
		}
	}
	now := c.opts.Now()
	if m.Suspended {
		c.update(k, func(s *itemStatus) {
			s.State, s.Message, s.LastError, s.LastAttempt = StateSuspended, "suspended in Git: nothing is changed", "", now
		})
		for _, t := range c.targets {
			c.metrics.reconcileTotal.WithLabelValues(t.Name(), "suspended").Inc()
		}
		return 0, nil
	}

	eff, held, pinned := c.effective(m, now)
	sub := &reconciler.DesiredState{Revision: d.Revision, Config: d.Config, Models: []reconciler.DesiredModel{eff}}
	plan, err := reconciler.BuildPlan(ctx, sub, c.targets)
	if err != nil {
		return 0, c.fail(k, now, fmt.Errorf("planning model %s: %w", k.Model, err))
	}
	if errs := plan.Errors(); len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return 0, c.fail(k, now, &PlanError{Model: k.Model, Environment: k.Environment, Problems: msgs})
	}

	// Actions for an environment the model no longer runs in (say, an
	// alias to delete) have no key of their own; they go with the
	// model-level actions.
	envSet := map[string]bool{}
	for _, e := range eff.Environments {
		envSet[e.Environment] = true
	}
	var shared, mine, others, modelLevel []reconciler.Action
	for _, a := range plan.Actions() {
		switch {
		case a.Model == "":
			// Prerequisites of no single model (an environment's
			// namespace) go first: this key's own actions need them.
			shared = append(shared, a)
		case a.Environment != "" && a.Environment == k.Environment:
			mine = append(mine, a)
		case a.Environment == "" || !envSet[a.Environment]:
			modelLevel = append(modelLevel, a)
		default:
			others = append(others, a)
		}
	}
	var effEnv *reconciler.DesiredEnv
	if k.Environment != "" {
		effEnv, _ = eff.Env(k.Environment)
	}
	health := c.health(ctx, k, effEnv)
	drift := slices.ContainsFunc(mine, func(a reconciler.Action) bool { return a.Drift })
	live := liveFrom(effEnv, mine)

	if h, ok := held[k.Environment]; ok && k.Environment != "" {
		inSync := h.known && len(mine) == 0 && sameEnv(*effEnv, *gitEnv)
		c.update(k, func(s *itemStatus) {
			s.LastAttempt, s.Live, s.Drift, s.Health, s.CanaryStep = now, live, drift, health.Status, health.CanaryStep
			if inSync {
				s.State, s.Message = StateSynced, ""
			} else {
				s.State, s.Message = StateHeld, "sync window: "+h.window.Reason
			}
		})
		c.countResult(plan, "held")
		// Git changes requeue the key by themselves; only the clock
		// needs a wake-up.
		after := c.opts.ResyncInterval
		if h.window.NextOpen != nil {
			after = min(after, h.window.NextOpen.Sub(now))
		}
		return max(after, time.Second), nil
	}

	applyCtx := c.leaderContext()
	if applyCtx == nil {
		c.update(k, func(s *itemStatus) {
			s.LastAttempt, s.Live, s.Drift, s.Health, s.CanaryStep = now, live, drift, health.Status, health.CanaryStep
			if len(mine) == 0 {
				s.State, s.Message = StateSynced, ""
				if effEnv != nil {
					// The leader recorded this state's event; after a
					// takeover, only later transitions need one.
					s.eventState, s.eventRev = StateSynced, effEnv.Revision
				}
			} else {
				s.State, s.Message = StateOutOfSync, "standby replica: planned, not applied"
			}
		})
		if len(mine) > 0 {
			// The leader is probably applying this; look again so the
			// standby's status catches up.
			return min(c.opts.Interval, standbyRecheck), nil
		}
		return 0, nil
	}

	// Version tags and lifecycle concern the whole model: apply them once
	// no other environment has changes pending, so they describe where
	// versions really run.
	apply := append(slices.Clone(shared), mine...)
	waitingOthers := len(others) > 0 || slices.ContainsFunc(slices.Collect(maps.Values(held)), func(h heldEnv) bool { return !h.known })
	if !waitingOthers {
		apply = append(apply, modelLevel...)
	}
	if err := reconciler.ValidatePlan(plan, c.targets); err != nil {
		return 0, c.fail(k, now, fmt.Errorf("model %s: %w", k.Model, err))
	}
	actor := ActorController
	if effEnv != nil {
		actor = commitActor(effEnv.Commit)
		if p, ok := pinned[k.Environment]; ok && p.Actor != "" {
			actor = p.Actor
		}
	}
	results := map[string]string{}
	for _, a := range apply {
		if err := applyCtx.Err(); err != nil {
			// Leadership ended: the new leader re-plans this key.
			return 0, fmt.Errorf("model %s environment %s: stopped before %s: %w", k.Model, k.Environment, a.ID(), err)
		}
		err := c.byName[a.Target].Apply(applyCtx, a)
		entry := AuditEntry{Actor: actor, Revision: a.Revision, Model: a.Model, Environment: a.Environment,
			Action: a.Target + " " + a.Kind + " " + a.Resource, From: a.From, To: a.To, Result: "applied"}
		if a.Environment == "" {
			entry.Actor = ActorController
			if effEnv != nil {
				entry.Actor = actor
			}
		}
		if err != nil {
			entry.Result, entry.Error = "failed", err.Error()
		}
		c.writeAudit(entry)
		if err != nil {
			results[a.Target] = "failed"
			c.countResults(plan, results)
			return 0, c.fail(k, now, fmt.Errorf("model %s environment %s: %w", k.Model, k.Environment, err))
		}
		results[a.Target] = "applied"
		if a.Drift {
			c.metrics.drift.Inc()
		}
	}
	c.countResults(plan, results)
	if k.Environment != "" {
		c.mu.Lock()
		c.applied[k] = *effEnv
		c.mu.Unlock()
		c.metrics.setModelInfo(k, "v"+strconv.Itoa(effEnv.Version))
	}
	rev := d.Revision
	if effEnv != nil {
		rev = effEnv.Revision
		live = envLabel(effEnv)
	}
	c.update(k, func(s *itemStatus) {
		s.State, s.Message, s.LastError, s.Drift = StateSynced, "", "", drift
		s.Live, s.Health, s.CanaryStep, s.LastRevision, s.LastAttempt = live, health.Status, health.CanaryStep, rev, now
		if len(apply) > 0 {
			s.LastApplied = now
		}
		if p, ok := pinned[k.Environment]; ok {
			s.Message = "pinned at v" + strconv.Itoa(p.Version) + " until Git agrees"
		}
	})
	c.event(ctx, k, effEnv, len(apply) > 0)
	return 0, nil
}

// PlanError lists why a model could not be planned. Its text is stable
// for a given cause, so status does not churn between retries.
type PlanError struct {
	Model       string
	Environment string
	Problems    []string
}

func (e *PlanError) Error() string {
	where := "model " + e.Model
	if e.Environment != "" {
		where += " environment " + e.Environment
	}
	return where + ": " + strings.Join(e.Problems, "; ")
}

func (c *Controller) fail(k Key, now time.Time, err error) error {
	c.update(k, func(s *itemStatus) {
		s.State, s.LastError, s.LastAttempt, s.Message = StateFailed, err.Error(), now, "retrying with backoff"
	})
	c.event(context.Background(), k, nil, false)
	return err
}

func (c *Controller) update(k Key, f func(*itemStatus)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.items[k]
	if !ok {
		s = &itemStatus{State: StateUnknown, Health: HealthUnknown}
		c.items[k] = s
	}
	f(s)
	if s.Health == "" {
		s.Health = HealthUnknown
	}
}

func (c *Controller) countResult(p *reconciler.Plan, result string) {
	for _, t := range p.Targets() {
		c.metrics.reconcileTotal.WithLabelValues(t, result).Inc()
	}
}

func (c *Controller) countResults(p *reconciler.Plan, results map[string]string) {
	for _, t := range p.Targets() {
		r := results[t]
		if r == "" {
			r = "noop"
		}
		c.metrics.reconcileTotal.WithLabelValues(t, r).Inc()
	}
}

func (c *Controller) writeAudit(e AuditEntry) {
	e.Time = c.opts.Now().UTC()
	if err := c.audit.write(e); err != nil {
		c.log.Error("writing audit log failed", "error", err)
	}
}

func (c *Controller) health(ctx context.Context, k Key, e *reconciler.DesiredEnv) Health {
	h := Health{Status: HealthUnknown}
	if e != nil && e.Canary != nil {
		h.CanaryStep = "v" + strconv.Itoa(e.Canary.Version) + " at " + strconv.Itoa(e.Canary.Weight) + "%"
	}
	if c.opts.Health == nil || e == nil {
		return h
	}
	got, err := c.opts.Health.Health(ctx, k.Model, *e)
	if err != nil {
		c.log.Warn("health check failed", "model", k.Model, "environment", k.Environment, "error", err)
		return h
	}
	if got.Status != "" {
		h.Status = got.Status
	}
	if got.CanaryStep != "" {
		h.CanaryStep = got.CanaryStep
	}
	return h
}

func itoa(n int) string { return strconv.Itoa(n) }

func commitActor(c reconciler.Commit) string {
	switch {
	case c.AuthorName != "" && c.AuthorEmail != "":
		return c.AuthorName + " <" + c.AuthorEmail + ">"
	case c.AuthorName != "":
		return c.AuthorName
	case c.AuthorEmail != "":
		return c.AuthorEmail
	}
	return ActorController
}

func envLabel(e *reconciler.DesiredEnv) string {
	if e == nil {
		return "-"
	}
	s := "v" + strconv.Itoa(e.Version)
	if e.Canary != nil {
		s += " (canary v" + strconv.Itoa(e.Canary.Version) + " at " + strconv.Itoa(e.Canary.Weight) + "%)"
	}
	return s
}

// liveFrom derives what runs now from the desired state and the actions
// still needed to reach it: the alias action's From is the live version.
func liveFrom(e *reconciler.DesiredEnv, pending []reconciler.Action) string {
	if e == nil {
		return "-"
	}
	if len(pending) == 0 {
		return envLabel(e)
	}
	for _, a := range pending {
		if a.Resource == "alias "+e.Alias {
			if a.From == "" {
				return "none"
			}
			return a.From
		}
	}
	return "out of sync"
}

// Pin holds model/env at version (see Pin). The pin is stored before the
// key is queued, so it survives a restart that happens in between.
func (c *Controller) Pin(model, env string, version int, revision, actor string) (Pin, error) {
	if model == "" || env == "" || version < 1 {
		return Pin{}, fmt.Errorf("pin needs a model, an environment and a version >= 1 (got model %q environment %q version %d)", model, env, version)
	}
	c.mu.Lock()
	d := c.desired
	c.mu.Unlock()
	if d != nil {
		m, ok := d.Model(model)
		if !ok {
			return Pin{}, &NotFoundError{What: "model " + model}
		}
		if _, ok := m.Env(env); !ok {
			return Pin{}, &NotFoundError{What: "model " + model + " in environment " + env}
		}
	}
	p := Pin{Model: model, Environment: env, Version: version, Revision: revision, Actor: actor, CreatedAt: c.opts.Now().UTC()}
	if err := c.pins.put(p); err != nil {
		return Pin{}, fmt.Errorf("pinning model %s environment %s at version %d: %w", model, env, version, err)
	}
	c.writeAudit(AuditEntry{Actor: orActor(actor), Revision: revision, Model: model, Environment: env, Action: "pin", To: "v" + strconv.Itoa(version), Result: "applied"})
	k := Key{Model: model, Environment: env}
	c.queue.Forget(k)
	c.queue.Add(k)
	return p, nil
}

// Unpin removes a pin; Git's desired state applies again.
func (c *Controller) Unpin(model, env, actor string) (bool, error) {
	k := Key{Model: model, Environment: env}
	removed, err := c.pins.remove(k, 0)
	if err != nil {
		return false, fmt.Errorf("unpinning model %s environment %s: %w", model, env, err)
	}
	if removed {
		c.writeAudit(AuditEntry{Actor: orActor(actor), Model: model, Environment: env, Action: "unpin", To: "git", Result: "applied"})
		c.queue.Forget(k)
		c.queue.Add(k)
	}
	return removed, nil
}

// Pins lists the pins in model, environment order.
func (c *Controller) Pins() []Pin { return c.pins.list() }

func orActor(a string) string {
	if a == "" {
		return "api"
	}
	return a
}

// NotFoundError means Git has no such model or environment.
type NotFoundError struct{ What string }

func (e *NotFoundError) Error() string { return e.What + " is not in the models repository" }

// sortKeys orders keys by model, then environment in modelsync.yaml order.
func sortKeys(keys []Key, cfg *manifest.RepoConfig) {
	rank := map[string]int{}
	if cfg != nil {
		for i, e := range cfg.Environments {
			rank[e.Name] = i + 1
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Model != keys[j].Model {
			return keys[i].Model < keys[j].Model
		}
		return rank[keys[i].Environment] < rank[keys[j].Environment]
	})
}
