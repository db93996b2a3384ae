// Command desired measures load + validate + desired state of a generated
// models repository (default 1,000 models × 3 environments) read from a real
// Git repository, and prints wall time per run and peak RSS. With -commits N
// the repository gets N more commits, each changing one model, and the run
// also reports what crediting each environment to the commit that changed
// its model costs: without it (the branch head, as before), with a cold
// cache, and on the next pass after one more commit.
//
//	go run ./test/bench/desired [-models 1000] [-runs 5] [-commits 200] [-fixtures DIR]
//	go run ./test/bench/desired -fixtures DIR -table 1000,10000,50000 [-runs 3]
//
// -table measures the desired state, plan building and the PR gate (see
// runStep) at each size, each step in its own process for its own peak
// RSS, and prints them side by side with the growth per step in size; the
// fixtures must exist (one plain run per size creates them).
//
// -fixtures keeps the generated repository in DIR/repo-<models> and reuses
// it on the next run: generating 50,000 models takes minutes on a shared
// machine, and the measurement is what matters.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/modelsync/modelsync/internal/gitsource"
	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/test/bench/internal/procstat"
)

func main() {
	models := flag.Int("models", 1000, "number of models to generate")
	runs := flag.Int("runs", 5, "timed runs")
	commits := flag.Int("commits", 200, "commits of history, each changing one model")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the timed runs")
	fixtures := flag.String("fixtures", "", "keep and reuse generated repositories in `DIR`")
	gitCache := flag.Int64("git-cache-mib", gitsource.DefaultCacheSize>>20, "Git memory caches in MiB (serve's --git-cache-mib)")
	memprofile := flag.String("memprofile", "", "with -step: write a heap profile of what is live after the step to `FILE`")
	step := flag.String("step", "", "measure only this step (desired, plan or gate) on the fixture of -models, one line of output")
	table := flag.String("table", "", "comma-separated model counts: run every step at each in its own process and print a table (needs -fixtures)")
	flag.Parse()
	switch {
	case *table != "":
		var sizes []int
		for _, f := range strings.Split(*table, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 || *fixtures == "" {
				fmt.Fprintln(os.Stderr, "desired bench: -table wants model counts like 1000,10000 and -fixtures")
				os.Exit(2)
			}
			sizes = append(sizes, n)
		}
		if err := runTable(sizes, *fixtures, *runs, *gitCache<<20); err != nil {
			fmt.Fprintln(os.Stderr, "desired bench:", err)
			os.Exit(1)
		}
		return
	case *step != "":
		if *fixtures == "" {
			fmt.Fprintln(os.Stderr, "desired bench: -step needs -fixtures")
			os.Exit(2)
		}
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "desired bench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if *step != "" {
		err := runStep(*step, *fixtures, *models, *runs, *gitCache<<20, *memprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "desired bench:", err)
			pprof.StopCPUProfile()
			os.Exit(1)
		}
		return
	}
	if err := run(*models, *runs, *commits, *fixtures, *gitCache<<20); err != nil {
		fmt.Fprintln(os.Stderr, "desired bench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// headOnly hides the snapshot's History, so the desired state credits the
// branch head as it did before attribution.
type headOnly struct{ reconciler.Snapshot }

func run(models, runs, commits int, fixtures string, gitCache int64) error {
	dir, err := os.MkdirTemp("", "modelsync-bench-desired-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "repo")
	if fixtures != "" {
		src = filepath.Join(fixtures, fmt.Sprintf("repo-%d", models))
	}
	if _, err := os.Stat(filepath.Join(src, ".git")); err != nil {
		if err := Generate(src, models); err != nil {
			return err
		}
		if err := addHistory(src, models, commits); err != nil {
			return err
		}
	}
	ctx := context.Background()
	r, snap, err := openFixture(ctx, src, dir, gitCache)
	if err != nil {
		return err
	}
	defer r.Close()
	check := func(d *reconciler.DesiredState, err error) error {
		if err != nil {
			return err
		}
		if n := len(d.Models); n != models || len(d.Errors) > 0 {
			return fmt.Errorf("desired has %d models and %d errors, want %d and 0", n, len(d.Errors), models)
		}
		return nil
	}
	var head, cold, next []time.Duration
	var headCPU, coldCPU, nextCPU []time.Duration
	for range runs {
		start, cpu0 := time.Now(), procstat.CPUTime()
		if err := check(reconciler.ComputeDesired(headOnly{snap}, "main")); err != nil {
			return err
		}
		head = append(head, time.Since(start))
		headCPU = append(headCPU, procstat.CPUTime()-cpu0)
		a, mc := reconciler.NewAttribution(), manifest.NewCache()
		start, cpu0 = time.Now(), procstat.CPUTime()
		if err := check(reconciler.ComputeDesiredWith(snap, "main", reconciler.DesiredOptions{Attribution: a, Manifests: mc})); err != nil {
			return err
		}
		cold = append(cold, time.Since(start))
		coldCPU = append(coldCPU, procstat.CPUTime()-cpu0)
		// The controller's next pass: one more commit, the cache kept.
		if err := addHistory(src, models, 1); err != nil {
			return err
		}
		s2, err := r.Sync(ctx)
		if err != nil {
			return err
		}
		start, cpu0 = time.Now(), procstat.CPUTime()
		if err := check(reconciler.ComputeDesiredWith(s2, "main", reconciler.DesiredOptions{Attribution: a, Manifests: mc})); err != nil {
			return err
		}
		next = append(next, time.Since(start))
		nextCPU = append(nextCPU, procstat.CPUTime()-cpu0)
	}
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Printf("load+validate+desired, %d models x 3 environments, %d commits of history (from a git repo via go-git):\n", models, commits+1)
	for _, row := range []struct {
		name  string
		times []time.Duration
	}{
		{"branch head credited (before)", head},
		{"  its CPU time (user+system)", headCPU},
		{"change commit credited, cold caches", cold},
		{"  its CPU time (user+system)", coldCPU},
		{"change commit credited, next pass", next},
		{"  its CPU time (user+system)", nextCPU},
	} {
		slices.Sort(row.times)
		t := row.times
		fmt.Printf("  %-36s runs %d  min %v  median %v  max %v\n", row.name, runs, t[0].Round(time.Millisecond), t[len(t)/2].Round(time.Millisecond), t[len(t)-1].Round(time.Millisecond))
	}
	fmt.Printf("  peak RSS of the process (clone included) %.1f MB\n", float64(ru.Maxrss)/1024)
	return nil
}

// addHistory adds n commits, each changing one model's manifest comment.
func addHistory(dir string, models, n int) error {
	if n == 0 {
		return nil
	}
	script := fmt.Sprintf(`set -e
for i in $(seq 1 %d); do
  m=$(printf 'model-%%04d' $(( (RANDOM * 32768 + RANDOM) %% %d )))
  echo "# change $i $RANDOM" >> "models/$m/model.yaml"
  git -c user.name=bench -c user.email=bench@example.com commit -q -am "change $m"
done`, n, models)
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	return cmd.Run()
}

// Generate writes a models repository with n models and commits it with
// the git CLI, tagging every model once so the prod environment resolves
// through release tags.
func Generate(dir string, n int) error {
	write := func(rel, body string) error {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, []byte(body), 0o644)
	}
	if err := write("modelsync.yaml", `apiVersion: modelsync.dev/v1alpha1
kind: Repository
environments:
  - {name: dev, namespace: models-dev, source: main}
  - {name: staging, namespace: models-staging, source: main}
  - {name: prod, namespace: models-prod, source: releases}
`); err != nil {
		return err
	}
	for i := range n {
		name := fmt.Sprintf("model-%04d", i)
		if err := write("models/"+name+"/model.yaml", fmt.Sprintf(`apiVersion: modelsync.dev/v1alpha1
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
  modelCard:
    description: Generated model %d.
    intendedUse: Benchmarks.
    datasets: [{name: data-%d, version: "1"}]
    metrics: {accuracy: 0.9, precision: 0.9, recall: 0.9, f1: 0.9}
    limitations: [none]
    license: Apache-2.0
    contact: team@example.com
  compliance: [GDPR, SOC2]
  dependencies: ["scikit-learn==1.5.2"]
`, name, i%20, i%50, i%7+3, i%7+2, i%7+1, i%7+2, i, i)); err != nil {
			return err
		}
		if err := write("models/"+name+"/serving/kustomization.yaml", "resources: [isvc.yaml]\n"); err != nil {
			return err
		}
		if err := write("models/"+name+"/serving/isvc.yaml", "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: "+name+"}\nspec: {predictor: {model: {modelFormat: {name: sklearn}}}}\n"); err != nil {
			return err
		}
	}
	script := `set -e
git init -q -b main .
git add -A
git -c user.name=bench -c user.email=bench@example.com commit -q -m generated
for d in models/*/; do n=$(basename "$d"); echo "create refs/tags/$n/v1.0.0 HEAD"; done | git update-ref --stdin`
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	return cmd.Run()
}
