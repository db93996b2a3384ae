package controller

import (
	"testing"

	"github.com/modelsync/modelsync/reconciler"
)

// effective shares Git's environments until a pin (or a closed window)
// changes one, and then changes a copy: the desired state is shared by
// every worker and what the controller keeps of a pass points into it.
func TestEffectiveSharesGitStateUntilItDiffers(t *testing.T) {
	u := newUnit(t, Options{})
	m := &reconciler.DesiredModel{Name: "churn", Environments: []reconciler.DesiredEnv{
		{Environment: "dev", Version: 3}, {Environment: "prod", Version: 2, Canary: &reconciler.DesiredCanary{Version: 3, Weight: 10}},
	}}
	eff, _, _, _ := u.c.effective(m, testNow)
	if &eff.Environments[0] != &m.Environments[0] {
		t.Error("nothing pinned or held, yet the environments were copied")
	}
	if err := u.c.pins.put(Pin{Model: "churn", Environment: "prod", Version: 1}); err != nil {
		t.Fatal(err)
	}
	eff, _, pinned, _ := u.c.effective(m, testNow)
	if _, ok := pinned["prod"]; !ok {
		t.Fatal("the pin was not applied")
	}
	if prod, _ := eff.Env("prod"); prod.Version != 1 || prod.Canary != nil {
		t.Errorf("effective prod %+v, want the pinned v1 without canary", *prod)
	}
	if m.Environments[1].Version != 2 || m.Environments[1].Canary == nil {
		t.Errorf("the pin changed Git's desired state: %+v", m.Environments[1])
	}
}

// hasKey, which prune uses instead of a set of every key, agrees with
// allKeys: a model without environments has the key of its name alone.
func TestHasKeyAgreesWithAllKeys(t *testing.T) {
	d := &reconciler.DesiredState{Models: []reconciler.DesiredModel{
		{Name: "a", Environments: []reconciler.DesiredEnv{{Environment: "dev"}, {Environment: "prod"}}},
		{Name: "b"},
		{Name: "c", Environments: []reconciler.DesiredEnv{{Environment: "staging"}}},
	}}
	all := allKeys(d)
	if len(all) != 4 || cap(all) != 4 {
		t.Errorf("allKeys = %v (cap %d), want 4 keys in a slice of 4", all, cap(all))
	}
	for _, k := range all {
		if !hasKey(d, k) {
			t.Errorf("hasKey(%v) = false for a key of allKeys", k)
		}
	}
	for _, k := range []Key{{"a", ""}, {"a", "staging"}, {"b", "dev"}, {"c", ""}, {"d", ""}, {"", ""}} {
		if hasKey(d, k) {
			t.Errorf("hasKey(%v) = true", k)
		}
	}
}
