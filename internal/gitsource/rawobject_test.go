package gitsource

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/modelsync/modelsync/test/testenv"
)

// rawRepo commits many versions of model folders, a models/ directory
// large enough for the large-directory path (over minPackedTree), a card
// that grows and a file that shrinks, an executable, an empty file and
// links, then repacks with deep delta chains.
func rawRepo(t *testing.T) *testenv.Workdir {
	t.Helper()
	w := testenv.NewWorkdir(t, "")
	var card strings.Builder
	for rev := range 24 {
		for m := range 480 {
			if rev == 0 || m%12 == rev%12 {
				w.WriteFile(fmt.Sprintf("models/model-%04d/model.yaml", m),
					fmt.Sprintf("name: model-%04d\nowner: team-%d\nenvironments:\n  dev: {version: %d}\n  prod: {version: %d}\n", m, m%7, rev+1, rev))
			}
		}
		w.WriteFile(fmt.Sprintf("models/model-%04d/serving/isvc.yaml", rev), fmt.Sprintf("kind: InferenceService\nrev: %d\n", rev))
		fmt.Fprintf(&card, "line %d of the model card, long enough to be worth a delta\n", rev)
		w.WriteFile("README.md", strings.Repeat(card.String(), 20))
		w.WriteFile("shrinks", strings.Repeat("x", 20000-rev*800))
		w.WriteFile("empty", "")
		w.Commit(fmt.Sprint("rev ", rev))
	}
	w.WriteFile("tools/run.sh", "#!/bin/sh\n")
	if err := os.Chmod(filepath.Join(w.Dir, "tools/run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../README.md", filepath.Join(w.Dir, "tools/readme")); err != nil {
		t.Fatal(err)
	}
	w.Commit("tools")
	w.Run("repack", "-adfq", "--depth=50", "--window=50")
	return w
}

// catFileBatch reads objects with git cat-file --batch.
func catFileBatch(t *testing.T, dir string, hashes []string) map[string][]byte {
	t.Helper()
	cmd := exec.Command("git", "cat-file", "--batch")
	cmd.Dir, cmd.Stdin = dir, strings.NewReader(strings.Join(hashes, "\n")+"\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git cat-file: %v", err)
	}
	r := bufio.NewReader(bytes.NewReader(out))
	got := map[string][]byte{}
	for range hashes {
		head, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(head)
		size, err := strconv.Atoi(f[2])
		if err != nil {
			t.Fatal(head)
		}
		body := make([]byte, size+1)
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatal(err)
		}
		got[f[0]] = body[:size]
	}
	return got
}

// lsEntry is one line of git ls-tree.
type lsEntry struct{ mode, typ, hash, path string }

func lsTree(t *testing.T, dir, commit string) []lsEntry {
	t.Helper()
	cmd := exec.Command("git", "ls-tree", "-r", "-t", "-z", "--full-tree", commit)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-tree: %v", err)
	}
	var entries []lsEntry
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00") {
		meta, p, _ := strings.Cut(line, "\t")
		f := strings.Fields(meta)
		entries = append(entries, lsEntry{f[0], f[1], f[2], p})
	}
	return entries
}

// Every file, link and directory of every commit reads through TreeFS as
// git cat-file and git ls-tree show it: packed objects with delta chains
// over 20 deep (read from the pack by TreeFS itself) and loose ones
// (through go-git), and every directory decodes as go-git decodes it.
func TestTreeFSReadsPackedAndLooseLikeGit(t *testing.T) {
	w := rawRepo(t)
	src := syncedSource(t, w.Dir)
	// Loose objects in the cache: a small fetch is unpacked by git
	// (fetch.unpackLimit), so the last commit's new objects are loose.
	w.WriteFile("models/model-0001/model.yaml", "name: model-0001\nloose: true\n")
	w.WriteFile("models/model-9999/model.yaml", "name: model-9999\n")
	loose := w.Commit("loose")
	fetch := exec.Command("git", "fetch", "-q", w.Dir, "main")
	fetch.Dir = src.Dir()
	if out, err := fetch.CombinedOutput(); err != nil {
		t.Fatalf("git fetch: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(src.Dir(), "objects", loose[:2], loose[2:])); err != nil {
		t.Fatalf("the last commit is not a loose object: %v", err)
	}
	verify := exec.Command("git", "verify-pack", "-v")
	packs, _ := filepath.Glob(filepath.Join(src.Dir(), "objects", "pack", "*.idx"))
	verify.Args = append(verify.Args, packs...)
	vp, err := verify.Output()
	if err != nil {
		t.Fatal(err)
	}
	deepest := 0
	for _, line := range strings.Split(string(vp), "\n") {
		if n, ok := strings.CutPrefix(line, "chain length = "); ok {
			d, _ := strconv.Atoi(strings.Split(n, ":")[0])
			deepest = max(deepest, d)
		}
	}
	if deepest < 20 {
		t.Fatalf("the deepest delta chain of the pack is %d long, want 20 or more", deepest)
	}
	t.Logf("deepest delta chain: %d", deepest)

	commits := strings.Fields(string(must(exec.Command("git", "-C", src.Dir(), "rev-list", "--all", loose).Output())))
	for _, c := range commits {
		entries := lsTree(t, src.Dir(), c)
		var hashes []string
		for _, e := range entries {
			hashes = append(hashes, e.hash)
		}
		want := catFileBatch(t, src.Dir(), hashes)
		fsys, err := src.Tree(c)
		if err != nil {
			t.Fatal(err)
		}
		tfs := fsys.(*TreeFS)
		children := map[string][]string{".": nil}
		for _, e := range entries {
			dir := path.Dir(e.path)
			children[dir] = append(children[dir], path.Base(e.path)+" "+e.mode)
			switch {
			case e.typ == "tree":
				children[e.path] = children[e.path][:0:0]
			case e.mode == "120000":
				got, err := tfs.ReadLink(e.path)
				if err != nil || got != string(want[e.hash]) {
					t.Fatalf("%s at %s: link %q, %v; git has %q", e.path, c, got, err, want[e.hash])
				}
			default:
				got, err := tfs.ReadFile(e.path)
				if err != nil || !bytes.Equal(got, want[e.hash]) {
					t.Fatalf("%s at %s: %d bytes, %v; git has %d", e.path, c, len(got), err, len(want[e.hash]))
				}
				if h, err := tfs.ContentHash(e.path); err != nil || h != e.hash {
					t.Fatalf("%s at %s: hash %s, %v; git has %s", e.path, c, h, err, e.hash)
				}
			}
		}
		for dir, names := range children {
			list, err := tfs.ReadDir(dir)
			if err != nil {
				t.Fatalf("%s at %s: %v", dir, c, err)
			}
			var got []string
			for _, d := range list {
				fi, err := d.Info()
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, d.Name()+" "+gitMode(fi.Mode()))
			}
			slices.Sort(names)
			if strings.Join(got, ",") != strings.Join(names, ",") {
				t.Fatalf("%s at %s: TreeFS lists %v, git %v", dir, c, got, names)
			}
		}
	}
	// Each directory decoded by hand is the one go-git decodes.
	src.mu.Lock()
	defer src.mu.Unlock()
	for h := range src.trees.byHash {
		ours, _ := src.trees.get(h)
		theirs, err := object.GetTree(src.repo.Storer, h)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(ours.Entries) != fmt.Sprint(theirs.Entries) {
			t.Fatalf("tree %s: decoded %v, go-git %v", h, ours.Entries, theirs.Entries)
		}
	}
	// The packed objects went the raw way (go-git would leave these empty).
	if src.bodies.order.Len() == 0 || src.raw.slots == nil {
		t.Fatalf("no object was read from the packs directly: %d small, %d large", src.bodies.order.Len(), len(src.raw.slots))
	}
}

func gitMode(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "040000"
	case m&fs.ModeSymlink != 0:
		return "120000"
	case m&0o111 != 0:
		return "100755"
	}
	return "100644"
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// A packed blob larger than the limit, or stored as a delta whose reading
// takes more than the limit, is refused before it is read, by TreeFS and
// by the pack reader itself.
func TestPackedReadsRefuseOversized(t *testing.T) {
	w := rawRepo(t)
	src, err := Open(t.Context(), Options{URL: w.Dir, CacheDir: t.TempDir(), MaxBlobSize: 4000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	if _, err := src.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The oldest "shrinks" is the largest, 20,000 bytes; the newest,
	// 1,600 bytes, is kept whole or as a delta: either way the older
	// ones are deltas of over 4,000 bytes of result.
	fsys, err := src.Tree(w.Run("rev-list", "--max-parents=0", "HEAD"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs.ReadFile(fsys, "shrinks"); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("20,000 bytes under a limit of 4,000: %v", err)
	}
	// A small blob stored as a delta against a larger one: git deltifies
	// small against large, so some version of shrinks under the limit
	// has a base over it.
	refusedDelta := false
	for _, c := range strings.Fields(w.Run("rev-list", "HEAD")) {
		h := plumbing.NewHash(w.Run("rev-parse", c+":shrinks"))
		src.mu.Lock()
		info, _ := src.objs.info(h)
		src.mu.Unlock()
		if info.size > 4000 || info.cost <= 4000 {
			continue
		}
		fsys, err := src.Tree(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fs.ReadFile(fsys, "shrinks"); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%d bytes stored as a delta costing %d: %v", info.size, info.cost, err)
		}
		refusedDelta = true
	}
	if !refusedDelta {
		t.Log("no version of shrinks is a small delta on a large base in this pack")
	}
	// The reader's own checks, under a limit below what objectHeaders
	// allowed: every length in the chain is checked before allocation.
	readme := plumbing.NewHash(w.Run("rev-parse", "HEAD~5:README.md"))
	src.mu.Lock()
	defer src.mu.Unlock()
	info, err := src.objs.info(readme)
	if err != nil {
		t.Fatal(err)
	}
	if info.cost <= info.size {
		t.Fatalf("README.md of HEAD~5 is not a delta on a larger base: %+v", info)
	}
	if _, _, err := src.blobBody(readme, info, info.cost-1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("README.md of %d bytes, costing %d, read under a limit of %d: %v", info.size, info.cost, info.cost-1, err)
	}
	if _, _, err := src.blobBody(readme, info, info.size-1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("README.md of %d bytes read under a limit of %d: %v", info.size, info.size-1, err)
	}
	want := w.Run("show", "HEAD~5:README.md")
	if b, ok, err := src.blobBody(readme, info, info.cost); err != nil || !ok || strings.TrimSpace(string(b)) != want {
		t.Fatalf("README.md under its cost: %d bytes, %v, %v", len(b), ok, err)
	}
}
