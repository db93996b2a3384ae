package kserve

import (
	"fmt"
	"syscall"
	"testing"
	"testing/fstest"

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
