package kserve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/manifest"
)

// rssChildEnv makes the test binary a child that renders the tree in the
// named directory and reports its own peak RSS, so the figure covers the
// render and nothing the other tests allocated.
const rssChildEnv = "MODELSYNC_KSERVE_RSS_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(rssChildEnv); dir != "" {
		os.Exit(rssChild(dir))
	}
	os.Exit(m.Run())
}

// largeBlobSize is the zero-filled file of issue 13: a repository of a
// few MB on the wire that a render used to read whole.
const largeBlobSize = 400 << 20

// writeLargeBlobTree writes two model folders into dir: "small", a plain
// base used to warm up, and "churn", the same with a sparse 400 MB file.
func writeLargeBlobTree(t *testing.T, dir string) {
	t.Helper()
	for _, model := range []string{"small", "churn"} {
		for name, f := range modelFiles(nil, model, "", "") {
			p := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, f.Data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	f, err := os.Create(filepath.Join(dir, "models", "churn", "serving", "weights.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(largeBlobSize); err != nil {
		t.Fatal(err)
	}
}

func renderFrom(dir, model string) error {
	files := os.DirFS(dir)
	m := desiredModel(model, desiredEnv("prod", "ml-prod", 1, files, model))
	_, err := Render(context.Background(), &m, &m.Environments[0], manifest.ServingPolicy{}, artifactsFor([]string{model}, 1))
	return err
}

// vmHWM is this process's peak resident set size in KiB.
func vmHWM() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}

// rssChild warms up with a render of the small model (kustomize builds
// its schema tables once), takes the peak RSS as baseline, renders the
// model holding the large file and prints both peaks and the error.
func rssChild(dir string) int {
	start, err := vmHWM()
	if err != nil {
		fmt.Println("error:", err)
		return 2
	}
	if err := renderFrom(dir, "small"); err != nil {
		fmt.Println("warm-up render failed:", err)
		return 2
	}
	runtime.GC()
	baseline, _ := vmHWM()
	t0 := time.Now()
	renderErr := renderFrom(dir, "churn")
	took := time.Since(t0)
	peak, _ := vmHWM()
	fmt.Printf("rss start_kib=%d baseline_kib=%d peak_kib=%d took=%s\n", start, baseline, peak, took)
	fmt.Printf("err=%s\n", strconv.Quote(fmt.Sprint(renderErr)))
	return 0
}

func TestRenderLargeBlobFailsNamingTheFileWithBoundedMemory(t *testing.T) {
	dir := t.TempDir()
	writeLargeBlobTree(t, dir)

	err := renderFrom(dir, "churn")
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "models/churn/serving/weights.bin is 400 MiB") {
		t.Fatalf("got %v, want ErrTooLarge naming models/churn/serving/weights.bin", err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestRenderLargeBlobFailsNamingTheFileWithBoundedMemory$")
	cmd.Env = append(os.Environ(), rssChildEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var start, baseline, peak int64
	var took string
	var childErr string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "rss ") {
			if _, err := fmt.Sscanf(line, "rss start_kib=%d baseline_kib=%d peak_kib=%d took=%s", &start, &baseline, &peak, &took); err != nil {
				t.Fatalf("parsing %q: %v", line, err)
			}
		}
		if q, ok := strings.CutPrefix(line, "err="); ok {
			childErr, _ = strconv.Unquote(q)
		}
	}
	if baseline == 0 || peak == 0 {
		t.Fatalf("no figures from the child:\n%s", out)
	}
	t.Logf("child VmHWM: %d KiB at start, %d KiB after warm-up, %d KiB after the 400 MB render (+%d KiB); render took %s",
		start, baseline, peak, peak-baseline, took)
	if !strings.Contains(childErr, "models/churn/serving/weights.bin") {
		t.Errorf("child render error %q should name the file", childErr)
	}
	if limit := int64(64 << 10); peak-baseline > limit {
		t.Errorf("the render raised peak RSS by %d KiB, more than %d KiB", peak-baseline, limit)
	}
}

// TestRenderSizeLimitsAreConfigurable: Config.MaxModelBytes and
// MaxModelFiles replace the defaults, and a file passing the byte limit
// only together with the files before it is named too.
func TestRenderSizeLimitsAreConfigurable(t *testing.T) {
	dir := t.TempDir()
	writeLargeBlobTree(t, dir)
	files := os.DirFS(dir)
	if _, _, err := (Config{}).renderLimits().build(files, "models/small", "models/small/serving", "prod", manifest.ServingPolicy{}); err != nil {
		t.Fatalf("default limits: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "models", "small", "serving", "pad.txt"), make([]byte, 700), 0o644); err != nil {
		t.Fatal(err)
	}
	build := Config{MaxModelBytes: 800}.renderLimits().build
	_, _, err := build(files, "models/small", "models/small/serving", "prod", manifest.ServingPolicy{})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "takes model folder models/small/ past 800 B") {
		t.Fatalf("800 B limit: got %v", err)
	}
	build = Config{MaxModelFiles: 2}.renderLimits().build
	_, _, err = build(files, "models/small", "models/small/serving", "prod", manifest.ServingPolicy{})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "more than 2 files") {
		t.Fatalf("2-file limit: got %v", err)
	}
}
