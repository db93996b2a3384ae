package policy

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/modelsync/modelsync/internal/manifest"
)

const threeEnvs = `apiVersion: modelsync.dev/v1alpha1
kind: Repository
environments:
  - name: dev
    namespace: models-dev
    source: main
  - name: staging
    namespace: models-staging
    source: main
  - name: prod
    namespace: models-prod
    source: releases
allowedSources: [main]
`

func loadConfig(t *testing.T, cfg string) *manifest.Repo {
	t.Helper()
	r, err := manifest.Load(fstest.MapFS{"modelsync.yaml": {Data: []byte(cfg)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.ConfigErrors) > 0 {
		t.Fatalf("test config invalid: %v", r.ConfigErrors)
	}
	return r
}

func rewire(t *testing.T, old, new string) string {
	t.Helper()
	if !strings.Contains(threeEnvs, old) {
		t.Fatalf("test bug: %q not in the config", old)
	}
	return strings.Replace(threeEnvs, old, new, 1)
}

func summary(cs []ConfigChange) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = fmt.Sprintf("%s %s %q→%q @%d", c.Environment, c.Field, c.From, c.To, c.Line)
	}
	return out
}

// Each rewiring of issue 13 is a change of the environments it touches,
// even though no model version moves.
func TestBuildConfigChanges(t *testing.T) {
	base := loadConfig(t, threeEnvs)
	for _, tc := range []struct {
		name     string
		old, new string
		want     []string
	}{
		{"prod source moved to a branch", "    source: releases\n", "    source: main\n",
			[]string{`prod source "releases"→"main" @12`}},
		{"dev alias set to prod's name", "    namespace: models-dev\n", "    namespace: models-dev\n    alias: production\n",
			[]string{`dev alias "dev"→"production" @6`}},
		{"an explicit alias equal to the name is no change", "    namespace: models-prod\n", "    namespace: models-prod\n    alias: prod\n", nil},
		{"dev namespace changed", "namespace: models-dev", "namespace: models-dev2",
			[]string{`dev namespace "models-dev"→"models-dev2" @5`}},
		{"mode both with dev moved last",
			"environments:\n  - name: dev\n    namespace: models-dev\n    source: main\n  - name: staging\n    namespace: models-staging\n    source: main\n  - name: prod\n    namespace: models-prod\n    source: releases\n",
			"defaults:\n  registry:\n    mode: both\nenvironments:\n  - name: staging\n    namespace: models-staging\n    source: main\n  - name: prod\n    namespace: models-prod\n    source: releases\n  - name: dev\n    namespace: models-dev\n    source: main\n",
			[]string{
				`dev defaults.registry.mode "aliases"→"both" @5`,
				`dev environments "dev, staging, prod"→"staging, prod, dev" @6`,
				`prod defaults.registry.mode "aliases"→"both" @5`,
				`prod environments "dev, staging, prod"→"staging, prod, dev" @6`,
				`staging defaults.registry.mode "aliases"→"both" @5`,
				`staging environments "dev, staging, prod"→"staging, prod, dev" @6`,
			}},
		{"prune and a serving option touch every environment", "allowedSources: [main]\n", "allowedSources: [main]\nprune: true\nserving:\n  allowRemoteBases: true\n",
			[]string{
				`dev prune "false"→"true" @14`, `dev serving.allowRemoteBases "false"→"true" @16`,
				`prod prune "false"→"true" @14`, `prod serving.allowRemoteBases "false"→"true" @16`,
				`staging prune "false"→"true" @14`, `staging serving.allowRemoteBases "false"→"true" @16`,
			}},
		{"allowedSources grows", "allowedSources: [main]\n", "allowedSources: [main, hotfix]\n",
			[]string{`dev allowedSources "[\"main\"]"→"[\"main\",\"hotfix\"]" @13`, `prod allowedSources "[\"main\"]"→"[\"main\",\"hotfix\"]" @13`, `staging allowedSources "[\"main\"]"→"[\"main\",\"hotfix\"]" @13`}},
		{"a window on prod touches prod only", "allowedSources: [main]\n", "allowedSources: [main]\nsyncWindows:\n  - {kind: allow, schedule: \"0 9 * * 1-5\", duration: 8h, environments: [prod]}\n",
			[]string{`prod syncWindows ""→"allow \"0 9 * * 1-5\" for 8h0m0s (UTC)" @14`}},
		{"prerelease on prod", "    source: releases\n", "    source: releases\n    prerelease: true\n",
			[]string{`prod prerelease "false"→"true" @13`}},
		{"an environment added", "allowedSources: [main]\n", "  - name: qa\n    namespace: models-qa\n    source: main\nallowedSources: [main]\n",
			[]string{
				`dev environments "dev, staging, prod"→"dev, staging, prod, qa" @3`,
				`prod environments "dev, staging, prod"→"dev, staging, prod, qa" @3`,
				`qa alias ""→"qa" @13`,
				`qa environments "dev, staging, prod"→"dev, staging, prod, qa" @3`,
				`qa namespace ""→"models-qa" @14`,
				`qa prerelease ""→"false" @13`,
				`qa source ""→"main" @15`,
				`staging environments "dev, staging, prod"→"dev, staging, prod, qa" @3`,
			}},
		{"comments and key order are no change", "kind: Repository\n", "kind: Repository # the repo\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := summary(BuildConfigChanges(base, loadConfig(t, rewire(t, tc.old, tc.new))))
			want := tc.want
			if want == nil {
				want = []string{}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestBuildConfigChangesBrokenSides(t *testing.T) {
	good := loadConfig(t, threeEnvs)
	broken, err := manifest.Load(fstest.MapFS{"modelsync.yaml": {Data: []byte("kind: [\n")}})
	if err != nil {
		t.Fatal(err)
	}
	// A broken head is judged by its problems, not by a diff.
	if got := BuildConfigChanges(good, broken); len(got) != 0 {
		t.Fatalf("broken head: %v", summary(got))
	}
	// A repaired configuration lists every setting of every environment,
	// so gated environments need their approvals.
	got := BuildConfigChanges(broken, good)
	var prodSource bool
	for _, c := range got {
		prodSource = prodSource || (c.Environment == "prod" && c.Field == "source" && c.From == "" && c.To == "releases")
	}
	if !prodSource {
		t.Fatalf("repaired config: %v", summary(got))
	}
}

func TestBuildManifestErrors(t *testing.T) {
	model := func(name, version string) string {
		return "apiVersion: modelsync.dev/v1alpha1\nkind: Model\nmetadata:\n  name: " + name +
			"\nspec:\n  owners: [bob]\n  environments:\n    dev:\n      version: " + version + "\n  serving:\n    path: serving\n    modelFormat: sklearn\n"
	}
	load := func(models map[string]string) *manifest.Repo {
		fsys := fstest.MapFS{"modelsync.yaml": {Data: []byte(threeEnvs)}}
		for name, body := range models {
			fsys["models/"+name+"/model.yaml"] = &fstest.MapFile{Data: []byte(body)}
			fsys["models/"+name+"/serving/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources: []\n")}
		}
		r, err := manifest.Load(fsys)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	base := load(map[string]string{"churn": model("churn", "1"), "legacy": model("legacy", "x"), "fraud": model("fraud", "1")})
	head := load(map[string]string{
		"churn":  model("churn", "one"),                                          // broken by the pull request
		"legacy": model("legacy", "x"),                                           // broken on the base, untouched
		"fraud":  model("fraud", "1") + "# " + strings.Repeat("x", 1<<20) + "\n", // oversized
		"new":    model("wrong-name", "1"),                                       // a new broken model
	})
	changed := []string{"models/churn/model.yaml", "models/fraud/model.yaml", "models/new/model.yaml"}
	cfgProblem := manifest.ErrorList{{File: "modelsync.yaml", Line: 12, Column: 13, Field: "environments[2].source", Message: `expected "releases" or "main"`}}
	got := BuildManifestErrors(base, head, cfgProblem, changed)
	var lines []string
	for _, e := range got {
		lines = append(lines, fmt.Sprintf("%s %s:%d %s: %s", e.Model, e.File, e.Line, e.Field, e.Message))
	}
	want := []string{
		` modelsync.yaml:12 environments[2].source: expected "releases" or "main"`,
		`churn models/churn/model.yaml:9 spec.environments.dev.version: expected an integer, got "one"`,
		`fraud models/fraud/model.yaml:1 : file is 1048768 bytes; at most 1048576 are accepted`,
		`new models/new/model.yaml:4 metadata.name: must equal the folder name "new", got "wrong-name"`,
	}
	if !reflect.DeepEqual(lines, want) {
		t.Fatalf("manifest errors:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	// The untouched model broken on the base is the pull request's once it
	// touches the folder.
	got = BuildManifestErrors(base, head, nil, []string{"models/legacy/serving/kustomization.yaml"})
	if len(got) != 4 || got[2].Model != "legacy" {
		t.Fatalf("touched legacy: %+v", got)
	}
}

func TestBuildManifestErrorsIsBounded(t *testing.T) {
	var problems manifest.ErrorList
	for i := range MaxManifestErrors + 30 {
		problems = append(problems, &manifest.FieldError{File: "modelsync.yaml", Line: i + 1, Message: "bad"})
	}
	got := BuildManifestErrors(nil, &manifest.Repo{}, problems, nil)
	if len(got) != MaxManifestErrors || !strings.HasSuffix(got[len(got)-1].Message, "(and 30 more problems; run modelsync validate for all of them)") {
		t.Fatalf("%d errors, last %+v", len(got), got[len(got)-1])
	}
}

// A finding about a model that points at modelsync.yaml keeps that file
// and line instead of being moved to the model's manifest.
func TestConfigFindingsPointAtModelsyncYAML(t *testing.T) {
	e := loadDefault(t)
	in := loadExample(t)
	in.Plan.Changes = nil
	doc := in.Models["churn"]
	doc.After = doc.Before
	in.Models["churn"] = doc
	in.Reviews = nil
	in.ConfigChanges = []ConfigChange{{Environment: "prod", Field: "source", From: "releases", To: "main", File: "modelsync.yaml", Line: 16}}
	res, err := e.Evaluate(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range res.Denies {
		got = append(got, fmt.Sprintf("%s %s:%d", v.Rule, v.File, v.Line))
	}
	want := []string{"approvals.config_owner_missing modelsync.yaml:16", "approvals.config_too_few modelsync.yaml:16"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("denies %v, want %v", got, want)
	}
}
