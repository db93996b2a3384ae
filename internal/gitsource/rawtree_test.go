package gitsource

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/modelsync/modelsync/test/testenv"
)

// decodedChangedEntries is ChangedEntries as it was before it merged raw
// directory bodies: both directories decoded into go-git trees, merged in
// Git's order. The new one must answer as it does.
func decodedChangedEntries(s *Source, older, newer, dir string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var trees [2]*object.Tree
	for i, c := range []string{older, newer} {
		commit, err := readCommit(s.repo, s.objs, plumbing.NewHash(c))
		if err != nil {
			return nil, err
		}
		if trees[i], err = s.dirAt(commit.TreeHash, strings.Trim(dir, "/")); err != nil {
			return nil, err
		}
	}
	if trees[0] != nil && trees[1] != nil && trees[0].Hash == trees[1].Hash {
		return nil, nil
	}
	var a, b []object.TreeEntry
	if trees[0] != nil {
		a = trees[0].Entries
	}
	if trees[1] != nil {
		b = trees[1].Entries
	}
	var changed []string
	for len(a) > 0 || len(b) > 0 {
		c := 1
		switch {
		case len(a) == 0:
		case len(b) == 0:
			c = -1
		default:
			key := b[0].Name
			if b[0].Mode == filemode.Dir {
				key += "/"
			}
			c = compareKey(a[0], key)
		}
		switch {
		case c < 0:
			changed, a = append(changed, a[0].Name), a[1:]
		case c > 0:
			changed, b = append(changed, b[0].Name), b[1:]
		default:
			if a[0].Hash != b[0].Hash || a[0].Mode != b[0].Mode {
				changed = append(changed, a[0].Name)
			}
			a, b = a[1:], b[1:]
		}
	}
	slices.Sort(changed)
	return slices.Compact(changed), nil
}

// treeRepo writes Git objects by hand into a repository, so directories
// can hold what git's own commands would not write: legacy modes, entries
// out of order, a file and a directory of one name.
type treeRepo struct {
	w    *testenv.Workdir
	t    *testing.T
	head string
}

type entry struct{ mode, name, hash string }

func (r *treeRepo) object(typ string, body []byte) string {
	r.t.Helper()
	f := filepath.Join(r.t.TempDir(), "obj")
	if err := os.WriteFile(f, body, 0o644); err != nil {
		r.t.Fatal(err)
	}
	return r.w.Run("hash-object", "-w", "--literally", "-t", typ, f)
}

// tree writes entries in the order given.
func (r *treeRepo) tree(entries ...entry) string {
	r.t.Helper()
	var b bytes.Buffer
	for _, e := range entries {
		h := plumbing.NewHash(e.hash)
		fmt.Fprintf(&b, "%s %s\x00", e.mode, e.name)
		b.Write(h[:])
	}
	return r.object("tree", b.Bytes())
}

// commit makes a commit of a root with modelsync.yaml and, unless models
// is "", models/ as that tree, on top of the last one.
func (r *treeRepo) commit(config, models string) string {
	r.t.Helper()
	root := []entry{{"100644", "modelsync.yaml", config}}
	if models != "" {
		root = append(root, entry{"40000", "models", models})
	}
	args := []string{"commit-tree", r.tree(root...), "-m", "c"}
	if r.head != "" {
		args = append(args, "-p", r.head)
	}
	r.head = r.w.Run(args...)
	r.w.Run("update-ref", "refs/heads/main", r.head)
	return r.head
}

// sortedEntries orders entries as Git does, a directory's name as if it
// ended in "/".
func sortedEntries(es []entry) []entry {
	key := func(e entry) string {
		if e.mode == "40000" {
			return e.name + "/"
		}
		return e.name
	}
	es = slices.Clone(es)
	slices.SortFunc(es, func(a, b entry) int { return strings.Compare(key(a), key(b)) })
	return es
}

// editTreeRepo builds a history whose models/ directory goes through the
// cases the merge must order and compare as decoding did: names that sort
// around "/" (a, a-b, a.b, a/, a0), a file replaced by a directory of the
// same name, mode changes, legacy modes, symbolic links, submodules,
// entries out of order, models/ missing (the first edgeCommits commits);
// then a large models/ changed one or two entries per commit, larger than
// minPackedTree, so the packed path, its delta chains and the reuse of
// evicted buffers are compared too.
func editTreeRepo(t *testing.T) (r *treeRepo, commits []string, edgeCommits int) {
	t.Helper()
	r = &treeRepo{w: testenv.NewWorkdir(t, ""), t: t}
	blob := func(s string) string { return r.object("blob", []byte(s)) }
	b1, b2, b3, cfg, cfg2 := blob("1\n"), blob("2\n"), blob("3\n"), blob("config\n"), blob("config 2\n")
	sub := r.tree(entry{"100644", "x", b1})
	sub2 := r.tree(entry{"100644", "x", b2})
	add := func(config string, entries ...entry) {
		commits = append(commits, r.commit(config, r.tree(entries...)))
	}
	commits = append(commits, r.commit(cfg, "")) // no models/
	add(cfg, sortedEntries([]entry{{"100644", "a", b1}, {"100644", "a-b", b1}, {"100644", "a.b", b1}, {"100644", "a0", b1}})...)
	// The file a becomes a directory: it now sorts after a.b.
	add(cfg, sortedEntries([]entry{{"40000", "a", sub}, {"100644", "a-b", b1}, {"100644", "a.b", b1}, {"100644", "a0", b1}})...)
	// Executable, changed, removed, added; a link and a submodule.
	add(cfg, sortedEntries([]entry{{"40000", "a", sub2}, {"100755", "a.b", b1}, {"100644", "a0", b2}, {"100644", "a_b", b3}, {"120000", "l", b1}, {"160000", "sub", b2}})...)
	// Legacy modes read as the canonical ones: 100664 is 100644,
	// 040000 is 40000; a link turned file.
	add(cfg, sortedEntries([]entry{{"040000", "a", sub2}, {"100775", "a.b", b1}, {"100664", "a0", b2}, {"100644", "a_b", b3}, {"100644", "l", b1}, {"160000", "sub", b2}})...)
	// Out of order, and a file next to a directory of the same name.
	add(cfg2, entry{"100644", "zz", b1}, entry{"40000", "a", sub}, entry{"100644", "a", b2}, entry{"100644", "a-b", b1})
	add(cfg2)
	edgeCommits = len(commits)
	var big []entry
	for i := range 2000 {
		big = append(big, entry{"40000", fmt.Sprintf("model-%04d", i), sub})
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 30 {
		for range 1 + rnd.IntN(2) {
			i := rnd.IntN(len(big))
			switch rnd.IntN(6) {
			case 0:
				big = slices.Delete(big, i, i+1)
			case 1:
				big = append(big, entry{"100644", fmt.Sprintf("model-%04d.yaml", rnd.IntN(2100)), b1})
			default:
				big[i].hash, big[i].mode = sub2, "40000"
				switch rnd.IntN(3) {
				case 0:
					big[i].hash = sub
				case 1:
					big[i].hash, big[i].mode = b3, "100644"
				}
			}
		}
		big = slices.CompactFunc(sortedEntries(big), func(a, b entry) bool { return a.name == b.name })
		add(cfg2, big...)
	}
	return r, commits, edgeCommits
}

// TestChangedEntriesMatchesDecodedTrees compares ChangedEntries with the
// decoded merge it replaced on every pair of commits, in both directions
// and in a random order (so the raw cache misses, evicts and resolves
// delta chains from either end), with the repository packed as a fetch
// packs it and repacked with short chains.
func TestChangedEntriesMatchesDecodedTrees(t *testing.T) {
	r, commits, edgeCommits := editTreeRepo(t)
	for _, repack := range []string{"", "--depth=3"} {
		t.Run("repack"+repack, func(t *testing.T) {
			if repack != "" {
				r.w.Run("repack", "-adf", repack, "--window=10")
			}
			src := syncedSource(t, r.w.Dir)
			type pair struct{ i, j int }
			var pairs []pair
			for i := range commits {
				for j := range commits {
					pairs = append(pairs, pair{i, j})
				}
			}
			rand.New(rand.NewPCG(3, 4)).Shuffle(len(pairs), func(a, b int) { pairs[a], pairs[b] = pairs[b], pairs[a] })
			compared := 0
			for _, p := range pairs {
				dirs := []string{"", "models"}
				if p.i < edgeCommits && p.j < edgeCommits {
					dirs = append(dirs, "/models/", "models/a", "missing")
				}
				for _, dir := range dirs {
					older, newer := commits[p.i], commits[p.j]
					want, werr := decodedChangedEntries(src, older, newer, dir)
					got, err := src.ChangedEntries(older, newer, dir)
					if (err != nil) != (werr != nil) || !slices.Equal(got, want) {
						t.Fatalf("ChangedEntries(%d, %d, %q) = %q, %v; decoded %q, %v", p.i, p.j, dir, got, err, want, werr)
					}
					compared += len(want)
				}
			}
			if compared == 0 {
				t.Fatal("no pair of commits differed")
			}
			if len(src.raw.slots) == 0 {
				t.Error("no directory was read from the pack: the large models/ went another way")
			}
		})
	}
}

// A directory stored loose (not in a pack) is read through go-git.
func TestChangedEntriesLooseDirectory(t *testing.T) {
	r, commits, _ := editTreeRepo(t)
	src := syncedSource(t, r.w.Dir)
	last := commits[len(commits)-1]
	// A commit written into the cache itself after the fetch, with a
	// large models/ one entry apart from the last fetched one.
	cache := &treeRepo{w: testenv.NewWorkdir(t, ""), t: t}
	cache.w.Dir = src.Dir()
	b1 := cache.object("blob", []byte("1\n"))
	var big []entry
	for i := range 800 {
		big = append(big, entry{"100644", fmt.Sprintf("model-%04d", i), b1})
	}
	cfg := r.w.Run("rev-parse", last+":modelsync.yaml")
	cache.head = last
	loose := cache.commit(cfg, cache.tree(big...))
	want, werr := decodedChangedEntries(src, last, loose, "models")
	got, err := src.ChangedEntries(last, loose, "models")
	if err != nil || werr != nil || !slices.Equal(got, want) || len(got) == 0 {
		t.Fatalf("ChangedEntries to a loose directory = %q, %v; decoded %q, %v", got, err, want, werr)
	}
}

// Malformed directory bodies are refused as go-git's decoder refuses them,
// and well-formed ones compare as decoded.
func TestChangedRawEntriesRefusesWhatDecodingRefuses(t *testing.T) {
	h := bytes.Repeat([]byte{7}, 20)
	good := append([]byte("100644 a\x00"), h...)
	for name, body := range map[string][]byte{
		"empty":              nil,
		"good":               good,
		"legacy mode":        append([]byte("100664 a\x00"), h...),
		"bad mode":           append([]byte("10a644 a\x00"), h...),
		"signed mode":        append([]byte("+100644 a\x00"), h...),
		"empty mode":         append([]byte(" a\x00"), h...),
		"mode too large":     append([]byte("77777777777 a\x00"), h...),
		"no mode terminator": []byte("100644"),
		"no name terminator": []byte("100644 a"),
		"empty name":         append([]byte("100644 \x00"), h...),
		"truncated hash":     append([]byte("100644 a\x00"), h[:19]...),
		"trailing bytes":     append(slices.Clone(good), "1006"...),
		"mode with 8":        append([]byte("100648 a\x00"), h...),
		"long legacy mode":   append([]byte("000000100644 a\x00"), h...),
	} {
		// Alone against a good one, and shared by two directories that
		// differ after it (the merge passes over a shared run quickly).
		e1 := append([]byte("100644 zz\x00"), bytes.Repeat([]byte{1}, 20)...)
		e2 := append([]byte("100644 zz\x00"), bytes.Repeat([]byte{2}, 20)...)
		shared := [][2][]byte{{body, good}, {good, body}, {append(slices.Clone(body), e1...), append(slices.Clone(body), e2...)}}
		for i, pair := range shared {
			var decodeErr error
			for _, side := range pair {
				err := goGitDecode(side)
				if err != nil {
					decodeErr = err
				}
				// TreeFS decodes packed directories by hand: the same
				// verdict.
				if _, ours := decodeTree(plumbing.ZeroHash, side); (ours != nil) != (err != nil) {
					t.Errorf("%s, pair %d: decodeTree error %v, go-git's %v", name, i, ours, err)
				}
			}
			err := changedRawEntries(pair[0], pair[1], func([]byte) {})
			if (err != nil) != (decodeErr != nil) {
				t.Errorf("%s, pair %d: merge error %v, decode error %v", name, i, err, decodeErr)
			}
		}
	}
}

func goGitDecode(body []byte) error {
	o := &plumbing.MemoryObject{}
	o.SetType(plumbing.TreeObject)
	if _, err := o.Write(body); err != nil {
		return err
	}
	var tr object.Tree
	return tr.Decode(o)
}

// BenchmarkChangedRawEntries merges two models/ directories of 10,000
// models that differ in one entry, as each step of the attribution walk.
func BenchmarkChangedRawEntries(b *testing.B) {
	var older, newer []byte
	for i := range 10000 {
		h := bytes.Repeat([]byte{byte(i)}, 20)
		older = append(append(older, fmt.Sprintf("40000 model-%04d\x00", i)...), h...)
		if i == 5000 {
			h = bytes.Repeat([]byte{0xff}, 20)
		}
		newer = append(append(newer, fmt.Sprintf("40000 model-%04d\x00", i)...), h...)
	}
	b.SetBytes(int64(len(older)))
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if err := changedRawEntries(older, newer, func([]byte) { n++ }); err != nil || n != 1 {
			b.Fatal(n, err)
		}
	}
}
