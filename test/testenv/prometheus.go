package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ScrapeInterval is how often the test Prometheus scrapes its targets.
const ScrapeInterval = time.Second

// ErrNoData is returned by Query when the expression matches no series
// (yet): a caller waiting for a scrape polls on it.
var ErrNoData = errors.New("testenv: prometheus query returned no data")

// Prometheus is a real Prometheus server scraping the given targets every
// ScrapeInterval, with a throwaway TSDB.
type Prometheus struct {
	URL     string // http://127.0.0.1:<port>
	ReadyIn time.Duration

	proc    *proc
	dataDir string
}

// StartPrometheus starts Prometheus and returns once it has scraped every
// target successfully at least once, so a test's first Query already sees
// data. Targets are host:port (path /metrics) or full http URLs. Expect about
// six seconds: Prometheus 2.x hands discovered targets to the scrape loop on a
// fixed five-second tick, even for static configs.
func StartPrometheus(ctx context.Context, logDir string, scrapeTargets ...string) (*Prometheus, error) {
	return startPrometheus(ctx, logDir, nil, scrapeTargets)
}

// StartPrometheusWithData starts Prometheus on a TSDB backfilled from
// openMetrics (OpenMetrics text ending in "# EOF", timestamps in seconds)
// with promtool tsdb create-blocks-from openmetrics, and no scrape
// targets: queries at the series' timestamps return exactly the samples
// written, which makes decision tables over counters deterministic.
func StartPrometheusWithData(ctx context.Context, logDir string, openMetrics []byte) (*Prometheus, error) {
	return startPrometheus(ctx, logDir, openMetrics, nil)
}

func startPrometheus(ctx context.Context, logDir string, openMetrics []byte, scrapeTargets []string) (*Prometheus, error) {
	bin, err := pathTool("prometheus", "prometheus")
	if err != nil {
		return nil, err
	}
	logDir, err = ensureLogDir(logDir, "prometheus")
	if err != nil {
		return nil, err
	}
	dataDir, err := os.MkdirTemp("", "modelsync-prometheus-")
	if err != nil {
		return nil, fmt.Errorf("testenv: prometheus data dir: %w", err)
	}
	tsdb := filepath.Join(dataDir, "tsdb")
	// Scraped data lives for the test only; backfilled blocks may lie far
	// in the past and must not be removed by retention as soon as they load.
	retention := "1h"
	if openMetrics != nil {
		if err := backfill(ctx, dataDir, tsdb, openMetrics); err != nil {
			os.RemoveAll(dataDir)
			return nil, err
		}
		retention = "100y"
	}
	cfg, err := prometheusConfig(scrapeTargets)
	if err != nil {
		os.RemoveAll(dataDir)
		return nil, err
	}
	cfgPath := filepath.Join(dataDir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		os.RemoveAll(dataDir)
		return nil, fmt.Errorf("testenv: prometheus config: %w", err)
	}
	timer := startTimer()
	p, err := startWithRetry(func() (*Prometheus, error) {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		pr, err := startProc(procSpec{
			name: "prometheus",
			path: bin,
			args: []string{
				"--config.file=" + cfgPath,
				"--storage.tsdb.path=" + tsdb,
				"--web.listen-address=127.0.0.1:" + strconv.Itoa(port),
				"--storage.tsdb.retention.time=" + retention,
				"--log.level=info",
			},
			dir:    dataDir,
			logDir: logDir,
		})
		if err != nil {
			return nil, err
		}
		pm := &Prometheus{URL: "http://127.0.0.1:" + strconv.Itoa(port), proc: pr, dataDir: dataDir}
		ready := func(ctx context.Context) error {
			if err := httpOK(ctx, pm.URL+"/-/ready", nil); err != nil {
				return err
			}
			return pm.targetsUp(ctx, len(scrapeTargets))
		}
		if err := waitReady(ctx, pr, 60*time.Second, ready); err != nil {
			_ = pr.Close()
			return nil, err
		}
		return pm, nil
	})
	if err != nil {
		os.RemoveAll(dataDir)
		return nil, err
	}
	p.ReadyIn = timer.elapsed()
	return p, nil
}

// backfill writes openMetrics into TSDB blocks under tsdb.
func backfill(ctx context.Context, dataDir, tsdb string, openMetrics []byte) error {
	promtool, err := pathTool("promtool", "prometheus")
	if err != nil {
		return err
	}
	in := filepath.Join(dataDir, "backfill.om")
	if err := os.WriteFile(in, openMetrics, 0o644); err != nil {
		return fmt.Errorf("testenv: backfill input: %w", err)
	}
	cmd := exec.CommandContext(ctx, promtool, "tsdb", "create-blocks-from", "openmetrics", in, tsdb)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("testenv: promtool tsdb create-blocks-from openmetrics: %w\n%s", err, out)
	}
	return nil
}

func prometheusConfig(targets []string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\n",
		ScrapeInterval, ScrapeInterval, ScrapeInterval)
	b.WriteString("scrape_configs:\n")
	for i, t := range targets {
		host, path, scheme := t, "/metrics", "http"
		if strings.Contains(t, "://") {
			u, err := url.Parse(t)
			if err != nil || u.Host == "" {
				return "", fmt.Errorf("testenv: prometheus scrape target %q: %v", t, err)
			}
			host, scheme = u.Host, u.Scheme
			if u.Path != "" && u.Path != "/" {
				path = u.Path
			}
		}
		// One job per target so each can have its own path; the job name
		// is also a handy label for queries.
		fmt.Fprintf(&b, "  - job_name: target%d\n    scheme: %s\n    metrics_path: %q\n    static_configs:\n      - targets: [%q]\n",
			i, scheme, path, host)
	}
	return b.String(), nil
}

// targetsUp is nil once want targets report a successful scrape.
func (p *Prometheus) targetsUp(ctx context.Context, want int) error {
	if want == 0 {
		return nil
	}
	var resp struct {
		Data struct {
			ActiveTargets []struct {
				ScrapeURL string `json:"scrapeUrl"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := getJSON(ctx, p.URL+"/api/v1/targets?state=active", &resp); err != nil {
		return err
	}
	up := 0
	var notUp []string
	for _, t := range resp.Data.ActiveTargets {
		if t.Health == "up" {
			up++
		} else {
			notUp = append(notUp, fmt.Sprintf("%s %s %s", t.ScrapeURL, t.Health, t.LastError))
		}
	}
	if up < want {
		return fmt.Errorf("%d of %d targets scraped successfully; waiting for %v", up, want, notUp)
	}
	return nil
}

// Query evaluates an instant PromQL query that must yield one sample (a
// scalar or a one-series vector). No series gives ErrNoData.
func (p *Prometheus) Query(ctx context.Context, promql string) (float64, error) {
	var resp struct {
		Status    string `json:"status"`
		Error     string `json:"error"`
		ErrorType string `json:"errorType"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := getJSON(ctx, p.URL+"/api/v1/query?query="+url.QueryEscape(promql), &resp); err != nil {
		return 0, fmt.Errorf("testenv: query %q: %w", promql, err)
	}
	if resp.Status != "success" {
		return 0, fmt.Errorf("testenv: query %q: %s: %s", promql, resp.ErrorType, resp.Error)
	}
	var sample []json.RawMessage
	switch resp.Data.ResultType {
	case "scalar":
		if err := json.Unmarshal(resp.Data.Result, &sample); err != nil {
			return 0, fmt.Errorf("testenv: query %q: %w", promql, err)
		}
	case "vector":
		var vec []struct {
			Value []json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(resp.Data.Result, &vec); err != nil {
			return 0, fmt.Errorf("testenv: query %q: %w", promql, err)
		}
		if len(vec) == 0 {
			return 0, fmt.Errorf("testenv: query %q: %w", promql, ErrNoData)
		}
		if len(vec) > 1 {
			return 0, fmt.Errorf("testenv: query %q returned %d series, want one (aggregate it)", promql, len(vec))
		}
		sample = vec[0].Value
	default:
		return 0, fmt.Errorf("testenv: query %q: result type %q, want scalar or vector", promql, resp.Data.ResultType)
	}
	if len(sample) != 2 {
		return 0, fmt.Errorf("testenv: query %q: malformed sample %s", promql, resp.Data.Result)
	}
	var s string
	if err := json.Unmarshal(sample[1], &s); err != nil {
		return 0, fmt.Errorf("testenv: query %q: sample value: %w", promql, err)
	}
	return strconv.ParseFloat(s, 64)
}

// WaitQuery polls Query until cond accepts the value (nil cond: any value)
// or ctx ends. Use it instead of sleeping for the next scrape.
func (p *Prometheus) WaitQuery(ctx context.Context, promql string, cond func(float64) bool) (float64, error) {
	var (
		v   float64
		err error
	)
	for {
		v, err = p.Query(ctx, promql)
		if err == nil && (cond == nil || cond(v)) {
			return v, nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("testenv: query %q: last value %v not accepted", promql, v)
			}
			return v, fmt.Errorf("%w (%w)", ctx.Err(), err)
		case <-time.After(ScrapeInterval / 4):
		}
	}
}

// Close stops Prometheus and deletes its data.
func (p *Prometheus) Close() error {
	err := p.proc.Close()
	return errors.Join(err, os.RemoveAll(p.dataDir))
}

func (p *Prometheus) logPaths() []string { return []string{p.proc.LogPath} }

// NewPrometheus starts Prometheus for one test.
func NewPrometheus(tb testing.TB, scrapeTargets ...string) *Prometheus {
	tb.Helper()
	RequireE2E(tb)
	p, err := StartPrometheus(tbContext(tb), tbLogDir(tb), scrapeTargets...)
	if err != nil {
		tb.Fatal(err)
	}
	tbCleanup(tb, p.Close, p.logPaths)
	return p
}

// NewPrometheusWithData starts Prometheus on backfilled data for one test
// (see StartPrometheusWithData).
func NewPrometheusWithData(tb testing.TB, openMetrics string) *Prometheus {
	tb.Helper()
	RequireE2E(tb)
	p, err := StartPrometheusWithData(tbContext(tb), tbLogDir(tb), []byte(openMetrics))
	if err != nil {
		tb.Fatal(err)
	}
	tbCleanup(tb, p.Close, p.logPaths)
	return p
}

// Exporter is an in-test /metrics endpoint serving whatever collectors the
// test registers, scraped by a real Prometheus.
type Exporter struct {
	Registry *prometheus.Registry
	URL      string // http://127.0.0.1:<port>/metrics
	Target   string // 127.0.0.1:<port>, for StartPrometheus
	srv      *httptest.Server
}

// NewExporter starts an exporter with an empty registry. Close it when done.
func NewExporter() *Exporter {
	reg := prometheus.NewRegistry()
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := httptest.NewServer(mux)
	return &Exporter{
		Registry: reg,
		URL:      srv.URL + "/metrics",
		Target:   strings.TrimPrefix(srv.URL, "http://"),
		srv:      srv,
	}
}

// Counter registers and returns a counter.
func (e *Exporter) Counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	e.Registry.MustRegister(c)
	return c
}

// CounterVec registers and returns a labelled counter.
func (e *Exporter) CounterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	e.Registry.MustRegister(c)
	return c
}

// Gauge registers and returns a gauge.
func (e *Exporter) Gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	e.Registry.MustRegister(g)
	return g
}

// Histogram registers and returns a histogram (nil buckets: the defaults).
func (e *Exporter) Histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	e.Registry.MustRegister(h)
	return h
}

// HistogramVec registers and returns a labelled histogram.
func (e *Exporter) HistogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	e.Registry.MustRegister(h)
	return h
}

// Close stops the exporter.
func (e *Exporter) Close() { e.srv.Close() }

// httpOK GETs url and wants a 2xx status. header may be nil.
func httpOK(ctx context.Context, url string, header http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s: %s", req.URL.Path, resp.Status)
	}
	return nil
}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %s: %w", req.URL.Path, resp.Status, err)
	}
	return nil
}
