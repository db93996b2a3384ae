package reconciler_test

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"syscall"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/repo"
	"github.com/modelsync/modelsync/reconciler"
)

// The desired state of a repository must cost about as much per model at
// 4,000 models as at 1,000. Times are compared within one run, best of
// five each in CPU time, so a busy machine slows both sides alike; the
// limit (below) leaves room for noise and catches any step whose cost grows
// with the square of the models (which alone would take it to 16×). The
// collector is paused while a side is timed: its cost depends on when a
// cycle happens to start, not on the code under test, and was the noise that
// kept the ratio from being held to 5×. It reads
// a real Git repository through the controller's Git source, so the tree
// lookups and tag resolution are measured along with manifest loading.
func TestDesiredStateGrowsLinearly(t *testing.T) {
	// Both sizes are measured in turns, best of five each, in CPU time
	// of this process: a busy machine stretches wall time unevenly
	// between the two, CPU time much less.
	snaps := map[int]*repo.Snapshot{1000: scaleSnapshot(t, 1000), 4000: scaleSnapshot(t, 4000)}
	bestOf := map[int]time.Duration{}
	for range 5 {
		for _, models := range []int{1000, 4000} {
			// Garbage left by the previous computation is collected
			// outside the timing, so each side pays for its own.
			runtime.GC()
			gcPercent := debug.SetGCPercent(-1)
			before := cpuTime(t)
			d, err := reconciler.ComputeDesired(snaps[models], "main")
			took := cpuTime(t) - before
			debug.SetGCPercent(gcPercent)
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Models) != models || len(d.Errors) != 0 || len(d.Models[0].Environments) != 3 {
				t.Fatalf("%d models: desired has %d models, %d errors", models, len(d.Models), len(d.Errors))
			}
			if b, ok := bestOf[models]; !ok || took < b {
				bestOf[models] = took
			}
		}
	}
	small, large := bestOf[1000], bestOf[4000]
	ratio := float64(large) / float64(small)
	t.Logf("desired state CPU: 1,000 models %v, 4,000 models %v (%.1f×)", small, large, ratio)
	// Linear work gives 4× (a little less: some costs are per
	// repository). With the collector running the ratio was 3.9–4.8×,
	// too close to 5× to hold; without it, see the README's Scale section.
	const limit = 5.0
	if ratio > limit {
		t.Errorf("desired state at 4,000 models took %.1f× the CPU time at 1,000 (%v vs %v), want ≤ %g×: some step grows faster than the number of models", ratio, large, small, limit)
	}
}

// scaleSnapshot commits a repository of n models × 3 environments (prod
// following release tags, every model released once) with git fast-import
// and returns its snapshot through internal/repo.
func scaleSnapshot(t *testing.T, n int) *repo.Snapshot {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "models")
	var s bytes.Buffer
	file := func(path, body string) {
		fmt.Fprintf(&s, "M 100644 inline %s\ndata %d\n%s\n", path, len(body), body)
	}
	msg := "generated"
	fmt.Fprintf(&s, "commit refs/heads/main\nmark :1\ncommitter bench <bench@example.com> 1700000000 +0000\ndata %d\n%s\n", len(msg), msg)
	file("modelsync.yaml", `apiVersion: modelsync.dev/v1alpha1
kind: Repository
environments:
  - {name: dev, namespace: models-dev, source: main}
  - {name: staging, namespace: models-staging, source: main}
  - {name: prod, namespace: models-prod, source: releases}
`)
	for i := range n {
		name := fmt.Sprintf("model-%05d", i)
		file("models/"+name+"/model.yaml", fmt.Sprintf(`apiVersion: modelsync.dev/v1alpha1
kind: Model
metadata:
  name: %s
spec:
  team: team-%d
  owners: [owner-%d]
  environments:
    dev: {version: %d}
    staging: {version: %d}
    prod:
      version: %d
      canary: {version: %d, steps: [10, 25, 50]}
  serving: {path: serving, modelFormat: sklearn}
`, name, i%20, i%50, i%7+3, i%7+2, i%7+1, i%7+2))
		file("models/"+name+"/serving/kustomization.yaml", "resources: [isvc.yaml]\n")
		file("models/"+name+"/serving/isvc.yaml", "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: "+name+"}\nspec: {predictor: {model: {modelFormat: {name: sklearn}}}}\n")
	}
	for i := range n {
		fmt.Fprintf(&s, "reset refs/tags/model-%05d/v1.0.0\nfrom :1\n\n", i)
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main", dir}, {"-C", dir, "fast-import", "--quiet"}} {
		cmd := exec.Command("git", args...)
		cmd.Env = append(cmd.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		if args[0] == "-C" {
			cmd.Stdin = &s
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	r, err := repo.New(context.Background(), repo.Options{URL: dir, CacheDir: t.TempDir(),
		// Big enough for 4,000 models' objects: the test measures how the
		// work grows, not when the default 8 MiB cache stops holding a
		// working set (that made 4,000 models 5.2× under -race).
		CacheSize: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	snap, err := r.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
