package dashboard

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelsync/modelsync/internal/prverdict"
	"github.com/modelsync/modelsync/reconciler"
)

// overviewBudget is the ceiling for the overview of 1,000 models ×
// 3 environments; time has its benchmark (BenchmarkOverview1000x3).
const overviewBudget = 500 << 10

func renderOverview(tb testing.TB, d *Dashboard) int {
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	rec := httptest.NewRecorder()
	d.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		tb.Fatalf("overview: %d", rec.Code)
	}
	return rec.Body.Len()
}

func bigDashboard(tb testing.TB) *Dashboard {
	audit := NewAuditLog(0)
	d, err := New(Options{Controller: newFakeController(1000, audit), Audit: audit, AnonymousRead: true,
		Canaries: newCanaryFixture(tb, 3, 0, 1), RepoURL: "https://github.com/acme/models.git"})
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func TestOverviewSize1000x3(t *testing.T) {
	n := renderOverview(t, bigDashboard(t))
	t.Logf("overview of 1000 models × 3 environments: %d bytes (%.1f KiB)", n, float64(n)/1024)
	if n > overviewBudget {
		t.Errorf("overview is %d bytes, budget %d", n, overviewBudget)
	}
}

func BenchmarkOverview1000x3(b *testing.B) {
	d := bigDashboard(b)
	b.ReportAllocs()
	for b.Loop() {
		b.SetBytes(int64(renderOverview(b, d)))
	}
}

// BenchmarkModelPageWarm renders a model page of the 1,000-model state
// with its lineages, storage and verdicts already read: what a refresh of
// an open page costs once the reads are cached.
func BenchmarkModelPageWarm(b *testing.B) {
	audit := NewAuditLog(0)
	ml := &fakeMLflow{reads: map[int]int{}}
	verdicts, _ := prverdict.Open(prverdict.Options{})
	for i := range 10 {
		_ = verdicts.Record(prverdict.Verdict{PR: i + 1, HeadSHA: "0123456789", State: "failure", Models: []string{"model-0000"},
			Denies: []prverdict.Denial{{Rule: "approvals.too_few", Message: "needs 2 approving reviews"}}})
	}
	d, err := New(Options{Controller: newFakeController(1000, audit), Audit: audit, AnonymousRead: true, Lineage: ml.lineage,
		Storage: func(context.Context, string) (reconciler.ArtifactUsage, error) {
			return reconciler.ArtifactUsage{Model: "model-0000", Objects: []reconciler.StoredObject{{Versions: []int{1}, Class: "STANDARD", Bytes: 1 << 30}}}, nil
		}, Verdicts: verdicts, Canaries: newCanaryFixture(b, 3, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	page := func() int {
		req := httptest.NewRequest(http.MethodGet, "/models/model-0000", nil)
		rec := httptest.NewRecorder()
		d.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "run-model-0000-3") {
			b.Fatalf("model page: %d", rec.Code)
		}
		return rec.Body.Len()
	}
	page()
	b.ReportAllocs()
	for b.Loop() {
		b.SetBytes(int64(page()))
	}
}
