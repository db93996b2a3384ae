package kserve

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/reconciler"
)

func renderOne(t *testing.T, files fstest.MapFS, env reconciler.DesiredEnv, policy manifest.ServingPolicy) (*Rendered, error) {
	t.Helper()
	m := desiredModel("churn", env)
	return Render(context.Background(), &m, &m.Environments[0], policy, artifactsFor([]string{"churn"}, 5))
}

func nested(t *testing.T, o *unstructured.Unstructured, path ...string) any {
	t.Helper()
	v, found, err := unstructured.NestedFieldNoCopy(o.Object, path...)
	if err != nil || !found {
		t.Fatalf("%s not found in %v (err %v)", strings.Join(path, "."), o.Object, err)
	}
	return v
}

func TestRenderSetsWhatGitDecides(t *testing.T) {
	files := modelFiles(nil, "churn", "", "")
	r, err := renderOne(t, files, desiredEnv("prod", "ml-prod", 3, files, "churn"), manifest.ServingPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	o := r.InferenceService
	if o.GetName() != "churn" || o.GetNamespace() != "ml-prod" {
		t.Errorf("got %s/%s, want ml-prod/churn", o.GetNamespace(), o.GetName())
	}
	if got := nested(t, o, "spec", "predictor", "model", "storageUri"); got != uriFor("churn", 3) {
		t.Errorf("storageUri = %v", got)
	}
	if got := nested(t, o, "spec", "predictor", "model", "modelFormat", "name"); got != "sklearn" {
		t.Errorf("modelFormat.name = %v", got)
	}
	if got := nested(t, o, "spec", "predictor", "model", "runtime"); got != "kserve-sklearnserver" {
		t.Errorf("runtime = %v", got)
	}
	if got := nested(t, o, "spec", "predictor", "minReplicas"); got != int64(1) {
		t.Errorf("minReplicas from the base = %#v, want int64(1)", got)
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(o.Object, "spec", "predictor", "canaryTrafficPercent"); found {
		t.Error("canaryTrafficPercent set without a canary")
	}
	wantLabels := map[string]string{LabelManagedBy: "modelsync", LabelModel: "churn", LabelEnvironment: "prod", LabelVersion: "3"}
	for k, v := range wantLabels {
		if o.GetLabels()[k] != v {
			t.Errorf("label %s = %q, want %q", k, o.GetLabels()[k], v)
		}
	}
	if got := o.GetAnnotations()[AnnotationRevision]; got != "main@sha1:0123456789abcdef0123456789abcdef01234567" {
		t.Errorf("revision annotation = %q", got)
	}
	if r.BuildDir != "models/churn/serving" {
		t.Errorf("BuildDir = %q", r.BuildDir)
	}
}

func TestRenderKeepsNameFromBaseAndUsesOverlay(t *testing.T) {
	files := modelFiles(nil, "churn", "churn-predictor", "")
	files["models/churn/serving/overlays/prod/kustomization.yaml"] = &fstest.MapFile{Data: []byte(`resources:
- ../../isvc.yaml
patches:
- path: replicas.yaml
`)}
	files["models/churn/serving/overlays/prod/replicas.yaml"] = &fstest.MapFile{Data: []byte(`apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: churn-predictor
spec:
  predictor:
    minReplicas: 4
`)}
	r, err := renderOne(t, files, desiredEnv("prod", "ml-prod", 2, files, "churn"), manifest.ServingPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "churn-predictor" {
		t.Errorf("name = %q, want the base's churn-predictor", r.Name)
	}
	if r.BuildDir != "models/churn/serving/overlays/prod" {
		t.Errorf("BuildDir = %q", r.BuildDir)
	}
	if got := nested(t, r.InferenceService, "spec", "predictor", "minReplicas"); got != int64(4) {
		t.Errorf("minReplicas = %v, want the overlay's 4", got)
	}
	// Another environment has no overlay and builds the base.
	r, err = renderOne(t, files, desiredEnv("dev", "ml-dev", 2, files, "churn"), manifest.ServingPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	if got := nested(t, r.InferenceService, "spec", "predictor", "minReplicas"); got != int64(1) {
		t.Errorf("dev minReplicas = %v, want the base's 1", got)
	}
}

func TestRenderOverlayBesideBase(t *testing.T) {
	files := fstest.MapFS{
		"models/churn/serving/base/kustomization.yaml": {Data: []byte("resources:\n- isvc.yaml\n")},
		"models/churn/serving/base/isvc.yaml":          {Data: []byte(isvcYAML("", ""))},
		"models/churn/serving/overlays/staging/kustomization.yaml": {Data: []byte(`resources:
- ../../base
patches:
- target: {kind: InferenceService}
  patch: |
    - op: replace
      path: /spec/predictor/minReplicas
      value: 2
`)},
	}
	env := desiredEnv("staging", "ml-staging", 1, files, "churn")
	env.Serving.Dir = "models/churn/serving/base"
	r, err := renderOne(t, files, env, manifest.ServingPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	if r.BuildDir != "models/churn/serving/overlays/staging" || r.Name != "churn" {
		t.Errorf("BuildDir %q name %q", r.BuildDir, r.Name)
	}
	if got := nested(t, r.InferenceService, "spec", "predictor", "minReplicas"); got != int64(2) {
		t.Errorf("minReplicas = %v, want the overlay's 2", got)
	}
}

func TestRenderCanary(t *testing.T) {
	files := modelFiles(nil, "churn", "", "")
	r, err := renderOne(t, files, withCanary(desiredEnv("prod", "ml-prod", 2, files, "churn"), 3, 10), manifest.ServingPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	if got := nested(t, r.InferenceService, "spec", "predictor", "model", "storageUri"); got != uriFor("churn", 3) {
		t.Errorf("storageUri = %v, want the canary's", got)
	}
	if got := nested(t, r.InferenceService, "spec", "predictor", "canaryTrafficPercent"); got != int64(10) {
		t.Errorf("canaryTrafficPercent = %#v", got)
	}
	if r.StableURI != uriFor("churn", 2) || r.CanaryURI != uriFor("churn", 3) || r.InferenceService.GetLabels()[LabelVersion] != "3" {
		t.Errorf("stable %s canary %s label %s", r.StableURI, r.CanaryURI, r.InferenceService.GetLabels()[LabelVersion])
	}
	_, err = renderOne(t, files, withCanary(desiredEnv("prod", "ml-prod", 2, files, "churn"), 3, 101), manifest.ServingPolicy{})
	if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), "0..100") {
		t.Errorf("weight 101: got %v", err)
	}
}

func TestRenderRefusals(t *testing.T) {
	cases := []struct {
		name   string
		edit   func(fstest.MapFS)
		policy manifest.ServingPolicy
		want   error
		text   string
	}{
		{
			name: "resource escaping the model folder",
			edit: func(f fstest.MapFS) {
				modelFiles(f, "other", "", "")
				f["models/churn/serving/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources:\n- isvc.yaml\n- ../../other/serving\n")}
			},
			want: ErrOutsideModel, text: `resources "../../other/serving" resolves to models/other/serving, outside models/churn/`,
		},
		{
			name: "patch file escaping the repository",
			edit: func(f fstest.MapFS) {
				f["models/churn/serving/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources:\n- isvc.yaml\npatches:\n- path: ../../../../etc/passwd\n")}
			},
			want: ErrOutsideModel, text: "patches.path",
		},
		{
			name: "absolute path",
			edit: func(f fstest.MapFS) {
				f["models/churn/serving/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources:\n- /models/churn/serving/isvc.yaml\n")}
			},
			want: ErrOutsideModel, text: "is an absolute path",
		},
		{
			name: "symlink leaving the model folder",
			edit: func(f fstest.MapFS) {
				modelFiles(f, "other", "", "")
				f["models/churn/serving/isvc.yaml"] = &fstest.MapFile{Mode: fs.ModeSymlink, Data: []byte("../../other/serving/isvc.yaml")}
			},
			want: ErrOutsideModel, text: "symlink models/churn/serving/isvc.yaml resolves to models/other/serving/isvc.yaml",
		},
		{
			name: "absolute symlink",
			edit: func(f fstest.MapFS) {
				f["models/churn/serving/isvc.yaml"] = &fstest.MapFile{Mode: fs.ModeSymlink, Data: []byte("/etc/passwd")}
			},
			want: ErrOutsideModel, text: "absolute path /etc/passwd",
		},
		{
			name: "remote base",
			edit: func(f fstest.MapFS) {
				f["models/churn/serving/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources:\n- isvc.yaml\n- github.com/example/serving//base?ref=v1\n")}
			},
			want: ErrRemoteBase, text: `resources "github.com/example/serving//base?ref=v1" is not a plain local path`,
		},
		{
			name: "remote file over https",
			edit: func(f fstest.MapFS) {
				f["models/churn/serving/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources:\n- https://example.com/isvc.yaml\n")}
			},
			want: ErrRemoteBase,
		},
		{
			name: "kind not in extraKinds",
			edit: func(f fstest.MapFS) {
				f["models/churn/serving/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources:\n- isvc.yaml\n- cm.yaml\n")}
				f["models/churn/serving/cm.yaml"] = &fstest.MapFile{Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: churn-config\ndata:\n  a: b\n")}
			},
			policy: manifest.ServingPolicy{ExtraKinds: []string{"Secret"}},
			want:   ErrKindNotAllowed, text: `ConfigMap "churn-config"; list it in serving.extraKinds`,
		},
		{
			name: "two InferenceServices",
			edit: func(f fstest.MapFS) {
				f["models/churn/serving/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources:\n- isvc.yaml\n- second.yaml\n")}
				f["models/churn/serving/second.yaml"] = &fstest.MapFile{Data: []byte(isvcYAML("churn-b", ""))}
			},
			want: ErrInferenceServiceCount, text: "yields 2",
		},
		{
			name: "legacy predictor",
			edit: func(f fstest.MapFS) {
				f["models/churn/serving/isvc.yaml"] = &fstest.MapFile{Data: []byte("apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: churn\nspec:\n  predictor:\n    sklearn:\n      storageUri: s3://x\n")}
			},
			want: ErrInvalidSpec, text: "spec.predictor.sklearn",
		},
		{
			name: "canary percentage in the kustomization",
			edit: func(f fstest.MapFS) {
				f["models/churn/serving/isvc.yaml"] = &fstest.MapFile{Data: []byte(strings.Replace(isvcYAML("churn", ""), "    minReplicas: 1\n", "    canaryTrafficPercent: 20\n", 1))}
			},
			want: ErrInvalidSpec, text: "canaryTrafficPercent comes from the canary in model.yaml",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			files := modelFiles(nil, "churn", "", "")
			tc.edit(files)
			_, err := renderOne(t, files, desiredEnv("prod", "ml-prod", 1, files, "churn"), tc.policy)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) || !strings.Contains(err.Error(), "model churn in prod") {
				t.Errorf("error %q should name the model, environment and %q", err, tc.text)
			}
		})
	}
}

func TestRenderFollowsSymlinksInsideTheModel(t *testing.T) {
	files := modelFiles(nil, "churn", "", "")
	files["models/churn/shared/isvc.yaml"] = files["models/churn/serving/isvc.yaml"]
	files["models/churn/serving/isvc.yaml"] = &fstest.MapFile{Mode: fs.ModeSymlink, Data: []byte("../shared/isvc.yaml")}
	r, err := renderOne(t, files, desiredEnv("prod", "ml-prod", 1, files, "churn"), manifest.ServingPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "churn" {
		t.Errorf("name %q", r.Name)
	}
}

func TestRenderAllowsListedExtraKinds(t *testing.T) {
	files := modelFiles(nil, "churn", "", "")
	files["models/churn/serving/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources:\n- isvc.yaml\n- cm.yaml\n")}
	files["models/churn/serving/cm.yaml"] = &fstest.MapFile{Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: churn-config\n  namespace: elsewhere\ndata:\n  a: b\n")}
	r, err := renderOne(t, files, desiredEnv("prod", "ml-prod", 1, files, "churn"), manifest.ServingPolicy{ExtraKinds: []string{"ConfigMap"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Extras) != 1 || r.Extras[0].GetNamespace() != "ml-prod" || r.Extras[0].GetLabels()[LabelManagedBy] != ManagedByValue {
		t.Fatalf("extras = %v", r.Extras)
	}
}

func TestRenderArtifactLookupFailureNamesVersion(t *testing.T) {
	files := modelFiles(nil, "churn", "", "")
	m := desiredModel("churn", desiredEnv("prod", "ml-prod", 9, files, "churn"))
	_, err := Render(context.Background(), &m, &m.Environments[0], manifest.ServingPolicy{}, artifacts{})
	if err == nil || !strings.Contains(err.Error(), "version 9") || !strings.Contains(err.Error(), "model churn in prod") {
		t.Fatalf("got %v", err)
	}
}

// TestRenderBuildsTheExampleRepository keeps the stricter reference rules
// honest: every model of manifests-example builds in every environment.
func TestRenderBuildsTheExampleRepository(t *testing.T) {
	files := os.DirFS(filepath.Join("..", "..", "..", "manifests-example"))
	models, err := fs.ReadDir(files, manifest.ModelsDir)
	if err != nil {
		t.Fatal(err)
	}
	build := Config{}.renderLimits().build
	for _, m := range models {
		for _, env := range []string{"dev", "staging", "prod"} {
			root := path.Join(manifest.ModelsDir, m.Name())
			objs, buildDir, err := build(files, root, path.Join(root, "serving", "base"), env, manifest.ServingPolicy{})
			if err != nil || len(objs) == 0 {
				t.Errorf("%s in %s: %d objects from %s, %v", m.Name(), env, len(objs), buildDir, err)
			}
		}
	}
}
