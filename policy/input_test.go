package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/reconciler"
)

func compileSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
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
	c.AssertFormat()
	if err := c.AddResource("input.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("input.schema.json")
	if err != nil {
		t.Fatalf("compiling input.schema.json: %v", err)
	}
	return s
}

// validateJSON checks raw against the schema.
func validateJSON(t testing.TB, s *jsonschema.Schema, raw []byte) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(inst); err != nil {
		t.Fatalf("input does not match input.schema.json: %v", err)
	}
}

func TestExampleMatchesSchemaAndGoTypes(t *testing.T) {
	s := compileSchema(t)
	raw, err := os.ReadFile("testdata/input.example.json")
	if err != nil {
		t.Fatal(err)
	}
	validateJSON(t, s, raw)

	// The Go types carry every field of the example: decoding strictly and
	// encoding again gives the same document.
	in := loadExample(t)
	again, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	validateJSON(t, s, again)
	var a, b any
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(again, &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("example does not survive a round trip through Input:\n%s", again)
	}
}

func TestNormalizedZeroInputMatchesSchema(t *testing.T) {
	in := (&Input{}).normalized()
	raw, err := json.Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	validateJSON(t, compileSchema(t), raw)
}

func TestSchemaRejectsMistakes(t *testing.T) {
	s := compileSchema(t)
	for name, patch := range map[string]func(map[string]any){
		"missing plan":     func(m map[string]any) { delete(m, "plan") },
		"unknown section":  func(m map[string]any) { m["approvals"] = []any{} },
		"bad review state": func(m map[string]any) { m["reviews"].([]any)[0].(map[string]any)["state"] = "LGTM" },
		"string version": func(m map[string]any) {
			m["plan"].(map[string]any)["changes"].([]any)[0].(map[string]any)["to_version"] = "4"
		},
		"non-numeric key": func(m map[string]any) {
			m["registry"].(map[string]any)["churn"].(map[string]any)["versions"].(map[string]any)["v4"] = map[string]any{}
		},
		"malformed time": func(m map[string]any) { m["now"] = "yesterday" },
		"negative line": func(m map[string]any) {
			m["models"].(map[string]any)["churn"].(map[string]any)["lines"].(map[string]any)["spec"] = -1
		},
		"metric not number": func(m map[string]any) {
			m["registry"].(map[string]any)["churn"].(map[string]any)["versions"].(map[string]any)["4"].(map[string]any)["run_metrics"].(map[string]any)["f1"] = "high"
		},
	} {
		t.Run(name, func(t *testing.T) {
			raw, _ := os.ReadFile("testdata/input.example.json")
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			patch(m)
			if err := s.Validate(m); err == nil {
				t.Fatal("schema accepted it")
			}
		})
	}
}

func env(name string, version int, canary *reconciler.DesiredCanary) reconciler.DesiredEnv {
	return reconciler.DesiredEnv{Environment: name, Version: version, Canary: canary}
}

func state(models ...reconciler.DesiredModel) *reconciler.DesiredState {
	return &reconciler.DesiredState{Models: models}
}

func dm(name string, envs ...reconciler.DesiredEnv) reconciler.DesiredModel {
	return reconciler.DesiredModel{Name: name, Environments: envs}
}

func TestBuildChanges(t *testing.T) {
	canary := func(v, w int, steps ...int) *reconciler.DesiredCanary {
		return &reconciler.DesiredCanary{Version: v, Weight: w, Steps: steps}
	}
	before := state(
		dm("churn", env("staging", 4, nil), env("prod", 3, nil)),
		dm("fraud", env("prod", 7, canary(8, 10, 10, 50))),
		dm("old", env("prod", 2, nil)),
		dm("steady", env("prod", 9, canary(10, 20, 20, 40))),
	)
	after := state(
		dm("churn", env("staging", 5, nil), env("prod", 3, canary(4, 10, 10, 25))),
		dm("fraud", env("prod", 7, canary(8, 50, 10, 50))),
		dm("new", env("dev", 1, nil)),
		dm("steady", env("prod", 9, canary(10, 20, 20, 40))),
	)
	got := BuildChanges(before, after)
	want := []Change{
		{Model: "churn", Environment: "prod", FromVersion: 3, ToVersion: 3, CanaryFrom: 0, CanaryTo: 4},
		{Model: "churn", Environment: "staging", FromVersion: 4, ToVersion: 5},
		{Model: "fraud", Environment: "prod", FromVersion: 7, ToVersion: 7, CanaryFrom: 8, CanaryTo: 8},
		{Model: "new", Environment: "dev", ToVersion: 1},
		{Model: "old", Environment: "prod", FromVersion: 2},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("BuildChanges =\n%+v\nwant\n%+v", got, want)
	}
	if got := BuildChanges(nil, nil); got == nil || len(got) != 0 {
		t.Errorf("BuildChanges(nil, nil) = %#v, want an empty non-nil slice", got)
	}
	if got := BuildChanges(nil, state(dm("a", env("dev", 1, nil)))); !slices.Equal(got, []Change{{Model: "a", Environment: "dev", ToVersion: 1}}) {
		t.Errorf("from nothing: %+v", got)
	}
	steps := BuildChanges(
		state(dm("a", env("prod", 1, canary(2, 10, 10, 50)))),
		state(dm("a", env("prod", 1, canary(2, 10, 10, 60)))),
	)
	if len(steps) != 1 {
		t.Errorf("a change of canary steps alone is a change: %+v", steps)
	}
	// A model the head breaks keeps what it runs: it is no removal.
	broken := state()
	broken.Errors = []reconciler.ModelError{{Model: "a", Message: "models/a/model.yaml:3:1: invalid YAML"}}
	if got := BuildChanges(state(dm("a", env("prod", 1, nil))), broken); len(got) != 0 {
		t.Errorf("broken at head: %+v", got)
	}
}

func TestSoakHours(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		tags  map[string]string
		hours float64
		ok    bool
	}{
		{map[string]string{"modelsync.audit.staging.since": "2026-03-01T12:00:00Z"}, 24, true},
		{map[string]string{"modelsync.audit.staging.since": "2026-02-01T00:00:00Z", "modelsync.audit.staging.until": "2026-02-02T06:30:00Z"}, 30.5, true},
		{map[string]string{"modelsync.audit.prod.since": "2026-02-01T00:00:00Z"}, 0, false},
		{map[string]string{"modelsync.audit.staging.since": "yesterday"}, 0, false},
		{map[string]string{"modelsync.audit.staging.since": "2026-02-02T00:00:00Z", "modelsync.audit.staging.until": "bad"}, 0, false},
		{map[string]string{"modelsync.audit.staging.since": "2026-02-02T00:00:00Z", "modelsync.audit.staging.until": "2026-02-01T00:00:00Z"}, 0, false},
		{nil, 0, false},
	}
	for _, c := range cases {
		h, ok := SoakHours(c.tags, "staging", now)
		if h != c.hours || ok != c.ok {
			t.Errorf("SoakHours(%v) = %v, %v; want %v, %v", c.tags, h, ok, c.hours, c.ok)
		}
	}
}

func TestNewPlanDoc(t *testing.T) {
	d := NewPlanDoc(nil, []Change{{Model: "a", Environment: "dev", ToVersion: 1}})
	if d.Revision != "" || len(d.Actions) != 0 || len(d.Changes) != 1 {
		t.Fatalf("NewPlanDoc(nil) = %+v", d)
	}
	p, err := reconciler.BuildPlan(context.Background(), state(dm("a", env("dev", 1, nil))), nil)
	if err != nil {
		t.Fatal(err)
	}
	d = NewPlanDoc(p, nil)
	raw, _ := json.Marshal(d)
	want, _ := json.Marshal(p)
	var got, exp map[string]any
	_ = json.Unmarshal(raw, &got)
	_ = json.Unmarshal(want, &exp)
	if c, ok := got["changes"].([]any); !ok || len(c) != 0 {
		t.Errorf("changes = %v, want []", got["changes"])
	}
	delete(got, "changes")
	if !reflect.DeepEqual(got, exp) {
		t.Fatalf("plan section %v differs from the plan's JSON %v", got, exp)
	}
}

const repoConfig = `apiVersion: modelsync.dev/v1alpha1
kind: Repository
environments:
  - name: staging
    namespace: ml-staging
    source: main
  - name: prod
    namespace: ml-prod
    source: main
`

const churnBase = `apiVersion: modelsync.dev/v1alpha1
kind: Model
metadata:
  name: churn
spec:
  owners: [bob]
  environments:
    staging:
      version: 4
    prod:
      version: 3
  serving:
    path: serving
    modelFormat: sklearn
  modelCard:
    description: Predicts churn.
    intendedUse: Retention outreach.
    datasets:
      - name: subscriptions
        version: "2025-12-31"
    limitations: [Young accounts score poorly.]
    license: Proprietary
    contact: ml@example.com
  compliance: [GDPR, SOC2]
  dependencies:
    - scikit-learn==1.5.2
`

const churnHead = `apiVersion: modelsync.dev/v1alpha1
kind: Model
metadata:
  name: churn
spec:
  owners: [bob]
  environments:
    staging:
      version: 4
    prod:
      version: 3
      canary:
        version: 4
        steps: [80, 90]
  serving:
    path: serving
    modelFormat: sklearn
  modelCard:
    description: Predicts churn.
    intendedUse: Retention outreach.
    datasets:
      - name: subscriptions
        version: "2025-12-31"
    limitations: [Young accounts score poorly.]
    license: Proprietary
    contact: ml@example.com
  compliance: [GDPR, SOC2]
  dependencies:
    - scikit-learn==1.5.2
    - pandas
`

func repo(t *testing.T, model string) *manifest.Repo {
	t.Helper()
	r, err := manifest.Load(fstest.MapFS{
		"modelsync.yaml":                          {Data: []byte(repoConfig)},
		"models/churn/model.yaml":                 {Data: []byte(model)},
		"models/churn/serving/kustomization.yaml": {Data: []byte("resources: [isvc.yaml]\n")},
		"models/churn/serving/isvc.yaml":          {Data: []byte("kind: InferenceService\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.AllErrors()) > 0 {
		t.Fatalf("test repository is invalid: %v", r.AllErrors())
	}
	return r
}

// TestAnnotationsPointAtManifestLines builds the input from real manifests
// and checks each violation lands on the YAML line it concerns.
func TestAnnotationsPointAtManifestLines(t *testing.T) {
	base, head := repo(t, churnBase), repo(t, churnHead)
	models := BuildModels(base, head, nil)
	if len(models) != 1 || models["churn"].Before == nil || models["churn"].After == nil || models["churn"].File != "models/churn/model.yaml" {
		t.Fatalf("BuildModels = %+v", models)
	}
	changes := BuildChanges(
		state(dm("churn", env("staging", 4, nil), env("prod", 3, nil))),
		state(dm("churn", env("staging", 4, nil), env("prod", 3, &reconciler.DesiredCanary{Version: 4, Weight: 80, Steps: []int{80, 90}}))),
	)
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	head1 := "abc"
	in := &Input{
		PR: PullRequest{Number: 9, Author: "alice", Head: GitRef{Ref: "canary", SHA: head1}},
		Reviews: []Review{
			{User: "bob", State: "APPROVED", SubmittedAt: now, CommitID: head1},
			{User: "carol", State: "APPROVED", SubmittedAt: now, CommitID: head1},
		},
		Plan:   NewPlanDoc(nil, changes),
		Models: models,
		Registry: map[string]RegistryModel{"churn": {ProdVersion: 3, Versions: map[string]RegistryVersion{
			"3": {RunMetrics: map[string]float64{"accuracy": 0.9, "precision": 0.9, "recall": 0.9, "f1": 0.9}},
			"4": {RunMetrics: map[string]float64{"accuracy": 0.9, "precision": 0.9, "recall": 0.9, "f1": 0.9}, StagingHours: ptr(48.0)},
		}}},
		Security: map[string]SecurityModel{"churn": {Versions: map[string]SecurityVersion{
			"4": {Result: "safe", Digest: "sha256:44", Scanner: "modelsync-scan/1"},
		}}},
		RegistryConfigured: true,
		Now:                now,
	}
	res, err := loadDefault(t).Evaluate(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, v := range res.Denies {
		if v.File != "models/churn/model.yaml" {
			t.Errorf("%s: file %q", v.Rule, v.File)
		}
		got[v.Rule] = v.Line
	}
	// Lines of churnHead: canary at 12, steps at 14, pandas at 30.
	want := map[string]int{"canary.first_step_too_large": 14, "canary.analysis_missing": 12, "dependencies.unpinned": 30}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("deny lines = %v, want %v", got, want)
	}
}

// TestRegoFixtureIsTheExample keeps the Rego tests' base input and the
// documented example the same document.
func TestRegoFixtureIsTheExample(t *testing.T) {
	b, err := readBundle(context.Background(), DefaultSource())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rego.New(rego.Query("data.modelsync.fixtures.pr"), rego.ParsedBundle("modelsync", b)).Eval(context.Background())
	if err != nil || len(rs) != 1 {
		t.Fatalf("reading the fixture: %v %v", rs, err)
	}
	raw, err := os.ReadFile("testdata/input.example.json")
	if err != nil {
		t.Fatal(err)
	}
	var example any
	if err := json.Unmarshal(raw, &example); err != nil {
		t.Fatal(err)
	}
	fixture, _ := json.Marshal(rs[0].Expressions[0].Value)
	var got any
	_ = json.Unmarshal(fixture, &got)
	if !reflect.DeepEqual(got, example) {
		t.Fatal("bundle/lib/fixtures_test.rego and testdata/input.example.json differ; keep them the same document")
	}
}
