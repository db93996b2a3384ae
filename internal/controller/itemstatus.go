package controller

import (
	"context"
	"strconv"
	"time"

	"github.com/modelsync/modelsync/reconciler"
)

// itemStatus is what the controller learned about one key from its last
// plan or apply.
type itemStatus struct {
	State        string
	Message      string
	Live         string
	Drift        bool
	Health       string
	CanaryStep   string
	Traffic      []reconciler.TrafficSplit
	Analysis     *AnalysisSummary
	LastRevision string
	LastError    string
	LastAttempt  time.Time
	LastApplied  time.Time
	// WaitingSince is when the key started waiting (zero when it is not).
	WaitingSince time.Time
	eventState   string // last state an Event was recorded for
	eventRev     string
}

// outcome is what a finished run means for its key.
type outcome struct {
	// status is the key's new status; nil for a model that left Git,
	// which has no row.
	status *itemStatus
	// requeue is when to look again without a Git change (0: not needed).
	requeue time.Duration
	// runs is the effective environment the run established as live.
	runs *reconciler.DesiredEnv
}

// timing is what deriveOutcome needs of the options.
type timing struct {
	interval, resync time.Duration
}

// deriveOutcome is the one place a key's status is decided, from its
// finished run and its previous status. It reads nothing else, so each
// case is a table test.
func deriveOutcome(r *itemRun, prev itemStatus, tm timing) outcome {
	now := r.now
	if r.gone {
		o := outcome{}
		if r.window != nil && r.err == nil {
			o.requeue = max(min(tm.resync, nextOpen(r.window.window).Sub(now)), time.Second)
		}
		return o
	}
	s := prev
	s.LastAttempt = now
	if s.Health == "" {
		s.Health = HealthUnknown
	}
	if r.state() != StateWaiting {
		s.WaitingSince = time.Time{}
	}
	o := outcome{status: &s}
	if r.err != nil {
		s.State, s.LastError, s.Message = StateFailed, r.err.Error(), "retrying with backoff"
		return o
	}
	if r.suspended {
		s.State, s.Message, s.LastError = StateSuspended, "suspended in Git: nothing is changed", ""
		return o
	}
	pending := append(append([]reconciler.Action{}, r.share.mine...), r.share.heldMine...)
	s.Live = liveFrom(r.effEnv, pending)
	s.Drift = false
	for _, a := range r.share.mine {
		s.Drift = s.Drift || a.Drift
	}
	s.Health, s.CanaryStep, s.Traffic = nonEmpty(r.health.Status, HealthUnknown), r.health.CanaryStep, r.health.Traffic
	s.Analysis = r.canary.summary()
	switch r.state() {
	case StateHeld:
		s.State, s.Message = StateHeld, "sync window: "+r.window.window.Reason
		// Git changes requeue the key by themselves; only the clock
		// needs a wake-up.
		o.requeue = max(min(tm.resync, nextOpen(r.window.window).Sub(now)), time.Second)
	case StateWaiting:
		s.State, s.Message, s.LastError = StateWaiting, waitReasons(r.share.waits), ""
		if s.Message == "" {
			s.Message = "held: another target waits for this model"
		}
		if prev.State != StateWaiting || s.WaitingSince.IsZero() {
			s.WaitingSince = now
		}
		o.requeue = waitRecheck(s.WaitingSince, now)
	case StateOutOfSync:
		s.State, s.Message = StateOutOfSync, "standby replica: planned, not applied"
		// The leader is probably applying this; look again so the
		// standby's status catches up.
		o.requeue = min(tm.interval, standbyRecheck)
	case StateSynced:
		s.State, s.Message, s.LastError = StateSynced, "", ""
		if r.window != nil {
			break // in sync inside a closed window: nothing to remember
		}
		if r.standby {
			if r.effEnv != nil {
				// The leader recorded this state's event; after a
				// takeover, only later transitions need one.
				s.eventState, s.eventRev = StateSynced, r.effEnv.Revision
			}
			break
		}
		s.LastRevision = r.desired.Revision
		if r.effEnv != nil {
			s.Live, s.LastRevision = envLabel(r.effEnv), r.effEnv.Revision
			o.runs = r.effEnv
		}
		if r.wrote() {
			s.LastApplied = now
		}
		if p, ok := r.pinned[r.key.Environment]; ok {
			s.Message = "pinned at v" + strconv.Itoa(p.Version) + " until Git agrees"
		} else if a := s.Analysis; a != nil && a.Outcome == OutcomeNotRunning {
			s.Message = "canary analysis not running: " + a.Error
		} else if a := s.Analysis; a != nil && a.Outcome == OutcomePromoted && r.gitEnv != nil && r.gitEnv.Canary == nil {
			// Git records the promotion; only its check may still run.
			s.Message = "canary promoted, check after promotion: " + a.Verify
		} else if a := s.Analysis; a != nil && a.Outcome != OutcomeRunning {
			s.Message = "canary " + string(a.Outcome) + ": holding v" + strconv.Itoa(r.effEnv.Version) + " until Git agrees"
		}
	}
	return o
}

// state is the state a run without error or suspension ends in.
func (r *itemRun) state() string {
	switch {
	case r.window != nil && !r.inSyncInWindow():
		return StateHeld
	case r.waiting():
		return StateWaiting
	case r.standby && r.share.pending():
		return StateOutOfSync
	}
	return StateSynced
}

// inSyncInWindow reports whether a key held by a window already runs what
// Git asks for.
func (r *itemRun) inSyncInWindow() bool {
	return r.window.known && !r.share.pending() && !r.waiting() && r.effEnv != nil && r.gitEnv != nil && sameEnv(*r.effEnv, *r.gitEnv)
}

// record turns a finished run into status, metrics and an Event, and
// returns when to look again.
func (c *Controller) record(ctx context.Context, r *itemRun) (time.Duration, error) {
	c.mu.Lock()
	prev := itemStatus{State: StateUnknown, Health: HealthUnknown}
	if s, ok := c.items[r.key]; ok {
		prev = *s
	}
	c.mu.Unlock()
	o := deriveOutcome(r, prev, timing{interval: c.opts.Interval, resync: c.opts.ResyncInterval})
	if r.plan != nil && r.result == nil {
		switch {
		case r.suspended:
		case r.window != nil:
			c.countResult(r.plan, "held")
		case r.err == nil:
			c.countResult(r.plan, "noop")
		}
	}
	if r.suspended {
		for _, t := range c.targets {
			c.metrics.reconcileTotal.WithLabelValues(t.Name(), "suspended").Inc()
		}
	}
	if o.status == nil {
		return o.requeue, r.err
	}
	c.mu.Lock()
	cur, ok := c.items[r.key]
	if !ok {
		cur = &itemStatus{}
		c.items[r.key] = cur
	}
	*cur = *o.status
	if o.runs != nil {
		c.applied[r.key] = o.runs
	}
	c.mu.Unlock()
	if o.runs != nil {
		c.metrics.setModelInfo(r.key, o.runs.Version)
	}
	c.event(ctx, r.key, r.effEnv, r.wrote())
	return o.requeue, r.err
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
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

// countResults counts, per target, whether its share of an apply failed,
// wrote something or had nothing to do.
func (c *Controller) countResults(p *reconciler.Plan, res *reconciler.ApplyResult) {
	results := map[string]string{}
	if res != nil {
		for _, a := range res.Applied {
			results[a.Target] = "applied"
		}
		for _, f := range res.Failed {
			results[f.Action.Target] = "failed"
		}
	}
	for _, t := range p.Targets() {
		c.metrics.reconcileTotal.WithLabelValues(t, nonEmpty(results[t], "noop")).Inc()
	}
}

func (c *Controller) writeAudit(e AuditEntry) {
	e.Time = c.opts.Now().UTC()
	if err := c.audit.write(e); err != nil {
		c.log.Error("writing audit log failed", "error", err)
	}
}

// health asks the target that serves models (reconciler.HealthReporter)
// how the key's environment serves; without one it is unknown.
func (c *Controller) health(ctx context.Context, k Key, e *reconciler.DesiredEnv) Health {
	h := Health{Status: HealthUnknown}
	if e != nil && e.Canary != nil {
		h.CanaryStep = "v" + strconv.Itoa(e.Canary.Version) + " at " + strconv.Itoa(e.Canary.Weight) + "%"
	}
	if c.servingHealth == nil || e == nil {
		return h
	}
	got, err := c.servingHealth.ServingHealth(ctx, k.Model, *e)
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
	h.Traffic = got.Traffic
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
