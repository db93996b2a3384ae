package reconciler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
)

// aliasTarget is a minimal target over an in-memory alias table, used to
// exercise the planner and executor; the real targets have their own tests
// against real servers.
type aliasTarget struct {
	name     string
	live     map[string]int // "model/alias" -> version
	failOn   string         // action resource whose Apply fails
	broken   map[string]bool
	applied  []string
	invalid  string // action resource ValidateAction refuses
	observeE error
}

func (t *aliasTarget) Name() string { return t.name }

func (t *aliasTarget) Observe(_ context.Context, _ *DesiredState) (map[string]int, error) {
	if t.observeE != nil {
		return nil, t.observeE
	}
	snapshot := map[string]int{}
	for k, v := range t.live {
		snapshot[k] = v
	}
	return snapshot, nil
}

func (t *aliasTarget) Plan(d *DesiredState, live map[string]int) TargetPlan {
	var tp TargetPlan
	for _, m := range d.Models {
		if t.broken[m.Name] {
			tp.Errors = append(tp.Errors, ModelError{Model: m.Name, Target: t.name, Message: "version 9 does not exist"})
			continue
		}
		for _, e := range m.Environments {
			key := m.Name + "/" + e.Alias
			if live[key] == e.Version {
				continue
			}
			op, from := OpUpdate, fmt.Sprint(live[key])
			if _, ok := live[key]; !ok {
				op, from = OpCreate, ""
			}
			tp.Actions = append(tp.Actions, Action{Target: t.name, Kind: "set-alias", Model: m.Name, Environment: e.Environment,
				Resource: "alias " + e.Alias, Op: op, From: from, To: fmt.Sprint(e.Version), Revision: e.Revision,
				Payload: json.RawMessage(fmt.Sprintf(`{"key":%q,"version":%d}`, key, e.Version))})
		}
	}
	return tp
}

func (t *aliasTarget) Apply(_ context.Context, a Action) error {
	if a.Resource == t.failOn {
		return errors.New("503 from registry")
	}
	var p struct {
		Key     string
		Version int
	}
	if err := json.Unmarshal(a.Payload, &p); err != nil {
		return err
	}
	t.live[p.Key] = p.Version
	t.applied = append(t.applied, a.Model+" "+a.Resource)
	return nil
}

func (t *aliasTarget) ValidateAction(a Action) error {
	if a.Model+" "+a.Resource == t.invalid {
		return errors.New("refused")
	}
	return nil
}

// typedTargets adapts the fakes as the real targets are adapted.
func typedTargets(ts ...TypedTarget[map[string]int]) []Target {
	out := make([]Target, len(ts))
	for i, t := range ts {
		out[i] = Typed(t)
	}
	return out
}

func twoModels(t *testing.T) *DesiredState {
	t.Helper()
	s := &memSnapshot{commits: map[string]fstest.MapFS{"c1": tree(map[string]string{
		"churn": modelYAML("churn", "    dev: {version: 2}\n    staging: {version: 1}"),
		"fraud": modelYAML("fraud", "    dev: {version: 5}"),
	})}, branches: map[string]string{"main": "c1"}}
	d, err := ComputeDesired(s, "main")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestPlanThenApplyConverges(t *testing.T) {
	d := twoModels(t)
	tgt := &aliasTarget{name: "registry", live: map[string]int{"churn/dev": 1, "churn/stage": 1}}
	p, err := BuildPlan(context.Background(), d, typedTargets(tgt))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WritePlanText(&buf, p); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"~ churn  dev  registry  set-alias  alias dev  1 -> 2", "+ fraud  dev  registry  set-alias  alias dev  5", "Plan: 1 to create, 1 to change, 0 to delete."} {
		if !strings.Contains(buf.String(), want) {
			t.Fatalf("plan text lacks %q:\n%s", want, buf.String())
		}
	}
	res, err := Apply(context.Background(), p, typedTargets(tgt), ApplyOptions{})
	if err != nil || !res.OK() || len(res.Applied) != 2 {
		t.Fatalf("apply: %v %+v", err, res)
	}
	again, err := BuildPlan(context.Background(), d, typedTargets(tgt))
	if err != nil {
		t.Fatal(err)
	}
	if again.HasChanges() {
		t.Fatalf("second plan after apply has changes: %+v", again.Actions())
	}
}

func TestPlanIsImmutable(t *testing.T) {
	d := twoModels(t)
	p, err := BuildPlan(context.Background(), d, typedTargets(&aliasTarget{name: "registry", live: map[string]int{}}))
	if err != nil {
		t.Fatal(err)
	}
	acts := p.Actions()
	acts[0].To = "999"
	if p.Actions()[0].To == "999" {
		t.Fatal("changing the returned slice changed the plan")
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"summary":{"create":3,"update":0,"delete":0,"drift":0,"errors":0,"waits":0,"held":0}`) || !strings.Contains(string(b), `"errors":[]`) {
		t.Fatalf("plan JSON = %s", b)
	}
}

// A model one target cannot plan is held back at every target; others go on.
func TestModelErrorHoldsBackThatModelEverywhere(t *testing.T) {
	d := twoModels(t)
	a := &aliasTarget{name: "registry", live: map[string]int{}, broken: map[string]bool{"churn": true}}
	b := &aliasTarget{name: "serving", live: map[string]int{}}
	p, err := BuildPlan(context.Background(), d, typedTargets(a, b))
	if err != nil {
		t.Fatal(err)
	}
	for _, act := range p.Actions() {
		if act.Model == "churn" {
			t.Fatalf("churn planned although the registry cannot plan it: %+v", act)
		}
	}
	if len(p.Actions()) != 2 || p.Actions()[0].Target != "registry" || p.Actions()[1].Target != "serving" {
		t.Fatalf("fraud should be planned at both targets in target order: %+v", p.Actions())
	}
	if errs := p.Errors(); len(errs) != 1 || errs[0].Error() != "registry/churn: version 9 does not exist" {
		t.Fatalf("errors = %v", errs)
	}
}

func TestApplyFailureSkipsRestOfModelOnly(t *testing.T) {
	d := twoModels(t)
	tgt := &aliasTarget{name: "registry", live: map[string]int{}, failOn: "alias stage"}
	tgt2 := &aliasTarget{name: "serving", live: map[string]int{}}
	p, err := BuildPlan(context.Background(), d, typedTargets(tgt, tgt2))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Apply(context.Background(), p, typedTargets(tgt, tgt2), ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// churn: registry dev applied, registry stage fails, both serving
	// actions skipped. fraud has no stage alias and goes through.
	if len(res.Failed) != 1 || len(res.Skipped) != 2 || len(res.Applied) != 3 {
		t.Fatalf("applied %d failed %d skipped %d: %+v", len(res.Applied), len(res.Failed), len(res.Skipped), res)
	}
	for _, s := range res.Skipped {
		if s.Model != "churn" || s.Target != "serving" {
			t.Fatalf("skipped = %+v", res.Skipped)
		}
	}
	if got := strings.Join(tgt.applied, ","); got != "churn alias dev,fraud alias dev" {
		t.Fatalf("registry applied %s", got)
	}
}

func TestInvalidPlanWritesNothing(t *testing.T) {
	d := twoModels(t)
	tgt := &aliasTarget{name: "registry", live: map[string]int{}, invalid: "fraud alias dev"}
	p, err := BuildPlan(context.Background(), d, typedTargets(tgt))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(context.Background(), p, typedTargets(tgt), ApplyOptions{}); err == nil || !strings.Contains(err.Error(), "nothing applied") {
		t.Fatalf("err = %v", err)
	}
	if len(tgt.applied) != 0 {
		t.Fatalf("an invalid plan wrote %v", tgt.applied)
	}
	if _, err := Apply(context.Background(), p, nil, ApplyOptions{}); err == nil || !strings.Contains(err.Error(), `target "registry" is not configured`) {
		t.Fatalf("err = %v", err)
	}
}

func TestObserveFailureIsReported(t *testing.T) {
	d := twoModels(t)
	p, err := BuildPlan(context.Background(), d, typedTargets(&aliasTarget{name: "registry", observeE: errors.New("connection refused")}))
	if err != nil {
		t.Fatal(err)
	}
	if errs := p.Errors(); len(errs) != 1 || errs[0].Error() != "registry: observing live state: connection refused" {
		t.Fatalf("errors = %v", errs)
	}
}

// TestUnobservedTargetIsNeverNoChanges: a target whose live state could not
// be read makes the plan incomplete in text and JSON; the plan says which
// target and never "No changes. Live state matches Git."
func TestUnobservedTargetIsNeverNoChanges(t *testing.T) {
	d := twoModels(t)
	live := map[string]int{"churn/dev": 2, "churn/stage": 1, "fraud/dev": 5}
	p, err := BuildPlan(context.Background(), d, typedTargets(
		&aliasTarget{name: "registry", observeE: errors.New("connection refused")},
		&aliasTarget{name: "serving", live: live},
	))
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := WritePlanText(&text, p); err != nil {
		t.Fatal(err)
	}
	out := text.String()
	for _, want := range []string{"Target registry could not be observed", "No changes at serving.", "INCOMPLETE: registry not observed"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan text lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Live state matches Git") {
		t.Errorf("plan with an unobserved target says it is in sync:\n%s", out)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		Unobserved []string `json:"unobservedTargets"`
	}
	if err := json.Unmarshal(b, &j); err != nil || fmt.Sprint(j.Unobserved) != "[registry]" {
		t.Fatalf("JSON unobservedTargets = %v (%v): %s", j.Unobserved, err, b)
	}
}

func TestConcurrentApplyKeepsPerModelOrderAndResultOrder(t *testing.T) {
	d := twoModels(t)
	tgt := &lockedTarget{aliasTarget: aliasTarget{name: "registry", live: map[string]int{}, failOn: "alias stage"}}
	p, err := BuildPlan(context.Background(), d, typedTargets(tgt))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Apply(context.Background(), p, typedTargets(tgt), ApplyOptions{Concurrency: 8})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range res.Applied {
		got = append(got, a.Model+" "+a.Resource)
	}
	if strings.Join(got, ",") != "churn alias dev,fraud alias dev" || len(res.Failed) != 1 || res.Failed[0].Action.Model != "churn" {
		t.Fatalf("applied %v failed %+v", got, res.Failed)
	}
}

// lockedTarget makes aliasTarget safe for concurrent Apply.
type lockedTarget struct {
	mu sync.Mutex
	aliasTarget
}

func (l *lockedTarget) Apply(ctx context.Context, a Action) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.aliasTarget.Apply(ctx, a)
}

// waitingTarget reports that the model's dev environment must wait.
type waitingTarget struct{ aliasTarget }

func (w *waitingTarget) Plan(d *DesiredState, obs map[string]int) TargetPlan {
	return TargetPlan{Waits: []Wait{{Model: "churn", Environment: "dev", Target: w.name, Reason: "waiting for restore (Standard, started at 2026-11-26T09:00:00Z)"}}}
}

func TestWaitHoldsEnvironmentAtOtherTargets(t *testing.T) {
	d := twoModels(t)
	reg := &aliasTarget{name: "registry", live: map[string]int{}}
	store := &waitingTarget{aliasTarget{name: "s3", live: map[string]int{}}}
	p, err := BuildPlan(context.Background(), d, typedTargets(reg, store))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range p.Actions() {
		got = append(got, a.Model+" "+a.Environment)
	}
	if strings.Join(got, ",") != "churn staging,fraud dev" {
		t.Fatalf("actions %v: churn dev must wait", got)
	}
	var buf bytes.Buffer
	WritePlanText(&buf, p)
	if !strings.Contains(buf.String(), "~ s3/churn/dev: waiting for restore (Standard, started at 2026-11-26T09:00:00Z)") {
		t.Fatalf("plan text:\n%s", buf.String())
	}
}
