package gitsource

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"

	"github.com/modelsync/modelsync/test/testenv"
)

// deltaRepo commits many versions of a directory and a file, so packs of it
// hold long delta chains, and returns the working copy.
func deltaRepo(t *testing.T) *testenv.Workdir {
	t.Helper()
	w := testenv.NewWorkdir(t, "")
	var card strings.Builder
	for i := range 200 {
		fmt.Fprintf(&card, "line %d of the model card, long enough to be worth a delta\n", i)
	}
	for rev := range 30 {
		for m := range 40 {
			if m%10 == rev%10 {
				w.WriteFile(fmt.Sprintf("models/m%02d/model.yaml", m), fmt.Sprintf("name: m%02d\nrev: %d\n", m, rev))
			}
		}
		w.WriteFile("README.md", card.String()+fmt.Sprintf("revision %d\n", rev))
		w.WriteFile("empty", "")
		w.Commit(fmt.Sprint("rev ", rev))
		if rev%7 == 0 {
			w.Tag(fmt.Sprintf("m01/v1.0.%d", rev), "release")
		}
	}
	return w
}

// packObjects runs git pack-objects over revs and returns the pack and the
// index git wrote for it.
func packObjects(t *testing.T, dir string, revs string, flags ...string) (pack, idx []byte) {
	t.Helper()
	list := exec.Command("git", "rev-list", "--objects")
	list.Args = append(list.Args, strings.Fields(revs)...)
	list.Dir = dir
	objects, err := list.Output()
	if err != nil {
		t.Fatalf("git rev-list: %v", err)
	}
	out := filepath.Join(t.TempDir(), "p")
	po := exec.Command("git", append([]string{"pack-objects", "-q"}, append(flags, out)...)...)
	po.Dir, po.Stdin = dir, bytes.NewReader(objects)
	sum, err := po.Output()
	if err != nil {
		t.Fatalf("git pack-objects: %v", err)
	}
	name := out + "-" + strings.TrimSpace(string(sum))
	if pack, err = os.ReadFile(name + ".pack"); err != nil {
		t.Fatal(err)
	}
	if idx, err = os.ReadFile(name + ".idx"); err != nil {
		t.Fatal(err)
	}
	return pack, idx
}

func encodeIdx(t *testing.T, idx *idxfile.MemoryIndex) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := idxfile.NewEncoder(&b).Encode(idx); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// The index indexPack builds is byte for byte the one git and go-git's own
// indexer write, for packs with offset and with reference deltas.
func TestIndexPackMatchesGit(t *testing.T) {
	w := deltaRepo(t)
	for name, flags := range map[string][]string{
		"offset deltas":    {"--delta-base-offset"},
		"reference deltas": nil,
		"no deltas":        {"--depth=0"},
	} {
		t.Run(name, func(t *testing.T) {
			pack, gitIdx := packObjects(t, w.Dir, "--all", flags...)
			idx, sum, err := indexPack(bytes.NewReader(pack), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			// Spooling every content to files gives the same index.
			spoolDir := t.TempDir()
			spooled, _, err := indexPackWithin(bytes.NewReader(pack), spoolDir, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(encodeIdx(t, spooled), encodeIdx(t, idx)) {
				t.Error("the index built through temporary files differs")
			}
			if left, _ := os.ReadDir(spoolDir); len(left) != 0 {
				t.Errorf("indexing left %d temporary files", len(left))
			}
			if want := pack[len(pack)-20:]; !bytes.Equal(sum[:], want) {
				t.Errorf("checksum %s, want %x", sum, want)
			}
			if got := encodeIdx(t, idx); !bytes.Equal(got, gitIdx) {
				t.Errorf("index differs from git's (%d and %d bytes)", len(got), len(gitIdx))
			}
			goGit := new(idxfile.Writer)
			p, err := packfile.NewParser(packfile.NewScanner(bytes.NewReader(pack)), goGit)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Parse(); err != nil {
				t.Fatal(err)
			}
			want, err := goGit.Index()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(encodeIdx(t, idx), encodeIdx(t, want)) {
				t.Error("index differs from go-git's")
			}
			if name != "no deltas" && !strings.Contains(w.Run("verify-pack", "-v", writeTemp(t, pack, gitIdx)), "chain length = 1") {
				t.Error("the test pack has no delta chains")
			}
		})
	}
}

func writeTemp(t *testing.T, pack, idx []byte) string {
	t.Helper()
	base := filepath.Join(t.TempDir(), "pack-test")
	if err := os.WriteFile(base+".pack", pack, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base+".idx", idx, 0o644); err != nil {
		t.Fatal(err)
	}
	return base + ".pack"
}

func TestIndexPackRefusesBrokenPacks(t *testing.T) {
	w := deltaRepo(t)
	// A thin pack deltifies against objects the receiver is assumed to
	// have; they are not in it.
	po := exec.Command("git", "pack-objects", "-q", "--revs", "--thin", "--stdout")
	po.Dir, po.Stdin = w.Dir, strings.NewReader("HEAD\n^HEAD~1\n")
	thin, err := po.Output()
	if err != nil {
		t.Fatalf("git pack-objects --thin: %v", err)
	}
	if _, _, err := indexPack(bytes.NewReader(thin), t.TempDir()); err == nil || !strings.Contains(err.Error(), "is not in the pack") {
		t.Errorf("thin pack: err = %v", err)
	}
	pack, _ := packObjects(t, w.Dir, "--all", "--delta-base-offset")
	corrupt := bytes.Clone(pack)
	corrupt[len(corrupt)/2] ^= 0xff
	if _, _, err := indexPack(bytes.NewReader(corrupt), t.TempDir()); err == nil {
		t.Error("corrupt pack indexed")
	}
	if _, _, err := indexPack(bytes.NewReader(pack[:len(pack)-7]), t.TempDir()); err == nil {
		t.Error("truncated pack indexed")
	}
}

// A clone of a repository with long delta chains is readable at every
// commit and passes git fsck.
func TestSyncDeltaChains(t *testing.T) {
	w := deltaRepo(t)
	src := syncedSource(t, w.Dir)
	for _, c := range strings.Fields(w.Run("rev-list", "--all")) {
		fsys, err := src.Tree(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"README.md", "models/m00/model.yaml", "empty"} {
			got, err := fs.ReadFile(fsys, name)
			if err != nil {
				t.Fatalf("%s at %s: %v", name, c, err)
			}
			if want := w.Run("show", c+":"+name); strings.TrimSpace(string(got)) != want {
				t.Fatalf("%s at %s differs from git show", name, c)
			}
		}
	}
	fsck := exec.Command("git", "-C", src.Dir(), "fsck", "--no-progress", "--strict")
	if out, err := fsck.CombinedOutput(); err != nil {
		t.Fatalf("git fsck: %v\n%s", err, out)
	}
}

// syncedSource opens a Source on url in a fresh cache and syncs it once.
func syncedSource(t *testing.T, url string) *Source {
	t.Helper()
	src, err := Open(t.Context(), Options{URL: url, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	if _, err := src.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	return src
}
