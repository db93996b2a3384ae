package dashboard

import (
	"net/http"
	"net/http/httptest"
	"testing"
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
