package controller

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	k8stesting "k8s.io/client-go/testing"

	"github.com/modelsync/modelsync/internal/analysis"
	"github.com/modelsync/modelsync/internal/apiauth"
	"github.com/modelsync/modelsync/internal/canary"
	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/reconciler/reconcilertest"
)

var churnProd = Key{Model: "churn", Environment: "prod"}

func (a *analysisUnit) record(t *testing.T) *CanaryRecord {
	t.Helper()
	rec, err := a.store.Get(a.ctx, churnProd)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func (a *analysisUnit) auditActions(t *testing.T, prefix string) string {
	t.Helper()
	var out []string
	for _, e := range a.audit.entries(t) {
		if strings.HasPrefix(e.Action, prefix) {
			out = append(out, e.Action+" "+e.Result)
		}
	}
	return strings.Join(out, ",")
}

func gitPromoted(version int) *reconciler.DesiredState {
	e := reconcilertest.Env("prod", version)
	e.Namespace = "models-prod"
	return reconcilertest.Whole(nil, reconcilertest.Model("churn", e))
}

// A promoted version that the check after promotion finds clearly worse
// is reverted: the previous version serves again (the plan says so even
// though Git already records the promotion), the revert is written back
// with the check's evidence, audited and evented, held across a restart,
// and released once Git names the previous version again.
func TestVerifyAfterPromotionRevertsThroughGit(t *testing.T) {
	a := newAnalysisUnit(t, analysis.ActionPromote)
	a.post = &canary.PostPromotion{Duration: 30 * time.Minute, Config: analysis.Config{Steps: []int{50}}}
	a.eval.verify = []analysis.Action{analysis.ActionRollback}
	a.setDesired(reconcilertest.Whole(nil, reconcilertest.Model("churn", canaryEnv(3, 4, 20))))
	a.step(t) // promote
	promotedAt := *a.now
	rec := a.record(t)
	if v := rec.Verification; v == nil || !v.PromotedAt.Equal(promotedAt) || v.Promoted != "churn-predictor-00002" ||
		v.Previous != "churn-predictor-00001" || v.By != "analysis" || v.Result != canary.VerifyPending {
		t.Fatalf("verification after the promotion: %+v", rec.Verification)
	}
	if len(a.wb.got) != 1 || !a.wb.got[0].Promote {
		t.Fatalf("write-backs after the promotion: %+v", a.wb.got)
	}

	// Git records the promotion; the window is still open.
	a.setDesired(gitPromoted(4))
	if after := a.step(t); after <= time.Minute || after > 29*time.Minute {
		t.Fatalf("requeue while the window is open = %s, want the rest of the 30m window", after)
	}
	if len(a.eval.verified) != 0 {
		t.Fatalf("checked before the window ended: %v", a.eval.verified)
	}
	if e := a.lastEnv(t); e.Version != 4 || e.Canary != nil {
		t.Fatalf("plan while checking: v%d canary %+v", e.Version, e.Canary)
	}
	if rec := a.record(t); rec == nil || rec.Outcome != OutcomePromoted {
		t.Fatalf("record released while the check runs: %+v", rec)
	}
	// Git names no canary any more: the row's message tells.
	if row := a.row(t, "churn", "prod"); row.Message != "canary promoted, check after promotion: checking" {
		t.Fatalf("status while checking: %q", row.Message)
	}
	a.c.opts.APIAuth = []apiauth.Provider{testTokens(t)}
	resp := do(t, a.c.Handler(), http.MethodGet, "/api/v1/analysis/churn/prod", nil, map[string]string{"Authorization": "Bearer " + testToken})
	var st canary.Status
	if resp.Code != http.StatusOK || json.Unmarshal(resp.Body.Bytes(), &st) != nil || st.Verification == nil ||
		!strings.Contains(st.Next, "compared with v3 at") || !st.NextLookAt.Equal(promotedAt.Add(30*time.Minute)) {
		t.Fatalf("analysis API while checking: %d %s", resp.Code, resp.Body)
	}

	// The window passes: clearly worse, reverted.
	*a.now = promotedAt.Add(30 * time.Minute)
	a.step(t)
	if want := "churn-predictor-00002 vs churn-predictor-00001 from " + promotedAt.Format(time.RFC3339); len(a.eval.verified) != 1 || a.eval.verified[0] != want {
		t.Fatalf("checks %v, want one: %s", a.eval.verified, want)
	}
	if e := a.lastEnv(t); e.Version != 3 || e.Canary != nil {
		t.Fatalf("plan after the revert: v%d canary %+v", e.Version, e.Canary)
	}
	if a.target.Live("churn", "prod") != 3 {
		t.Fatalf("live version %d after the revert, want 3", a.target.Live("churn", "prod"))
	}
	if len(a.wb.got) != 2 || !a.wb.got[1].Revert || a.wb.got[1].Promote || a.wb.got[1].Stable != 3 || a.wb.got[1].Candidate != 4 {
		t.Fatalf("write-backs after the revert: %+v", a.wb.got)
	}
	ev := strings.Join(a.wb.got[1].Evidence, "\n")
	for _, want := range []string{"rate ratio 5, 95% bounds 2.6..9.8", "promoted 50 bad of 1000, previous 10 bad of 1000",
		"windows: previous revision churn-predictor-00001", "weaker evidence than a concurrent canary"} {
		if !strings.Contains(ev, want) {
			t.Errorf("revert evidence lacks %q:\n%s", want, ev)
		}
	}
	if row := a.row(t, "churn", "prod"); row.Message != "canary reverted: holding v3 until Git agrees" {
		t.Fatalf("status after the revert: %q", row.Message)
	}

	// A restarted controller holds the revert from the stored record and
	// neither checks nor writes again.
	b := newAnalysisUnit(t)
	b.store, b.c.opts.Analysis.Store, b.wb = a.store, a.store, a.wb
	b.c.opts.Analysis.WriteBack = a.wb
	*b.now = a.now.Add(time.Minute)
	b.setDesired(gitPromoted(4))
	b.step(t)
	if e := b.lastEnv(t); e.Version != 3 {
		t.Fatalf("restarted controller planned v%d, want the revert's v3", e.Version)
	}
	if len(b.eval.verified) != 0 || len(a.wb.got) != 2 {
		t.Fatalf("restarted controller checked %v / wrote %d", b.eval.verified, len(a.wb.got))
	}

	// Git agrees: the record goes.
	a.setDesired(gitPromoted(3))
	a.step(t)
	if rec := a.record(t); rec != nil {
		t.Fatalf("record kept after Git agreed with the revert: %+v", rec)
	}
	if got, want := a.auditActions(t, "canary verify"), "canary verify applied"; got != want {
		t.Fatalf("verify audit %q, want %q", got, want)
	}
	// The fake clientset names no GenerateName object, so every create
	// after the first fails: read what was asked, not what was stored.
	var reasons []string
	for _, act := range a.events.Actions() {
		if c, ok := act.(k8stesting.CreateAction); ok {
			if e, ok := c.GetObject().(*corev1.Event); ok {
				reasons = append(reasons, e.Reason)
			}
		}
	}
	if !slices.Contains(reasons, "PromotionReverted") {
		t.Fatalf("events %v, want a PromotionReverted", reasons)
	}
}

// A promoted version that is not worse is kept: a look without data
// holds (never reverts) and is asked again an interval later, the verdict
// is stored, the promotion's write-back stays the only one, and the check
// runs once even while Git has not recorded the promotion yet.
func TestVerifyAfterPromotionKeepsAHealthyVersion(t *testing.T) {
	a := newAnalysisUnit(t, analysis.ActionPromote)
	a.post = &canary.PostPromotion{Duration: 10 * time.Minute, Config: analysis.Config{Steps: []int{50}}}
	a.eval.verify, a.eval.verifyErrs = []analysis.Action{analysis.ActionPromote}, 1
	a.setDesired(reconcilertest.Whole(nil, reconcilertest.Model("churn", canaryEnv(3, 4, 20))))
	a.step(t)
	*a.now = a.now.Add(10 * time.Minute)
	a.step(t) // the window ended: no data
	rec := a.record(t)
	if v := rec.Verification; rec.Outcome != OutcomePromoted || v.Result != canary.VerifyPending || v.ProviderErrors != 1 {
		t.Fatalf("after a look without data: %s %+v", rec.Outcome, v)
	}
	if e := a.lastEnv(t); e.Version != 4 {
		t.Fatalf("a look without data changed the plan to v%d", e.Version)
	}
	a.step(t) // an interval later
	rec = a.record(t)
	if v := rec.Verification; rec.Outcome != OutcomePromoted || v.Result != canary.VerifyVerified || len(a.eval.verified) != 2 {
		t.Fatalf("after the check: %s %+v, checks %v", rec.Outcome, v, a.eval.verified)
	}
	if e := a.lastEnv(t); e.Version != 4 || e.Canary != nil || len(a.wb.got) != 1 {
		t.Fatalf("verified: plan v%d canary %+v, write-backs %+v", e.Version, e.Canary, a.wb.got)
	}
	if row := a.row(t, "churn", "prod"); row.Canary.Compact() != "v4 promoted (verified)" {
		t.Fatalf("status after the check: %+v", row.Canary)
	}
	// Git records the promotion: the verdict stays readable, no new check.
	a.setDesired(gitPromoted(4))
	a.step(t)
	st, err := a.c.Analysis(a.ctx, "churn", "prod")
	if err != nil || st.Verification == nil || st.Verification.Result != canary.VerifyVerified || !strings.Contains(st.Next, "not worse than v3") {
		t.Fatalf("analysis after Git agreed: %+v, %v", st, err)
	}
	if len(a.eval.verified) != 2 {
		t.Fatalf("checked again after the verdict: %v", a.eval.verified)
	}
	if got, want := a.auditActions(t, "canary verify"), "canary verify noop"; got != want {
		t.Fatalf("verify audit %q, want %q", got, want)
	}
	// Git moves on to another version: the record goes.
	a.setDesired(gitPromoted(5))
	a.step(t)
	if rec := a.record(t); rec != nil {
		t.Fatalf("record kept after Git moved on: %+v", rec)
	}
}

// A person who promotes in Git while the analysis runs (version set to
// the candidate, canary removed) gets the same check.
func TestVerifyAfterPromotionInGit(t *testing.T) {
	a := newAnalysisUnit(t, analysis.ActionHold)
	a.post = &canary.PostPromotion{Duration: 10 * time.Minute, Config: analysis.Config{Steps: []int{50}}}
	a.eval.verify = []analysis.Action{analysis.ActionRollback}
	a.setDesired(reconcilertest.Whole(nil, reconcilertest.Model("churn", canaryEnv(3, 4, 20))))
	a.step(t)
	a.setDesired(gitPromoted(4))
	a.step(t)
	promotedAt := *a.now
	rec := a.record(t)
	if v := rec.Verification; rec.Outcome != OutcomePromoted || v.By != "git" || !v.PromotedAt.Equal(promotedAt) {
		t.Fatalf("after Git promoted: %s %+v", rec.Outcome, v)
	}
	if len(a.wb.got) != 0 {
		t.Fatalf("a promotion made in Git was written back: %+v", a.wb.got)
	}
	*a.now = promotedAt.Add(10 * time.Minute)
	a.step(t)
	if e := a.lastEnv(t); e.Version != 3 || len(a.wb.got) != 1 || !a.wb.got[0].Revert {
		t.Fatalf("after the check: plan v%d, write-backs %+v", e.Version, a.wb.got)
	}
}
