package deploy

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/modelsync/modelsync/internal/manifest"
)

// render builds dir (relative to deploy/) as `kustomize build` would.
func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	return renderInstall(t, dir, "")
}

// renderInstall builds what a person installing modelsync builds: a
// kustomization of their own (kustomization, YAML) next to a copy of
// deploy/, naming deploy's directories by relative path as kustomize
// requires. With kustomization empty it builds dir itself.
func renderInstall(t *testing.T, dir, kustomization string) []*unstructured.Unstructured {
	t.Helper()
	mem := filesys.MakeFsInMemory()
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return mem.WriteFile(path.Join("/deploy", filepath.ToSlash(p)), b)
	})
	if err != nil {
		t.Fatal(err)
	}
	root := path.Join("/deploy", dir)
	if kustomization != "" {
		root = "/install"
		if err := mem.WriteFile("/install/kustomization.yaml", []byte(kustomization)); err != nil {
			t.Fatal(err)
		}
	}
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, root)
	if err != nil {
		t.Fatalf("kustomize build %s: %v\n%s", dir, err, kustomization)
	}
	var objs []*unstructured.Unstructured
	for _, r := range res.Resources() {
		b, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(b); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, u)
	}
	return objs
}

func find(objs []*unstructured.Unstructured, kind, ns, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetNamespace() == ns && o.GetName() == name {
			return o
		}
	}
	return nil
}

func findKind(t *testing.T, objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d objects of kind %s, want 1", len(found), kind)
	}
	return found[0]
}

// container returns the Deployment's only container.
func container(t *testing.T, dep *unstructured.Unstructured) map[string]any {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	if len(cs) != 1 {
		t.Fatalf("Deployment %s has %d containers, want 1", dep.GetName(), len(cs))
	}
	return cs[0].(map[string]any)
}

// exampleNamespaces are the environment namespaces of manifests-example.
func exampleNamespaces(t *testing.T) []string {
	t.Helper()
	cfg, errs, err := manifest.LoadConfig(os.DirFS("../manifests-example"))
	if err != nil || len(errs) > 0 {
		t.Fatalf("manifests-example/modelsync.yaml: %v %v", err, errs)
	}
	var out []string
	for _, e := range cfg.Environments {
		out = append(out, e.Namespace)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
