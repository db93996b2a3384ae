package kserve

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"

	"github.com/modelsync/modelsync/internal/manifest"

	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/test/testenv"
)

// BenchmarkNoopResync plans against 1,000 InferenceServices in 3
// namespaces on a real apiserver when nothing changed. Every resync must
// make zero requests (reads come from the informer caches, and a quiet
// cluster needs no dry-run); the benchmark fails otherwise. Besides ns/op
// it reports the process's CPU time per resync and its peak RSS.
func BenchmarkNoopResync(b *testing.B) {
	const models = 1000
	kube := testenv.NewKube(b)
	ctx := b.Context()
	envs := map[string]string{}
	for _, e := range []string{"dev", "staging", "prod"} {
		ns, err := kube.NewNamespace(ctx, e)
		if err != nil {
			b.Fatal(err)
		}
		envs[e] = ns
	}
	cfg := testConfig(envs)
	files := fstest.MapFS{}
	names := make([]string, models)
	for i := range names {
		names[i] = fmt.Sprintf("model-%04d", i)
		modelFiles(files, names[i], "", "")
	}
	d := &reconciler.DesiredState{Revision: "main@sha1:" + fmt.Sprintf("%040d", 1), Config: cfg}
	envNames := []string{"dev", "staging", "prod"}
	for i, name := range names {
		e := desiredEnv(envNames[i%3], envs[envNames[i%3]], 1+i%5, files, name)
		e.Commit = reconciler.Commit{Hash: fmt.Sprintf("%040d", 1)}
		d.Models = append(d.Models, desiredModel(name, e))
	}
	counter := &requestCounter{}
	tgt := countedTarget(b, kube, Config{}, counter, artifactsFor(names, 5))
	targets := []reconciler.Target{reconciler.Typed(tgt)}

	p, err := reconciler.BuildPlan(ctx, d, targets)
	if err != nil {
		b.Fatal(err)
	}
	if n := len(p.Actions()); n != models || len(p.Errors()) != 0 {
		b.Fatalf("initial plan: %d actions, errors %v", n, p.Errors())
	}
	res, err := reconciler.Apply(ctx, p, targets, reconciler.ApplyOptions{})
	if err != nil || !res.OK() {
		b.Fatalf("initial apply: %v %+v", err, res.Failed)
	}
	// The first plan after the applies waits for the caches to show them.
	if p, err := reconciler.BuildPlan(ctx, d, targets); err != nil || p.HasChanges() {
		b.Fatalf("plan after apply: %v %d actions", err, len(p.Actions()))
	}

	var before syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	startReqs, startWrites := counter.total(), counter.writes.Load()
	b.ResetTimer()
	for b.Loop() {
		p, err := reconciler.BuildPlan(ctx, d, targets)
		if err != nil {
			b.Fatal(err)
		}
		if p.HasChanges() || len(p.Errors()) > 0 {
			b.Fatalf("no-op resync planned %d actions, %d errors", len(p.Actions()), len(p.Errors()))
		}
	}
	b.StopTimer()
	var after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	reqs, writes := counter.total()-startReqs, counter.writes.Load()-startWrites
	if reqs != 0 || writes != 0 {
		b.Fatalf("no-op resyncs made %d requests (%d writes); want 0", reqs, writes)
	}
	cpu := (tvNanos(after.Utime) + tvNanos(after.Stime)) - (tvNanos(before.Utime) + tvNanos(before.Stime))
	b.ReportMetric(float64(reqs)/float64(b.N), "requests/op")
	b.ReportMetric(float64(cpu)/1e6/float64(b.N), "cpu-ms/op")
	// Linux reports ru_maxrss in KiB.
	b.ReportMetric(float64(after.Maxrss)/1024, "peak-rss-MiB")
}

func tvNanos(tv syscall.Timeval) int64 { return tv.Sec*1e9 + tv.Usec*1e3 }

// BenchmarkInformerMemory measures the Go heap the informers keep per
// InferenceService, with the slim transforms and with objects stored as
// listed. Each object is what modelsync applies (rendered, server-side
// applied with its field manager) plus what KServe adds: a finalizer and
// a full Knative-mode status written through the status subresource.
// Sizes come from MODELSYNC_BENCH_ISVCS (default "1000,10000"); the
// objects are spread over 3 namespaces. Each measurement starts fresh
// informers over the same objects and reports the heap live after a GC,
// less the heap before, per object.
func BenchmarkInformerMemory(b *testing.B) {
	sizes := []int{1000, 10000}
	if s := os.Getenv("MODELSYNC_BENCH_ISVCS"); s != "" {
		sizes = sizes[:0]
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(f)
			if err != nil || n <= 0 {
				b.Fatalf("MODELSYNC_BENCH_ISVCS=%q: want comma-separated positive counts", s)
			}
			sizes = append(sizes, n)
		}
	}
	kube := testenv.NewKube(b)
	ctx := b.Context()
	dyn, err := dynamic.NewForConfig(kube.RESTConfig)
	if err != nil {
		b.Fatal(err)
	}
	md, err := metadata.NewForConfig(kube.RESTConfig)
	if err != nil {
		b.Fatal(err)
	}
	var namespaces []string
	for _, e := range []string{"dev", "staging", "prod"} {
		ns, err := kube.NewNamespace(ctx, e)
		if err != nil {
			b.Fatal(err)
		}
		namespaces = append(namespaces, ns)
	}
	created := 0
	for _, n := range sizes {
		if err := createISVCs(ctx, dyn, namespaces, created, n); err != nil {
			b.Fatal(err)
		}
		created = max(created, n)
		for _, slim := range []bool{true, false} {
			name := fmt.Sprintf("objects=%d/slim=%t", n, slim)
			b.Run(name, func(b *testing.B) {
				var perObject float64
				for b.Loop() {
					perObject = informerBytes(b, dyn, md, namespaces, n, !slim)
				}
				b.ReportMetric(perObject, "B/object")
			})
		}
	}
}

// informerBytes starts fresh informers over namespaces, which must hold
// want InferenceServices, and returns the live heap they added per object.
func informerBytes(b *testing.B, dyn dynamic.Interface, md metadata.Interface, namespaces []string, want int, keepAll bool) float64 {
	b.Helper()
	done := make(chan struct{})
	defer close(done)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := newCaches(dyn, md, done, nil)
	c.keepAll = keepAll
	if err := c.ensure(b.Context(), inferenceServiceGVR, namespaces, 10*time.Minute); err != nil {
		b.Fatal(err)
	}
	got := 0
	for _, ns := range namespaces {
		got += len(c.listManaged(inferenceServiceGVR, ns))
	}
	if got != want {
		b.Fatalf("informers hold %d InferenceServices, want %d", got, want)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(c)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(want)
}

// createISVCs makes models from..to-1 (model-NNNNN, round-robin over the
// namespaces) the way they look on a cluster where KServe runs.
func createISVCs(ctx context.Context, dyn dynamic.Interface, namespaces []string, from, to int) error {
	build := Config{}.renderLimits().build
	jobs := make(chan int)
	errs := make(chan error, to-from)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range jobs {
				if err := createISVC(ctx, dyn, namespaces[i%len(namespaces)], fmt.Sprintf("model-%05d", i), i, build); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := from; i < to; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	return <-errs
}

func createISVC(ctx context.Context, dyn dynamic.Interface, ns, name string, i int, build buildFunc) error {
	version := 1 + i%5
	m := desiredModel(name, desiredEnv("prod", ns, version, repoWith(name), name))
	r, err := render(ctx, &m, &m.Environments[0], manifest.ServingPolicy{}, artifactsFor([]string{name}, 5), build)
	if err != nil {
		return err
	}
	res := dyn.Resource(inferenceServiceGVR).Namespace(ns)
	if _, err := res.Apply(ctx, r.Name, r.InferenceService, metav1.ApplyOptions{FieldManager: FieldManager, Force: true}); err != nil {
		return fmt.Errorf("applying %s/%s: %w", ns, r.Name, err)
	}
	o, err := res.Get(ctx, r.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	o.SetFinalizers([]string{"inferenceservice.finalizers"})
	if o, err = res.Update(ctx, o, metav1.UpdateOptions{FieldManager: "manager"}); err != nil {
		return fmt.Errorf("adding the finalizer to %s/%s: %w", ns, r.Name, err)
	}
	rev := fmt.Sprintf("%s-predictor-%05d", r.Name, version)
	o.Object["status"] = fullStatus(r.Name, ns, rev, rev, rev, -1)
	if _, err := res.UpdateStatus(ctx, o, metav1.UpdateOptions{FieldManager: "manager"}); err != nil {
		return fmt.Errorf("writing the status of %s/%s: %w", ns, r.Name, err)
	}
	return nil
}
