package kserve

import (
	"context"
	"fmt"
	"io/fs"
	"testing/fstest"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/reconciler"
)

// artifacts is the test's registry answer: registered model and version to
// storage URI.
type artifacts map[string]string

func (a artifacts) ArtifactURI(_ context.Context, model string, version int) (string, error) {
	if u, ok := a[fmt.Sprintf("%s/%d", model, version)]; ok {
		return u, nil
	}
	return "", fmt.Errorf("no artifacts recorded for %s version %d", model, version)
}

// uriFor is the URI the tests record for a model version.
func uriFor(model string, version int) string {
	return fmt.Sprintf("s3://models/%s/%d/artifacts", model, version)
}

func artifactsFor(models []string, versions int) artifacts {
	a := artifacts{}
	for _, m := range models {
		for v := 1; v <= versions; v++ {
			a[fmt.Sprintf("%s/%d", m, v)] = uriFor(m, v)
		}
	}
	return a
}

// isvcYAML is a kustomize base InferenceService; name and mode may be empty.
func isvcYAML(name, mode string) string {
	s := "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n"
	if name != "" {
		s += "  name: " + name + "\n"
	}
	if mode != "" {
		s += "  annotations:\n    serving.kserve.io/deploymentMode: " + mode + "\n"
	}
	return s + `spec:
  predictor:
    minReplicas: 1
    model:
      modelFormat:
        name: placeholder
`
}

// modelFiles adds a model folder with a plain kustomize base to fsys.
func modelFiles(fsys fstest.MapFS, model, isvcName, mode string) fstest.MapFS {
	if fsys == nil {
		fsys = fstest.MapFS{}
	}
	fsys["models/"+model+"/model.yaml"] = &fstest.MapFile{Data: []byte("kind: Model\n")}
	fsys["models/"+model+"/serving/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources:\n- isvc.yaml\n")}
	fsys["models/"+model+"/serving/isvc.yaml"] = &fstest.MapFile{Data: []byte(isvcYAML(isvcName, mode))}
	return fsys
}

func testConfig(envs map[string]string) *manifest.RepoConfig {
	cfg := &manifest.RepoConfig{APIVersion: manifest.APIVersion, Kind: manifest.KindRepository}
	for _, name := range sortedEnvNames(envs) {
		cfg.Environments = append(cfg.Environments, manifest.Environment{Name: name, Namespace: envs[name], Source: "main"})
	}
	return cfg
}

func sortedEnvNames(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sortStrings(out)
	return out
}

func desiredEnv(env, ns string, version int, files fs.FS, model string) reconciler.DesiredEnv {
	return reconciler.DesiredEnv{
		Environment: env,
		Namespace:   ns,
		Alias:       env,
		Version:     version,
		Serving:     reconciler.DesiredServing{Dir: "models/" + model + "/serving", ModelFormat: "sklearn", Runtime: "kserve-sklearnserver"},
		Revision:    "main@sha1:0123456789abcdef0123456789abcdef01234567",
		Files:       files,
	}
}

func withCanary(e reconciler.DesiredEnv, version, weight int) reconciler.DesiredEnv {
	e.Canary = &reconciler.DesiredCanary{Version: version, Alias: e.Alias + "-canary", Weight: weight}
	return e
}

func desiredModel(name string, envs ...reconciler.DesiredEnv) reconciler.DesiredModel {
	return reconciler.DesiredModel{Name: name, RegisteredModel: name, Owners: []string{"alice"}, Environments: envs}
}
