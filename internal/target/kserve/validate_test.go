package kserve

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/modelsync/modelsync/internal/manifest"
)

// validateOne loads the model folder "churn" from files under a config
// with dev and prod, and validates its serving directory.
func validateOne(t *testing.T, files fstest.MapFS, policy manifest.ServingPolicy, canary string) (problems, warnings []string) {
	t.Helper()
	files["modelsync.yaml"] = &fstest.MapFile{Data: []byte(`apiVersion: modelsync.dev/v1alpha1
kind: Repository
environments:
  - {name: dev, namespace: ml-dev, source: main}
  - {name: prod, namespace: ml-prod, source: releases}
`)}
	files["models/churn/model.yaml"] = &fstest.MapFile{Data: []byte(`apiVersion: modelsync.dev/v1alpha1
kind: Model
metadata: {name: churn}
spec:
  owners: [alice]
  environments:
    dev: {version: 2}
    prod: {version: 1` + canary + `}
  serving: {path: serving, modelFormat: sklearn}
`)}
	repo, err := manifest.Load(files)
	if err != nil {
		t.Fatal(err)
	}
	if errs := repo.AllErrors(); len(errs) > 0 {
		t.Fatalf("test bug: the manifests are invalid: %v", errs)
	}
	repo.Config.Serving = policy
	p, w := ValidateServing(context.Background(), files, repo.Config, "churn", repo.Models["churn"], repo.Lines["churn"])
	for _, e := range p {
		problems = append(problems, e.Error())
	}
	for _, e := range w {
		warnings = append(warnings, e.Error())
	}
	return problems, warnings
}

// What a plan of the KServe target would fail on is found offline, with
// the file and line to fix (issue 14).
func TestValidateServingFindsWhatARenderRefuses(t *testing.T) {
	cases := []struct {
		name   string
		files  map[string]string // relative to models/churn/serving/
		canary string
		want   []string
	}{
		{name: "good", want: nil},
		{name: "kustomization names a missing file",
			files: map[string]string{"kustomization.yaml": "resources:\n- isvc.yaml\n- missing.yaml\n"},
			want:  []string{`models/churn/serving/kustomization.yaml:3:3: resources: "missing.yaml" names models/churn/serving/missing.yaml, which does not exist (rendering for dev, prod)`}},
		{name: "Deployment where an InferenceService is expected",
			files: map[string]string{"isvc.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: churn\nspec: {}\n"},
			want:  []string{`models/churn/serving/isvc.yaml:2:7: kind: expected an InferenceService (serving.kserve.io/v1beta1) or a kind listed in serving.extraKinds of modelsync.yaml, found Deployment "churn" (rendering for dev, prod)`}},
		{name: "two InferenceServices",
			files: map[string]string{"kustomization.yaml": "resources:\n- isvc.yaml\n- other.yaml\n", "other.yaml": strings.Replace(isvcYAML("other", ""), "metadata:\n", "metadata:\n", 1)},
			want:  []string{`models/churn/model.yaml:9:19: spec.serving.path: render must yield exactly one InferenceService: the render of models/churn/serving yields 2 [churn other] (rendering for dev, prod)`}},
		{name: "broken YAML in the serving directory",
			files: map[string]string{"isvc.yaml": "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nspec:\n  predictor:\n\t  model: {}\n"},
			want:  []string{`models/churn/serving/isvc.yaml:5:1: invalid YAML: found character that cannot start any token`}},
		{name: "legacy predictor",
			files: map[string]string{"isvc.yaml": "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nspec:\n  predictor:\n    sklearn: {storageUri: s3://x}\n"},
			want:  []string{`models/churn/model.yaml:9:19: spec.serving.path: invalid serving spec: spec.predictor.sklearn is KServe's legacy form, which its webhook rewrites (a permanent diff); use spec.predictor.model with modelFormat (rendering for dev, prod)`}},
		// Every kustomization of the model folder is vetted before any
		// build, so a broken prod overlay fails dev's render too, as in a plan.
		{name: "overlay of one environment broken",
			files: map[string]string{"overlays/prod/kustomization.yaml": "resources:\n- ../../isvc.yaml\npatches:\n- path: nowhere.yaml\n"},
			want:  []string{`models/churn/serving/overlays/prod/kustomization.yaml:4:9: patches.path: "nowhere.yaml" names models/churn/serving/overlays/prod/nowhere.yaml, which does not exist (rendering for dev, prod)`}},
		{name: "overlay yields a second kind",
			files: map[string]string{"overlays/prod/kustomization.yaml": "resources:\n- ../../isvc.yaml\n- cm.yaml\n", "overlays/prod/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: churn-config\n"},
			want:  []string{`models/churn/serving/overlays/prod/cm.yaml:2:7: kind: expected an InferenceService (serving.kserve.io/v1beta1) or a kind listed in serving.extraKinds of modelsync.yaml, found ConfigMap "churn-config" (rendering for prod)`}},
		{name: "canary in RawDeployment mode", canary: ", canary: {version: 2, weight: 10}",
			files: map[string]string{"isvc.yaml": isvcYAML("", "RawDeployment")},
			want:  []string{`models/churn/model.yaml:8:24: spec.environments.prod.canary: the InferenceService is in RawDeployment mode (annotation serving.kserve.io/deploymentMode), where KServe ignores canaryTrafficPercent; remove the canary or use Knative mode (rendering for prod)`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			files := modelFiles(nil, "churn", "", "")
			for name, body := range tc.files {
				files["models/churn/serving/"+name] = &fstest.MapFile{Data: []byte(body)}
			}
			got, warnings := validateOne(t, files, manifest.ServingPolicy{}, tc.canary)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") || len(warnings) > 0 {
				t.Fatalf("problems:\n%s\nwarnings: %v\nwant:\n%s", strings.Join(got, "\n"), warnings, strings.Join(tc.want, "\n"))
			}
		})
	}
}

// A remote base the repository permits cannot be rendered offline: it is a
// warning, and nothing is fetched or run to find out more.
func TestValidateServingFetchesNothing(t *testing.T) {
	trap := newProcessTrap(t, "")
	files := modelFiles(nil, "churn", "", "")
	files["models/churn/serving/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources:\n- isvc.yaml\n- https://bases.example.com/org/repo//base?ref=v1&submodules=false\n")}
	policy := manifest.ServingPolicy{AllowRemoteBases: true, RemoteBaseHosts: []string{"bases.example.com"}}
	problems, warnings := validateOne(t, files, policy, "")
	if len(problems) > 0 || len(warnings) != 1 || !strings.Contains(warnings[0], "render needs remote references") ||
		!strings.Contains(warnings[0], "https://bases.example.com/org/repo//base") {
		t.Fatalf("problems %v warnings %v, want one warning about the remote base", problems, warnings)
	}
	if ran := trap.ran(t); ran != "" {
		t.Fatalf("validate ran processes: %s", ran)
	}
	if left := trap.leftovers(t); len(left) > 0 {
		t.Fatalf("validate left %v in the temporary directory", left)
	}
	// A remote base the repository does not permit is a problem, as in a plan.
	policy.RemoteBaseHosts = nil
	problems, _ = validateOne(t, files, policy, "")
	if len(problems) != 1 || !strings.HasPrefix(problems[0], "models/churn/serving/kustomization.yaml:3:3: resources: ") {
		t.Fatalf("problems %v, want the refused remote base at its line", problems)
	}
}
