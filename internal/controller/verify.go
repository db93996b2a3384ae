package controller

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/modelsync/modelsync/internal/analysis"
	"github.com/modelsync/modelsync/internal/canary"
)

// The check after promotion (postPromotion, the design's
// auto_rollback_if_degraded). When a canary with postPromotion is promoted,
// by the analysis or by a person changing Git's version to the candidate
// while it ran, the promoted revision's counts over [promotedAt,
// promotedAt+duration] are compared once with the previous revision's over
// the equal window before promotedAt. Clearly worse (the same anytime-valid
// test and margins) reverts: the previous version serves again, the
// outcome is written back to Git and held until Git agrees, like a
// rollback. The record keeps the settings, since Git's canary block that
// holds them is gone once Git records the promotion.

// verifyStep runs for an environment whose Git state has no canary. It
// reports done when the environment's record is a promotion under check,
// or a revert Git has not recorded yet: the record then stays, the check
// looks when due, and the effective state is what the record says.
// Otherwise it returns the record it read (nil: none), which Git no longer
// needs.
func (c *Controller) verifyStep(ctx context.Context, r *itemRun, leader bool) (done bool, _ *CanaryRecord, err error) {
	ao := c.opts.Analysis
	k, ge := r.key, r.gitEnv
	rec, err := ao.Store.Get(ctx, k)
	if err != nil {
		return true, nil, err
	}
	if rec == nil || rec.Verification == nil || ge.Version != rec.CandidateVersion || rec.Revisions.Canary == "" {
		return false, rec, nil
	}
	switch rec.Outcome {
	case OutcomePromoted, OutcomeReverted:
	case OutcomeRunning:
		// A person promoted in Git while the analysis ran: the same check
		// applies to the version they promoted.
		if !leader {
			return false, nil, nil
		}
		rec.Outcome, rec.PendingAdvance, rec.WriteBack = OutcomePromoted, false, "promoted in Git at "+ge.Revision
		v := rec.Verification
		v.Promoted, v.Previous, v.By = rec.Revisions.Canary, rec.Revisions.Stable, "git"
		if err := ao.Store.Put(ctx, rec); err != nil {
			if errors.Is(err, ErrConflict) {
				return true, nil, nil // another replica wrote it; the next reconcile reads it
			}
			return true, nil, err
		}
		c.writeAudit(AuditEntry{Actor: ActorController, Revision: ge.Revision, Model: k.Model, Environment: k.Environment,
			Action: "canary verify", From: "canary v" + strconv.Itoa(rec.CandidateVersion), To: "check v" + strconv.Itoa(rec.CandidateVersion) + " against v" + strconv.Itoa(rec.StableVersion),
			Result: "applied", Error: "promoted in Git while the analysis ran"})
	default:
		return false, rec, nil
	}
	cr := &canaryRun{rec: rec, spec: rec.Verification.Spec(k.Model, k.Environment)}
	r.canary = cr
	if leader {
		if err := c.verifyLook(ctx, r, cr); err != nil {
			return true, nil, err
		}
	}
	if cr.rec.Outcome == OutcomeReverted && cr.rec.WriteBack == "" && ao.WriteBack != nil {
		cr.lookAfter = max(cr.spec.Interval, minWaitRecheck) // retry the write-back
	}
	effectiveCanary(r.effEnv, cr.rec)
	c.canaries.update(k, verifyStatus(cr.rec, r.now), nil)
	return true, cr.rec, nil
}

// verifyLook runs the check once its window has passed, then once an
// interval while the metrics provider has no data. A revert changes the
// record's outcome; the apply and the write-back follow in this reconcile.
func (c *Controller) verifyLook(ctx context.Context, r *itemRun, cr *canaryRun) error {
	ao := c.opts.Analysis
	rec, k := cr.rec, r.key
	v := rec.Verification
	if rec.Outcome != OutcomePromoted || v.Result != canary.VerifyPending || v.PromotedAt.IsZero() {
		return nil
	}
	interval := v.Interval
	if interval <= 0 {
		interval = time.Minute
	}
	if due := verifyNextLook(v); r.now.Before(due) {
		cr.lookAfter = max(due.Sub(r.now), minWaitRecheck)
		return nil
	}
	cr.lookAfter = interval
	d, verr := ao.Evaluator.Verify(ctx, cr.spec, v.Promoted, v.Previous, v.PromotedAt, r.now)
	providerErr := false
	switch {
	case errors.Is(verr, canary.ErrSpec):
		// Settings that cannot run decide nothing: the promotion stays.
		d = analysis.Decision{Action: analysis.ActionHold, At: r.now, Reason: "cannot check: " + verr.Error()}
		v.Result = canary.VerifyInconclusive
	case verr != nil:
		// No data is no evidence: hold, ask again next interval.
		providerErr = true
		v.ProviderErrors++
		if d.Reason == "" {
			d = analysis.Decision{Action: analysis.ActionHold, At: r.now, Reason: "provider error: " + verr.Error()}
		}
		c.log.Warn("the check after promotion has no data; asking again", "model", k.Model, "environment", k.Environment, "version", rec.CandidateVersion, "error", verr)
	default:
		switch d.Action {
		case analysis.ActionRollback:
			v.Result = canary.VerifyReverted
			rec.Outcome, rec.WriteBack, rec.WriteBackError = OutcomeReverted, "", ""
		case analysis.ActionPromote:
			v.Result = canary.VerifyVerified
		default:
			v.Result = canary.VerifyInconclusive
		}
	}
	v.Decision, v.LastLook = &d, r.now
	if err := ao.Store.Put(ctx, rec); err != nil {
		if errors.Is(err, ErrConflict) {
			cr.lookAfter = minWaitRecheck
			return nil
		}
		return err
	}
	c.metrics.canaryVerifyLook(k, d, providerErr)
	if providerErr {
		return nil
	}
	from, to, result := "v"+strconv.Itoa(rec.CandidateVersion), "v"+strconv.Itoa(rec.CandidateVersion)+" kept", "noop"
	typ, reason := corev1.EventTypeNormal, "PromotionVerified"
	switch v.Result {
	case canary.VerifyReverted:
		to, result = "v"+strconv.Itoa(rec.StableVersion)+" at 100%", "applied"
		typ, reason = corev1.EventTypeWarning, "PromotionReverted"
	case canary.VerifyInconclusive:
		typ, reason = corev1.EventTypeWarning, "PromotionUnverified"
	}
	c.writeAudit(AuditEntry{Actor: ActorController, Revision: r.gitEnv.Revision, Model: k.Model, Environment: k.Environment,
		Action: "canary verify", From: from, To: to, Result: result, Error: reasonIfNot(result == "applied", d.Reason)})
	c.canaryEvent(ctx, r, typ, reason, fmt.Sprintf("check of v%d after promotion against v%d: %s: %s", rec.CandidateVersion, rec.StableVersion, v.Result, d.Reason))
	return nil
}

// verifyNextLook is when the check looks next: at the window's end, then
// an interval after a look without data.
func verifyNextLook(v *canary.Verification) time.Time {
	end := v.WindowEnd()
	if end.IsZero() || v.Result != canary.VerifyPending {
		return time.Time{}
	}
	if v.LastLook.IsZero() {
		return end
	}
	return v.LastLook.Add(max(v.Interval, time.Second))
}

// verifyNext says in words where the check after promotion stands.
func verifyNext(rec *CanaryRecord, now time.Time) string {
	v := rec.Verification
	d := v.PostPromotion.Duration.String()
	switch v.Result {
	case canary.VerifyVerified:
		return fmt.Sprintf("checked after promotion: v%d is not worse than v%d (%s before and after)", rec.CandidateVersion, rec.StableVersion, d)
	case canary.VerifyInconclusive:
		return fmt.Sprintf("checked after promotion: inconclusive against v%d, v%d stays (%s)", rec.StableVersion, rec.CandidateVersion, v.Decision.Reason)
	case canary.VerifyReverted:
		return fmt.Sprintf("reverted to v%d after the check", rec.StableVersion)
	}
	if v.PromotedAt.IsZero() {
		return fmt.Sprintf("once the promotion is applied, v%d is compared with v%d over %s before and after it; clearly worse reverts to v%d through Git",
			rec.CandidateVersion, rec.StableVersion, d, rec.StableVersion)
	}
	at := verifyNextLook(v)
	when := "at " + at.UTC().Format("15:04:05")
	if !at.After(now) {
		when = "now"
	}
	return fmt.Sprintf("v%d is compared with v%d %s (%s after the promotion against %s before it); clearly worse reverts to v%d through Git",
		rec.CandidateVersion, rec.StableVersion, when, d, d, rec.StableVersion)
}

// verifyEvidence describes a check's evidence for the write-back.
func verifyEvidence(v *canary.Verification) []string {
	var out []string
	d := v.Decision
	for _, m := range d.Metrics {
		out = append(out, fmt.Sprintf("%s: rate ratio %.3g, %.0f%% bounds %.3g..%.3g (margin %.3g); promoted %d bad of %d, previous %d bad of %d",
			m.Name, m.Estimate, (1-m.Alpha)*100, m.Lower, m.Upper, m.Margin, m.Canary.Bad, m.Canary.Total, m.Stable.Bad, m.Stable.Total))
	}
	from, to := v.PromotedAt.Add(-v.PostPromotion.Duration), v.WindowEnd()
	out = append(out, fmt.Sprintf("windows: previous revision %s from %s to %s, promoted revision %s from %s to %s (promoted by the %s)",
		v.Previous, from.UTC().Format(time.RFC3339), v.PromotedAt.UTC().Format(time.RFC3339),
		v.Promoted, v.PromotedAt.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), v.By))
	out = append(out, "a before/after comparison is weaker evidence than a concurrent canary: anything else that changed at the promotion counts too")
	return out
}

// verifyStatus is the Status of an environment whose Git state has no
// canary but whose promotion is checked (or reverted).
func verifyStatus(rec *CanaryRecord, now time.Time) canary.Status {
	st := canary.Status{Model: rec.Model, Environment: rec.Environment, StableVersion: rec.StableVersion, CandidateVersion: rec.CandidateVersion,
		Revisions: rec.Revisions, State: rec.State, Decision: rec.Decision, Verification: rec.Verification, Weight: 100}
	if rec.Outcome == OutcomeReverted {
		st.Weight = 0
		st.Next = fmt.Sprintf("reverted: v%d was clearly worse than v%d after its promotion; v%d serves all traffic, held there until Git names v%d (%s)",
			rec.CandidateVersion, rec.StableVersion, rec.StableVersion, rec.StableVersion, writeBackState(rec))
		return st
	}
	st.Next = fmt.Sprintf("promoted: v%d serves all traffic (%s); %s", rec.CandidateVersion, writeBackState(rec), verifyNext(rec, now))
	st.NextLookAt = verifyNextLook(rec.Verification)
	return st
}
