package controller

// What the analysis does with a decision besides changing what runs: the
// write-back to Git, the audit entry and the Event.

import (
	"context"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/modelsync/modelsync/internal/analysis"
	"github.com/modelsync/modelsync/internal/rollback"
)

// writeBack records a terminal outcome in Git. A failure is kept in the
// record and evented; the outcome holds meanwhile and the write is retried
// at the next look interval.
func (c *Controller) writeBack(ctx context.Context, r *itemRun, cr *canaryRun) {
	ao := c.opts.Analysis
	rec := cr.rec
	if ao.WriteBack == nil {
		return
	}
	if rec.WriteBackError != "" && cr.looked == nil && !rec.LastLook.IsZero() && r.now.Sub(rec.LastLook) < cr.spec.Interval {
		return
	}
	o := outcomeOf(rec, r.gitEnv.Revision)
	where, err := ao.WriteBack.WriteBack(ctx, o)
	if err != nil {
		rec.WriteBackError, rec.LastLook = err.Error(), r.now
		c.log.Error("canary write-back to Git failed; the outcome holds until it succeeds or Git changes", "model", r.key.Model, "environment", r.key.Environment, "error", err)
		c.canaryEvent(ctx, r, corev1.EventTypeWarning, "CanaryWriteBackFailed", err.Error())
		c.writeAudit(AuditEntry{Actor: ActorController, Revision: r.gitEnv.Revision, Model: r.key.Model, Environment: r.key.Environment,
			Action: "canary write-back", To: o.Title(), Result: "failed", Error: err.Error()})
	} else {
		rec.WriteBack, rec.WriteBackError = where, ""
		c.canaryEvent(ctx, r, corev1.EventTypeNormal, "CanaryWrittenBack", o.Title()+": "+where)
		c.writeAudit(AuditEntry{Actor: ActorController, Revision: r.gitEnv.Revision, Model: r.key.Model, Environment: r.key.Environment,
			Action: "canary write-back", To: where, Result: "applied"})
	}
	if err := ao.Store.Put(ctx, rec); err != nil {
		c.log.Warn("storing the canary write-back failed", "model", r.key.Model, "environment", r.key.Environment, "error", err)
	}
}

// outcomeOf is the Git change a terminal record asks for, with the
// evidence of its last decision.
func outcomeOf(rec *CanaryRecord, revision string) *rollback.CanaryOutcome {
	o := &rollback.CanaryOutcome{Model: rec.Model, Environment: rec.Environment, Promote: rec.Outcome == OutcomePromoted,
		Revert: rec.Outcome == OutcomeReverted, Stable: rec.StableVersion, Candidate: rec.CandidateVersion, Revision: revision}
	if v := rec.Verification; o.Revert && v != nil && v.Decision != nil {
		o.Reason = "check after promotion: " + v.Decision.Reason
		o.Evidence = verifyEvidence(v)
		return o
	}
	if d := rec.Decision; d != nil {
		o.Reason = string(d.Action) + ": " + d.Reason
		o.Evidence = evidenceLines(rec, *d)
	}
	return o
}

// evidenceLines describes a decision's evidence, one line per metric plus
// the counts and the split.
func evidenceLines(rec *CanaryRecord, d analysis.Decision) []string {
	var out []string
	for _, m := range d.Metrics {
		out = append(out, fmt.Sprintf("%s: rate ratio %.3g, %.0f%% bounds %.3g..%.3g (margin %.3g); canary %d bad of %d, stable %d bad of %d",
			m.Name, m.Estimate, (1-m.Alpha)*100, m.Lower, m.Upper, m.Margin, m.Canary.Bad, m.Canary.Total, m.Stable.Bad, m.Stable.Total))
	}
	out = append(out, fmt.Sprintf("split: canary share %.4f observed, %.2f routed (SRM log BF %.2f)", d.SRM.ObservedShare, d.SRM.RoutedShare, d.SRM.LogBF))
	out = append(out, fmt.Sprintf("looks: %d (%d without data from the metrics provider), step %d at %d%%, started %s",
		rec.State.Looks, rec.State.ProviderErrors, d.Step+1, d.Weight, rec.State.Started.UTC().Format(time.RFC3339)))
	if rec.Revisions.Canary != "" {
		out = append(out, "revisions: canary "+rec.Revisions.Canary+", stable "+rec.Revisions.Stable)
	}
	return out
}

// releaseRecord deletes rec, a record Git no longer needs, and audits it.
func (c *Controller) releaseRecord(ctx context.Context, r *itemRun, rec *CanaryRecord, why string) {
	ao := c.opts.Analysis
	if err := ao.Store.Delete(ctx, r.key); err != nil {
		c.log.Warn("releasing the canary record failed", "model", r.key.Model, "environment", r.key.Environment, "error", err)
		return
	}
	c.metrics.forgetCanary(r.key)
	c.canaries.forget(r.key)
	from := "analysis " + string(rec.Outcome) + " v" + strconv.Itoa(rec.CandidateVersion)
	c.writeAudit(AuditEntry{Actor: ActorController, Revision: r.gitEnv.Revision, Model: r.key.Model, Environment: r.key.Environment,
		Action: "release-canary", From: from, To: "git (" + why + ")", Result: "applied"})
}

func (c *Controller) auditDecision(r *itemRun, rec *CanaryRecord, d analysis.Decision, changes bool) {
	result := "applied"
	if !changes {
		result = "noop"
		if d.Action == analysis.ActionHold && rec.State.Looks > 1 {
			return // a hold per look would flood the audit log
		}
	}
	to := strconv.Itoa(rec.weight()) + "%"
	switch rec.Outcome {
	case OutcomePromoted:
		to = "v" + strconv.Itoa(rec.CandidateVersion) + " at 100%"
	case OutcomeRolledBack:
		to = "v" + strconv.Itoa(rec.StableVersion) + " at 100%"
	}
	c.writeAudit(AuditEntry{Actor: ActorController, Revision: r.gitEnv.Revision, Model: r.key.Model, Environment: r.key.Environment,
		Action: "canary " + string(d.Action), From: strconv.Itoa(d.Weight) + "%", To: to, Result: result, Error: reasonIfNot(changes, d.Reason)})
}

func reasonIfNot(changes bool, reason string) string {
	if changes {
		return ""
	}
	return reason
}

func eventType(a analysis.Action) string {
	if a == analysis.ActionRollback || a == analysis.ActionInconclusive {
		return corev1.EventTypeWarning
	}
	return corev1.EventTypeNormal
}

func eventReason(rec *CanaryRecord, d analysis.Decision) string {
	switch {
	case rec.Outcome == OutcomePromoted:
		return "CanaryPromoted"
	case rec.Outcome == OutcomeRolledBack:
		return "CanaryRolledBack"
	case rec.Outcome == OutcomeReverted:
		return "PromotionReverted"
	case d.Action == analysis.ActionAdvance:
		return "CanaryAdvanced"
	}
	return "CanaryDecision"
}

func decisionMessage(rec *CanaryRecord, d analysis.Decision) string {
	s := fmt.Sprintf("canary v%d (stable v%d) %s at %d%%", rec.CandidateVersion, rec.StableVersion, d.Action, d.Weight)
	if d.NextWeight > 0 {
		s += " → " + strconv.Itoa(d.NextWeight) + "%"
	}
	return s + ": " + d.Reason
}

// canaryEvent records an Event about the analysis on the InferenceService,
// naming the desired revision.
func (c *Controller) canaryEvent(_ context.Context, r *itemRun, typ, reason, msg string) {
	if c.opts.Events == nil || r.gitEnv == nil {
		return
	}
	ctx := c.leaderContext()
	if ctx == nil {
		return
	}
	ns := r.gitEnv.Namespace
	now := metav1.NewTime(c.opts.Now())
	if len(msg) > 1000 {
		msg = msg[:1000]
	}
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: r.key.Model + ".", Namespace: ns},
		InvolvedObject: corev1.ObjectReference{APIVersion: inferenceServiceAPIVersion, Kind: "InferenceService",
			Namespace: ns, Name: r.key.Model},
		Source: corev1.EventSource{Component: "modelsync-controller"},
		Type:   typ, Reason: reason, Message: r.key.Environment + " at " + r.gitEnv.Revision + ": " + msg,
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}
	if _, err := c.opts.Events.CoreV1().Events(ns).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		c.log.Warn("recording event failed", "model", r.key.Model, "environment", r.key.Environment, "error", err)
	}
}
