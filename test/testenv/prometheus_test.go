package testenv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestPrometheusScrapesExporter(t *testing.T) {
	RequireE2E(t)
	exp := NewExporter()
	t.Cleanup(exp.Close)
	reqs := exp.CounterVec("modelsync_test_requests_total", "requests by code", "code")
	reqs.WithLabelValues("200").Add(97)
	reqs.WithLabelValues("500").Add(3)
	lat := exp.Histogram("modelsync_test_latency_seconds", "latency", []float64{0.1, 0.5, 1})
	for _, v := range []float64{0.05, 0.2, 0.7} {
		lat.Observe(v)
	}

	p := NewPrometheus(t, exp.Target)
	t.Logf("prometheus ready (first scrape done) in %s", p.ReadyIn)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := p.Query(ctx, `sum(modelsync_test_requests_total{code="500"}) / sum(modelsync_test_requests_total)`)
	if err != nil {
		t.Fatal(err)
	}
	if got != 0.03 {
		t.Fatalf("error ratio = %v, want 0.03", got)
	}
	if got, err := p.Query(ctx, `modelsync_test_latency_seconds_count`); err != nil || got != 3 {
		t.Fatalf("histogram count = %v, %v; want 3", got, err)
	}

	// A later change shows up after a following scrape.
	reqs.WithLabelValues("500").Add(100)
	if _, err := p.WaitQuery(ctx, `sum(modelsync_test_requests_total{code="500"})`, func(v float64) bool { return v == 103 }); err != nil {
		t.Fatal(err)
	}

	if _, err := p.Query(ctx, `no_such_metric`); !errors.Is(err, ErrNoData) {
		t.Fatalf("query of a missing metric: err = %v, want ErrNoData", err)
	}
	if _, err := p.Query(ctx, `sum(`); err == nil {
		t.Fatal("malformed PromQL accepted")
	}
}

func TestPrometheusWithBackfilledData(t *testing.T) {
	RequireE2E(t)
	base := time.Now().Add(-24 * time.Hour).Truncate(time.Hour)
	var om strings.Builder
	om.WriteString("# TYPE modelsync_test_requests counter\n")
	for i := 0; i <= 10; i++ {
		fmt.Fprintf(&om, "modelsync_test_requests_total{rev=\"a\"} %d %d\n", 100*i, base.Add(time.Duration(i)*time.Minute).Unix())
	}
	om.WriteString("# EOF\n")
	p := NewPrometheusWithData(t, om.String())
	t.Logf("backfilled prometheus ready in %s", p.ReadyIn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	at := base.Add(5*time.Minute + 30*time.Second)
	got, err := p.Query(ctx, fmt.Sprintf("modelsync_test_requests_total @ %d", at.Unix()))
	if err != nil {
		t.Fatal(err)
	}
	if got != 500 {
		t.Fatalf("counter at minute 5.5 = %v, want the minute-5 sample 500", got)
	}
}
