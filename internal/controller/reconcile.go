package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelsync/modelsync/reconciler"
)

// standbyRecheck bounds how stale a standby's status of a changing key gets.
const standbyRecheck = 30 * time.Second

// A waiting key is looked at again on a short backoff, not only at the
// resync: restores and rollouts finish on their own schedule. The delay
// grows with the time spent waiting (a Glacier restore takes hours) between
// these bounds.
const (
	minWaitRecheck = 5 * time.Second
	maxWaitRecheck = time.Minute
)

// itemRun carries one reconcile of one key through its steps. Each step
// reads what the earlier ones found and adds its own finding; none of them
// writes the item's status: deriveStatus does that once, from the finished
// run, so what status says is what the run found.
type itemRun struct {
	key Key
	now time.Time

	desired *reconciler.DesiredState
	// model is Git's model; nil when the model left Git (gone).
	model  *reconciler.DesiredModel
	gitEnv *reconciler.DesiredEnv
	// gone is set for a model that left Git: its run only prunes what
	// the targets still hold of it.
	gone bool

	eff    reconciler.DesiredModel
	effEnv *reconciler.DesiredEnv
	held   map[string]heldEnv
	pinned map[string]Pin
	agreed []Pin // pins Git now agrees with, released by the leader

	// canary is the canary analysis' part of the run (nil: none).
	canary *canaryRun

	plan   *reconciler.Plan
	share  planShare
	health Health

	// Outcome.
	suspended bool
	window    *heldEnv // a sync window holds the key's environment
	standby   bool     // planned on a replica that may not write
	result    *reconciler.ApplyResult
	err       error
}

// wrote reports whether the run applied anything.
func (r *itemRun) wrote() bool { return r.result != nil && len(r.result.Applied) > 0 }

// waiting reports whether a wait keeps the key's change from completing.
func (r *itemRun) waiting() bool { return len(r.share.waits) > 0 || len(r.share.heldMine) > 0 }

// stepResult says whether the run goes on to the next step.
type stepResult bool

const (
	next stepResult = true
	stop stepResult = false
)

// reconcileStep is one named step of a reconcile. An error ends the run
// as failed and the key backs off.
type reconcileStep struct {
	name string
	run  func(ctx context.Context, r *itemRun) (stepResult, error)
}

// steps lists a reconcile in order: resolve Git's state, apply pins and
// sync windows to it, let a running canary analysis look and set the
// canary's live weight (or its promotion or rollback), plan, read serving
// health, then stop where a window or standby forbids writing, else apply,
// and finally start an advanced canary's next step or write its outcome
// back to Git.
func (c *Controller) steps() []reconcileStep {
	return []reconcileStep{
		{"resolve", c.resolveStep},
		{"effective", c.effectiveStep},
		{"analysis", c.analysisStep},
		{"integrity", c.integrityStep},
		{"plan", c.planStep},
		{"health", c.healthStep},
		{"window", c.windowStep},
		{"standby", c.standbyStep},
		{"release-pins", c.releasePinsStep},
		{"apply", c.applyStep},
		{"after-apply", c.afterApplyStep},
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

// reconcile runs one key through the steps and records the outcome. It
// returns a delay after which to look again (a held or waiting
// environment) or an error (backoff).
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
	r := &itemRun{key: k, now: c.opts.Now(), desired: d}
	for _, s := range c.steps() {
		res, err := s.run(ctx, r)
		if err != nil {
			r.err = err
			break
		}
		if res == stop {
			break
		}
	}
	after, err := c.record(ctx, r)
	if cr := r.canary; cr != nil && cr.lookAfter > 0 && (after == 0 || cr.lookAfter < after) {
		after = cr.lookAfter
	}
	return after, err
}

// resolveStep finds the key in Git's desired state. A model that left Git
// is pruned by a run of its own; a model Git cannot resolve keeps
// everything it has (it is still in Git, only broken).
func (c *Controller) resolveStep(_ context.Context, r *itemRun) (stepResult, error) {
	m, ok := r.desired.Model(r.key.Model)
	if !ok {
		if r.key.Environment != "" || r.desired.Broken(r.key.Model) {
			return stop, nil
		}
		r.gone = true
		return next, nil
	}
	r.model = m
	if r.key.Environment != "" {
		if r.gitEnv, ok = m.Env(r.key.Environment); !ok {
			return stop, nil
		}
	}
	if m.Suspended {
		r.suspended = true
		return stop, nil
	}
	return next, nil
}

// effectiveStep applies pins and sync windows to Git's model.
func (c *Controller) effectiveStep(_ context.Context, r *itemRun) (stepResult, error) {
	if r.gone {
		return next, nil
	}
	r.eff, r.held, r.pinned, r.agreed = c.effective(r.model, r.now)
	// A run's own copy: its steps adjust the environment it reconciles
	// (effectiveCanary), and effective shares Git's desired state.
	r.eff.Environments = slices.Clone(r.eff.Environments)
	if r.key.Environment != "" {
		r.effEnv, _ = r.eff.Env(r.key.Environment)
	}
	return next, nil
}

// planStep plans the key's model alone. The desired state covers that one
// model, so no target may plan anything for another model (pruning
// included); a model that left Git is covered with no environments, which
// prunes exactly what it left behind.
func (c *Controller) planStep(ctx context.Context, r *itemRun) (stepResult, error) {
	sub := r.desired.Subset(r.key.Model)
	if !r.gone {
		sub.Models = []reconciler.DesiredModel{r.eff}
	}
	plan, err := reconciler.BuildPlan(ctx, sub, c.targets)
	if err != nil {
		return stop, fmt.Errorf("planning model %s: %w", r.key.Model, err)
	}
	r.plan = plan
	if errs := plan.Errors(); len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return stop, &PlanError{Model: r.key.Model, Environment: r.key.Environment, Problems: msgs}
	}
	envs := map[string]bool{}
	for _, e := range r.eff.Environments {
		envs[e.Environment] = true
	}
	r.share = partition(plan, r.key, envs)
	return next, nil
}

// integrityStep refuses to serve a version whose artifacts changed since
// it was first served in the environment: nothing is planned or applied
// for the key, so the environment keeps what it runs, and the error names
// model, environment, version and both digests.
func (c *Controller) integrityStep(ctx context.Context, r *itemRun) (stepResult, error) {
	if c.opts.Artifacts == nil || r.gone || r.effEnv == nil || r.desired == nil || r.desired.Config == nil ||
		!r.desired.Config.Security.VerifyArtifacts || c.leaderContext() == nil {
		// A standby writes nothing, and verifying may record a digest.
		return next, nil
	}
	versions := []int{r.effEnv.Version}
	if r.effEnv.Canary != nil {
		versions = append(versions, r.effEnv.Canary.Version)
	}
	for _, v := range versions {
		if err := c.opts.Artifacts.VerifyServing(ctx, &r.eff, r.key.Environment, v); err != nil {
			return stop, err
		}
	}
	return next, nil
}

// healthStep reads how the key's environment serves.
func (c *Controller) healthStep(ctx context.Context, r *itemRun) (stepResult, error) {
	if r.effEnv != nil {
		r.health = c.health(ctx, r.key, r.effEnv)
	}
	return next, nil
}

// windowStep stops a key whose environment a sync window holds. A model
// that left Git is pruned environment by environment as windows allow.
func (c *Controller) windowStep(_ context.Context, r *itemRun) (stepResult, error) {
	if r.gone {
		ws := c.windowSet()
		r.share.mine = slices.DeleteFunc(r.share.mine, func(a reconciler.Action) bool {
			st := ws.Status(a.Environment, r.now)
			if !st.Open && (r.window == nil || nextOpen(st).Before(nextOpen(r.window.window))) {
				r.window = &heldEnv{window: st}
			}
			return !st.Open
		})
		return next, nil
	}
	if h, ok := r.held[r.key.Environment]; ok && r.key.Environment != "" {
		r.window = &h
		return stop, nil
	}
	return next, nil
}

// standbyStep stops a replica that does not hold the Lease: it plans (so
// status stays truthful) but writes nothing, Events and pins included.
func (c *Controller) standbyStep(_ context.Context, r *itemRun) (stepResult, error) {
	if c.leaderContext() == nil {
		r.standby = true
		return stop, nil
	}
	return next, nil
}

// releasePinsStep removes the pins Git now agrees with.
func (c *Controller) releasePinsStep(_ context.Context, r *itemRun) (stepResult, error) {
	for _, p := range r.agreed {
		c.releasePin(p, r.eff)
	}
	return next, nil
}

// applyStep applies the key's share of the plan through reconciler.Apply.
// Model-level actions (version tags, lifecycle) describe where versions run
// across environments, so they go once no other environment of the model
// has changes pending.
func (c *Controller) applyStep(ctx context.Context, r *itemRun) (stepResult, error) {
	applyCtx := c.leaderContext()
	if applyCtx == nil {
		r.standby = true
		return stop, nil
	}
	apply := map[string]bool{}
	for _, a := range r.share.shared {
		apply[a.ID()] = true
	}
	for _, a := range r.share.mine {
		apply[a.ID()] = true
	}
	if !r.share.othersPending(r.held) {
		for _, a := range r.share.modelLevel {
			apply[a.ID()] = true
		}
	}
	sel := r.plan.Select(func(a reconciler.Action) bool { return apply[a.ID()] })
	res, err := reconciler.Apply(applyCtx, sel, c.targets, reconciler.ApplyOptions{OnAction: c.auditAction(r)})
	r.result = res
	c.countResults(r.plan, res)
	if err != nil {
		// An invalid plan, or leadership ended: the new leader re-plans.
		return stop, fmt.Errorf("model %s environment %s: %w", r.key.Model, r.key.Environment, err)
	}
	if len(res.Failed) > 0 {
		f := res.Failed[0]
		return stop, fmt.Errorf("model %s environment %s: %s %s %s: %s", r.key.Model, r.key.Environment,
			f.Action.Target, f.Action.Kind, f.Action.Resource, f.Err)
	}
	return next, nil
}

// auditAction writes one audit entry per applied or failed action, naming
// the Git author of the change (or whoever pinned the environment).
func (c *Controller) auditAction(r *itemRun) func(reconciler.Action, error) {
	actor := ActorController
	if r.effEnv != nil {
		actor = commitActor(r.effEnv.Commit)
		if p, ok := r.pinned[r.key.Environment]; ok && p.Actor != "" {
			actor = p.Actor
		}
	}
	return func(a reconciler.Action, err error) {
		entry := AuditEntry{Actor: actor, Revision: a.Revision, Model: a.Model, Environment: a.Environment,
			Action: a.Target + " " + a.Kind + " " + a.Resource, From: a.From, To: a.To, Result: "applied"}
		if err != nil {
			entry.Result, entry.Error = "failed", err.Error()
		} else if a.Drift {
			c.metrics.drift.Inc()
		}
		c.writeAudit(entry)
	}
}

// planShare is one key's part of its model's plan.
type planShare struct {
	// shared are prerequisites of no single model (an environment's
	// namespace): this key's own actions need them, so they go first.
	shared []reconciler.Action
	// mine are the actions of the key's environment.
	mine []reconciler.Action
	// others are the actions of the model's other environments.
	others []reconciler.Action
	// modelLevel are actions of no environment (version tags, lifecycle)
	// and of environments the model left (an alias to delete): they have
	// no key of their own.
	modelLevel []reconciler.Action
	// heldMine are the key's actions a wait keeps back.
	heldMine []reconciler.Action
	// waits are the waits on the key's environment or the whole model.
	waits []reconciler.Wait
}

// partition splits a model's plan into the key's share. envs are the
// environments the model runs in. A key of no environment (a retired
// model, or one that left Git) owns every action of the model.
func partition(p *reconciler.Plan, k Key, envs map[string]bool) planShare {
	var s planShare
	for _, a := range p.Actions() {
		switch {
		case a.Model == "":
			s.shared = append(s.shared, a)
		case k.Environment == "" || (a.Environment != "" && a.Environment == k.Environment):
			s.mine = append(s.mine, a)
		case a.Environment == "" || !envs[a.Environment]:
			s.modelLevel = append(s.modelLevel, a)
		default:
			s.others = append(s.others, a)
		}
	}
	for _, a := range p.Held() {
		if k.Environment == "" || a.Environment == k.Environment {
			s.heldMine = append(s.heldMine, a)
		}
	}
	for _, w := range p.Waits() {
		if w.Model == k.Model && (k.Environment == "" || w.Environment == "" || w.Environment == k.Environment) {
			s.waits = append(s.waits, w)
		}
	}
	return s
}

// othersPending reports whether another environment of the model still has
// changes to make, or is held by a window at a state the controller has not
// seen applied: model-level actions wait for those.
func (s planShare) othersPending(held map[string]heldEnv) bool {
	if len(s.others) > 0 {
		return true
	}
	for _, h := range held {
		if !h.known {
			return true
		}
	}
	return false
}

// pending reports whether the key's environment has changes not yet made.
func (s planShare) pending() bool { return len(s.mine) > 0 || len(s.heldMine) > 0 }

// waitReasons joins the reasons of the waits, for status and events.
func waitReasons(ws []reconciler.Wait) string {
	seen := map[string]bool{}
	var out []string
	for _, w := range ws {
		if !seen[w.Reason] {
			seen[w.Reason] = true
			out = append(out, w.Target+": "+w.Reason)
		}
	}
	return strings.Join(out, "; ")
}

// waitRecheck is how long a key that has waited since `since` sleeps
// before the next look.
func waitRecheck(since, now time.Time) time.Duration {
	return min(max(now.Sub(since)/10, minWaitRecheck), maxWaitRecheck)
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
