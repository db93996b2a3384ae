package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/analysis"
	"github.com/modelsync/modelsync/internal/apiauth"
	"github.com/modelsync/modelsync/internal/canary"
	"github.com/modelsync/modelsync/internal/rollback"
	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/reconciler/reconcilertest"
)

// memStore is a CanaryStore in memory with the ConfigMap store's
// optimistic concurrency (a version per record). Records are kept as the
// JSON the ConfigMap holds, so only what is stored survives.
type memStore struct {
	mu   sync.Mutex
	recs map[Key][]byte
	vers map[Key]int
}

func newMemStore() *memStore { return &memStore{recs: map[Key][]byte{}, vers: map[Key]int{}} }

func (s *memStore) Get(_ context.Context, k Key) (*CanaryRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.recs[k]
	if !ok {
		return nil, nil
	}
	var r CanaryRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	r.resourceVersion = itoa(s.vers[k])
	return &r, nil
}

func (s *memStore) Put(_ context.Context, rec *CanaryRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := Key{Model: rec.Model, Environment: rec.Environment}
	_, exists := s.recs[k]
	if (rec.resourceVersion == "") == exists || (exists && rec.resourceVersion != itoa(s.vers[k])) {
		return ErrConflict
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	s.vers[k]++
	rec.resourceVersion = itoa(s.vers[k])
	s.recs[k] = b
	return nil
}

func (s *memStore) Delete(_ context.Context, k Key) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.recs, k)
	return nil
}

// scripted is a CanaryEvaluator that returns the next scripted action at
// each look, with the look counted in the state, as the real one does.
type scripted struct {
	steps   []int
	actions []analysis.Action
	looks   int
	advance []time.Time
	// verify are the checks' decisions after promotion, after
	// verifyErrs looks without data; verified records each call's
	// promotedAt and revisions.
	verify     []analysis.Action
	verifyErrs int
	verified   []string
}

func (e *scripted) Verify(_ context.Context, s canary.Spec, promoted, previous string, promotedAt, now time.Time) (analysis.Decision, error) {
	e.verified = append(e.verified, fmt.Sprintf("%s vs %s from %s", promoted, previous, promotedAt.Format(time.RFC3339)))
	if s.PostPromotion == nil {
		return analysis.Decision{}, errors.New("no postPromotion in the spec")
	}
	if e.verifyErrs > 0 {
		e.verifyErrs--
		return analysis.Decision{Action: analysis.ActionHold, Reason: "provider error: connection refused", At: now}, errors.New("connection refused")
	}
	a := e.verify[min(len(e.verified)-1, len(e.verify)-1)]
	return analysis.Decision{Action: a, Reason: "scripted " + string(a), At: now,
		Metrics: []analysis.MetricResult{{Name: "errors", Canary: analysis.Counts{Bad: 50, Total: 1000}, Stable: analysis.Counts{Bad: 10, Total: 1000},
			Margin: 1.2, Alpha: 0.05, RatioResult: analysis.RatioResult{Estimate: 5, Lower: 2.6, Upper: 9.8}}}}, nil
}

func (e *scripted) Look(_ context.Context, _ canary.Spec, revs canary.Revisions, st analysis.State, now time.Time) (analysis.State, analysis.Decision, error) {
	if revs.Canary == "" {
		return st, analysis.Decision{}, errors.New("no revisions")
	}
	if st.Started.IsZero() {
		st = analysis.State{Started: now, Windows: []analysis.Window{{Weight: e.steps[0], Started: now}}}
	}
	st.Looks++
	a := e.actions[min(e.looks, len(e.actions)-1)]
	e.looks++
	d := analysis.Decision{Action: a, Reason: "scripted " + string(a), At: now, Step: st.Step, Weight: st.Windows[st.Step].Weight,
		Metrics: []analysis.MetricResult{{Name: "errors", Canary: analysis.Counts{Bad: 30, Total: 1000}, Stable: analysis.Counts{Bad: 10, Total: 1000},
			Margin: 1.2, Alpha: 0.05, RatioResult: analysis.RatioResult{Estimate: 3, Lower: 1.9, Upper: 5.2}}}}
	if a == analysis.ActionAdvance {
		d.NextWeight = e.steps[st.Step+1]
	}
	st.History = append(st.History, analysis.Record{At: now, Action: a, Weight: d.Weight})
	return st, d, nil
}

func (e *scripted) Advance(_ canary.Spec, st analysis.State, now time.Time) (analysis.State, error) {
	e.advance = append(e.advance, now)
	st.Step++
	st.Windows = append(st.Windows, analysis.Window{Weight: e.steps[st.Step], Started: now})
	return st, nil
}

type recordedWriteBacks struct {
	mu  sync.Mutex
	got []rollback.CanaryOutcome
	err error
}

func (w *recordedWriteBacks) WriteBack(_ context.Context, o *rollback.CanaryOutcome) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return "", w.err
	}
	w.got = append(w.got, *o)
	return "https://git.example/pull/7", nil
}

func canaryEnv(version, canaryVersion, weight int) reconciler.DesiredEnv {
	e := reconcilertest.Env("prod", version)
	e.Namespace = "models-prod"
	e.Canary = &reconciler.DesiredCanary{Version: canaryVersion, Alias: "prod-canary", Weight: weight, Steps: []int{20, 50, 80}}
	return e
}

type analysisUnit struct {
	*unit
	// post is the postPromotion SpecFor returns (none when nil).
	post   *canary.PostPromotion
	store  *memStore
	eval   *scripted
	wb     *recordedWriteBacks
	now    *time.Time
	target *reconcilertest.Target
	audit  *syncBuffer
}

func newAnalysisUnit(t *testing.T, actions ...analysis.Action) *analysisUnit {
	t.Helper()
	return newAnalysisUnitWith(t, nil, actions...)
}

// newAnalysisUnitWith is newAnalysisUnit whose KServe stand-in is
// wrap(fake, clock) when wrap is set.
func newAnalysisUnitWith(t *testing.T, wrap func(*reconcilertest.Target, *time.Time) reconciler.Target, actions ...analysis.Action) *analysisUnit {
	t.Helper()
	store, wb := newMemStore(), &recordedWriteBacks{}
	eval := &scripted{steps: []int{20, 50, 80}, actions: actions}
	kserve := reconcilertest.New("kserve")
	kserve.SetLive("churn", "prod", 3)
	audit := &syncBuffer{}
	now := testNow
	au := &analysisUnit{}
	opts := Options{Audit: audit, Analysis: &AnalysisOptions{
		SpecFor: func(model string, env reconciler.DesiredEnv) (canary.Spec, bool, error) {
			return canary.Spec{Model: model, Environment: env.Environment, Namespace: env.Namespace, Name: model, Interval: time.Minute,
				OnInconclusive: canary.InconclusiveHold, StableVersion: env.Version, CandidateVersion: env.Canary.Version,
				Config: analysis.Config{Steps: []int{20, 50, 80}}, PostPromotion: au.post}, true, nil
		},
		Revisions: func(context.Context, string, string) (canary.Revisions, error) {
			return canary.Revisions{Canary: "churn-predictor-00002", Stable: "churn-predictor-00001"}, nil
		},
		Evaluator: eval, Store: store, WriteBack: wb,
	}}
	var u *unit
	if wrap != nil {
		opts.Targets = []reconciler.Target{wrap(kserve, &now)}
		u = newUnit(t, opts)
	} else {
		u = newUnit(t, opts, kserve)
	}
	u.c.opts.Now = func() time.Time { return now }
	*au = analysisUnit{unit: u, store: store, eval: eval, wb: wb, now: &now, target: kserve, audit: audit}
	return au
}

// lastCanary is the canary of the last desired state the target planned.
func (a *analysisUnit) lastEnv(t *testing.T) reconciler.DesiredEnv {
	t.Helper()
	obs := a.target.Observations()
	m, ok := obs[len(obs)-1].Model("churn")
	if !ok {
		t.Fatal("churn not planned")
	}
	e, _ := m.Env("prod")
	return *e
}

func (a *analysisUnit) step(t *testing.T) time.Duration {
	t.Helper()
	*a.now = a.now.Add(time.Minute)
	after, err := a.reconcile(t, "churn", "prod")
	if err != nil {
		t.Fatal(err)
	}
	return after
}

// The decision table end to end through reconcile: hold keeps Git's
// starting weight, advance applies the next step before the step starts,
// rollback removes the canary at once, holds there while Git still names
// it, writes the outcome back once with the evidence, and is released when
// Git drops the canary. Each change is audited and evented.
func TestAnalysisHoldAdvanceRollback(t *testing.T) {
	a := newAnalysisUnit(t, analysis.ActionHold, analysis.ActionAdvance, analysis.ActionRollback)
	git := canaryEnv(3, 4, 20)
	a.setDesired(reconcilertest.Whole(nil, reconcilertest.Model("churn", git)))

	if after := a.step(t); after != time.Minute {
		t.Fatalf("requeue after a hold = %s, want the 1m interval", after)
	}
	if e := a.lastEnv(t); e.Canary == nil || e.Canary.Weight != 20 {
		t.Fatalf("after a hold the plan had %+v", e.Canary)
	}
	rec, _ := a.store.Get(a.ctx, Key{Model: "churn", Environment: "prod"})
	if rec == nil || rec.State.Looks != 1 || rec.Outcome != OutcomeRunning {
		t.Fatalf("record after the first look: %+v", rec)
	}

	// Not due yet: no look, requeued for the rest of the interval.
	*a.now = a.now.Add(20 * time.Second)
	if after, err := a.reconcile(t, "churn", "prod"); err != nil || after != 40*time.Second {
		t.Fatalf("early reconcile: %s, %v", after, err)
	}
	*a.now = a.now.Add(-20 * time.Second)

	a.step(t) // advance
	if e := a.lastEnv(t); e.Canary == nil || e.Canary.Weight != 50 {
		t.Fatalf("after advance the plan had %+v", e.Canary)
	}
	if git.Canary.Weight != 20 {
		t.Fatalf("Git's desired state was modified: %+v", git.Canary)
	}
	rec, _ = a.store.Get(a.ctx, Key{Model: "churn", Environment: "prod"})
	if rec.PendingAdvance || rec.State.Step != 1 || len(a.eval.advance) != 1 {
		t.Fatalf("advance not completed after the apply: %+v, advances %v", rec, a.eval.advance)
	}
	if row := a.row(t, "churn", "prod"); row.Canary == nil || row.Canary.Compact() != "v4 50% (2/3) advance" {
		t.Fatalf("status canary column: %+v", row.Canary)
	}

	a.step(t) // rollback
	if e := a.lastEnv(t); e.Canary != nil || e.Version != 3 {
		t.Fatalf("after rollback the plan had v%d canary %+v", e.Version, e.Canary)
	}
	if len(a.wb.got) != 1 || a.wb.got[0].Promote || a.wb.got[0].Stable != 3 || a.wb.got[0].Candidate != 4 {
		t.Fatalf("write-backs: %+v", a.wb.got)
	}
	if ev := strings.Join(a.wb.got[0].Evidence, "\n"); !strings.Contains(ev, "rate ratio 3, 95% bounds 1.9..5.2") || !strings.Contains(ev, "canary 30 bad of 1000") {
		t.Fatalf("write-back evidence:\n%s", ev)
	}
	row := a.row(t, "churn", "prod")
	if row.Canary.Compact() != "v4 rolled-back" || !strings.Contains(row.Message, "holding v3 until Git agrees") {
		t.Fatalf("row after rollback: %+v / %q", row.Canary, row.Message)
	}

	// The dashboard's reading: the last status and every look, in order.
	if st, ok := a.c.CanaryStatus("churn", "prod"); !ok || st.CandidateVersion != 4 || st.Decision == nil || st.Decision.Action != analysis.ActionRollback {
		t.Fatalf("CanaryStatus after the rollback: %+v, %v", st, ok)
	}
	var seen []string
	for _, d := range a.c.CanaryLooks("churn", "prod") {
		seen = append(seen, string(d.Action))
	}
	if got := strings.Join(seen, ","); got != "hold,advance,rollback" {
		t.Fatalf("CanaryLooks = %s, want hold,advance,rollback", got)
	}

	// Git still names the canary: the rollback holds, no new look, no
	// second write-back.
	looks := a.eval.looks
	a.step(t)
	if e := a.lastEnv(t); e.Canary != nil || a.eval.looks != looks || len(a.wb.got) != 1 {
		t.Fatalf("held rollback: canary %+v, looks %d→%d, write-backs %d", e.Canary, looks, a.eval.looks, len(a.wb.got))
	}

	// The write-back merged: Git drops the canary, the record goes.
	a.setDesired(reconcilertest.Whole(nil, reconcilertest.Model("churn", func() reconciler.DesiredEnv {
		e := canaryEnv(3, 4, 20)
		e.Canary = nil
		return e
	}())))
	a.step(t)
	if rec, _ := a.store.Get(a.ctx, Key{Model: "churn", Environment: "prod"}); rec != nil {
		t.Fatalf("record kept after Git agreed: %+v", rec)
	}
	if st, ok := a.c.CanaryStatus("churn", "prod"); ok {
		t.Fatalf("CanaryStatus kept after Git dropped the canary: %+v", st)
	}

	var actions []string
	for _, e := range a.audit.entries(t) {
		if strings.HasPrefix(e.Action, "canary") || e.Action == "release-canary" {
			actions = append(actions, e.Action+" "+e.Result)
			if e.Actor != ActorController {
				t.Errorf("audit actor %q", e.Actor)
			}
		}
	}
	want := "canary hold noop,canary advance applied,canary rollback applied,canary write-back applied,release-canary applied"
	if got := strings.Join(actions, ","); got != want {
		t.Fatalf("audit:\n%s\nwant\n%s", got, want)
	}
	if n := len(a.eventCreates()); n < 3 {
		t.Fatalf("%d events, want one per advance, rollback and write-back", n)
	}
}

// A promotion makes the candidate the version with no canary (KServe
// promotes, the MLflow alias moves), and the write-back sets the version.
func TestAnalysisPromote(t *testing.T) {
	a := newAnalysisUnit(t, analysis.ActionPromote)
	a.setDesired(reconcilertest.Whole(nil, reconcilertest.Model("churn", canaryEnv(3, 4, 20))))
	a.step(t)
	if e := a.lastEnv(t); e.Version != 4 || e.Canary != nil {
		t.Fatalf("after promote the plan had v%d canary %+v", e.Version, e.Canary)
	}
	if a.target.Live("churn", "prod") != 4 {
		t.Fatalf("live version %d, want 4", a.target.Live("churn", "prod"))
	}
	if len(a.wb.got) != 1 || !a.wb.got[0].Promote || a.wb.got[0].Candidate != 4 {
		t.Fatalf("write-backs: %+v", a.wb.got)
	}
	// Git agrees once the version is 4 and the canary gone.
	a.setDesired(reconcilertest.Whole(nil, reconcilertest.Model("churn", reconcilertest.Env("prod", 4))))
	a.step(t)
	if rec, _ := a.store.Get(a.ctx, Key{Model: "churn", Environment: "prod"}); rec != nil {
		t.Fatalf("record kept after Git agreed: %+v", rec)
	}
}

// A failed write-back keeps the outcome live and is retried at the next
// interval, not at every reconcile.
func TestAnalysisWriteBackRetries(t *testing.T) {
	a := newAnalysisUnit(t, analysis.ActionRollback)
	a.wb.err = errors.New("push refused")
	a.setDesired(reconcilertest.Whole(nil, reconcilertest.Model("churn", canaryEnv(3, 4, 20))))
	a.step(t)
	if e := a.lastEnv(t); e.Canary != nil {
		t.Fatalf("rollback not applied while the write-back fails: %+v", e.Canary)
	}
	rec, _ := a.store.Get(a.ctx, Key{Model: "churn", Environment: "prod"})
	if rec.WriteBackError == "" {
		t.Fatalf("write-back error not recorded: %+v", rec)
	}
	a.wb.err = nil
	a.step(t)
	if len(a.wb.got) != 1 {
		t.Fatalf("write-back not retried: %+v", a.wb.got)
	}
}

// A restarted controller (a new Controller on the same store) continues
// the same test: the evaluator gets the stored state, not a new one.
func TestAnalysisContinuesAfterRestart(t *testing.T) {
	a := newAnalysisUnit(t, analysis.ActionHold)
	a.setDesired(reconcilertest.Whole(nil, reconcilertest.Model("churn", canaryEnv(3, 4, 20))))
	a.step(t)
	a.step(t)
	b := newAnalysisUnit(t, analysis.ActionHold)
	b.store = a.store
	b.c.opts.Analysis.Store = a.store
	*b.now = *a.now
	b.setDesired(reconcilertest.Whole(nil, reconcilertest.Model("churn", canaryEnv(3, 4, 20))))
	b.step(t)
	rec, _ := a.store.Get(a.ctx, Key{Model: "churn", Environment: "prod"})
	if rec.State.Looks != 3 || !rec.State.Started.Equal(testNow.Add(time.Minute)) {
		t.Fatalf("after a restart: %d looks since %s, want 3 since the first look", rec.State.Looks, rec.State.Started)
	}
}

func TestNextOutcome(t *testing.T) {
	for _, tc := range []struct {
		action  analysis.Action
		on      canary.OnInconclusive
		changes bool
		outcome Outcome
		pending bool
	}{
		{analysis.ActionHold, canary.InconclusiveHold, false, OutcomeRunning, false},
		{analysis.ActionAdvance, canary.InconclusiveHold, true, OutcomeRunning, true},
		{analysis.ActionPromote, canary.InconclusiveHold, true, OutcomePromoted, false},
		{analysis.ActionRollback, canary.InconclusiveHold, true, OutcomeRolledBack, false},
		{analysis.ActionInconclusive, canary.InconclusiveHold, false, OutcomeRunning, false},
		{analysis.ActionInconclusive, canary.InconclusiveRollback, true, OutcomeRolledBack, false},
	} {
		rec := &CanaryRecord{Outcome: OutcomeRunning}
		changes := nextOutcome(rec, analysis.Decision{Action: tc.action}, tc.on)
		if changes != tc.changes || rec.Outcome != tc.outcome || rec.PendingAdvance != tc.pending {
			t.Errorf("%s with onInconclusive %s: changes %v outcome %s pending %v", tc.action, tc.on, changes, rec.Outcome, rec.PendingAdvance)
		}
	}
}

// GET /api/v1/analysis/{model}/{env} is authenticated like every API
// route, answers the stored evidence and what comes next, and 404s for an
// environment without a canary.
func TestAnalysisAPI(t *testing.T) {
	a := newAnalysisUnit(t, analysis.ActionHold)
	a.c.opts.APIAuth = []apiauth.Provider{testTokens(t)}
	a.setDesired(reconcilertest.Whole(nil, reconcilertest.Model("churn", canaryEnv(3, 4, 20), reconcilertest.Env("dev", 4))))
	a.step(t)
	h := a.c.Handler()
	if rec := do(t, h, http.MethodGet, "/api/v1/analysis/churn/prod", nil, nil); rec.Code != http.StatusUnauthorized {
		t.Fatalf("without a token: %d", rec.Code)
	}
	auth := map[string]string{"Authorization": "Bearer " + testToken}
	rec := do(t, h, http.MethodGet, "/api/v1/analysis/churn/prod", nil, auth)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET: %d %s", rec.Code, rec.Body)
	}
	var st canary.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.State.Looks != 1 || st.Weight != 20 || st.Decision == nil || st.Decision.Action != analysis.ActionHold ||
		!strings.Contains(st.Next, "advance to 50%") || st.NextLookAt.IsZero() {
		t.Fatalf("status: %+v", st)
	}
	for path, code := range map[string]int{"/api/v1/analysis/churn/dev": http.StatusNotFound, "/api/v1/analysis/nope/prod": http.StatusNotFound} {
		if rec := do(t, h, http.MethodGet, path, nil, auth); rec.Code != code {
			t.Errorf("GET %s: %d %s, want %d", path, rec.Code, rec.Body, code)
		}
	}
}

// slowWeights stands for KServe in the step-start test: it plans each
// canary weight change as an action of its own, and applying it takes
// took on the test's clock, as a rollout does.
type slowWeights struct {
	reconciler.Target
	now     *time.Time
	took    time.Duration
	mu      sync.Mutex
	weights map[string]int
}

func (s *slowWeights) Plan(d *reconciler.DesiredState, obs reconciler.Observation) reconciler.TargetPlan {
	tp := s.Target.Plan(d, obs)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range d.Models {
		for _, e := range m.Environments {
			if e.Canary == nil || s.weights[m.Name+"/"+e.Environment] == e.Canary.Weight {
				continue
			}
			tp.Actions = append(tp.Actions, reconciler.Action{Target: s.Name(), Kind: "canary-weight", Model: m.Name, Environment: e.Environment,
				Resource: "canary " + e.Environment, Op: reconciler.OpUpdate, To: itoa(e.Canary.Weight) + "%", Revision: e.Revision,
				Payload: json.RawMessage(`{"weight":` + itoa(e.Canary.Weight) + `}`)})
		}
	}
	return tp
}

func (s *slowWeights) Apply(ctx context.Context, a reconciler.Action) error {
	if a.Kind != "canary-weight" {
		return s.Target.Apply(ctx, a)
	}
	var p struct{ Weight int }
	if err := json.Unmarshal(a.Payload, &p); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.weights[a.Model+"/"+a.Environment] = p.Weight
	*s.now = s.now.Add(s.took)
	return nil
}

// An advanced step starts when its weight has been applied, not when the
// reconcile that applied it began: the requests served at the old weight
// while the apply ran are not the new step's.
func TestAdvancedStepStartsAfterTheApply(t *testing.T) {
	var sw *slowWeights
	a := newAnalysisUnitWith(t, func(k *reconcilertest.Target, now *time.Time) reconciler.Target {
		sw = &slowWeights{Target: k, now: now, took: 40 * time.Second, weights: map[string]int{}}
		return sw
	}, analysis.ActionHold, analysis.ActionAdvance, analysis.ActionHold)
	a.setDesired(reconcilertest.Whole(nil, reconcilertest.Model("churn", canaryEnv(3, 4, 20))))
	a.step(t) // hold at 20% (the first apply sets 20%)
	*a.now = a.now.Add(time.Minute)
	lookAt := *a.now
	if _, err := a.reconcile(t, "churn", "prod"); err != nil {
		t.Fatal(err)
	}
	if sw.weights["churn/prod"] != 50 {
		t.Fatalf("live weight %d after the advance, want 50", sw.weights["churn/prod"])
	}
	if len(a.eval.advance) != 1 {
		t.Fatalf("%d advances, want 1", len(a.eval.advance))
	}
	if want := lookAt.Add(sw.took); !a.eval.advance[0].Equal(want) {
		t.Fatalf("step 2 started at %s, want %s (after the 40s apply), not the look at %s", a.eval.advance[0], want, lookAt)
	}
	rec, _ := a.store.Get(a.ctx, Key{Model: "churn", Environment: "prod"})
	if got := rec.State.Windows[1].Started; !got.Equal(lookAt.Add(sw.took)) {
		t.Fatalf("stored step start %s, want %s", got, lookAt.Add(sw.took))
	}
}
