package gitsource_test

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/modelsync/modelsync/internal/gitsource"
	"github.com/modelsync/modelsync/test/testenv"
)

func symlink(t *testing.T, w *testenv.Workdir, target, rel string) {
	t.Helper()
	p := filepath.Join(w.Dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// treeRepo builds a commit with files, an executable, and in-repo symbolic
// links to a file and to a directory, then a second commit that adds links
// leaving the repository and a link loop.
func treeRepo(t *testing.T) (src *gitsource.Source, clean, hostile string) {
	t.Helper()
	return treeRepoCache(t, 0)
}

// treeRepoCache is treeRepo with a given Options.CacheSize.
func treeRepoCache(t *testing.T, cacheSize int64) (src *gitsource.Source, clean, hostile string) {
	t.Helper()
	w := testenv.NewWorkdir(t, "")
	w.WriteFile("modelsync.yaml", "environments: [dev]\n")
	w.WriteFile("models/churn/model.yaml", "name: churn\n")
	w.WriteFile("models/churn/serving/kustomization.yaml", "resources: [../../../shared/base]\n")
	w.WriteFile("shared/base/kustomization.yaml", "resources: [isvc.yaml]\n")
	w.WriteFile("shared/base/isvc.yaml", "kind: InferenceService\n")
	w.WriteFile("tools/run.sh", "#!/bin/sh\n")
	if err := os.Chmod(filepath.Join(w.Dir, "tools/run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	symlink(t, w, "../../shared/base", "models/churn/base")
	symlink(t, w, "model.yaml", "models/churn/alias.yaml")
	symlink(t, w, "models/churn/base", "base-link") // link to a link
	clean = w.Commit("tree")

	symlink(t, w, "../../../outside", "models/churn/escape")
	symlink(t, w, "../inside-but-missing", "models/churn/dangling")
	symlink(t, w, "/etc/passwd", "abs")
	symlink(t, w, "loop-b", "loop-a")
	symlink(t, w, "loop-a", "loop-b")
	hostile = w.Commit("hostile links")

	src, err := gitsource.Open(t.Context(), gitsource.Options{URL: w.Dir, CacheDir: t.TempDir(), CacheSize: cacheSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	mustSync(t, src)
	return src, clean, hostile
}

func TestTreeFSConformance(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cacheSize int64
	}{
		{"default caches", 0},
		// Every directory and object is read from the pack each time.
		{"caches too small for any object", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, clean, _ := treeRepoCache(t, tc.cacheSize)
			fsys, err := src.Tree(clean)
			if err != nil {
				t.Fatal(err)
			}
			if err := fstest.TestFS(fsys,
				"modelsync.yaml", "models/churn/model.yaml", "models/churn/serving/kustomization.yaml",
				"shared/base/isvc.yaml", "tools/run.sh", "models/churn/alias.yaml", "models/churn/base", "base-link",
			); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestTreeFSContentAndModes(t *testing.T) {
	src, clean, _ := treeRepo(t)
	fsys, err := src.Tree(clean)
	if err != nil {
		t.Fatal(err)
	}
	tfs := fsys.(*gitsource.TreeFS)
	if tfs.Commit() != clean {
		t.Fatalf("Commit() = %s, want %s", tfs.Commit(), clean)
	}

	b, err := fs.ReadFile(fsys, "models/churn/model.yaml")
	if err != nil || string(b) != "name: churn\n" {
		t.Fatalf("ReadFile = %q, %v", b, err)
	}
	// Through a directory symlink and a link to a link.
	for _, p := range []string{"models/churn/base/isvc.yaml", "base-link/isvc.yaml"} {
		if b, err := fs.ReadFile(fsys, p); err != nil || string(b) != "kind: InferenceService\n" {
			t.Fatalf("ReadFile(%s) = %q, %v", p, b, err)
		}
	}

	entries, err := fs.ReadDir(fsys, "models/churn")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	types := map[string]fs.FileMode{}
	for _, e := range entries {
		names = append(names, e.Name())
		types[e.Name()] = e.Type()
	}
	if !slices.Equal(names, []string{"alias.yaml", "base", "model.yaml", "serving"}) {
		t.Fatalf("ReadDir names = %v", names)
	}
	if types["base"] != fs.ModeSymlink || types["alias.yaml"] != fs.ModeSymlink || types["serving"] != fs.ModeDir || types["model.yaml"] != 0 {
		t.Fatalf("ReadDir types = %v", types)
	}

	st, err := fs.Stat(fsys, "tools/run.sh")
	if err != nil || st.Mode() != 0o555 || st.Size() != int64(len("#!/bin/sh\n")) {
		t.Fatalf("Stat(run.sh) = %v, %v", st, err)
	}
	if st, err := fs.Stat(fsys, "models/churn/base"); err != nil || !st.IsDir() {
		t.Fatalf("Stat follows directory links: %v, %v", st, err)
	}
	lst, err := fs.Lstat(fsys, "models/churn/base")
	if err != nil || lst.Mode()&fs.ModeSymlink == 0 || lst.Size() != int64(len("../../shared/base")) {
		t.Fatalf("Lstat(base) = %v, %v", lst, err)
	}
	if target, err := fs.ReadLink(fsys, "models/churn/base"); err != nil || target != "../../shared/base" {
		t.Fatalf("ReadLink = %q, %v", target, err)
	}
	if _, err := fs.ReadLink(fsys, "models/churn/model.yaml"); !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("ReadLink on a regular file = %v, want ErrInvalid", err)
	}

	for _, p := range []string{"missing.yaml", "models/churn/model.yaml/x", "models/nope/model.yaml"} {
		if _, err := fsys.Open(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(%s) = %v, want ErrNotExist", p, err)
		}
	}
	for _, p := range []string{"/modelsync.yaml", "../x", "models//churn", "models/churn/"} {
		if _, err := fsys.Open(p); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Open(%q) = %v, want ErrInvalid", p, err)
		}
	}
	if _, err := fs.ReadFile(fsys, "models"); err == nil {
		t.Fatal("ReadFile of a directory succeeded")
	}

	f, err := fsys.Open("models")
	if err != nil {
		t.Fatal(err)
	}
	dir := f.(fs.ReadDirFile)
	first, err := dir.ReadDir(1)
	if err != nil || len(first) != 1 || first[0].Name() != "churn" {
		t.Fatalf("ReadDir(1) = %v, %v", first, err)
	}
	if rest, err := dir.ReadDir(1); len(rest) != 0 || err != io.EOF {
		t.Fatalf("ReadDir at end = %v, %v; want io.EOF", rest, err)
	}
}

func TestTreeFSRefusesEscapingLinks(t *testing.T) {
	src, _, hostile := treeRepo(t)
	fsys, err := src.Tree(hostile)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"models/churn/escape", "models/churn/escape/x", "abs"} {
		if _, err := fsys.Open(p); !errors.Is(err, gitsource.ErrSymlinkEscapesRepo) {
			t.Errorf("Open(%s) = %v, want ErrSymlinkEscapesRepo", p, err)
		}
		if _, err := fs.ReadFile(fsys, p); !errors.Is(err, gitsource.ErrSymlinkEscapesRepo) {
			t.Errorf("ReadFile(%s) = %v, want ErrSymlinkEscapesRepo", p, err)
		}
		if _, err := fs.Stat(fsys, p); !errors.Is(err, gitsource.ErrSymlinkEscapesRepo) {
			t.Errorf("Stat(%s) = %v, want ErrSymlinkEscapesRepo", p, err)
		}
	}
	// The link itself remains visible so a renderer can explain the refusal.
	if target, err := fs.ReadLink(fsys, "abs"); err != nil || target != "/etc/passwd" {
		t.Fatalf("ReadLink(abs) = %q, %v", target, err)
	}
	if st, err := fs.Lstat(fsys, "models/churn/escape"); err != nil || st.Mode().Type() != fs.ModeSymlink {
		t.Fatalf("Lstat(escape) = %v, %v", st, err)
	}
	if _, err := fsys.Open("models/churn/dangling"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open(dangling in-repo link) = %v, want ErrNotExist", err)
	}
	if _, err := fsys.Open("loop-a"); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open(loop) = %v, want a link-loop error", err)
	}
}

// A TreeFS stays usable while the Source syncs; go-git storage is not
// concurrency-safe, so this exercises the shared lock under -race.
func TestTreeFSConcurrentWithSync(t *testing.T) {
	w := testenv.NewWorkdir(t, "")
	head := seedModels(w)
	src := openSource(t, w.Dir, 0)
	mustSync(t, src)
	fsys, err := src.Tree(head)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		w.WriteFile("models/churn/model.yaml", "name: churn\nrev: "+string(rune('0'+i))+"\n")
		w.Commit("rev")
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				b, err := fs.ReadFile(fsys, "models/churn/serving/isvc.yaml")
				if err != nil || string(b) != "kind: InferenceService\n" {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := src.Sync(t.Context()); err != nil {
			errs <- err
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
