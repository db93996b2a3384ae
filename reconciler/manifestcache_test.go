package reconciler

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/modelsync/modelsync/internal/manifest"
)

// hashingFS is a tree that names file contents by hash, as a Git tree
// does, and counts the model files read.
type hashingFS struct {
	fstest.MapFS
	reads *int
}

func (f hashingFS) ContentHash(name string) (string, error) {
	file, ok := f.MapFS[name]
	if !ok {
		return "", &fs.PathError{Op: "contenthash", Path: name, Err: fs.ErrNotExist}
	}
	sum := sha256.Sum256(file.Data)
	return hex.EncodeToString(sum[:]), nil
}

func (f hashingFS) ReadFile(name string) ([]byte, error) {
	if strings.HasSuffix(name, "/"+manifest.ModelFile) {
		*f.reads++
	}
	return f.MapFS.ReadFile(name)
}

type hashingSnapshot struct {
	*memSnapshot
	reads *int
}

func (s hashingSnapshot) Tree(h string) (fs.FS, error) {
	t, err := s.memSnapshot.Tree(h)
	if err != nil {
		return nil, err
	}
	return hashingFS{t.(fstest.MapFS), s.reads}, nil
}

// A pass after a push that changed one model reads that model's file
// only: every other manifest is reused by content, so the time from push
// to applied does not grow with the repository. A model's release
// commit shares the branch head's decoding when its file is the same.
func TestDesiredAfterAPushDecodesOnlyWhatChanged(t *testing.T) {
	models := map[string]string{}
	for i := range 30 {
		n := fmt.Sprintf("m%02d", i)
		models[n] = modelYAML(n, "    dev: {version: 1}\n    prod: {version: 1}")
	}
	c1 := tree(models)
	models["m07"] = modelYAML("m07", "    dev: {version: 2}\n    prod: {version: 1}")
	c2 := tree(models)
	reads := 0
	mem := &memSnapshot{commits: map[string]fstest.MapFS{"c1": c1, "c2": c2}, branches: map[string]string{"main": "c1"}}
	for i := range 30 {
		mem.tag(t, fmt.Sprintf("m%02d/v1.0.0", i), "c1")
	}
	s := hashingSnapshot{mem, &reads}
	cache := manifest.NewCache()
	if _, err := ComputeDesiredWith(s, "main", DesiredOptions{Manifests: cache}); err != nil {
		t.Fatal(err)
	}
	if reads != 30 {
		t.Errorf("first pass read %d model files, want 30 (each once: prod's release commit is the head)", reads)
	}
	reads = 0
	mem.branches["main"] = "c2"
	d, err := ComputeDesiredWith(s, "main", DesiredOptions{Manifests: cache})
	if err != nil {
		t.Fatal(err)
	}
	if reads != 1 {
		t.Errorf("the pass after a one-model push read %d model files, want 1", reads)
	}
	m, _ := d.Model("m07")
	dev, _ := m.Env("dev")
	prod, _ := m.Env("prod")
	if dev == nil || dev.Version != 2 || prod == nil || prod.Version != 1 {
		t.Errorf("m07 after the push: dev %+v prod %+v, want v2 and v1", dev, prod)
	}
	// Entries unused for two passes are dropped: memory follows the
	// repository as it is, not every content it ever had.
	for range 2 {
		if _, err := ComputeDesiredWith(s, "main", DesiredOptions{Manifests: cache}); err != nil {
			t.Fatal(err)
		}
	}
	if n := cache.Len(); n != 32 {
		t.Errorf("cache holds %d manifests after two more passes, want 32 (30 models at the head, m07 at its release, modelsync.yaml)", n)
	}
}
