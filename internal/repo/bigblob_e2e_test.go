package repo_test

import (
	"bufio"
	"compress/zlib"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/modelsync/modelsync/internal/gitsource"
	"github.com/modelsync/modelsync/internal/repo"
	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/test/testenv"
)

const (
	bigBlobSize = 400 << 20 // the blob: 400 MB of zeros
	// rssBound is how much more the big repository may cost than the same
	// repository with small files, in the child's peak RSS.
	rssBound = 16 << 20
	childEnv = "MODELSYNC_TEST_BIGBLOB_CHILD"
)

// writeZeroBlob writes a loose blob of n zero bytes into the repository at
// gitDir and returns its hash, streaming: neither this process nor git
// holds the blob in memory.
func writeZeroBlob(t *testing.T, gitDir string, n int64) string {
	t.Helper()
	header := fmt.Sprintf("blob %d\x00", n)
	h := sha1.New()
	h.Write([]byte(header))
	zeros := make([]byte, 1<<20)
	for left := n; left > 0; left -= int64(len(zeros)) {
		h.Write(zeros[:min(left, int64(len(zeros)))])
	}
	sum := hex.EncodeToString(h.Sum(nil))
	p := filepath.Join(gitDir, "objects", sum[:2], sum[2:])
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(f)
	zw, _ := zlib.NewWriterLevel(bw, zlib.BestSpeed)
	zw.Write([]byte(header))
	for left := n; left > 0; left -= int64(len(zeros)) {
		zw.Write(zeros[:min(left, int64(len(zeros)))])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return sum
}

const bigTestConfig = `apiVersion: modelsync.dev/v1alpha1
kind: Repository
environments:
  - name: dev
    namespace: models-dev
    source: main
`

func bigTestModel(name string) string {
	return `apiVersion: modelsync.dev/v1alpha1
kind: Model
metadata:
  name: ` + name + `
spec:
  owners: [alice]
  environments:
    dev:
      version: 1
  serving:
    path: serving
    modelFormat: sklearn
`
}

// pushBlobRepo serves a models repository with three models. In it, blob
// (a hash in the working copy's object store) is the content of
// models/big/model.yaml, of models/ok/serving/weights.bin (a file a render
// would copy) and of the target of the symbolic link models/link/model.yaml.
// Git on both sides keeps large blobs out of memory (core.bigFileThreshold)
// and the server keeps the pushed pack (receive.unpackLimit).
func pushBlobRepo(t *testing.T, g *testenv.GitServer, name string, blobSize int64) string {
	t.Helper()
	bare, err := g.NewBareRepo(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range [][2]string{{"core.bigFileThreshold", "1m"}, {"receive.unpackLimit", "1"}, {"pack.packSizeLimit", "0"}} {
		if out, err := exec.Command("git", "-C", bare, "config", kv[0], kv[1]).CombinedOutput(); err != nil {
			t.Fatalf("git config: %v\n%s", err, out)
		}
	}
	w := testenv.NewWorkdir(t, g.DaemonURL+name+".git")
	w.WriteFile("modelsync.yaml", bigTestConfig)
	for _, m := range []string{"ok", "big", "link"} {
		w.WriteFile("models/"+m+"/model.yaml", bigTestModel(m))
		w.WriteFile("models/"+m+"/serving/kustomization.yaml", "resources: []\n")
	}
	w.Commit("models")
	blob := writeZeroBlob(t, filepath.Join(w.Dir, ".git"), blobSize)
	w.Run("-c", "core.bigFileThreshold=1m", "update-index", "--add", "--cacheinfo", "100644,"+blob+",models/big/model.yaml")
	w.Run("-c", "core.bigFileThreshold=1m", "update-index", "--add", "--cacheinfo", "100644,"+blob+",models/ok/serving/weights.bin")
	w.Run("-c", "core.bigFileThreshold=1m", "update-index", "--add", "--cacheinfo", "120000,"+blob+",models/link/model.yaml")
	w.Run("-c", "core.bigFileThreshold=1m", "commit", "--quiet", "-m", "blobs")
	w.Run("-c", "core.bigFileThreshold=1m", "push", "--quiet", "origin", "HEAD")
	return g.DaemonURL + name + ".git"
}

// childReport is what the child process measured.
type childReport struct {
	Start, Small, Big int64 // VmHWM in bytes: at start, after the small repository, after the big one
	Errors            map[string]string
}

func vmHWM() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return -1
}

// loadAll is the loading path: fetch into an empty cache, compute the
// desired state, then read every file of the branch as a render or the
// gate would. It returns the problems it met, by file or model.
func loadAll(url, cache string) (map[string]string, error) {
	snap, err := repo.Open(context.Background(), repo.Options{URL: url, CacheDir: cache})
	if err != nil {
		return nil, err
	}
	defer snap.Source().Close()
	problems := map[string]string{}
	d, err := reconciler.ComputeDesired(snap, "main")
	if err != nil {
		return nil, err
	}
	for _, e := range d.Errors {
		problems["model "+e.Model] = e.Message
	}
	head, err := snap.BranchHead("main")
	if err != nil {
		return nil, err
	}
	tree, err := snap.Tree(head.Hash)
	if err != nil {
		return nil, err
	}
	err = fs.WalkDir(tree, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if _, err := fs.ReadFile(tree, p); err != nil {
			// A link to nowhere (the small repository's) is not a failure
			// of the walk either.
			if !errors.Is(err, gitsource.ErrTooLarge) && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			problems[p] = err.Error()
		}
		return nil
	})
	return problems, err
}

// TestLargeBlobsCostNoMemory fetches and loads a repository whose 400 MB
// blob of zeros (a few hundred kilobytes packed) is a model's manifest, a
// file of a serving folder and the target of a symbolic link used as a
// manifest, in a child process that reports its own peak RSS (VmHWM). The
// child first loads the same repository with a 4 KiB blob, as its
// baseline. The big blob may cost at most rssBound more, each use of it is
// refused with an error naming the file and its size, and only the models
// it belongs to fail.
func TestLargeBlobsCostNoMemory(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		runBigBlobChild(t)
		return
	}
	testenv.RequireE2E(t)
	g := testenv.NewGitServer(t)
	small := pushBlobRepo(t, g, "small", 4<<10)
	big := pushBlobRepo(t, g, "big", bigBlobSize)

	cmd := exec.Command(os.Args[0], "-test.run=^TestLargeBlobsCostNoMemory$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+small+" "+big+" "+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var rep childReport
	_, js, ok := strings.Cut(string(out), "REPORT ")
	if !ok {
		t.Fatalf("child printed no report:\n%s", out)
	}
	js, _, _ = strings.Cut(js, "\n")
	if err := json.Unmarshal([]byte(js), &rep); err != nil {
		t.Fatalf("child report %q: %v", js, err)
	}
	t.Logf("child VmHWM: %.1f MiB at start, %.1f MiB after the small repository, %.1f MiB after the big one (+%.1f MiB)",
		mib(rep.Start), mib(rep.Small), mib(rep.Big), mib(rep.Big-rep.Small))
	for k, v := range rep.Errors {
		t.Logf("%s: %s", k, v)
	}
	if rep.Big-rep.Small > rssBound {
		t.Errorf("the 400 MB blob cost %.1f MiB of peak RSS over the baseline, more than %d MiB", mib(rep.Big-rep.Small), rssBound>>20)
	}
	size := strconv.Itoa(bigBlobSize)
	want := map[string][]string{
		"model big":                     {"models/big/model.yaml", size},
		"model link":                    {"models/link/model.yaml", size},
		"models/big/model.yaml":         {"models/big/model.yaml", size, "too large"},
		"models/ok/serving/weights.bin": {"models/ok/serving/weights.bin", size, "too large"},
		"models/link/model.yaml":        {"models/link/model.yaml", size, "too large"},
	}
	for k, parts := range want {
		msg, ok := rep.Errors[k]
		if !ok {
			t.Errorf("no error for %s; errors: %v", k, rep.Errors)
			continue
		}
		for _, p := range parts {
			if !strings.Contains(msg, p) {
				t.Errorf("error for %s does not say %q: %s", k, p, msg)
			}
		}
	}
	if len(rep.Errors) != len(want) {
		t.Errorf("errors %v; want exactly %v (model ok must load)", rep.Errors, want)
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func runBigBlobChild(t *testing.T) {
	args := strings.Fields(os.Getenv(childEnv))
	small, big, dir := args[0], args[1], args[2]
	// The same heap target as the controller's default: without it, the
	// garbage collector lets the heap double before collecting.
	debug.SetGCPercent(100)
	rep := childReport{Start: vmHWM()}
	// The small repository's link points nowhere, so model link fails
	// there too; only the memory matters.
	if _, err := loadAll(small, filepath.Join(dir, "small")); err != nil {
		t.Fatal(err)
	}
	rep.Small = vmHWM()
	var err error
	if rep.Errors, err = loadAll(big, filepath.Join(dir, "big")); err != nil {
		t.Fatal(err)
	}
	rep.Big = vmHWM()
	b, _ := json.Marshal(rep)
	fmt.Println("REPORT " + string(b))
}
