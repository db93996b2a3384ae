package manifest

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
)

const testConfig = `apiVersion: modelsync.dev/v1alpha1
kind: Repository
environments:
  - name: dev
    namespace: models-dev
    source: main
  - name: prod
    namespace: models-prod
    source: releases
`

const goodModel = `apiVersion: modelsync.dev/v1alpha1
kind: Model
metadata:
  name: churn
spec:
  owners: [alice]
  environments:
    dev:
      version: 2
    prod:
      version: 1
      canary:
        version: 2
        steps: [10, 25, 50]
  serving:
    path: serving
    modelFormat: sklearn
`

func repoFS(config string, models map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{ConfigFile: {Data: []byte(config)}}
	for folder, body := range models {
		fsys["models/"+folder+"/model.yaml"] = &fstest.MapFile{Data: []byte(body)}
		fsys["models/"+folder+"/serving/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources: []\n")}
	}
	return fsys
}

func TestGoodModelLoads(t *testing.T) {
	repo, err := Load(repoFS(testConfig, map[string]string{"churn": goodModel}))
	if err != nil {
		t.Fatal(err)
	}
	if errs := repo.AllErrors(); len(errs) > 0 {
		t.Fatalf("unexpected problems:\n%v", errs)
	}
	m := repo.Models["churn"]
	if m.Spec.Environments["prod"].Canary.Steps[2] != 50 {
		t.Fatalf("canary steps not decoded: %+v", m.Spec.Environments["prod"].Canary)
	}
	if got := repo.Lines["churn"].At("spec.environments.prod.version"); got != (Pos{11, 16}) {
		t.Fatalf("position of prod version = %+v, want line 11 column 16", got)
	}
}

// Each case replaces one line of goodModel (or the whole file) and expects
// exactly these problems, position included.
func TestModelValidationErrors(t *testing.T) {
	cases := []struct {
		name    string
		replace [2]string // old, new line in goodModel
		folder  string
		want    []string
	}{
		{"unknown field", [2]string{"  owners: [alice]", "  owners: [alice]\n  ownr: bob"}, "",
			[]string{`models/churn/model.yaml:7:3: spec.ownr: unknown field "ownr"; expected one of: compliance, dependencies, environments, lifecycle, modelCard, owners, registry, serving, suspend, team`}},
		{"wrong type for version", [2]string{"      version: 2\n    prod:", "      version: two\n    prod:"}, "",
			[]string{`models/churn/model.yaml:9:16: spec.environments.dev.version: expected an integer, got "two"`}},
		{"quoted version is a string", [2]string{"      version: 2\n    prod:", "      version: \"2\"\n    prod:"}, "",
			[]string{`models/churn/model.yaml:9:16: spec.environments.dev.version: expected an integer, got "2"`}},
		{"zero version", [2]string{"      version: 2\n    prod:", "      version: 0\n    prod:"}, "",
			[]string{`models/churn/model.yaml:9:16: spec.environments.dev.version: expected a positive integer MLflow model version, got 0`}},
		{"negative version", [2]string{"      version: 1\n", "      version: -1\n"}, "",
			[]string{`models/churn/model.yaml:11:16: spec.environments.prod.version: expected a positive integer MLflow model version, got -1`}},
		{"duplicate key", [2]string{"    dev:\n      version: 2\n", "    dev:\n      version: 2\n      version: 3\n"}, "",
			[]string{`models/churn/model.yaml:10:7: spec.environments.dev.version: duplicate key "version" (first defined at line 9)`}},
		{"duplicate environment key", [2]string{"    prod:\n", "    dev:\n      version: 1\n    prod:\n"}, "",
			[]string{`models/churn/model.yaml:10:5: spec.environments.dev: duplicate key "dev" (first defined at line 8)`}},
		{"folder differs from name", [2]string{}, "churn-v2",
			[]string{`models/churn-v2/model.yaml:4:9: metadata.name: must equal the folder name "churn-v2", got "churn"`}},
		{"steps not ascending", [2]string{"steps: [10, 25, 50]", "steps: [10, 50, 25]"}, "",
			[]string{`models/churn/model.yaml:14:25: spec.environments.prod.canary.steps[2]: steps must be strictly ascending; 25 follows 50`}},
		{"step above 100", [2]string{"steps: [10, 25, 50]", "steps: [10, 25, 150]"}, "",
			[]string{`models/churn/model.yaml:14:25: spec.environments.prod.canary.steps[2]: expected a traffic percentage from 1 to 99 (100 is a promotion: set version instead), got 150`}},
		// A last step of 100 is what weight: 100 is, a promotion written as a
		// canary; both are refused alike (issue 14).
		{"step of 100", [2]string{"steps: [10, 25, 50]", "steps: [10, 50, 100]"}, "",
			[]string{`models/churn/model.yaml:14:25: spec.environments.prod.canary.steps[2]: expected a traffic percentage from 1 to 99 (100 is a promotion: set version instead), got 100`}},
		{"weight of 100", [2]string{"steps: [10, 25, 50]", "weight: 100"}, "",
			[]string{`models/churn/model.yaml:14:17: spec.environments.prod.canary.weight: expected a traffic percentage from 1 to 99 (100 is a promotion: set version instead), got 100`}},
		{"weight off the steps", [2]string{"steps: [10, 25, 50]", "steps: [10, 25, 50]\n        weight: 90"}, "",
			[]string{`models/churn/model.yaml:15:17: spec.environments.prod.canary.weight: expected one of the steps [10 25 50] (the rollout's current step), got 90`}},
		{"weight on a step", [2]string{"steps: [10, 25, 50]", "steps: [10, 25, 50]\n        weight: 25\n  team: x\n  team: y"}, "",
			[]string{`models/churn/model.yaml:17:3: spec.team: duplicate key "team" (first defined at line 16)`}},
		{"step zero", [2]string{"steps: [10, 25, 50]", "steps: [0, 25]"}, "",
			[]string{`models/churn/model.yaml:14:17: spec.environments.prod.canary.steps[0]: expected a traffic percentage from 1 to 99 (100 is a promotion: set version instead), got 0`}},
		{"archived class typo", [2]string{"    modelFormat: sklearn\n", "    modelFormat: sklearn\n  lifecycle:\n    archivedClass: GLACIERIR\n"}, "",
			[]string{`models/churn/model.yaml:19:20: spec.lifecycle.archivedClass: expected an S3 storage class (STANDARD, REDUCED_REDUNDANCY, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR, GLACIER, DEEP_ARCHIVE, OUTPOSTS, SNOW, EXPRESS_ONEZONE, FSX_OPENZFS, FSX_ONTAP) or one listed in extraStorageClasses of modelsync.yaml, got "GLACIERIR" (did you mean GLACIER_IR?)`}},
		{"unknown deep archive class", [2]string{"    modelFormat: sklearn\n", "    modelFormat: sklearn\n  lifecycle:\n    deepArchiveClass: COLD\n"}, "",
			[]string{`models/churn/model.yaml:19:23: spec.lifecycle.deepArchiveClass: expected an S3 storage class (STANDARD, REDUCED_REDUNDANCY, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR, GLACIER, DEEP_ARCHIVE, OUTPOSTS, SNOW, EXPRESS_ONEZONE, FSX_OPENZFS, FSX_ONTAP) or one listed in extraStorageClasses of modelsync.yaml, got "COLD"`}},
		{"serving path escapes", [2]string{"path: serving", "path: ../other/serving"}, "",
			[]string{`models/churn/model.yaml:16:11: spec.serving.path: leaves the model folder: "../other/serving"`}},
		{"serving path absolute", [2]string{"path: serving", "path: /etc"}, "",
			[]string{`models/churn/model.yaml:16:11: spec.serving.path: expected a relative path inside the model folder, got "/etc"`}},
		{"serving path without kustomization", [2]string{"path: serving", "path: other"}, "",
			[]string{`models/churn/model.yaml:16:11: spec.serving.path: expected a kustomization.yaml in models/churn/other/`}},
		{"unknown environment", [2]string{"    prod:\n", "    qa:\n      version: 1\n    prod:\n"}, "",
			[]string{`models/churn/model.yaml:10:5: spec.environments.qa: unknown environment "qa"; modelsync.yaml defines: dev, prod`}},
		{"canary equals stable", [2]string{"        version: 2\n", "        version: 1\n"}, "",
			[]string{`models/churn/model.yaml:13:18: spec.environments.prod.canary.version: the canary version must differ from the stable version 1`}},
		{"list where mapping expected", [2]string{"  serving:\n    path: serving\n    modelFormat: sklearn\n", "  serving: [serving]\n"}, "",
			[]string{`models/churn/model.yaml:15:12: spec.serving: expected a mapping, got a list`}},
		{"wrong apiVersion", [2]string{"apiVersion: modelsync.dev/v1alpha1", "apiVersion: modelsync.dev/v2"}, "",
			[]string{`models/churn/model.yaml:1:13: apiVersion: expected "modelsync.dev/v1alpha1", got "modelsync.dev/v2"`}},
		{"missing owners", [2]string{"  owners: [alice]\n", ""}, "",
			[]string{`models/churn/model.yaml:5:1: spec.owners: expected at least one owner (a GitHub login)`}},
		{"bool where string", [2]string{"modelFormat: sklearn", "modelFormat: true"}, "",
			[]string{`models/churn/model.yaml:17:18: spec.serving.modelFormat: expected a string, got boolean true (write "true" in quotes if it is meant as text)`}},
		{"two documents", [2]string{"    modelFormat: sklearn\n", "    modelFormat: sklearn\n---\nkind: Model\n"}, "",
			[]string{`models/churn/model.yaml:18:1: expected exactly one YAML document; found a second one (remove the extra ---)`}},
		{"merge key", [2]string{"    dev:\n      version: 2\n", "    dev:\n      <<: {version: 2}\n"}, "",
			[]string{`models/churn/model.yaml:9:7: spec.environments.dev: merge keys (<<) are not supported; repeat the fields or use an alias for the whole value`}},
		{"tab indentation", [2]string{"  owners: [alice]", "  owners: [alice]\n\tteam: x"}, "",
			[]string{`models/churn/model.yaml:7:1: invalid YAML: found character that cannot start any token`}},
		// The parser names the line before a tab that breaks indentation;
		// the report names the tab's own line and column.
		{"tab in nested indentation", [2]string{"    prod:\n      version: 1\n", "    prod:\n      version: 1\n  \t  team: x\n"}, "",
			[]string{`models/churn/model.yaml:12:3: invalid YAML: found a tab character that violates indentation`}},
		{"tab in a list", [2]string{"  owners: [alice]", "  owners:\n    - alice\n\t- bob"}, "",
			[]string{`models/churn/model.yaml:8:1: invalid YAML: found a tab character that violates indentation`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := goodModel
			if tc.replace[0] != "" {
				if !strings.Contains(body, tc.replace[0]) {
					t.Fatalf("test bug: %q not in model", tc.replace[0])
				}
				body = strings.Replace(body, tc.replace[0], tc.replace[1], 1)
			}
			folder := tc.folder
			if folder == "" {
				folder = "churn"
			}
			repo, err := Load(repoFS(testConfig, map[string]string{folder: body}))
			if err != nil {
				t.Fatal(err)
			}
			got := repo.AllErrors()
			var gotS []string
			for _, e := range got {
				gotS = append(gotS, e.Error())
			}
			if strings.Join(gotS, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(gotS, "\n"), strings.Join(tc.want, "\n"))
			}
			if len(repo.Models) != 0 {
				t.Fatalf("a broken model must not be loaded")
			}
		})
	}
}

func TestConfigValidationErrors(t *testing.T) {
	cases := []struct {
		name     string
		old, new string
		want     string
	}{
		{"duplicate environment", "  - name: prod", "  - name: dev", `modelsync.yaml:7:11: environments[1].name: duplicate environment "dev" (also environments[0])`},
		{"bad namespace", "namespace: models-dev", "namespace: Models_Dev", `modelsync.yaml:5:16: environments[0].namespace: expected a Kubernetes namespace name (DNS-1123 label), got "Models_Dev"`},
		{"missing source", "    source: main\n", "", `modelsync.yaml:4:5: environments[0].source: required: a branch name such as "main", or "releases" for the newest release tag`},
		{"prerelease on branch", "    source: main\n", "    source: main\n    prerelease: true\n", `modelsync.yaml:7:17: environments[0].prerelease: only applies to source "releases"; this environment follows branch "main"`},
		{"reserved alias", "    source: main\n", "    source: main\n    alias: latest\n", `modelsync.yaml:7:12: environments[0].alias: "latest" is reserved by MLflow ("latest" and v<number> cannot be aliases)`},
		{"bad mode", "kind: Repository\n", "kind: Repository\ndefaults:\n  registry:\n    mode: stage\n", `modelsync.yaml:5:11: defaults.registry.mode: expected one of aliases, stages, both; got "stage"`},
		{"bad duration", "kind: Repository\n", "kind: Repository\ndefaults:\n  lifecycle:\n    archiveAfter: 3 weeks\n", `modelsync.yaml:5:19: defaults.lifecycle.archiveAfter: expected a duration such as "30d", "36h" or "90m", got "3 weeks"`},
		{"bad window schedule", "kind: Repository\n", "kind: Repository\nsyncWindows:\n  - {kind: deny, schedule: \"0 25 * * *\", duration: 2h, environments: [prod]}\n", `modelsync.yaml:4:28: syncWindows[0].schedule: cron schedule "0 25 * * *": hour field: "25" is outside 0-23`},
		{"window on unknown environment", "kind: Repository\n", "kind: Repository\nsyncWindows:\n  - {kind: allow, schedule: \"0 9 * * 1-5\", duration: 8h, environments: [qa]}\n", `modelsync.yaml:4:73: syncWindows[0].environments[0]: unknown environment "qa"`},
		// Two environments in one namespace or on one alias overwrite
		// each other's InferenceService or MLflow alias (issue 13).
		{"shared namespace", "namespace: models-dev", "namespace: models-prod", `modelsync.yaml:8:16: environments[1].namespace: expected a namespace no other environment uses; "models-prod" is already environments[0] (dev)'s namespace`},
		{"shared namespace differing in case only", "namespace: models-prod", "namespace: models-dev", `modelsync.yaml:8:16: environments[1].namespace: expected a namespace no other environment uses; "models-dev" is already environments[0] (dev)'s namespace`},
		{"alias of a later environment", "    source: main\n", "    source: main\n    alias: prod\n", `modelsync.yaml:7:12: environments[0].alias: expected an alias no other environment uses; "prod" is the alias of environments[1] (prod) too, so both would move one MLflow alias`},
		{"alias differing in case", "    source: main\n", "    source: main\n    alias: Prod\n", `modelsync.yaml:7:12: environments[0].alias: expected an alias no other environment uses; "Prod" is the alias of environments[1] (prod) too, so both would move one MLflow alias`},
		{"alias taking a canary alias", "    source: main\n", "    source: main\n    alias: Prod-Canary\n", `modelsync.yaml:7:12: environments[0].alias: "Prod-Canary" ends in "-canary", which modelsync uses for canary aliases`},
		{"source outside allowedSources", "    source: releases\n", "    source: hotfix\nallowedSources: [main, develop]\n", `modelsync.yaml:9:13: environments[1].source: expected "releases" or a branch listed in allowedSources (main, develop), got "hotfix"`},
		{"releases in allowedSources", "kind: Repository\n", "kind: Repository\nallowedSources: [main, releases]\n", `modelsync.yaml:3:24: allowedSources[1]: "releases" is always allowed and is not a branch; list branch names only`},
		{"bad branch in allowedSources", "kind: Repository\n", "kind: Repository\nallowedSources: [main, -x]\n", `modelsync.yaml:3:24: allowedSources[1]: expected a branch name such as "main", got "-x"`},
		{"archived class typo", "kind: Repository\n", "kind: Repository\ndefaults:\n  lifecycle:\n    archivedClass: GLACIERIR\n", `modelsync.yaml:5:20: defaults.lifecycle.archivedClass: expected an S3 storage class (STANDARD, REDUCED_REDUNDANCY, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR, GLACIER, DEEP_ARCHIVE, OUTPOSTS, SNOW, EXPRESS_ONEZONE, FSX_OPENZFS, FSX_ONTAP) or one listed in extraStorageClasses of modelsync.yaml, got "GLACIERIR" (did you mean GLACIER_IR?)`},
		{"extra class that S3 defines", "kind: Repository\n", "kind: Repository\nextraStorageClasses: [COLD, GLACIER]\n", `modelsync.yaml:3:29: extraStorageClasses[1]: "GLACIER" is an S3 storage class already; list only the classes of your store that S3 does not define`},
		// source: release is a branch name, so it is refused only as one
		// that is not allowed; the hint names the likely intent.
		{"source typo with allowedSources", "    source: releases\n", "    source: release\nallowedSources: [main]\n", `modelsync.yaml:9:13: environments[1].source: expected "releases" or a branch listed in allowedSources (main), got "release" (did you mean "releases"?)`},
		{"extra kind in lowercase", "kind: Repository\n", "kind: Repository\nserving:\n  extraKinds: [ServiceMonitor.monitoring.coreos.com, configmap]\n", `modelsync.yaml:4:54: serving.extraKinds[1]: expected a Kubernetes kind such as ConfigMap, optionally with its API group (ServiceMonitor.monitoring.coreos.com), got "configmap"`},
		{"delete without allow", "kind: Repository\n", "kind: Repository\ndefaults:\n  lifecycle:\n    deleteAfter: 400d\n", `modelsync.yaml:5:18: defaults.lifecycle.deleteAfter: set allowDelete: true as well; artifacts are never deleted without it`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(testConfig, tc.old) {
				t.Fatalf("test bug: %q not in config", tc.old)
			}
			cfg := strings.Replace(testConfig, tc.old, tc.new, 1)
			repo, err := Load(repoFS(cfg, nil))
			if err != nil {
				t.Fatal(err)
			}
			if repo.Config != nil {
				t.Fatal("a broken config must not be returned")
			}
			if got := repo.ConfigErrors.Error(); got != tc.want {
				t.Fatalf("problems:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// One broken model must not stop the others from loading.
func TestBrokenModelBlocksOnlyItself(t *testing.T) {
	other := strings.ReplaceAll(goodModel, "name: churn", "name: fraud")
	broken := strings.Replace(goodModel, "version: 1\n", "version: one\n", 1)
	repo, err := Load(repoFS(testConfig, map[string]string{"churn": broken, "fraud": other}))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := repo.Models["fraud"]; !ok {
		t.Fatal("healthy model fraud was not loaded")
	}
	if len(repo.Problems["churn"]) != 1 {
		t.Fatalf("problems for churn = %v", repo.Problems["churn"])
	}
}

func TestDuplicateRegisteredModel(t *testing.T) {
	a := strings.Replace(goodModel, "spec:\n", "spec:\n  registry:\n    name: shared\n", 1)
	b := strings.ReplaceAll(a, "name: churn", "name: fraud")
	repo, err := Load(repoFS(testConfig, map[string]string{"churn": a, "fraud": b}))
	if err != nil {
		t.Fatal(err)
	}
	want := `models/fraud/model.yaml:7:11: spec.registry.name: duplicate registered model "shared": models/churn uses it too`
	if got := repo.AllErrors().Error(); got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
}

func TestYAMLBombsRefused(t *testing.T) {
	// Nine levels of ten-fold aliases would expand to a billion nodes. The
	// schema allows no such nesting, so the first level is refused without
	// expanding the rest.
	var b strings.Builder
	b.WriteString("apiVersion: modelsync.dev/v1alpha1\nkind: Model\nmetadata:\n  labels:\n    a0: &a0 \"x\"\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, "    a%d: &a%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 10), ", "))
	}
	repo, err := Load(repoFS(testConfig, map[string]string{"churn": b.String()}))
	if err != nil {
		t.Fatal(err)
	}
	// Besides the nine refused labels, the file lacks what every model
	// needs (name, owners, serving), reported in the same run.
	if got := repo.AllErrors(); len(got) != 13 || !strings.Contains(got[4].Error(), "metadata.labels.a1: expected a string, got a list") {
		t.Fatalf("alias bomb not refused as expected:\n%v", got)
	}

	// Where the schema does allow a long list, aliases cannot multiply it
	// past the node budget.
	b.Reset()
	b.WriteString("apiVersion: modelsync.dev/v1alpha1\nkind: Model\nspec:\n  dependencies: &d [")
	b.WriteString(strings.TrimSuffix(strings.Repeat("x, ", 40_000), ", "))
	b.WriteString("]\n  compliance: *d\n  owners: *d\n")
	repo, err = Load(repoFS(testConfig, map[string]string{"churn": b.String()}))
	if err != nil {
		t.Fatal(err)
	}
	if got := repo.AllErrors().Error(); !strings.Contains(got, "document expands to more than 50000 nodes") {
		t.Fatalf("node budget not enforced:\n%s", got)
	}

	deep := "apiVersion: modelsync.dev/v1alpha1\nkind: Model\nspec:\n  dependencies: " + strings.Repeat("[", 20_000) + strings.Repeat("]", 20_000) + "\n"
	repo, err = Load(repoFS(testConfig, map[string]string{"churn": deep}))
	if err != nil {
		t.Fatal(err)
	}
	if got := repo.AllErrors().Error(); !strings.Contains(got, "exceeded max depth") {
		t.Fatalf("deep nesting not refused:\n%s", got)
	}

	big := goodModel + "# " + strings.Repeat("x", MaxFileSize) + "\n"
	repo, err = Load(repoFS(testConfig, map[string]string{"churn": big}))
	if err != nil {
		t.Fatal(err)
	}
	if got := repo.AllErrors().Error(); !strings.Contains(got, "at most 1048576 are accepted") {
		t.Fatalf("oversized file not refused:\n%s", got)
	}
}

func TestEffectiveLifecycleMergesDefaults(t *testing.T) {
	cfg := &RepoConfig{Defaults: Defaults{Lifecycle: Lifecycle{ArchivedClass: "GLACIER", ArchiveAfter: Duration{48 * 3600e9}}}}
	m := &Model{Spec: ModelSpec{Lifecycle: Lifecycle{ArchiveAfter: Duration{24 * 3600e9}}}}
	l := cfg.EffectiveLifecycle(m)
	if l.ActiveClass != DefaultActiveClass || l.ArchivedClass != "GLACIER" || l.ArchiveAfter.String() != "1d" || l.RollbackWindow.String() != "7d" {
		t.Fatalf("merged lifecycle = %+v", l)
	}
}

// Without allowedSources an environment may follow only the branch
// modelsync.yaml is read from: moving prod to a branch nobody reviews is
// refused where the branch is known (issue 13).
func TestSourcesDefaultToConfigBranch(t *testing.T) {
	moved := strings.Replace(testConfig, "    source: releases\n", "    source: hotfix\n", 1)
	repo, err := Load(repoFS(moved, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(repo.ConfigErrors) > 0 {
		t.Fatalf("a branch name is well-formed: %v", repo.ConfigErrors)
	}
	want := `modelsync.yaml:9:13: environments[1].source: expected "releases" or "main" (the branch modelsync.yaml is read from), got "hotfix"; list other branches in allowedSources`
	if got := repo.SourceErrors("main").Error(); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	// The same file read from another branch: dev's main is refused too.
	if got := repo.SourceErrors("hotfix"); len(got) != 1 || got[0].Field != "environments[0].source" {
		t.Fatalf("read from hotfix: %v", got)
	}
	listed := strings.Replace(moved, "kind: Repository\n", "kind: Repository\nallowedSources: [main, hotfix]\n", 1)
	if repo, err = Load(repoFS(listed, nil)); err != nil {
		t.Fatal(err)
	}
	if errs := append(repo.ConfigErrors, repo.SourceErrors("main")...); len(errs) > 0 {
		t.Fatalf("listed branch refused: %v", errs)
	}
	if repo, err = Load(repoFS(testConfig, nil)); err != nil {
		t.Fatal(err)
	}
	if errs := repo.SourceErrors("main"); len(errs) > 0 {
		t.Fatalf("main and releases refused: %v", errs)
	}
}

// A store's own storage class is accepted once modelsync.yaml lists it,
// and only then.
func TestExtraStorageClasses(t *testing.T) {
	model := strings.Replace(goodModel, "    modelFormat: sklearn\n", "    modelFormat: sklearn\n  lifecycle:\n    archivedClass: cold\n", 1)
	repo, err := Load(repoFS(testConfig+"extraStorageClasses: [COLD]\n", map[string]string{"churn": model}))
	if err != nil {
		t.Fatal(err)
	}
	if errs := repo.AllErrors(); len(errs) > 0 {
		t.Fatalf("a listed class is refused:\n%v", errs)
	}
	repo, err = Load(repoFS(testConfig, map[string]string{"churn": model}))
	if err != nil {
		t.Fatal(err)
	}
	if errs := repo.AllErrors(); len(errs) != 1 || errs[0].Field != "spec.lifecycle.archivedClass" {
		t.Fatalf("an unlisted class: problems %v, want one at spec.lifecycle.archivedClass", errs)
	}
}

// Every problem in one run: the missing kustomization is reported beside
// the others, not only once they are fixed (issue 14).
func TestServingPathReportedWithOtherProblems(t *testing.T) {
	body := strings.Replace(goodModel, "  owners: [alice]\n", "  ownr: bob\n", 1)
	body = strings.Replace(body, "      version: 1\n", "      version: 0\n", 1)
	body = strings.Replace(body, "path: serving", "path: srv", 1)
	repo, err := Load(repoFS(testConfig, map[string]string{"churn": body}))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`models/churn/model.yaml:5:1: spec.owners: expected at least one owner (a GitHub login)`,
		`models/churn/model.yaml:6:3: spec.ownr: unknown field "ownr"; expected one of: compliance, dependencies, environments, lifecycle, modelCard, owners, registry, serving, suspend, team`,
		`models/churn/model.yaml:11:16: spec.environments.prod.version: expected a positive integer MLflow model version, got 0`,
		`models/churn/model.yaml:16:11: spec.serving.path: expected a kustomization.yaml in models/churn/srv/`,
	}
	var got []string
	for _, e := range repo.AllErrors() {
		got = append(got, e.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if repo.Broken["churn"] == nil || repo.Broken["churn"].Spec.Serving.Path != "srv" {
		t.Fatalf("the broken model's decoded part is not kept for further checks: %+v", repo.Broken["churn"])
	}
}
