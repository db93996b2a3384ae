package reconciler_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/repo"
	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/test/testenv"
)

// A model is reused by its folder's tree hash only when nothing it reads
// goes through a symbolic link: a link's target lies outside what that
// hash names, so a commit that changes only the target must be read
// again. A plain model folder next to it keeps being reused.
func TestFolderReuseFollowsLinkTargets(t *testing.T) {
	w := testenv.NewWorkdir(t, "")
	w.WriteFile("modelsync.yaml", "apiVersion: modelsync.dev/v1alpha1\nkind: Repository\nenvironments:\n  - {name: dev, namespace: models-dev, source: main}\n")
	model := func(name string, version string) string {
		return "apiVersion: modelsync.dev/v1alpha1\nkind: Model\nmetadata: {name: " + name + "}\nspec:\n  owners: [alice]\n  environments:\n    dev: {version: " + version + "}\n  serving: {path: serving, modelFormat: sklearn}\n"
	}
	w.WriteFile("shared/linked.yaml", model("linked", "1"))
	w.WriteFile("shared/serving/kustomization.yaml", "resources: []\n")
	w.WriteFile("models/plain/model.yaml", model("plain", "1"))
	w.WriteFile("models/plain/serving/kustomization.yaml", "resources: []\n")
	w.WriteFile("models/other/model.yaml", model("other", "1"))
	w.WriteFile("models/other/serving/kustomization.yaml", "resources: []\n")
	for link, target := range map[string]string{"models/linked/model.yaml": "../../shared/linked.yaml", "models/linked/serving": "../../shared/serving"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(w.Dir, link)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(w.Dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	w.Commit("seed")
	r, err := repo.New(context.Background(), repo.Options{URL: w.Dir, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	cache := manifest.NewCache()
	pass := func() *reconciler.DesiredState {
		t.Helper()
		snap, err := r.Sync(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		d, err := reconciler.ComputeDesiredWith(snap, "main", reconciler.DesiredOptions{Manifests: cache})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	version := func(d *reconciler.DesiredState, name string) int {
		t.Helper()
		m, ok := d.Model(name)
		if !ok {
			t.Fatalf("model %s missing; errors %v", name, d.Errors)
		}
		return m.Environments[0].Version
	}
	d := pass()
	if version(d, "linked") != 1 || version(d, "plain") != 1 || len(d.Errors) != 0 {
		t.Fatalf("first pass: %+v", d)
	}
	first := d.Models
	// Only the link targets change: models/linked keeps its tree hash.
	w.WriteFile("shared/linked.yaml", model("linked", "2"))
	w.WriteFile("models/other/model.yaml", model("other", "2"))
	w.Commit("bump the linked model")
	d = pass()
	if got := version(d, "linked"); got != 2 {
		t.Errorf("after its link target changed, linked runs v%d in dev, want v2", got)
	}
	if got := version(d, "other"); got != 2 {
		t.Errorf("after its file changed, other runs v%d in dev, want v2", got)
	}
	plainBefore, _ := (&reconciler.DesiredState{Models: first}).Model("plain")
	plainAfter, _ := d.Model("plain")
	if plainBefore.Manifest != plainAfter.Manifest {
		t.Error("the unchanged plain model was decoded again, want it reused by its folder")
	}
	w.Remove("shared/serving/kustomization.yaml")
	w.WriteFile("shared/serving/other.yaml", "x: 1\n")
	w.Commit("drop the linked kustomization")
	d = pass()
	if len(d.Errors) != 1 || d.Errors[0].Model != "linked" || !strings.Contains(d.Errors[0].Message, "expected a kustomization.yaml") {
		t.Errorf("after the linked serving directory lost its kustomization: errors %+v, want one about linked's kustomization", d.Errors)
	}
}
