// Command controller measures the controller against real servers (git
// daemon, MLflow 3) on a generated repository of -models models × 3
// environments (dev, staging follow main; prod follows release tags):
//
//  1. latency from a signed webhook to the change applied in MLflow, for a
//     one-model commit, over -runs pushes (p50/p95/max), and the Go heap the
//     in-process controller keeps after those commits;
//
//  2. a no-op resync of every model and environment in -children fresh
//     controller processes (their first pass, against converged MLflow) and
//     a second, explicit resync: wall time, CPU time, the child's peak RSS
//     and Go heap figures;
//
//  3. the same for the shipped binary, `modelsync serve`, over -serve-passes
//     full passes (built from this module unless -modelsync names a binary);
//
// and that no MLflow write happened in 2 and 3.
//
//	go run ./test/bench/controller [-models 1000] [-runs 20] [-children 3] [-backend sqlite|postgres] [-mlflow-workers 1]
//
// -backend postgres runs MLflow on PostgreSQL (production durability
// settings) instead of sqlite, whose single writer bounds the first sync;
// -mlflow-workers sets the server's worker processes.
//
// Peak RSS is VmHWM from /proc (Linux only); see procMemory for why not
// getrusage. -memprofile FILE makes each resync child write two heap
// profiles: FILE.peak, taken when the child's Go heap was largest, and
// FILE.end after both passes (go tool pprof -sample_index=inuse_space).
// -cpuprofile FILE writes a CPU profile of the webhook-to-applied runs to
// FILE and one of each resync child to FILE.resync (FILE.resync.N with
// several children) for go tool pprof.
// -seed (with -backend postgres) writes the converged registry into
// MLflow's store by SQL instead of registering and syncing through the API,
// which takes minutes per thousand models here; the first pass must then
// apply nothing. -idle D makes each resync child also measure its CPU over
// an idle window of D at the default intervals (a fetch a minute, a full
// resync every 10 minutes) and print the steady state's share of one core.
// -hold keeps the servers running after the measurements and prints the
// environment -child-resync and -serve-resync need, so a rebuilt controller
// can be measured again without a new first sync.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelsync/modelsync/internal/controller"
	"github.com/modelsync/modelsync/internal/gitsource"
	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/internal/repo"
	"github.com/modelsync/modelsync/internal/target/mlflow"
	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/test/bench/internal/converged"
	"github.com/modelsync/modelsync/test/bench/internal/procstat"
	"github.com/modelsync/modelsync/test/testenv"
)

func main() {
	models := flag.Int("models", 1000, "models in the generated repository")
	runs := flag.Int("runs", 20, "webhook-to-applied measurements")
	concurrency := flag.Int("concurrency", controller.DefaultConcurrency, "controller workers")
	child := flag.Bool("child-resync", false, "internal: run the resync measurement (needs BENCH_* variables)")
	children := flag.Int("children", 1, "fresh resync processes to measure, one after the other")
	memProfile := flag.String("memprofile", "", "resync child: write heap profiles to `FILE`.peak and FILE.end")
	cpuProfile := flag.String("cpuprofile", "", "write CPU profiles of the webhook runs to `FILE` and of each resync child to FILE.resync")
	servePasses := flag.Int("serve-passes", 5, "full passes of the modelsync serve measurement (0 skips it)")
	serveBin := flag.String("modelsync", "", "serve measurement: use this modelsync `binary` instead of building one")
	serveOnly := flag.Bool("serve-resync", false, "run only the serve measurement (needs BENCH_GIT, BENCH_MLFLOW)")
	hold := flag.Bool("hold", false, "keep the servers up after measuring, until stdin closes")
	backendFlag := flag.String("backend", "sqlite", "MLflow backend store: sqlite or postgres")
	mlflowWorkers := flag.Int("mlflow-workers", 1, "MLflow server worker processes")
	seed := flag.Bool("seed", false, "write the converged registry into MLflow's PostgreSQL store by SQL instead of registering and syncing through the API (needs -backend postgres)")
	releaseBatch := flag.Int("release-batch", 1, "models released per release commit in the generated repository")
	idle := flag.Duration("idle", 0, "resync child: also measure CPU over this long an idle window at the default fetch interval")
	gitCache := flag.Int64("git-cache-mib", gitsource.DefaultCacheSize>>20, "Git memory caches of every controller measured, in MiB (serve's --git-cache-mib)")
	flag.Parse()
	backend, err := testenv.ParseBackend(*backendFlag)
	if err != nil {
		fmt.Fprintln(os.Stderr, "controller bench:", err)
		os.Exit(2)
	}
	switch {
	case *child:
		err = childResync(*models, *concurrency, *gitCache, *memProfile, *cpuProfile, *idle)
	case *serveOnly:
		var dir string
		if dir, err = os.MkdirTemp("", "modelsync-bench-serve-"); err == nil {
			defer os.RemoveAll(dir)
			err = serveResync(serveConfig{dir: dir, bin: *serveBin, gitURL: os.Getenv("BENCH_GIT"), mlflowURL: os.Getenv("BENCH_MLFLOW"),
				models: *models, concurrency: *concurrency, passes: *servePasses, gitCacheMiB: *gitCache})
		}
	default:
		err = run(benchConfig{models: *models, runs: *runs, concurrency: *concurrency, children: *children, servePasses: *servePasses, serveBin: *serveBin, memProfile: *memProfile, cpuProfile: *cpuProfile, hold: *hold,
			gitCacheMiB: *gitCache, backend: backend, mlflowWorkers: *mlflowWorkers, seed: *seed, idle: *idle, releaseBatch: *releaseBatch})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "controller bench:", err)
		os.Exit(1)
	}
}

type benchConfig struct {
	models, runs, concurrency, children int
	servePasses                         int
	gitCacheMiB                         int64
	serveBin                            string
	memProfile                          string
	cpuProfile                          string
	hold                                bool
	backend                             testenv.Backend
	mlflowWorkers                       int
	seed                                bool
	releaseBatch                        int
	idle                                time.Duration
}

func run(cfg benchConfig) error {
	models, runs, concurrency := cfg.models, cfg.runs, cfg.concurrency
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "modelsync-bench-controller-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logDir := filepath.Join(dir, "logs")
	srv, err := testenv.StartMLflow(ctx, testenv.MLflowOptions{Major: 3, LogDir: logDir,
		Backend: cfg.backend, PostgresDurable: true, StartTimeout: 20 * time.Minute, Workers: cfg.mlflowWorkers})
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Printf("MLflow %d on %s, %d workers\n", srv.Major, srv.Backend, max(1, cfg.mlflowWorkers))
	g, err := testenv.StartGitServer(ctx, logDir)
	if err != nil {
		return err
	}
	defer g.Close()
	bare, err := g.NewBareRepo("models")
	if err != nil {
		return err
	}
	work := filepath.Join(dir, "work")
	if err := converged.Generate(work, models, cfg.releaseBatch); err != nil {
		return err
	}
	// The server's repository fetches the generated one from disk: a push
	// of tens of thousands of tags (send-pack) took longer than anything
	// measured here.
	if err := git(bare, "fetch", "-q", work, "refs/heads/main:refs/heads/main", "refs/tags/*:refs/tags/*"); err != nil {
		return err
	}
	admin, err := mlflowclient.New(mlflowclient.Config{TrackingURI: srv.URL})
	if err != nil {
		return err
	}
	start := time.Now()
	if cfg.seed {
		fmt.Printf("seeding MLflow's store with %d converged models by SQL...\n", models)
		if err := converged.SeedMLflow(ctx, srv, models); err != nil {
			return err
		}
	} else {
		fmt.Printf("registering %d models with 3 versions each...\n", models)
		if err := register(ctx, admin, models); err != nil {
			return err
		}
	}
	fmt.Printf("  done in %v\n", time.Since(start).Round(time.Second))

	// With a seeded store and no webhook runs the first pass of the
	// resync child below checks the seed (its writes would be counted).
	if runs > 0 || !cfg.seed {
		if err := webhookRuns(ctx, cfg, srv, g, work, dir); err != nil {
			return err
		}
	}
	// The resync runs in a fresh process so its CPU time and RSS are the
	// controller's alone.
	proxy, err := testenv.NewFaultProxy(srv.URL)
	if err != nil {
		return err
	}
	defer proxy.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	env := []string{"BENCH_GIT=" + g.DaemonURL + "models.git", "BENCH_MLFLOW=" + proxy.URL}
	for i := range cfg.children {
		args := []string{"-child-resync", fmt.Sprintf("-idle=%s", cfg.idle), fmt.Sprintf("-models=%d", models), fmt.Sprintf("-concurrency=%d", concurrency), fmt.Sprintf("-git-cache-mib=%d", cfg.gitCacheMiB)}
		if cfg.memProfile != "" {
			prof := cfg.memProfile
			if cfg.children > 1 {
				prof = fmt.Sprintf("%s.%d", prof, i+1)
			}
			args = append(args, "-memprofile="+prof)
		}
		if cfg.cpuProfile != "" {
			prof := cfg.cpuProfile + ".resync"
			if cfg.children > 1 {
				prof = fmt.Sprintf("%s.%d", prof, i+1)
			}
			args = append(args, "-cpuprofile="+prof)
		}
		cmd := exec.Command(self, args...)
		// A fresh clone cache per child: each measures clone + desired + plan.
		cmd.Env = append(os.Environ(), append(env, "BENCH_CACHE="+filepath.Join(dir, fmt.Sprintf("cache-child-%d", i+1)))...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("resync child: %w", err)
		}
	}
	if cfg.servePasses > 0 {
		if err := serveResync(serveConfig{dir: dir, bin: cfg.serveBin, gitURL: g.DaemonURL + "models.git", mlflowURL: proxy.URL,
			models: models, concurrency: concurrency, passes: cfg.servePasses, gitCacheMiB: cfg.gitCacheMiB}); err != nil {
			return err
		}
	}
	var reads, writes int
	for _, r := range proxy.Requests() {
		if r.Method == http.MethodGet {
			reads++
		} else {
			writes++
		}
	}
	fmt.Printf("\nMLflow requests over all no-op passes (%d child(ren) x 2, serve x %d): %d reads, %d writes\n", cfg.children, cfg.servePasses, reads, writes)
	if writes != 0 {
		return fmt.Errorf("no-op resync wrote %d times", writes)
	}
	if cfg.hold {
		fmt.Printf("\nservers held; measure again with\n  %s BENCH_CACHE=$(mktemp -d) go run ./test/bench/controller -child-resync -models=%d\n"+
			"  %s go run ./test/bench/controller -serve-resync -models=%d\nclose stdin (Ctrl-D) to stop\n",
			strings.Join(env, " "), models, strings.Join(env, " "), models)
		_, _ = io.Copy(io.Discard, os.Stdin)
	}
	return nil
}

// webhookRuns runs the controller in this process through its first sync
// and then cfg.runs one-model pushes, each announced by a signed webhook,
// and prints the latency until the change is applied.
func webhookRuns(ctx context.Context, cfg benchConfig, srv *testenv.MLflow, g *testenv.GitServer, work, dir string) error {
	models, runs, concurrency := cfg.models, cfg.runs, cfg.concurrency
	// The controller under test; its audit log tells when an action ran.
	applied := make(chan controller.AuditEntry, 1024)
	secret := []byte("bench-secret")
	gitRepo, err := repo.New(ctx, repo.Options{URL: g.DaemonURL + "models.git", CacheDir: filepath.Join(dir, "cache"), CacheSize: cfg.gitCacheMiB << 20})
	if err != nil {
		return err
	}
	defer gitRepo.Close()
	c, err := controller.New(controller.Options{
		Git:           gitRepo,
		Targets:       []reconciler.Target{reconciler.Typed(mlflow.New(mustClient(srv.URL)))},
		Interval:      time.Hour,
		Concurrency:   concurrency,
		Audit:         auditSink(applied),
		WebhookSecret: secret,
	})
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	api := httptest.NewServer(c.Handler())
	defer api.Close()

	fmt.Printf("first sync of %d models x 3 environments...\n", models)
	start := time.Now()
	if err := waitConverged(c, 30*time.Minute); err != nil {
		return err
	}
	fmt.Printf("  converged in %v\n", time.Since(start).Round(time.Second))
	if cfg.seed {
		// The seeded store must be what a first sync leaves: the first
		// pass over it applies nothing.
		select {
		case e := <-applied:
			return fmt.Errorf("the seeded registry is not converged: the first pass applied %s %s/%s %s", e.Action, e.Model, e.Environment, e.To)
		default:
		}
	}
	liveConverged := liveHeap()
	drain(applied)

	stopProfile, err := startCPUProfile(cfg.cpuProfile)
	if err != nil {
		return err
	}
	var lat []time.Duration
	for i := range runs {
		model := fmt.Sprintf("model-%04d", (i*37)%models)
		to, err := flipDev(work, model)
		if err != nil {
			return err
		}
		if err := git(work, "commit", "-qam", "bench "+model); err != nil {
			return err
		}
		if err := git(work, "push", "-q", g.AuthHTTPURL("models"), "main"); err != nil {
			return err
		}
		body := []byte(`{"ref":"refs/heads/main"}`)
		req, _ := http.NewRequest(http.MethodPost, api.URL+"/webhooks/generic", bytes.NewReader(body))
		req.Header.Set("X-Modelsync-Signature", controller.Sign(secret, body))
		t0 := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("webhook answered %d", resp.StatusCode)
		}
		if err := waitApplied(applied, model, fmt.Sprintf("v%d", to), 2*time.Minute); err != nil {
			return err
		}
		lat = append(lat, time.Since(t0))
		// Model-level tag writes follow the alias; let them finish so the
		// next run measures one change, not two.
		if err := waitConverged(c, 2*time.Minute); err != nil {
			return err
		}
		drain(applied)
	}
	stopProfile()
	if len(lat) > 0 {
		slices.Sort(lat)
		// Nearest-rank percentile.
		pct := func(p float64) time.Duration { return lat[max(0, int(math.Ceil(float64(len(lat))*p))-1)] }
		fmt.Printf("\nwebhook -> alias applied, one-model change in a %d-model repo (%d runs, %d workers):\n", models, runs, concurrency)
		fmt.Printf("  p50 %v  p95 %v  max %v\n", pct(0.50).Round(time.Millisecond), pct(0.95).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
		// What commits between two full resyncs leave behind: the
		// controller keeps each environment's last applied state, with
		// the tree of its commit.
		fmt.Printf("  Go heap live after a GC (this process: the controller and the bench): %.1f MiB after the first sync, %.1f MiB after %d commits\n",
			liveConverged, liveHeap(), runs)
	}

	cancel()
	<-done
	return nil
}

func childResync(models, concurrency int, gitCacheMiB int64, memProfile, cpuProfile string, idle time.Duration) error {
	stopProfile, err := startCPUProfile(cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	if memProfile != "" {
		// Finer sampling than the default 512 KiB, so the many small
		// objects of a desired state show up in the profile.
		runtime.MemProfileRate = 64 << 10
	}
	watch := startHeapWatch(memProfile)
	anon := watchAnon("self")
	gitRepo, err := repo.New(context.Background(), repo.Options{URL: os.Getenv("BENCH_GIT"), CacheDir: os.Getenv("BENCH_CACHE"), CacheSize: gitCacheMiB << 20})
	if err != nil {
		return err
	}
	defer gitRepo.Close()
	c, err := controller.New(controller.Options{
		Git:     gitRepo,
		Targets: []reconciler.Target{reconciler.Typed(mlflow.New(mustClient(os.Getenv("BENCH_MLFLOW"))))},
		// The defaults a replica runs with: a fetch a minute, every model
		// re-planned every 10 minutes.
		Interval:       controller.DefaultInterval,
		ResyncInterval: controller.DefaultResyncInterval,
		Concurrency:    concurrency,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	cpu0 := procstat.CPUTime()
	t0 := time.Now()
	go func() { defer close(done); _ = c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	want := float64(models * 3)
	if err := waitPasses(c, want, 30*time.Minute); err != nil {
		return err
	}
	firstWall, firstCPU := time.Since(t0), procstat.CPUTime()-cpu0
	cpu1 := procstat.CPUTime()
	t1 := time.Now()
	c.Resync()
	if err := waitPasses(c, 2*want, 30*time.Minute); err != nil {
		return err
	}
	wall, cpu := time.Since(t1), procstat.CPUTime()-cpu1
	mem, err := anon.memory("self")
	if err != nil {
		return err
	}
	fmt.Printf("\nno-op resync, %d models x 3 environments (%d workers), MLflow target:\n", models, concurrency)
	fmt.Printf("  fresh process, first pass (clone + desired + plan): wall %v  CPU %v\n", firstWall.Round(time.Millisecond), firstCPU.Round(time.Millisecond))
	fmt.Printf("  explicit resync (fetch + desired + plan):           wall %v  CPU %v\n", wall.Round(time.Millisecond), cpu.Round(time.Millisecond))
	fmt.Printf("  peak RSS of the controller process %s\n", mem)
	if err := watch.report(os.Stdout, memProfile); err != nil {
		return err
	}
	if idle > 0 {
		// The samplers above read memory every 5 ms, more CPU than an
		// idle controller spends; they stop before the idle window.
		anon.halt()
		cpu2 := procstat.CPUTime()
		time.Sleep(idle)
		idleCPU := procstat.CPUTime() - cpu2
		perResync := cpu + time.Duration(float64(idleCPU)*float64(controller.DefaultResyncInterval)/float64(idle))
		fmt.Printf("  idle at the default intervals (fetch every %v, nothing moved): CPU %v over %v\n", controller.DefaultInterval, idleCPU.Round(time.Millisecond), idle)
		fmt.Printf("  steady state, one resync plus %v of idle fetches: CPU %v per %v = %.2f %% of one core\n",
			controller.DefaultResyncInterval, perResync.Round(time.Millisecond), controller.DefaultResyncInterval,
			100*perResync.Seconds()/controller.DefaultResyncInterval.Seconds())
	}
	for _, row := range c.Status().Rows {
		if row.State != controller.StateSynced {
			return fmt.Errorf("%s/%s is %s after resync: %s", row.Model, row.Environment, row.State, row.LastError)
		}
	}
	return nil
}

// startCPUProfile starts a CPU profile into file (none when file is
// empty) and returns what stops it; stopping twice is harmless.
func startCPUProfile(file string) (stop func(), err error) {
	if file == "" {
		return func() {}, nil
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			f.Close()
		})
	}, nil
}

// waitPasses waits until the controller has counted n item reconciliations
// at the mlflow target.
func waitPasses(c *controller.Controller, n float64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		// Reconciliations reads one counter; a Registry.Gather every 20 ms
		// cost the measured process ~0.15 s of CPU per pass.
		if c.Metrics().Reconciliations() >= n {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("timed out waiting for the resync pass")
}

func waitConverged(c *controller.Controller, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		st := c.Status()
		ok := len(st.Rows) > 0
		for _, r := range st.Rows {
			if r.State != controller.StateSynced || r.Live != r.Desired {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("timed out waiting for convergence")
}

func waitApplied(ch <-chan controller.AuditEntry, model, to string, timeout time.Duration) error {
	t := time.After(timeout)
	for {
		select {
		case e := <-ch:
			if e.Model == model && e.Environment == "dev" && strings.Contains(e.Action, "set-alias") && e.To == to {
				if e.Result != "applied" {
					return fmt.Errorf("%s dev: %s", model, e.Error)
				}
				return nil
			}
		case <-t:
			return fmt.Errorf("%s dev never reached %s", model, to)
		}
	}
}

func drain(ch <-chan controller.AuditEntry) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

type sink struct {
	mu sync.Mutex
	ch chan<- controller.AuditEntry
}

func auditSink(ch chan<- controller.AuditEntry) *sink { return &sink{ch: ch} }

// Write receives one JSON line per call (the audit log writes whole lines).
func (s *sink) Write(p []byte) (int, error) {
	var e controller.AuditEntry
	if err := json.Unmarshal(p, &e); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case s.ch <- e:
	default:
	}
	return len(p), nil
}

func mustClient(url string) *mlflowclient.Client {
	c, err := mlflowclient.New(mlflowclient.Config{TrackingURI: url})
	if err != nil {
		panic(err)
	}
	return c
}

func register(ctx context.Context, c *mlflowclient.Client, n int) error {
	jobs := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range jobs {
				name := fmt.Sprintf("model-%04d", i)
				if _, err := c.CreateRegisteredModel(ctx, mlflowclient.CreateRegisteredModelRequest{Name: name}); err != nil {
					errs <- err
					continue
				}
				for v := 1; v <= 3; v++ {
					if _, err := c.CreateModelVersion(ctx, mlflowclient.CreateModelVersionRequest{Name: name, Source: fmt.Sprintf("s3://models/%s/%d", name, v)}); err != nil {
						errs <- err
					}
				}
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	return <-errs
}

// flipDev moves a model's dev version between 3 and 2 and returns the new one.
func flipDev(work, model string) (int, error) {
	p := filepath.Join(work, "models", model, "model.yaml")
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	to := 0
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		switch l {
		case "    dev: {version: 3}":
			to = 2
		case "    dev: {version: 2}":
			to = 3
		default:
			continue
		}
		lines[i] = fmt.Sprintf("    dev: {version: %d}", to)
	}
	if to == 0 {
		return 0, fmt.Errorf("%s has no dev version to flip", p)
	}
	return to, os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o644)
}

func git(dir string, args ...string) error {
	cmd := exec.Command("git", append([]string{"-c", "user.name=bench", "-c", "user.email=bench@example.com"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1",
		// Above http.postBuffer git sends a chunked body, which the test
		// server's CGI bridge (net/http/cgi) refuses; the first push of a
		// thousand release commits and tags exceeds the default 1 MiB.
		"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.postBuffer", "GIT_CONFIG_VALUE_0=256m")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git %s: %w\n%s", args[0], err, out)
	}
	return nil
}
