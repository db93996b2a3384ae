package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/modelsync/modelsync/internal/analysis"
	"github.com/modelsync/modelsync/internal/canary"
	"github.com/modelsync/modelsync/internal/rollback"
	"github.com/modelsync/modelsync/reconciler"
)

// AnalysisOptions wire the canary analysis into the controller. While an
// analysis runs, the controller owns the canary's live weight: the weight
// in Git is where it starts, the record's current step is what the plan
// applies (so drift detection does not fight the progression), and a
// promotion or rollback holds the environment, as a pin does, until Git
// agrees.
type AnalysisOptions struct {
	// SpecFor resolves an environment's canary analysis; ok is false when
	// the canary has none (it then stays at the weight Git names).
	SpecFor func(model string, env reconciler.DesiredEnv) (canary.Spec, bool, error)
	// Revisions reads the two arms from the InferenceService's status.
	Revisions func(ctx context.Context, namespace, name string) (canary.Revisions, error)
	// Evaluator reads the metrics and runs the statistics.
	Evaluator CanaryEvaluator
	// Store keeps each canary's record in the cluster (required).
	Store CanaryStore
	// Recorder, when set, records every look in MLflow; a failure is
	// logged and evented, never blocks a decision.
	Recorder CanaryRecorder
	// WriteBack, when set, records a promotion or rollback in Git (a pull
	// request or a direct commit); without it the outcome holds until a
	// person changes Git.
	WriteBack CanaryWriteBack
}

// CanaryEvaluator is one look at a canary and the move to its next step
// (package canary's Evaluator).
type CanaryEvaluator interface {
	Look(ctx context.Context, spec canary.Spec, revs canary.Revisions, st analysis.State, now time.Time) (analysis.State, analysis.Decision, error)
	Advance(spec canary.Spec, st analysis.State, now time.Time) (analysis.State, error)
	// Verify is the check after promotion: the promoted revision's counts
	// after promotedAt against the previous revision's before it.
	Verify(ctx context.Context, spec canary.Spec, promoted, previous string, promotedAt, now time.Time) (analysis.Decision, error)
}

// CanaryRecorder records a look (package canary's RunRecorder).
type CanaryRecorder interface {
	Record(ctx context.Context, spec canary.Spec, st analysis.State, d analysis.Decision) error
}

// CanaryWriteBack records an outcome in Git and says where (a pull request
// URL or a branch and commit).
type CanaryWriteBack interface {
	WriteBack(ctx context.Context, o *rollback.CanaryOutcome) (string, error)
}

// canaryRun is the analysis' part of one reconcile.
type canaryRun struct {
	// specErr says why the environment's analysis cannot run.
	specErr string
	spec    canary.Spec
	rec     *CanaryRecord
	// looked is the decision of a look made in this run.
	looked *analysis.Decision
	// advanced is set when the run applies a pending advance's weight;
	// the next step starts once the apply succeeded.
	advanced bool
	// lookAfter is when the key needs its next look.
	lookAfter time.Duration
}

// analysisStep runs between the effective state and the plan: it loads the
// canary's record, looks when a look is due (leader only), acts on the
// decision, and sets the effective environment to what the analysis says:
// the current step's weight, or the promoted or rolled-back state.
func (c *Controller) analysisStep(ctx context.Context, r *itemRun) (stepResult, error) {
	ao := c.opts.Analysis
	if ao == nil || r.gone || r.effEnv == nil || r.gitEnv == nil {
		return next, nil
	}
	k := r.key
	if _, pinned := r.pinned[k.Environment]; pinned {
		return next, nil // a person's pin wins over the analysis
	}
	if _, held := r.held[k.Environment]; held {
		return next, nil // a closed window holds what was applied
	}
	ge := r.gitEnv
	leader := c.leaderContext() != nil
	if ge.Canary == nil {
		// A promotion Git records now, by the write-back or by hand, is
		// checked after promotion when the analysis asked for it.
		done, rec, err := c.verifyStep(ctx, r, leader)
		if done || err != nil {
			return next, err
		}
		// Git has no canary (any more): an outcome Git agrees with now, or
		// a canary a person withdrew. The record has done its job.
		c.canaries.forget(k)
		if leader && rec != nil {
			c.releaseRecord(ctx, r, rec, "git has no canary")
		}
		return next, nil
	}
	spec, ok, err := ao.SpecFor(k.Model, *ge)
	if err != nil {
		// An analysis that cannot run (no Prometheus address, no tested
		// metric) automates nothing: the canary stays at Git's weight, as
		// without an analysis, and status says why.
		c.log.Warn("canary analysis cannot run; the canary stays at the weight in Git", "model", k.Model, "environment", k.Environment, "error", err)
		r.canary = &canaryRun{specErr: err.Error()}
		return next, nil
	}
	if !ok {
		return next, nil
	}
	rec, err := ao.Store.Get(ctx, k)
	if err != nil {
		return stop, err
	}
	if !rec.matches(ge.Version, ge.Canary.Version) {
		if rec != nil && leader {
			c.releaseRecord(ctx, r, rec, fmt.Sprintf("git moved to v%d with canary v%d", ge.Version, ge.Canary.Version))
			if rec, err = ao.Store.Get(ctx, k); err != nil {
				return stop, err
			}
		}
		if rec != nil && !rec.matches(ge.Version, ge.Canary.Version) {
			rec = nil // a standby shows no stale record as this canary's
		}
	}
	cr := &canaryRun{spec: spec, rec: rec}
	r.canary = cr
	if leader && (rec == nil || rec.Outcome == OutcomeRunning) && !(rec != nil && rec.PendingAdvance) {
		if err := c.look(ctx, r, cr); err != nil {
			return stop, err
		}
	}
	if leader && cr.rec != nil && cr.rec.Outcome == OutcomePromoted && cr.rec.Verification != nil {
		// Git has not recorded the promotion yet; the check after it runs
		// on the clock all the same.
		if err := c.verifyLook(ctx, r, cr); err != nil {
			return stop, err
		}
	}
	if cr.rec != nil && cr.rec.Outcome != OutcomeRunning && cr.rec.WriteBack == "" && ao.WriteBack != nil {
		cr.lookAfter = max(spec.Interval, minWaitRecheck) // retry the write-back
	}
	effectiveCanary(r.effEnv, cr.rec)
	cr.advanced = cr.rec != nil && cr.rec.Outcome == OutcomeRunning && cr.rec.PendingAdvance
	c.canaries.update(k, analysisStatus(spec, ge, cr.rec, r.now), cr.looked)
	return next, nil
}

// effectiveCanary sets env to what the record says runs: the current step
// (or the step an advance moves to), the candidate alone after a
// promotion, the stable version alone after a rollback. env's Canary is
// replaced, never modified: it is shared with Git's desired state.
func effectiveCanary(env *reconciler.DesiredEnv, rec *CanaryRecord) {
	if rec != nil && rec.Outcome == OutcomeReverted {
		// Git may name the canary still or the promoted version already.
		env.Version, env.Canary = rec.StableVersion, nil
		return
	}
	if rec == nil || env.Canary == nil {
		return
	}
	switch rec.Outcome {
	case OutcomePromoted:
		env.Version, env.Canary = rec.CandidateVersion, nil
	case OutcomeRolledBack:
		env.Canary = nil
	default:
		w := rec.weight()
		if w <= 0 {
			return
		}
		cc := *env.Canary
		cc.Weight = w
		env.Canary = &cc
	}
}

// weight is the canary weight the record puts live.
func (rec *CanaryRecord) weight() int {
	if rec.PendingAdvance && rec.Decision != nil && rec.Decision.NextWeight > 0 {
		return rec.Decision.NextWeight
	}
	if n := len(rec.State.Windows); n > 0 {
		return rec.State.Windows[n-1].Weight
	}
	return 0
}

// nextOutcome is the decision table's last column: what a decision does to
// the record. It returns whether the decision changes what runs (and so is
// evented and written back).
func nextOutcome(rec *CanaryRecord, d analysis.Decision, on canary.OnInconclusive) (changes bool) {
	switch d.Action {
	case analysis.ActionAdvance:
		rec.PendingAdvance = true
		return true
	case analysis.ActionPromote:
		rec.Outcome = OutcomePromoted
		if v := rec.Verification; v != nil {
			v.Promoted, v.Previous, v.By = rec.Revisions.Canary, rec.Revisions.Stable, "analysis"
		}
		return true
	case analysis.ActionRollback:
		rec.Outcome = OutcomeRolledBack
		return true
	case analysis.ActionInconclusive:
		if on == canary.InconclusiveRollback {
			rec.Outcome = OutcomeRolledBack
			return true
		}
	}
	return false
}

// look reads the metrics when a look is due, stores the new evidence and
// then acts on it: the record is stored before any action, so an action is
// never taken on evidence a restart would forget.
func (c *Controller) look(ctx context.Context, r *itemRun, cr *canaryRun) error {
	ao := c.opts.Analysis
	k := r.key
	interval := cr.spec.Interval
	if interval <= 0 {
		interval = time.Minute
	}
	if cr.rec != nil && !cr.rec.LastLook.IsZero() {
		if due := cr.rec.LastLook.Add(interval); r.now.Before(due) {
			cr.lookAfter = due.Sub(r.now)
			return nil
		}
	}
	cr.lookAfter = interval
	rec := cr.rec
	if rec == nil {
		rec = &CanaryRecord{Model: k.Model, Environment: k.Environment, StableVersion: r.gitEnv.Version,
			CandidateVersion: r.gitEnv.Canary.Version, Outcome: OutcomeRunning}
	}
	if rec.Verification == nil {
		rec.Verification = canary.NewVerification(cr.spec)
	}
	revs, err := ao.Revisions(ctx, r.gitEnv.Namespace, k.Model)
	if err != nil {
		// KServe has not rolled the candidate out yet: no arms, no look.
		c.log.Info("canary analysis waits for both revisions", "model", k.Model, "environment", k.Environment, "error", err)
		cr.lookAfter = min(interval, minWaitRecheck)
		return nil
	}
	if rec.Revisions.Canary == "" {
		rec.Revisions = revs
	}
	st, d, err := ao.Evaluator.Look(ctx, cr.spec, rec.Revisions, rec.State, r.now)
	if err != nil {
		return fmt.Errorf("canary analysis of model %s environment %s: %w", k.Model, k.Environment, err)
	}
	providerErr := st.ProviderErrors > rec.State.ProviderErrors
	rec.State, rec.Decision, rec.LastLook = st, &d, r.now
	changes := nextOutcome(rec, d, cr.spec.OnInconclusive)
	if err := ao.Store.Put(ctx, rec); err != nil {
		if errors.Is(err, ErrConflict) {
			// Another replica looked; its evidence stands. Look again soon.
			cr.lookAfter = minWaitRecheck
			return nil
		}
		return err
	}
	cr.rec, cr.looked = rec, &d
	c.metrics.canaryDecision(k, d, rec.weight(), providerErr)
	if ao.Recorder != nil {
		if err := ao.Recorder.Record(ctx, cr.spec, st, d); err != nil {
			c.log.Warn("recording the canary look in MLflow failed", "model", k.Model, "environment", k.Environment, "error", err)
			c.canaryEvent(ctx, r, corev1.EventTypeWarning, "CanaryRecordFailed", "recording the look in MLflow failed: "+err.Error())
		}
	}
	c.auditDecision(r, rec, d, changes)
	switch {
	case changes:
		c.canaryEvent(ctx, r, eventType(d.Action), eventReason(rec, d), decisionMessage(rec, d))
	case d.Action == analysis.ActionInconclusive:
		// Held past maxDuration: an alert, not a change.
		c.canaryEvent(ctx, r, corev1.EventTypeWarning, "CanaryInconclusive", decisionMessage(rec, d))
	}
	return nil
}

// afterApplyStep follows a successful apply. An advance's next step
// starts once its weight is applied: the counts of the new step begin at
// the clock read after the apply returned, not at the reconcile's start,
// so the requests served at the old weight while the apply ran do not
// count as the new step's (at a short step they would show as a
// sample-ratio mismatch and hold). A promotion or rollback, already live,
// is then written back to Git.
func (c *Controller) afterApplyStep(ctx context.Context, r *itemRun) (stepResult, error) {
	cr := r.canary
	if cr == nil || cr.rec == nil || c.leaderContext() == nil {
		return next, nil
	}
	if v := cr.rec.Verification; v != nil && cr.rec.Outcome == OutcomePromoted && v.PromotedAt.IsZero() {
		// The window after the promotion starts once it is applied.
		v.PromotedAt = c.opts.Now()
		if err := c.opts.Analysis.Store.Put(ctx, cr.rec); err != nil {
			return stop, err
		}
	}
	if cr.rec.Outcome != OutcomeRunning && cr.rec.WriteBack == "" {
		c.writeBack(ctx, r, cr)
		return next, nil
	}
	if !cr.advanced {
		return next, nil
	}
	ao := c.opts.Analysis
	rec := cr.rec
	applied := c.opts.Now()
	st, err := ao.Evaluator.Advance(cr.spec, rec.State, applied)
	if err != nil {
		return stop, fmt.Errorf("canary analysis of model %s environment %s: advancing: %w", r.key.Model, r.key.Environment, err)
	}
	rec.State, rec.PendingAdvance, rec.LastLook = st, false, applied
	if err := ao.Store.Put(ctx, rec); err != nil {
		return stop, err
	}
	return next, nil
}

// ErrNoAnalysis means the environment runs no canary with an analysis.
var ErrNoAnalysis = errors.New("no canary analysis")

// Analysis reports one environment's canary analysis: its record in the
// cluster, read now (so any replica answers with the leader's evidence),
// and what happens next.
func (c *Controller) Analysis(ctx context.Context, model, env string) (canary.Status, error) {
	d := c.Desired()
	if d == nil {
		return canary.Status{}, errors.New("no desired state yet: waiting for the first successful fetch")
	}
	m, ok := d.Model(model)
	if !ok {
		return canary.Status{}, &NotFoundError{What: "model " + model}
	}
	ge, ok := m.Env(env)
	if !ok {
		return canary.Status{}, &NotFoundError{What: "model " + model + " in environment " + env}
	}
	ao := c.opts.Analysis
	if ao == nil {
		return canary.Status{}, fmt.Errorf("model %s environment %s: %w: the controller runs without canary analysis (no Prometheus address)", model, env, ErrNoAnalysis)
	}
	if ge.Canary == nil {
		// A promotion checked after the fact outlives Git's canary.
		rec, err := ao.Store.Get(ctx, Key{Model: model, Environment: env})
		if err != nil {
			return canary.Status{}, err
		}
		if rec != nil && rec.Verification != nil && ge.Version == rec.CandidateVersion && (rec.Outcome == OutcomePromoted || rec.Outcome == OutcomeReverted) {
			return verifyStatus(rec, c.opts.Now()), nil
		}
		return canary.Status{}, fmt.Errorf("model %s environment %s: %w: Git names no canary", model, env, ErrNoAnalysis)
	}
	spec, ok, err := ao.SpecFor(model, *ge)
	if err != nil {
		return canary.Status{}, fmt.Errorf("canary analysis of model %s environment %s: %w", model, env, err)
	}
	if !ok {
		return canary.Status{}, fmt.Errorf("model %s environment %s: %w: the canary has no analysis block", model, env, ErrNoAnalysis)
	}
	rec, err := ao.Store.Get(ctx, Key{Model: model, Environment: env})
	if err != nil {
		return canary.Status{}, err
	}
	if !rec.matches(ge.Version, ge.Canary.Version) {
		rec = nil
	}
	return analysisStatus(spec, ge, rec, c.opts.Now()), nil
}

// analysisStatus is the Status of a canary from its spec and record.
func analysisStatus(spec canary.Spec, ge *reconciler.DesiredEnv, rec *CanaryRecord, now time.Time) canary.Status {
	st := canary.Status{Model: spec.Model, Environment: spec.Environment, StableVersion: ge.Version, CandidateVersion: ge.Canary.Version,
		Weight: ge.Canary.Weight}
	interval := max(spec.Interval, time.Second)
	if rec == nil {
		st.Next = "the first look starts the test once KServe reports both revisions (at the next reconcile, then every " + interval.String() + ")"
		return st
	}
	st.Revisions, st.State, st.Decision, st.Verification = rec.Revisions, rec.State, rec.Decision, rec.Verification
	if w := rec.weight(); w > 0 {
		st.Weight = w
	}
	if !rec.LastLook.IsZero() {
		st.NextLookAt = rec.LastLook.Add(interval)
	}
	steps := spec.Config.Steps
	at := ""
	if !st.NextLookAt.IsZero() {
		at = " at " + st.NextLookAt.UTC().Format("15:04:05")
		if st.NextLookAt.Before(now) {
			at = " now"
		}
	}
	switch {
	case rec.Outcome == OutcomePromoted:
		st.Weight, st.NextLookAt = 100, time.Time{}
		st.Next = fmt.Sprintf("promoted: v%d serves all traffic; held there until Git names v%d without a canary (%s)", rec.CandidateVersion, rec.CandidateVersion, writeBackState(rec))
		if v := rec.Verification; v != nil {
			st.Next += "; " + verifyNext(rec, now)
			st.NextLookAt = verifyNextLook(v)
		}
	case rec.Outcome == OutcomeRolledBack:
		st.Weight, st.NextLookAt = 0, time.Time{}
		st.Next = fmt.Sprintf("rolled back: v%d serves all traffic; held there until Git drops canary v%d (%s)", rec.StableVersion, rec.CandidateVersion, writeBackState(rec))
	case rec.Outcome == OutcomeReverted:
		st.Weight, st.NextLookAt = 0, time.Time{}
		st.Next = fmt.Sprintf("reverted: v%d was clearly worse than v%d after its promotion; v%d serves all traffic, held there until Git names v%d without a canary (%s)",
			rec.CandidateVersion, rec.StableVersion, rec.StableVersion, rec.StableVersion, writeBackState(rec))
	case rec.PendingAdvance:
		st.Next = fmt.Sprintf("apply %d%% and start step %d of %d", st.Weight, rec.State.Step+2, len(steps))
	case rec.Decision != nil && rec.Decision.Action == analysis.ActionInconclusive:
		st.Next = fmt.Sprintf("held at %d%% after maxDuration without a decision (onInconclusive: hold); change Git to promote or drop the canary; look again%s", st.Weight, at)
	default:
		goal := "promote"
		if rec.State.Step+1 < len(steps) {
			goal = fmt.Sprintf("advance to %d%%", steps[rec.State.Step+1])
		}
		why := ""
		if rec.Decision != nil && rec.Decision.Action == analysis.ActionHold {
			why = " once no longer waiting for: " + rec.Decision.Reason
		}
		st.Next = fmt.Sprintf("look again%s; %s%s; roll back if a metric's test shows the canary worse than stable", at, goal, why)
	}
	return st
}

func writeBackState(rec *CanaryRecord) string {
	switch {
	case rec.WriteBack != "":
		return "recorded in Git: " + rec.WriteBack
	case rec.WriteBackError != "":
		return "writing it to Git failed, retried every interval: " + rec.WriteBackError
	}
	return "not written to Git by the controller: change Git by hand"
}
