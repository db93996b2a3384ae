package policy_test

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/modelsync/modelsync/policy"
	"github.com/modelsync/modelsync/policy/policytest"
)

// bulk is a pull request that changes 50 models of a 1,000-model repository.
var bulk = policytest.Spec{Models: 1000, Changed: 50}

func TestGeneratedInput(t *testing.T) {
	in := policytest.Generate(bulk)
	raw, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("input.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("input.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("input.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var inst any
	if err := json.Unmarshal(raw, &inst); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(inst); err != nil {
		t.Fatalf("generated input does not match the schema: %v", err)
	}

	e, err := policy.Load(context.Background(), policy.DefaultSource())
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Evaluate(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range res.Denies {
		got = append(got, v.Rule)
	}
	want := slices.Clone(policytest.BrokenRules)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) || len(res.Denies) != bulk.Expected() {
		t.Fatalf("denies %v, want one each of %v", got, want)
	}
	// Version 5's precision is a little below prod's for every change.
	if len(res.Warnings) != bulk.Changed {
		t.Fatalf("%d warnings, want %d", len(res.Warnings), bulk.Changed)
	}
}

func loadBench(b *testing.B) (*policy.Engine, *policy.Input) {
	b.Helper()
	e, err := policy.Load(context.Background(), policy.DefaultSource())
	if err != nil {
		b.Fatal(err)
	}
	in := policytest.Generate(bulk)
	res, err := e.Evaluate(context.Background(), in)
	if err != nil || len(res.Denies) != bulk.Expected() {
		b.Fatalf("unexpected result: %v %+v", err, res.Denies)
	}
	return e, in
}

// BenchmarkEvaluateWarm is the gate's steady state: the policy compiled
// once, one evaluation (input conversion included) per pull request.
func BenchmarkEvaluateWarm(b *testing.B) {
	e, in := loadBench(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Evaluate(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEvaluateWarmUncached is BenchmarkEvaluateWarm without reusing
// manifest terms from earlier evaluations: the cost of a pull request whose
// base branch the engine has not seen yet.
func BenchmarkEvaluateWarmUncached(b *testing.B) {
	e, in := loadBench(b)
	policy.DisableManifestCache(e)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Evaluate(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEvaluateWarmParallel evaluates from every CPU at once against
// one Engine.
func BenchmarkEvaluateWarmParallel(b *testing.B) {
	e, in := loadBench(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.Evaluate(ctx, in); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkLoad is the one-off cost of reading and compiling the bundle.
func BenchmarkLoad(b *testing.B) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := policy.Load(ctx, policy.DefaultSource()); err != nil {
			b.Fatal(err)
		}
	}
}
