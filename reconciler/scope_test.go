package reconciler_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/reconciler/reconcilertest"
)

func pruning() *manifest.RepoConfig { return &manifest.RepoConfig{Prune: true} }

func build(t *testing.T, d *reconciler.DesiredState, targets ...reconciler.Target) *reconciler.Plan {
	t.Helper()
	p, err := reconciler.BuildPlan(context.Background(), d, targets)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func ids(as []reconciler.Action) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.ID()
	}
	return out
}

// A state that covers one model must not prune the others, although the
// configuration says prune: this is how one controller work item planned
// deletes of every other model's InferenceServices.
func TestSubsetNeverPrunesOtherModels(t *testing.T) {
	fake := reconcilertest.New("fake")
	for _, m := range []string{"churn", "fraud", "llama"} {
		fake.SetLive(m, "dev", 1)
	}
	whole := reconcilertest.Whole(pruning(),
		reconcilertest.Model("churn", reconcilertest.Env("dev", 2)),
		reconcilertest.Model("fraud", reconcilertest.Env("dev", 1)))

	sub := whole.Subset("churn")
	if sub.Whole() || !sub.Covers("churn") || sub.Covers("fraud") || sub.Covers("llama") || len(sub.Models) != 1 {
		t.Fatalf("Subset(churn): whole=%v models=%d scope=%s", sub.Whole(), len(sub.Models), sub.Scope)
	}
	p := build(t, sub, fake)
	for _, a := range p.Actions() {
		if a.Model != "churn" {
			t.Errorf("one-model plan has an action for %s: %s", a.Model, a.ID())
		}
	}
	if got := ids(p.Actions()); !slices.Equal(got, []string{"fake/set-version/churn/alias dev", "fake/record-environments/churn/record"}) {
		t.Errorf("one-model plan = %v", got)
	}

	// The whole repository prunes llama, which left Git, and only llama.
	p = build(t, whole, fake)
	var deletes []string
	for _, a := range p.Actions() {
		if a.Op == reconciler.OpDelete {
			deletes = append(deletes, a.Model+"/"+a.Environment)
		}
	}
	if !slices.Equal(deletes, []string{"llama/dev"}) {
		t.Errorf("whole-repository deletes = %v, want [llama/dev]", deletes)
	}

	// A scope may name a model the state does not list: it then says the
	// model runs nowhere, so exactly that model is pruned.
	gone := whole.Subset("llama")
	p = build(t, gone, fake)
	if got := ids(p.Actions()); !slices.Equal(got, []string{"fake/delete/llama/alias dev"}) {
		t.Errorf("Subset(llama) plan = %v", got)
	}

	// A hand-built state covers only what it lists.
	hand := &reconciler.DesiredState{Config: pruning(), Models: sub.Models}
	if hand.Whole() || !hand.Covers("churn") || hand.Covers("fraud") {
		t.Errorf("zero Scope: whole=%v covers churn=%v fraud=%v", hand.Whole(), hand.Covers("churn"), hand.Covers("fraud"))
	}
	for _, a := range build(t, hand, fake).Actions() {
		if a.Model != "churn" {
			t.Errorf("hand-built state pruned %s", a.ID())
		}
	}
}

// outOfScope plans a delete for a model its desired state does not cover,
// as a target with a pruning bug would.
type outOfScope struct{ *reconcilertest.Target }

func (o outOfScope) Plan(d *reconciler.DesiredState, obs reconciler.Observation) reconciler.TargetPlan {
	tp := o.Target.Plan(d, obs)
	tp.Actions = append(tp.Actions, reconciler.Action{Target: o.Name(), Kind: reconcilertest.KindDelete, Model: "fraud",
		Environment: "dev", Resource: "alias dev", Op: reconciler.OpDelete})
	return tp
}

func TestBuildPlanRefusesActionsOutsideScope(t *testing.T) {
	d := reconcilertest.Whole(pruning(), reconcilertest.Model("churn", reconcilertest.Env("dev", 1)))
	bad := outOfScope{reconcilertest.New("fake")}
	_, err := reconciler.BuildPlan(context.Background(), d.Subset("churn"), []reconciler.Target{bad})
	if err == nil || !strings.Contains(err.Error(), `for model "fraud", outside the desired state's scope (models churn)`) {
		t.Fatalf("err = %v", err)
	}
	// The whole repository may plan it.
	if _, err := reconciler.BuildPlan(context.Background(), d, []reconciler.Target{bad}); err != nil {
		t.Fatal(err)
	}
}

// A wait on prod at one target holds prod's actions and the model-level
// actions at every other target, and nothing of other models; the waiting
// target's own actions go ahead.
func TestWaitHoldsEnvironmentAndModelLevelActions(t *testing.T) {
	store, registry := reconcilertest.New("store"), reconcilertest.New("registry")
	for _, tg := range []*reconcilertest.Target{store, registry} {
		tg.SetLive("churn", "dev", 1)
		tg.SetLive("churn", "prod", 3)
		tg.SetLive("fraud", "prod", 1)
	}
	store.Wait("churn", "prod", "v2 is not readable yet: waiting for restore")
	d := reconcilertest.Whole(nil,
		reconcilertest.Model("churn", reconcilertest.Env("dev", 2), reconcilertest.Env("prod", 2)),
		reconcilertest.Model("fraud", reconcilertest.Env("prod", 2)))
	p := build(t, d, store, registry)

	wantApplied := []string{
		"store/set-version/churn/alias dev",      // another environment of the model
		"store/record-environments/churn/record", // the waiting target's own model-level action
		"registry/set-version/churn/alias dev",   // another environment, another target
		"store/set-version/fraud/alias prod",     // another model
		"store/record-environments/fraud/record",
		"registry/set-version/fraud/alias prod",
		"registry/record-environments/fraud/record",
	}
	if got := ids(p.Actions()); !slices.Equal(got, wantApplied) {
		t.Errorf("actions:\n got %v\nwant %v", got, wantApplied)
	}
	wantHeld := []string{"registry/set-version/churn/alias prod", "registry/record-environments/churn/record"}
	if got := ids(p.Held()); !slices.Equal(got, wantHeld) {
		t.Errorf("held:\n got %v\nwant %v", got, wantHeld)
	}
	if w := p.Waits(); len(w) != 1 || w[0].Model != "churn" || w[0].Environment != "prod" {
		t.Errorf("waits = %+v", w)
	}
	if s := p.Summary(); s.Held != 2 || s.Waits != 1 {
		t.Errorf("summary = %+v", s)
	}
	// Applying the plan writes nothing the wait holds.
	if _, err := reconciler.Apply(context.Background(), p, []reconciler.Target{store, registry}, reconciler.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if registry.Live("churn", "prod") != 3 || registry.Record("churn") != "" {
		t.Errorf("registry wrote through the wait: prod=v%d record=%q", registry.Live("churn", "prod"), registry.Record("churn"))
	}
	// When the wait ends the next plan carries what was held.
	store.Wait("churn", "prod", "")
	p = build(t, d, store, registry)
	if got := ids(p.Actions()); !slices.Equal(got, []string{"store/set-version/churn/alias prod",
		"registry/set-version/churn/alias prod", "registry/record-environments/churn/record"}) || len(p.Held()) != 0 {
		t.Errorf("after the wait: actions %v held %v", got, ids(p.Held()))
	}
}

// A clone without release tags cannot say what prod runs: the plan from it
// keeps prod's live state (its delete and the model-level record are held)
// and plans the environments it can see (issue 14).
func TestUnknownReleaseEnvironmentKeepsItsLiveState(t *testing.T) {
	registry := reconcilertest.New("registry")
	registry.SetLive("churn", "dev", 1)
	registry.SetLive("churn", "prod", 3)
	registry.SetLive("fraud", "prod", 1)
	d := reconcilertest.Whole(nil,
		reconcilertest.Model("churn", reconcilertest.Env("dev", 2)),
		reconcilertest.Model("fraud", reconcilertest.Env("prod", 2)))
	d.Warnings = []reconciler.ModelError{{Model: "churn", Environment: "prod", Message: "left out: no release tags", Unknown: true}}
	p := build(t, d, registry)
	if got, want := ids(p.Actions()), []string{"registry/set-version/churn/alias dev",
		"registry/set-version/fraud/alias prod", "registry/record-environments/fraud/record"}; !slices.Equal(got, want) {
		t.Errorf("actions:\n got %v\nwant %v", got, want)
	}
	if got, want := ids(p.Held()), []string{"registry/delete/churn/alias prod", "registry/record-environments/churn/record"}; !slices.Equal(got, want) {
		t.Errorf("held:\n got %v\nwant %v", got, want)
	}
	if _, err := reconciler.Apply(context.Background(), p, []reconciler.Target{registry}, reconciler.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if registry.Live("churn", "prod") != 3 {
		t.Errorf("prod of churn changed to v%d from a view without tags", registry.Live("churn", "prod"))
	}
	// A model that merely has no release yet (other tags exist) is not
	// unknown: Git says prod runs nothing, and the plan says so.
	d.Warnings[0].Unknown = false
	if got := ids(build(t, d, registry).Held()); len(got) != 0 {
		t.Errorf("held without an unknown environment: %v", got)
	}
}
