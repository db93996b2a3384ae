package main

import (
	"slices"
	"testing"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/reconciler"
)

func TestGrowthPerStep(t *testing.T) {
	got := growth([]int{1000, 10000, 50000}, []float64{2, 25, 100})
	if want := "12.5× for 10×, 4.0× for 5×"; got != want {
		t.Fatalf("growth = %q, want %q", got, want)
	}
	if got := growth([]int{1000, 10000}, []float64{0, 3}); got != "— for 10×" {
		t.Fatalf("growth from nothing = %q", got)
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 150000: "150,000", 1234567: "1,234,567", -5000: "-5,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestParseSizes(t *testing.T) {
	got, err := parseSizes(" 1000, 10000 ,50000")
	if err != nil || !slices.Equal(got, []int{1000, 10000, 50000}) {
		t.Fatalf("parseSizes = %v, %v", got, err)
	}
	for _, bad := range []string{"", "0", "1000,x", "-5"} {
		if _, err := parseSizes(bad); err == nil {
			t.Errorf("parseSizes(%q) accepted", bad)
		}
	}
}

// onlyEnvironments must leave the state it was given alone: the other
// targets plan from it.
func TestOnlyEnvironmentsKeepsTheOriginal(t *testing.T) {
	envs := []reconciler.DesiredEnv{{Environment: "dev", Version: 3}, {Environment: "staging", Version: 2}, {Environment: "prod", Version: 1}}
	d := &reconciler.DesiredState{
		Config: &manifest.RepoConfig{Environments: []manifest.Environment{{Name: "dev"}, {Name: "staging"}, {Name: "prod"}}},
		Models: []reconciler.DesiredModel{{Name: "a", Environments: slices.Clone(envs)}},
	}
	got := onlyEnvironments(d, []string{"prod"})
	if len(got.Models[0].Environments) != 1 || got.Models[0].Environments[0].Environment != "prod" || len(got.Config.Environments) != 1 {
		t.Fatalf("filtered state %+v", got.Models[0].Environments)
	}
	if len(d.Models[0].Environments) != 3 || len(d.Config.Environments) != 3 {
		t.Fatalf("the original changed: %+v", d.Models[0].Environments)
	}
	if onlyEnvironments(d, nil) != d {
		t.Fatal("no filter must return the state itself")
	}
}
