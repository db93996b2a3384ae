// Command plan measures observing and planning each real target against
// the test environment's servers holding a converged state of the
// generated repository (test/bench/internal/converged: n models × dev,
// staging, prod):
//
//   - mlflow: the registry written into MLflow 3's PostgreSQL store by SQL,
//     as the controller bench seeds it;
//   - kserve: one InferenceService per model and environment on a real
//     kube-apiserver (etcd, the KServe CRD; no KServe controller), each the
//     target's own render (kserve.Render) server-side applied as field
//     manager modelsync, as the target's Apply writes it;
//   - s3: each version's artifact objects in MinIO under the URI the
//     registry gives (s3://models/<model>/<version>/), in STANDARD: every
//     version 1-3 is referenced by an environment, so the lifecycle keeps
//     all of them active.
//
// Each target is then observed and planned in a fresh child process
// (reconciler.BuildPlan over that one target), which reports observe wall
// and CPU time, the target's Plan CPU, the requests made to each server,
// a second observe+plan (the periodic resync of a running controller) and
// its peak RSS; the plan of a converged state must be empty, or the bench
// fails.
//
//	go run ./test/bench/plan [-table 1000,10000] [-targets mlflow,kserve,s3] [-kserve-envs dev,staging,prod] [-kserve-status]
//
// The artifact locator (MLflow's get-download-uri per version, remembered
// for the life of the process) is filled before the kserve and s3
// observations and reported as its own row: a fresh controller pays it once
// in its first pass, a resync never.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/modelsync/modelsync/test/bench/internal/converged"
	"github.com/modelsync/modelsync/test/testenv"
)

// targetOrder is the order the wiring runs targets in.
var targetOrder = []string{"mlflow", "kserve", "s3"}

func main() {
	table := flag.String("table", "1000,10000", "comma-separated model counts")
	targets := flag.String("targets", strings.Join(targetOrder, ","), "targets to measure")
	child := flag.String("child", "", "internal: measure this target (needs BENCH_* variables)")
	models := flag.Int("models", 0, "child: models in the repository")
	kserveEnvs := flag.String("kserve-envs", "", "environments KServe serves (default all); the others are left out of the KServe target's desired state")
	kserveStatus := flag.Bool("kserve-status", false, "also write KServe's finalizer and a Knative-mode status on every InferenceService (the converged plan does not read status; the informers store its slim form)")
	workers := flag.Int("workers", 8, "concurrent clients seeding each server")
	objects := flag.Int("objects", 2, "artifact objects per model version")
	mlflowWorkers := flag.Int("mlflow-workers", 2, "MLflow server worker processes")
	releaseBatch := flag.Int("release-batch", 0, "models per release commit in the generated repository (0: models/1000, at least 1)")
	cpuprofile := flag.String("cpuprofile", "", "write CPU profiles of each child's first observe+plan to `FILE`.<target>.<models> and of its resync to FILE.<target>.<models>.resync")
	flag.Parse()
	var err error
	if *child != "" {
		err = runChild(childConfig{target: *child, models: *models, kserveEnvs: splitList(*kserveEnvs), cpuprofile: *cpuprofile})
	} else {
		var sizes []int
		sizes, err = parseSizes(*table)
		if err == nil {
			err = run(benchConfig{sizes: sizes, targets: splitList(*targets), kserveEnvs: splitList(*kserveEnvs), kserveStatus: *kserveStatus,
				workers: *workers, objects: *objects, mlflowWorkers: *mlflowWorkers, releaseBatch: *releaseBatch, cpuprofile: *cpuprofile})
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "plan bench:", err)
		os.Exit(1)
	}
}

type benchConfig struct {
	sizes               []int
	targets, kserveEnvs []string
	kserveStatus        bool
	workers, objects    int
	mlflowWorkers       int
	releaseBatch        int
	cpuprofile          string
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseSizes(s string) ([]int, error) {
	var sizes []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-table %q: want positive model counts like 1000,10000", s)
		}
		sizes = append(sizes, n)
	}
	if len(sizes) == 0 {
		return nil, fmt.Errorf("-table %q names no size", s)
	}
	return sizes, nil
}

// sizeRun is everything measured at one size.
type sizeRun struct {
	models  int
	seeds   []seedTiming
	results map[string]childResult
}

func run(cfg benchConfig) error {
	for _, t := range cfg.targets {
		if !slices.Contains(targetOrder, t) {
			return fmt.Errorf("unknown target %q (want %v)", t, targetOrder)
		}
	}
	var runs []sizeRun
	for _, n := range cfg.sizes {
		r, err := runSize(cfg, n)
		if err != nil {
			return fmt.Errorf("%d models: %w", n, err)
		}
		runs = append(runs, r)
	}
	printTable(os.Stdout, cfg, runs, loadAverage())
	return nil
}

// runSize starts fresh servers, seeds them with the converged state of n
// models and measures every target in its own child process.
func runSize(cfg benchConfig, n int) (sizeRun, error) {
	ctx := context.Background()
	res := sizeRun{models: n, results: map[string]childResult{}}
	dir, err := os.MkdirTemp("", "modelsync-bench-plan-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	logDir := filepath.Join(dir, "logs")
	work := filepath.Join(dir, "work")
	batch := cfg.releaseBatch
	if batch <= 0 {
		batch = max(1, n/1000)
	}
	t0 := time.Now()
	if err := converged.Generate(work, n, batch); err != nil {
		return res, err
	}
	logf("%d models: repository generated in %v (release batch %d)", n, time.Since(t0).Round(time.Millisecond), batch)
	d, err := desiredState(ctx, work, filepath.Join(dir, "parent-cache"), n)
	if err != nil {
		return res, err
	}
	want := func(t string) bool { return slices.Contains(cfg.targets, t) }
	env := []string{"BENCH_REPO=" + work}

	// The registry: every target needs it (the locator, the version
	// lister), so it always runs.
	srv, err := testenv.StartMLflow(ctx, testenv.MLflowOptions{Major: 3, LogDir: logDir, Backend: testenv.BackendPostgres,
		PostgresDurable: true, StartTimeout: 20 * time.Minute, Workers: cfg.mlflowWorkers})
	if err != nil {
		return res, err
	}
	defer srv.Close()
	t0 = time.Now()
	if err := converged.SeedMLflow(ctx, srv, n); err != nil {
		return res, err
	}
	res.seeds = append(res.seeds, seedTiming{"MLflow (SQL)", fmt.Sprintf("%d models, %d versions", n, 3*n), time.Since(t0)})
	env = append(env, "BENCH_MLFLOW="+srv.URL)

	if want("kserve") {
		kube, err := testenv.StartKube(ctx, logDir)
		if err != nil {
			return res, err
		}
		defer kube.Close()
		kd := onlyEnvironments(d, cfg.kserveEnvs)
		t0 = time.Now()
		count, err := seedKServe(ctx, kube.RESTConfig, kd, cfg.workers, cfg.kserveStatus)
		if err != nil {
			return res, err
		}
		what := fmt.Sprintf("%d InferenceServices", count)
		if cfg.kserveStatus {
			what += " with finalizer and status"
		}
		res.seeds = append(res.seeds, seedTiming{"kube-apiserver", what, time.Since(t0)})
		env = append(env, "BENCH_KUBECONFIG="+kube.KubeconfigPath)
	}
	if want("s3") {
		minio, err := testenv.StartMinIO(ctx, logDir)
		if err != nil {
			return res, err
		}
		defer minio.Close()
		t0 = time.Now()
		count, err := seedS3(ctx, minio, d, cfg.objects, cfg.workers)
		if err != nil {
			return res, err
		}
		res.seeds = append(res.seeds, seedTiming{"MinIO", fmt.Sprintf("%d objects", count), time.Since(t0)})
		env = append(env, "BENCH_S3="+minio.Endpoint, "BENCH_S3_KEY="+minio.AccessKey, "BENCH_S3_SECRET="+minio.SecretKey, "BENCH_S3_REGION="+minio.Region)
	}
	for _, s := range res.seeds {
		logf("%d models: seeded %s with %s in %v", n, s.server, s.what, s.wall.Round(time.Millisecond))
	}
	self, err := os.Executable()
	if err != nil {
		return res, err
	}
	for _, t := range targetOrder {
		if !want(t) {
			continue
		}
		args := []string{"-child", t, "-models", strconv.Itoa(n)}
		if len(cfg.kserveEnvs) > 0 {
			args = append(args, "-kserve-envs", strings.Join(cfg.kserveEnvs, ","))
		}
		if cfg.cpuprofile != "" {
			args = append(args, "-cpuprofile", cfg.cpuprofile)
		}
		cmd := exec.Command(self, args...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Env = append(cmd.Env, "BENCH_CACHE="+filepath.Join(dir, "cache-"+t))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return res, fmt.Errorf("%s child: %w", t, err)
		}
		r, err := parseResult(out)
		if err != nil {
			return res, fmt.Errorf("%s child: %w", t, err)
		}
		res.results[t] = r
		logf("%d models: %s", n, r.summary())
	}
	return res, nil
}

type seedTiming struct {
	server, what string
	wall         time.Duration
}

// parseResult finds the child's one "result {json}" line.
func parseResult(out []byte) (childResult, error) {
	var r childResult
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "result "); ok {
			return r, json.Unmarshal([]byte(rest), &r)
		}
	}
	return r, fmt.Errorf("no result line in %q", out)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().UTC().Format("15:04:05 ")+format+"\n", args...)
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
