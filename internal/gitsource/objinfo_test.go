package gitsource

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// gitObjects lists every object of the repository at dir with git's idea
// of its type and size.
func gitObjects(t *testing.T, dir string) map[plumbing.Hash]objectInfo {
	t.Helper()
	cmd := exec.Command("git", "cat-file", "--batch-check", "--batch-all-objects")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git cat-file: %v", err)
	}
	objs := map[plumbing.Hash]objectInfo{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		typ, err := plumbing.ParseObjectType(f[1])
		if err != nil {
			t.Fatal(err)
		}
		size, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		objs[plumbing.NewHash(f[0])] = objectInfo{typ: typ, size: size}
	}
	if len(objs) < 100 {
		t.Fatalf("only %d objects in %s", len(objs), dir)
	}
	return objs
}

// Object headers read from packs (offset and reference deltas, long
// chains) and loose objects give git's types and sizes.
func TestObjectHeadersMatchGit(t *testing.T) {
	w := deltaRepo(t)
	want := gitObjects(t, w.Dir)
	check := func(t *testing.T, gitDir string) {
		st := filesystem.NewStorage(osfs.New(gitDir), cache.NewObjectLRUDefault())
		defer st.Close()
		o := newObjectHeaders(osfs.New(gitDir), st)
		defer o.close()
		deltas := 0
		for h, w := range want {
			got, err := o.info(h)
			if err != nil {
				t.Fatalf("%s: %v", h, err)
			}
			if got.typ != w.typ || got.size != w.size || got.cost < got.size {
				t.Fatalf("%s: %+v, git says %s of %d bytes", h, got, w.typ, w.size)
			}
			if got.cost > got.size {
				deltas++
			}
		}
		if _, err := o.info(plumbing.NewHash(strings.Repeat("ab", 20))); err == nil {
			t.Fatal("a missing object has a header")
		}
		t.Logf("%d objects, %d costing more than their size", len(want), deltas)
	}
	t.Run("loose", func(t *testing.T) { check(t, filepath.Join(w.Dir, ".git")) })
	for name, flags := range map[string][]string{
		"offset deltas":    {"--delta-base-offset"},
		"reference deltas": nil,
		"no deltas":        {"--depth=0"},
	} {
		t.Run(name, func(t *testing.T) {
			pack, idx := packObjects(t, w.Dir, "--all", flags...)
			dir := t.TempDir()
			base := filepath.Join(dir, "objects", "pack", "pack-test")
			if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(base+".pack", pack, 0o444); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(base+".idx", idx, 0o444); err != nil {
				t.Fatal(err)
			}
			check(t, dir)
		})
	}
}
