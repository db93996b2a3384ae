package manifest

import (
	"os"
	"testing"
	"testing/fstest"
)

// FuzzLoadModel feeds arbitrary bytes to the model parser: it must never
// panic, and a file it accepts must satisfy the invariants validation
// promises.
func FuzzLoadModel(f *testing.F) {
	f.Add([]byte(goodModel))
	for _, name := range []string{"customer-churn-predictor", "llama2-7b-alpaca"} {
		if b, err := os.ReadFile("../../manifests-example/models/" + name + "/model.yaml"); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("spec: {environments: {dev: {version: 1e400}}}\n"))
	f.Add([]byte("---\n---\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := fstest.MapFS{
			"models/churn/model.yaml":                 {Data: data},
			"models/churn/serving/kustomization.yaml": {Data: []byte("resources: []\n")},
		}
		cfg := &RepoConfig{Environments: []Environment{{Name: "dev", Namespace: "d", Source: "main"}, {Name: "prod", Namespace: "p", Source: SourceReleases}}}
		m, _, errs, err := LoadModel(fsys, "churn", cfg)
		if err != nil {
			t.Fatalf("filesystem error from an in-memory file: %v", err)
		}
		if len(errs) > 0 {
			for _, e := range errs {
				if e.File != "models/churn/model.yaml" || e.Message == "" {
					t.Fatalf("problem without file or message: %+v", e)
				}
			}
			return
		}
		if m.Metadata.Name != "churn" {
			t.Fatalf("accepted a model named %q in folder churn", m.Metadata.Name)
		}
		for env, spec := range m.Spec.Environments {
			if spec.Version <= 0 {
				t.Fatalf("accepted version %d in %s", spec.Version, env)
			}
			if c := spec.Canary; c != nil {
				for i := 1; i < len(c.Steps); i++ {
					if c.Steps[i] <= c.Steps[i-1] {
						t.Fatalf("accepted non-ascending steps %v", c.Steps)
					}
				}
			}
		}
	})
}
