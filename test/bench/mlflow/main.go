// Command mlflow compares modelsync's MLflow target with the original
// design's approach (the MLflow Python client per model, seed_approach.py)
// on the same real MLflow server, counting HTTP requests through one
// recording proxy and timing both.
//
// The server runs with MLflow's default worker count (4) unless -workers
// says otherwise; modelsync applies -concurrency models at once, the seed
// design one request after another. -breakdown lists requests per endpoint.
// -backend postgres runs the server on PostgreSQL (with production
// durability settings) instead of sqlite.
//
//	go run ./test/bench/mlflow [-models 200] [-workers 4] [-concurrency 8] [-backend sqlite|postgres] [-breakdown]
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/internal/target/mlflow"
	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/test/testenv"
)

func main() {
	models := flag.Int("models", 200, "models, each with dev/staging/prod")
	workers := flag.Int("workers", 4, "MLflow server worker processes (MLflow's default is 4)")
	concurrency := flag.Int("concurrency", 8, "models modelsync applies at once")
	breakdown := flag.Bool("breakdown", false, "print requests per endpoint")
	backendFlag := flag.String("backend", "sqlite", "MLflow backend store: sqlite or postgres")
	flag.Parse()
	backend, err := testenv.ParseBackend(*backendFlag)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mlflow bench:", err)
		os.Exit(2)
	}
	if err := run(options{models: *models, workers: *workers, concurrency: *concurrency, breakdown: *breakdown, backend: backend}); err != nil {
		fmt.Fprintln(os.Stderr, "mlflow bench:", err)
		os.Exit(1)
	}
}

type counts struct{ reads, writes int }

func (c counts) total() int { return c.reads + c.writes }

func count(p *testenv.FaultProxy) counts {
	var c counts
	for _, r := range p.Requests() {
		if r.Method == http.MethodGet {
			c.reads++
		} else {
			c.writes++
		}
	}
	return c
}

type options struct {
	models, workers, concurrency int
	breakdown                    bool
	backend                      testenv.Backend
}

// endpoints counts requests by method and path.
func endpoints(p *testenv.FaultProxy) map[string]int {
	out := map[string]int{}
	for _, r := range p.Requests() {
		out[r.Method+" "+strings.TrimPrefix(r.Path, "/api/2.0/mlflow/")]++
	}
	return out
}

func printEndpoints(title string, m map[string]int) {
	fmt.Printf("\n%s:\n", title)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Printf("  %6d  %s\n", m[k], k)
	}
}

func run(o options) error {
	n := o.models
	ctx := context.Background()
	logDir, err := os.MkdirTemp("", "modelsync-bench-mlflow-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(logDir)
	srv, err := testenv.StartMLflow(ctx, testenv.MLflowOptions{Major: 3, LogDir: logDir, Workers: o.workers,
		Backend: o.backend, PostgresDurable: true, StartTimeout: 20 * time.Minute})
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Printf("MLflow %d on %s, %d workers\n", srv.Major, srv.Backend, max(1, o.workers))
	admin, err := mlflowclient.New(mlflowclient.Config{TrackingURI: srv.URL})
	if err != nil {
		return err
	}
	fmt.Printf("registering 2 x %d models with 3 versions each on MLflow %d...\n", n, srv.Major)
	ours, seed := make([]string, n), make([]string, n)
	for i := range n {
		ours[i], seed[i] = fmt.Sprintf("ours-%04d", i), fmt.Sprintf("seed-%04d", i)
		for _, name := range []string{ours[i], seed[i]} {
			if _, err := admin.CreateRegisteredModel(ctx, mlflowclient.CreateRegisteredModelRequest{Name: name}); err != nil {
				return err
			}
			for v := 1; v <= 3; v++ {
				if _, err := admin.CreateModelVersion(ctx, mlflowclient.CreateModelVersionRequest{Name: name, Source: fmt.Sprintf("s3://artifacts/%s/%d", name, v)}); err != nil {
					return err
				}
			}
		}
	}

	// modelsync: first sync, then a no-op resync.
	proxy, err := testenv.NewFaultProxy(srv.URL)
	if err != nil {
		return err
	}
	defer proxy.Close()
	client, err := mlflowclient.New(mlflowclient.Config{TrackingURI: proxy.URL})
	if err != nil {
		return err
	}
	target := reconciler.Typed(mlflow.New(client))
	d := desired(ours)
	start := time.Now()
	if err := sync(ctx, target, d, o.concurrency); err != nil {
		return err
	}
	firstWall, firstCount, firstEndpoints := time.Since(start), count(proxy), endpoints(proxy)
	proxy.Reset()
	start = time.Now()
	p, err := reconciler.BuildPlan(ctx, d, []reconciler.Target{target})
	if err != nil {
		return err
	}
	if p.HasChanges() {
		return fmt.Errorf("resync after first sync has %d actions", len(p.Actions()))
	}
	noopWall, noopCount := time.Since(start), count(proxy)

	// The seed design, through its own proxy on the same server.
	seedProxy, err := testenv.NewFaultProxy(srv.URL)
	if err != nil {
		return err
	}
	defer seedProxy.Close()
	seedWall, err := runSeed(seedProxy.URL, seed, logDir)
	if err != nil {
		return err
	}
	seedCount, seedEndpoints := count(seedProxy), endpoints(seedProxy)
	seedProxy.Reset()
	seedAgainWall, err := runSeed(seedProxy.URL, seed, logDir)
	if err != nil {
		return err
	}
	seedAgainCount := count(seedProxy)

	if o.breakdown {
		printEndpoints("modelsync first sync, requests per endpoint", firstEndpoints)
		printEndpoints("seed design first sync, requests per endpoint", seedEndpoints)
	}
	fmt.Printf("\n%d models x 3 environments, MLflow %d on loopback (%d server workers; modelsync applies %d models at once)\n", n, srv.Major, o.workers, o.concurrency)
	fmt.Printf("%-46s %9s %7s %7s %10s\n", "", "requests", "reads", "writes", "wall")
	row := func(name string, c counts, wall time.Duration) {
		fmt.Printf("%-46s %9d %7d %7d %10s\n", name, c.total(), c.reads, c.writes, wall.Round(time.Millisecond))
	}
	row("modelsync first sync (3 aliases + audit tags)", firstCount, firstWall)
	row("seed design first sync (2 stages, no audit)", seedCount, seedWall)
	row("modelsync no-op resync", noopCount, noopWall)
	row("seed design re-run (nothing changed)", seedAgainCount, seedAgainWall)
	fmt.Printf("\nratio first sync requests (ours/seed) %.2f, wall %.2f\n", float64(firstCount.total())/float64(seedCount.total()), firstWall.Seconds()/seedWall.Seconds())
	fmt.Printf("ratio resync requests (ours/seed) %.3f, wall %.3f\n", float64(noopCount.total())/float64(seedAgainCount.total()), noopWall.Seconds()/seedAgainWall.Seconds())
	return nil
}

func sync(ctx context.Context, t reconciler.Target, d *reconciler.DesiredState, concurrency int) error {
	p, err := reconciler.BuildPlan(ctx, d, []reconciler.Target{t})
	if err != nil {
		return err
	}
	if len(p.Errors()) > 0 {
		return fmt.Errorf("plan errors: %v", p.Errors())
	}
	res, err := reconciler.Apply(ctx, p, []reconciler.Target{t}, reconciler.ApplyOptions{Concurrency: concurrency})
	if err != nil {
		return err
	}
	if !res.OK() {
		return fmt.Errorf("apply failed: %+v", res.Failed)
	}
	return nil
}

func desired(names []string) *reconciler.DesiredState {
	cfg := &manifest.RepoConfig{Environments: []manifest.Environment{
		{Name: "dev", Namespace: "dev", Source: "main"},
		{Name: "staging", Namespace: "staging", Source: "main"},
		{Name: "prod", Namespace: "prod", Source: manifest.SourceReleases},
	}}
	d := &reconciler.DesiredState{Revision: "main@sha1:bench", Config: cfg}
	for _, name := range names {
		m := reconciler.DesiredModel{Name: name, RegisteredModel: name}
		for i, env := range []string{"dev", "staging", "prod"} {
			m.Environments = append(m.Environments, reconciler.DesiredEnv{Environment: env, Alias: env, Version: 3 - i,
				Revision: "main@sha1:bench", Commit: reconciler.Commit{AuthorName: "Bench", AuthorEmail: "bench@example.com"}})
		}
		d.Models = append(d.Models, m)
	}
	return d
}

func runSeed(uri string, names []string, dir string) (time.Duration, error) {
	bin, err := testenv.MLflowBin(3)
	if err != nil {
		return 0, err
	}
	python := filepath.Join(filepath.Dir(bin), "python")
	file := filepath.Join(dir, "models.txt")
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s 2 1\n", n) // staging v2, prod v1, as ours
	}
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		return 0, err
	}
	script, err := filepath.Abs("test/bench/mlflow/seed_approach.py")
	if err != nil {
		return 0, err
	}
	out, err := exec.Command(python, script, uri, file).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("seed_approach.py: %v\n%s", err, out)
	}
	var secs float64
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if _, err := fmt.Sscanf(lines[len(lines)-1], "%f", &secs); err != nil {
		return 0, fmt.Errorf("seed_approach.py printed %q", out)
	}
	return time.Duration(secs * float64(time.Second)), nil
}
