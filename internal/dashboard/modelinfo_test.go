package dashboard

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/lineage"
	"github.com/modelsync/modelsync/internal/prverdict"
	"github.com/modelsync/modelsync/internal/scan"
	"github.com/modelsync/modelsync/internal/scanrecord"
	"github.com/modelsync/modelsync/internal/storagecost"
	"github.com/modelsync/modelsync/reconciler"
)

// fakeMLflow answers lineage reads, counting them; block holds every read
// until it is closed, fail makes them fail.
type fakeMLflow struct {
	mu    sync.Mutex
	reads map[int]int
	block chan struct{}
	fail  error
}

func (f *fakeMLflow) lineage(ctx context.Context, model string, version int) (*lineage.Lineage, error) {
	f.mu.Lock()
	f.reads[version]++
	block, fail := f.block, f.fail
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if fail != nil {
		return nil, fail
	}
	var scanned *lineage.Scan
	if version == 3 {
		scanned = &lineage.Scan{Result: scan.Dangerous, Digest: "sha256:5ca9", Scanner: scan.ScannerVersion, Current: true,
			Findings: scanrecord.Findings{Dangerous: 1, Files: 2}}
	}
	return &lineage.Lineage{Model: model, Version: version, Status: "READY", Scan: scanned, RunID: "run-" + model + "-" + string(rune('0'+version)),
		Source: "https://minio:s3cr3t@store.example/models/" + model + "?X-Amz-Signature=abc", Metrics: map[string]float64{"accuracy": 0.9 + float64(version)/100}, Params: map[string]string{"max_depth": "7"},
		Datasets:      map[string]string{"run:dataset": "customer-activity@2024-06-30"},
		DatasetInputs: []lineage.DatasetInput{{Name: "activity", Digest: "d1g3st", Context: "training"}}}, nil
}

func (f *fakeMLflow) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.reads {
		n += c
	}
	return n
}

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestModelPageShowsLineageCachedPerVersion(t *testing.T) {
	ml := &fakeMLflow{reads: map[int]int{}}
	clk := &clock{t: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	e := newEnv(t, 1, func(o *Options) { o.AnonymousRead = true; o.Lineage = ml.lineage; o.Now = clk.now })
	code, body, _ := e.do(e.client(), http.MethodGet, "/models/model-0000", nil)
	if code != http.StatusOK {
		t.Fatalf("model page %d", code)
	}
	// model-0000: dev v3, staging v2, prod v1 with a canary of v2.
	for _, want := range []string{`data-version="3"`, `data-version="2"`, `data-version="1"`, "run-model-0000-3", "accuracy", "0.93", "max_depth",
		"customer-activity@2024-06-30", "d1g3st"} {
		if !strings.Contains(body, want) {
			t.Errorf("model page lacks %q", want)
		}
	}
	if n := ml.count(); n != 3 {
		t.Fatalf("%d lineage reads for 3 versions", n)
	}
	// The recorded scan, in words and a symbol, or what to run.
	if !strings.Contains(body, `data-scan="dangerous">✗ dangerous · 1 dangerous, 0 unknown in 2 file(s)`) || !strings.Contains(body, "sha256:5ca9") ||
		!strings.Contains(body, `data-scan="none">— not scanned: <code>modelsync scan model-0000 2</code>`) {
		t.Error("the model page does not show v3's recorded scan and v2's missing one")
	}
	if strings.Contains(body, "s3cr3t") || strings.Contains(body, "X-Amz-Signature") || !strings.Contains(body, "store.example/models/model-0000") {
		t.Error("a source address is shown with its credentials, or not at all")
	}
	// prod's canary v2 is staging's version: shown once, pointed to.
	if !strings.Contains(body, `id="lineage-staging-2"`) || !strings.Contains(body, `href="#lineage-staging-2">its lineage under staging`) ||
		strings.Count(body, "run-model-0000-2") != 1 {
		t.Error("a version's lineage is not shown once and pointed to from other environments")
	}
	// Views within the TTL read nothing again.
	for range 3 {
		e.do(e.client(), http.MethodGet, "/models/model-0000", nil)
	}
	if n := ml.count(); n != 3 {
		t.Fatalf("%d lineage reads after 4 views, want 3 (cached per version)", n)
	}
	clk.add(lineageTTL + time.Second)
	e.do(e.client(), http.MethodGet, "/models/model-0000", nil)
	if n := ml.count(); n != 6 {
		t.Fatalf("%d lineage reads after the TTL, want 6", n)
	}
}

func TestModelPageSurvivesASlowOrFailingMLflow(t *testing.T) {
	ml := &fakeMLflow{reads: map[int]int{}, block: make(chan struct{})}
	clk := &clock{t: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	e := newEnv(t, 1, func(o *Options) {
		o.AnonymousRead = true
		o.Lineage = ml.lineage
		o.Now = clk.now
		o.PageWait = 50 * time.Millisecond
	})
	// A hanging MLflow: the page comes back within its budget, saying the
	// lineage is being read.
	start := time.Now()
	code, body, _ := e.do(e.client(), http.MethodGet, "/models/model-0000", nil)
	if took := time.Since(start); code != http.StatusOK || took > 2*time.Second {
		t.Fatalf("model page %d after %s with MLflow hanging", code, took)
	}
	if !strings.Contains(body, `data-state="loading"`) || strings.Contains(body, "run-model") {
		t.Fatalf("page does not say the lineage is loading")
	}
	seq := e.d.lineages.seq.Load()
	fp := e.d.fingerprint()
	close(ml.block)
	deadline := time.Now().Add(5 * time.Second)
	for e.d.lineages.seq.Load() < seq+3 {
		if time.Now().After(deadline) {
			t.Fatal("the lineage reads never finished")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A finished read changes the fingerprint, so the open page refreshes.
	if e.d.fingerprint() == fp {
		t.Error("a finished lineage read did not change the page's fingerprint")
	}
	if _, body, _ = e.do(e.client(), http.MethodGet, "/models/model-0000", nil); !strings.Contains(body, "run-model-0000-3") {
		t.Fatal("lineage not shown once read")
	}

	// MLflow fails: the page says why, and the stale answer is not read
	// again for every view; a failure is kept for failedTTL.
	ml.mu.Lock()
	ml.block, ml.fail = nil, errors.New("mlflow at http://127.0.0.1:1: connection refused")
	ml.mu.Unlock()
	clk.add(lineageTTL + time.Second)
	e.do(e.client(), http.MethodGet, "/models/model-0000", nil) // starts the refresh, may show the stale answer
	time.Sleep(100 * time.Millisecond)
	_, body, _ = e.do(e.client(), http.MethodGet, "/models/model-0000", nil)
	if !strings.Contains(body, "⚠ Lineage unavailable: mlflow at http://127.0.0.1:1: connection refused") {
		t.Fatalf("page does not say the lineage is unavailable:\n%s", body)
	}
	n := ml.count()
	for range 5 {
		e.do(e.client(), http.MethodGet, "/models/model-0000", nil)
	}
	if ml.count() != n {
		t.Fatalf("a failing MLflow was asked %d more times within failedTTL", ml.count()-n)
	}
}

func TestModelPageStorageCostAsCostPricesIt(t *testing.T) {
	gib := int64(1 << 30)
	usage := reconciler.ArtifactUsage{Model: "model-0000", Objects: []reconciler.StoredObject{
		{Versions: []int{3}, Bucket: "models", Key: "model-0000/3/model.bin", Class: "STANDARD", Bytes: 2 * gib},
		{Versions: []int{2}, Bucket: "models", Key: "model-0000/2/model.bin", Class: "STANDARD", Bytes: 2 * gib},
		{Versions: []int{1}, Bucket: "models", Key: "model-0000/1/model.bin", Class: "GLACIER_IR", Bytes: 2 * gib, Planned: reconciler.PlannedDelete},
	}}
	var calls int
	var mu sync.Mutex
	storage := func(_ context.Context, model string) (reconciler.ArtifactUsage, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if model != "model-0000" {
			return reconciler.ArtifactUsage{}, errors.New("unexpected model " + model)
		}
		return usage, nil
	}
	e := newEnv(t, 1, func(o *Options) { o.AnonymousRead = true; o.Storage = storage })
	_, body, _ := e.do(e.client(), http.MethodGet, "/models/model-0000", nil)
	rep := storagecost.DefaultPriceTable().Report(time.Now(), usage)
	for _, want := range []string{
		money(rep.Models[0].Monthly), // the total, as cost computes it
		"GLACIER_IR", "STANDARD", "2.0 GiB",
		"STANDARD · $0.0460/month", // dev's v3 in its facts
		"GLACIER_IR → (deleted)",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("model page lacks %q", want)
		}
	}
	e.do(e.client(), http.MethodGet, "/models/model-0000", nil)
	if calls != 1 {
		t.Errorf("%d storage reads for two views, want 1", calls)
	}
	// Without a storage target the page says so instead of a cost.
	e2 := newEnv(t, 1, func(o *Options) { o.AnonymousRead = true })
	if _, body, _ = e2.do(e2.client(), http.MethodGet, "/models/model-0000", nil); !strings.Contains(body, "No artifact storage target reports") ||
		!strings.Contains(body, "no MLflow tracking server is configured") {
		t.Error("page without storage or MLflow does not say so")
	}
	// A failing storage read is shown as unavailable, the page still 200.
	e3 := newEnv(t, 1, func(o *Options) {
		o.AnonymousRead = true
		o.Storage = func(context.Context, string) (reconciler.ArtifactUsage, error) {
			return reconciler.ArtifactUsage{}, errors.New("listing s3://models: AccessDenied")
		}
	})
	if code, body, _ := e3.do(e3.client(), http.MethodGet, "/models/model-0000", nil); code != 200 || !strings.Contains(body, "Storage cost unavailable: listing s3://models: AccessDenied") {
		t.Errorf("failing storage: %d", code)
	}
}

func TestModelPageShowsPullRequestVerdicts(t *testing.T) {
	log, err := prverdict.Open(prverdict.Options{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 7, 11, 0, 0, 0, time.UTC)
	_ = log.Record(prverdict.Verdict{PR: 12, HeadSHA: "0123456789abcdef", State: "failure", Description: "1 policy violation: approvals.too_few",
		Models: []string{"model-0000"}, Time: at, Denies: []prverdict.Denial{{Rule: "approvals.too_few", Message: "changing prod needs 2 approving reviews", Environment: "prod"}}})
	_ = log.Record(prverdict.Verdict{PR: 13, HeadSHA: "fedcba9876543210", State: "success", Models: []string{"model-0000", "model-0001"}, Time: at.Add(time.Minute)})
	e := newEnv(t, 2, func(o *Options) { o.AnonymousRead = true; o.Verdicts = log })
	_, body, _ := e.do(e.client(), http.MethodGet, "/models/model-0000", nil)
	i12, i13 := strings.Index(body, `pull/12">#12`), strings.Index(body, `pull/13">#13`)
	if i12 < 0 || i13 < 0 || i13 > i12 {
		t.Errorf("verdicts not listed newest first with links (#12 at %d, #13 at %d)", i12, i13)
	}
	for _, want := range []string{"https://github.com/acme/models/pull/12", "0123456", "✗ failure", "<code>approvals.too_few</code> (prod): changing prod needs 2 approving reviews", "✓ success"} {
		if !strings.Contains(body, want) {
			t.Errorf("model page lacks %q", want)
		}
	}
	if _, body, _ = e.do(e.client(), http.MethodGet, "/models/model-0001", nil); strings.Contains(body, "#12") || !strings.Contains(body, "#13") {
		t.Error("model-0001 shows a verdict of a pull request that does not touch it, or lacks its own")
	}
	// A new verdict refreshes open pages.
	fp := e.d.fingerprint()
	_ = log.Record(prverdict.Verdict{PR: 14, HeadSHA: "aa", State: "error", Models: []string{"model-0001"}, Time: at.Add(2 * time.Minute)})
	if e.d.fingerprint() == fp {
		t.Error("a new verdict did not change the fingerprint")
	}
	// Without the gate in this process the page says where verdicts are.
	e2 := newEnv(t, 1, func(o *Options) { o.AnonymousRead = true })
	if _, body, _ = e2.do(e2.client(), http.MethodGet, "/models/model-0000", nil); !strings.Contains(body, "The PR gate does not run in this process") {
		t.Error("page without verdicts does not say why")
	}
}

func TestMoneyLikeCostAndTinyAmounts(t *testing.T) {
	for v, want := range map[float64]string{0: "$0.0000", 0.046: "$0.0460", 12.34567: "$12.3457", 4e-6: "< $0.0001"} {
		if got := money(v); got != want {
			t.Errorf("money(%g) = %q, want %q", v, got, want)
		}
	}
}
