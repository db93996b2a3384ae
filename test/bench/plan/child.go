package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/internal/target/kserve"
	"github.com/modelsync/modelsync/internal/target/mlflow"
	s3target "github.com/modelsync/modelsync/internal/target/s3"
	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/test/bench/internal/procstat"
)

type childConfig struct {
	target     string
	models     int
	kserveEnvs []string
	cpuprofile string
}

// childResult is one target at one size, as the child measured it.
type childResult struct {
	Target string `json:"target"`
	Models int    `json:"models"`
	// Objects is what the target holds per pass: InferenceServices for
	// kserve, model versions for mlflow and s3.
	Objects int `json:"objects"`
	// DesiredRSSMB is the peak RSS once the repository is cloned and the
	// desired state computed, before the target existed.
	DesiredRSSMB float64 `json:"desiredRSSMB"`
	// Locate* is filling the artifact locator (kserve and s3 only).
	LocateWall  time.Duration `json:"locateWall"`
	LocateCPU   time.Duration `json:"locateCPU"`
	LocateReads int64         `json:"locateReads"`
	// The first pass, as a starting controller makes it.
	ObserveWall time.Duration    `json:"observeWall"`
	ObserveCPU  time.Duration    `json:"observeCPU"`
	PlanCPU     time.Duration    `json:"planCPU"`
	BuildCPU    time.Duration    `json:"buildCPU"`
	Requests    map[string]int64 `json:"requests"`
	// The second pass over unchanged servers: the periodic resync.
	ResyncWall     time.Duration    `json:"resyncWall"`
	ResyncCPU      time.Duration    `json:"resyncCPU"`
	ResyncRequests map[string]int64 `json:"resyncRequests"`
	// ResyncMLflowTime is the sum of the resync's MLflow request durations.
	ResyncMLflowTime time.Duration `json:"resyncMLflowTime"`
	PeakRSSMB        float64       `json:"peakRSSMB"`
	// HeapPerObject is the Go heap the target keeps live after its first
	// pass (informers, caches), per object, in bytes.
	HeapPerObject float64 `json:"heapPerObject"`
}

func (r childResult) summary() string {
	return fmt.Sprintf("%s: %d objects; locate %v wall %v CPU %d reads; observe %v wall %v CPU, plan %v CPU, requests %v; resync %v wall %v CPU, requests %v, MLflow request time %v; heap %.0f B/object; peak RSS %.0f MB (%.0f MB before the target)",
		r.Target, r.Objects, round(r.LocateWall), round(r.LocateCPU), r.LocateReads, round(r.ObserveWall), round(r.ObserveCPU), round(r.PlanCPU),
		r.Requests, round(r.ResyncWall), round(r.ResyncCPU), r.ResyncRequests, round(r.ResyncMLflowTime), r.HeapPerObject, r.PeakRSSMB, r.DesiredRSSMB)
}

func round(d time.Duration) time.Duration {
	if d < 10*time.Millisecond {
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Millisecond)
}

// counters count HTTP requests per server; safe for concurrent use.
type counters struct {
	kube, mlflow, s3 atomic.Int64
	// mlflowTime sums MLflow requests' durations: the share of a pass's
	// wall spent waiting on the registry when its reads are sequential.
	mlflowTime atomic.Int64
}

func (c *counters) snapshot() map[string]int64 {
	return map[string]int64{"kube": c.kube.Load(), "mlflow": c.mlflow.Load(), "s3": c.s3.Load()}
}

func diff(a, b map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range b {
		if d := v - a[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// countingTransport counts every request sent through it.
type countingTransport struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.n.Add(1)
	return t.next.RoundTrip(r)
}

// timed records how long its target's Observe and Plan took, as wall and
// process CPU time (informer and collector goroutines included).
type timed struct {
	reconciler.Target
	observeWall, observeCPU, planCPU time.Duration
}

func (t *timed) Observe(ctx context.Context, d *reconciler.DesiredState) (reconciler.Observation, error) {
	w, c := time.Now(), procstat.CPUTime()
	o, err := t.Target.Observe(ctx, d)
	t.observeWall, t.observeCPU = time.Since(w), procstat.CPUTime()-c
	return o, err
}

func (t *timed) Plan(d *reconciler.DesiredState, o reconciler.Observation) reconciler.TargetPlan {
	c := procstat.CPUTime()
	p := t.Target.Plan(d, o)
	t.planCPU = procstat.CPUTime() - c
	return p
}

// Unwrap lets reconciler.As see the target's capabilities.
func (t *timed) Unwrap() any { return t.Target }

func runChild(cfg childConfig) error {
	ctx := context.Background()
	repoDir, cache := os.Getenv("BENCH_REPO"), os.Getenv("BENCH_CACHE")
	if repoDir == "" || cache == "" || os.Getenv("BENCH_MLFLOW") == "" {
		return errors.New("-child needs BENCH_REPO, BENCH_CACHE and BENCH_MLFLOW")
	}
	d, err := desiredState(ctx, repoDir, cache, cfg.models)
	if err != nil {
		return err
	}
	res := childResult{Target: cfg.target, Models: cfg.models, DesiredRSSMB: procstat.PeakRSSMB()}
	cnt := &counters{}
	mc, err := mlflowclient.New(mlflowclient.Config{TrackingURI: os.Getenv("BENCH_MLFLOW"),
		Observe: func(_, _ string, _ int, d time.Duration) {
			cnt.mlflow.Add(1)
			cnt.mlflowTime.Add(int64(d))
		}})
	if err != nil {
		return err
	}
	loc := &mlflowclient.Locator{Client: mc}
	var tgt reconciler.Target
	switch cfg.target {
	case "mlflow":
		tgt = reconciler.Typed(mlflow.New(mc))
		res.Objects = versions(d)
	case "kserve":
		d = onlyEnvironments(d, cfg.kserveEnvs)
		rc, err := kserve.LoadRESTConfig(os.Getenv("BENCH_KUBECONFIG"), "")
		if err != nil {
			return err
		}
		rc.Wrap(func(rt http.RoundTripper) http.RoundTripper { return countingTransport{rt, &cnt.kube} })
		t, err := kserve.New(kserve.Config{}, loc, rc)
		if err != nil {
			return err
		}
		defer t.Close()
		tgt = reconciler.Typed(t)
		res.Objects = versions(d)
	case "s3":
		c := awss3.New(awss3.Options{
			Region: os.Getenv("BENCH_S3_REGION"), BaseEndpoint: aws.String(os.Getenv("BENCH_S3")), UsePathStyle: true,
			Credentials: credentials.NewStaticCredentialsProvider(os.Getenv("BENCH_S3_KEY"), os.Getenv("BENCH_S3_SECRET"), ""),
			HTTPClient:  &http.Client{Transport: countingTransport{http.DefaultTransport, &cnt.s3}},
		})
		t, err := s3target.New(s3target.Config{Client: c, Locator: loc, Versions: mlflow.VersionLister{Client: mc}})
		if err != nil {
			return err
		}
		tgt = reconciler.Typed(t)
		res.Objects = versions(d)
	default:
		return fmt.Errorf("unknown target %q", cfg.target)
	}
	if cfg.target != "mlflow" {
		// What a controller's first pass pays once: one get-download-uri
		// per referenced version, in order, as the targets' Observe asks.
		before, w, c := cnt.snapshot(), time.Now(), procstat.CPUTime()
		for i := range d.Models {
			m := &d.Models[i]
			for _, v := range m.ReferencedVersions() {
				if _, err := loc.ArtifactURI(ctx, m.RegisteredModel, v); err != nil {
					return fmt.Errorf("locating model %s version %d: %w", m.Name, v, err)
				}
			}
		}
		res.LocateWall, res.LocateCPU, res.LocateReads = time.Since(w), procstat.CPUTime()-c, diff(before, cnt.snapshot())["mlflow"]
	}
	tt := &timed{Target: tgt}
	targets := []reconciler.Target{tt}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heapBefore := ms.HeapAlloc

	stop, err := startProfile(cfg.cpuprofile, cfg.target, strconv.Itoa(cfg.models))
	if err != nil {
		return err
	}
	before, c := cnt.snapshot(), procstat.CPUTime()
	p, err := reconciler.BuildPlan(ctx, d, targets)
	res.BuildCPU = procstat.CPUTime() - c
	stop()
	if err != nil {
		return err
	}
	res.Requests = diff(before, cnt.snapshot())
	res.ObserveWall, res.ObserveCPU, res.PlanCPU = tt.observeWall, tt.observeCPU, tt.planCPU
	if err := mustBeEmpty(p); err != nil {
		return fmt.Errorf("first pass: %w", err)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	res.HeapPerObject = float64(int64(ms.HeapAlloc)-int64(heapBefore)) / float64(max(1, res.Objects))

	stop, err = startProfile(cfg.cpuprofile, cfg.target+"."+strconv.Itoa(cfg.models), "resync")
	if err != nil {
		return err
	}
	before, w, c, mt := cnt.snapshot(), time.Now(), procstat.CPUTime(), cnt.mlflowTime.Load()
	p, err = reconciler.BuildPlan(ctx, d, targets)
	res.ResyncMLflowTime = time.Duration(cnt.mlflowTime.Load() - mt)
	res.ResyncWall, res.ResyncCPU = time.Since(w), procstat.CPUTime()-c
	stop()
	if err != nil {
		return err
	}
	res.ResyncRequests = diff(before, cnt.snapshot())
	if err := mustBeEmpty(p); err != nil {
		return fmt.Errorf("resync: %w", err)
	}
	res.PeakRSSMB = procstat.PeakRSSMB()
	runtime.KeepAlive(d)
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	fmt.Printf("result %s\n", b)
	return nil
}

// mustBeEmpty fails unless the plan of a converged state is empty.
func mustBeEmpty(p *reconciler.Plan) error {
	acts, errs, waits := p.Actions(), p.Errors(), p.Waits()
	if len(acts) == 0 && len(errs) == 0 && len(waits) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "the converged state planned %d actions, %d errors, %d waits", len(acts), len(errs), len(waits))
	for i, a := range acts {
		if i == 3 {
			break
		}
		fmt.Fprintf(&b, "; action %s %s/%s: %s", a.Kind, a.Model, a.Environment, a.Reason)
	}
	for i, e := range errs {
		if i == 3 {
			break
		}
		fmt.Fprintf(&b, "; error %s/%s: %s", e.Model, e.Environment, e.Message)
	}
	return errors.New(b.String())
}

// versions counts model versions the environments reference.
func versions(d *reconciler.DesiredState) int {
	n := 0
	for i := range d.Models {
		n += len(d.Models[i].ReferencedVersions())
	}
	return n
}

// startProfile writes a CPU profile to prefix.a.b until the returned
// function is called; without a prefix it does nothing.
func startProfile(prefix, a, b string) (func(), error) {
	if prefix == "" {
		return func() {}, nil
	}
	f, err := os.Create(filepath.Clean(prefix + "." + a + "." + b))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
