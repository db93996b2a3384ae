package reconciler

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// countObs is a typed observation; a pointer so that nil is possible.
type countObs struct{ n int }

// countTarget records what its Plan was given.
type countTarget struct {
	name     string
	observe  *countObs
	planned  []*countObs
	validate error
}

// Compile-time: the typed target's Plan takes its own type, no assertion.
var _ TypedTarget[*countObs] = (*countTarget)(nil)

func (c *countTarget) Name() string { return c.name }
func (c *countTarget) Observe(context.Context, *DesiredState) (*countObs, error) {
	return c.observe, nil
}
func (c *countTarget) Plan(_ *DesiredState, o *countObs) TargetPlan {
	c.planned = append(c.planned, o)
	return TargetPlan{}
}
func (c *countTarget) Apply(context.Context, Action) error { return nil }
func (c *countTarget) ValidateAction(Action) error         { return c.validate }

// waitCapable adds a capability on top of countTarget.
type waitCapable struct{ countTarget }

func (*waitCapable) WaitFor(Action) string                             { return "thing" }
func (*waitCapable) Wait(context.Context, Action, time.Duration) error { return nil }

func TestTypedPassesOwnObservationToPlan(t *testing.T) {
	d := &DesiredState{Revision: "main@sha1:1"}
	inner := &countTarget{name: "a", observe: &countObs{n: 7}}
	tgt := Typed(inner)
	obs, err := tgt.Observe(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if tp := tgt.Plan(d, obs); len(tp.Errors) > 0 {
		t.Fatalf("errors %v", tp.Errors)
	}
	if len(inner.planned) != 1 || inner.planned[0].n != 7 {
		t.Fatalf("Plan got %v, want the observation of 7", inner.planned)
	}
}

func TestTypedRefusesNilObservation(t *testing.T) {
	d := &DesiredState{Revision: "main@sha1:1"}
	inner := &countTarget{name: "a"} // Observe returns a nil *countObs
	tgt := Typed(inner)
	if _, err := tgt.Observe(context.Background(), d); err == nil || !strings.Contains(err.Error(), "target a observed nothing") {
		t.Fatalf("err %v, want a refusal naming the target", err)
	}
	// Through BuildPlan the refusal is the target's error, and Plan never runs.
	p, err := BuildPlan(context.Background(), d, []Target{tgt})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Errors()) != 1 || p.Errors()[0].Target != "a" || len(inner.planned) != 0 {
		t.Fatalf("errors %v, planned %v", p.Errors(), inner.planned)
	}
}

func TestTypedRefusesForeignObservation(t *testing.T) {
	d := &DesiredState{Revision: "main@sha1:1"}
	a := &countTarget{name: "a", observe: &countObs{n: 1}}
	b := &countTarget{name: "b", observe: &countObs{n: 2}}
	ta, tb := Typed(a), Typed(b)
	fromB, err := tb.Observe(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	other := Typed(&aliasTarget{name: "c", live: map[string]int{}})
	fromC, err := other.Observe(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		obs  Observation
		want string
	}{
		{"same type, other target", fromB, "made by target b"},
		{"other type", fromC, "made by target c"},
		{"nil", nil, "made by nothing"},
		{"typed nil", (*observation[*countObs])(nil), "made by nothing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tp := ta.Plan(d, c.obs)
			if len(tp.Errors) != 1 || tp.Errors[0].Target != "a" || !strings.Contains(tp.Errors[0].Message, c.want) {
				t.Fatalf("errors %v, want one naming %q", tp.Errors, c.want)
			}
		})
	}
	if len(a.planned) != 0 {
		t.Fatalf("Plan ran with %v", a.planned)
	}
}

func TestAsFindsCapabilitiesThroughTheAdapter(t *testing.T) {
	w := &waitCapable{countTarget{name: "k", validate: errors.New("no")}}
	tgt := Typed[*countObs](w)
	got, ok := As[Waiter](tgt)
	if !ok || got.WaitFor(Action{}) != "thing" {
		t.Fatalf("As[Waiter] = %v, %v", got, ok)
	}
	if _, ok := As[StorageReporter](tgt); ok {
		t.Fatal("As found a capability the target lacks")
	}
	if _, ok := As[Waiter](Typed[*countObs](&countTarget{name: "plain"})); ok {
		t.Fatal("As[Waiter] on a target without it")
	}
	// Plan validation sees the typed target's ActionValidator.
	v, ok := tgt.(ActionValidator)
	if !ok || v.ValidateAction(Action{}) == nil {
		t.Fatal("ValidateAction not forwarded")
	}
}
