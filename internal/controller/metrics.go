package controller

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/modelsync/modelsync/internal/analysis"
)

// Metrics is one controller's Prometheus registry. It is created before the
// targets so that their clients can report requests through
// TargetRequestObserver; pass it to New in Options.Metrics.
type Metrics struct {
	Registry *prometheus.Registry

	reconcileDuration *prometheus.HistogramVec
	reconcileTotal    *prometheus.CounterVec
	gitFetch          prometheus.Histogram
	targetRequests    *prometheus.CounterVec
	drift             prometheus.Counter
	modelInfo         *modelInfo
	githubRemaining   prometheus.Gauge
	canaryDecisions   *prometheus.CounterVec
	canaryProviderErr *prometheus.CounterVec
	canaryWeight      *prometheus.GaugeVec
	canaryInconcl     *prometheus.GaugeVec
}

// NewMetrics registers modelsync's metrics, plus Go and process collectors,
// in a fresh registry.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		reconcileDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "modelsync_reconcile_duration_seconds", Help: "Time a target spent observing and applying for one model and environment.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"target"}),
		reconcileTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "modelsync_reconcile_total", Help: "Reconciliations per target by result: applied, noop, failed, held.",
		}, []string{"target", "result"}),
		gitFetch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "modelsync_git_fetch_duration_seconds", Help: "Duration of fetching the models repository.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
		targetRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "modelsync_target_requests_total", Help: "HTTP requests made to targets, by operation and status code (0: no reply).",
		}, []string{"target", "operation", "code"}),
		drift: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "modelsync_drift_detected_total", Help: "Actions planned because live state moved away from Git.",
		}),
		modelInfo: newModelInfo(),
		githubRemaining: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "modelsync_github_rate_limit_remaining", Help: "GitHub API requests left in the current rate-limit window.",
		}),
		canaryDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "modelsync_canary_decisions_total", Help: "Canary analysis looks by decision: advance, promote, rollback, hold, inconclusive; checks after promotion as verify-promote (verified), verify-rollback (reverted), verify-hold.",
		}, []string{"model", "environment", "action"}),
		canaryProviderErr: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "modelsync_canary_provider_errors_total", Help: "Canary analysis looks without data because the metrics provider failed (never a rollback by themselves).",
		}, []string{"model", "environment"}),
		canaryWeight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "modelsync_canary_weight_percent", Help: "The canary weight the analysis holds live.",
		}, []string{"model", "environment"}),
		canaryInconcl: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "modelsync_canary_inconclusive", Help: "1 while a canary is held after maxDuration without a decision: alert on it.",
		}, []string{"model", "environment"}),
	}
	r.MustRegister(m.reconcileDuration, m.reconcileTotal, m.gitFetch, m.targetRequests, m.drift, m.modelInfo, m.githubRemaining,
		m.canaryDecisions, m.canaryProviderErr, m.canaryWeight, m.canaryInconcl,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// TargetRequestObserver returns a function with the signature of
// mlflow.Config.Observe that counts requests of the named target.
func (m *Metrics) TargetRequestObserver(target string) func(method, endpoint string, status int, dur time.Duration) {
	return func(method, endpoint string, status int, _ time.Duration) {
		m.targetRequests.WithLabelValues(target, method+" "+endpoint, strconv.Itoa(status)).Inc()
	}
}

// Reconciliations is modelsync_reconcile_total summed over targets and
// results: how many item reconciliations were recorded. It collects that
// one counter only, so it is cheap to poll, unlike Registry.Gather, which
// also renders a model_info series per model and environment and reads
// /proc for the process collector.
func (m *Metrics) Reconciliations() float64 {
	ch := make(chan prometheus.Metric, 16)
	go func() {
		m.reconcileTotal.Collect(ch)
		close(ch)
	}()
	var sum float64
	for pm := range ch {
		var d dto.Metric
		if err := pm.Write(&d); err == nil {
			sum += d.GetCounter().GetValue()
		}
	}
	return sum
}

// SetGitHubRateLimitRemaining records the last rate-limit header seen.
func (m *Metrics) SetGitHubRateLimitRemaining(n float64) { m.githubRemaining.Set(n) }

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// setModelInfo exports version as what runs for k; 0 removes k's series.
func (m *Metrics) setModelInfo(k Key, version int) { m.modelInfo.set(k, version) }

// modelInfo is modelsync_model_info, rendered from a map of versions when
// scraped. A GaugeVec keeps a child per series with its label pairs built:
// about 600 bytes per model and environment, 92 MB of the controller's
// live heap at 50,000 models × 3 environments, for a series read only when
// Prometheus scrapes.
type modelInfo struct {
	desc     *prometheus.Desc
	mu       sync.Mutex
	versions map[Key]int
}

func newModelInfo() *modelInfo {
	return &modelInfo{
		desc:     prometheus.NewDesc("modelsync_model_info", "The version applied per model and environment (value 1).", []string{"model", "environment", "version"}, nil),
		versions: map[Key]int{},
	}
}

func (i *modelInfo) set(k Key, version int) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if version == 0 {
		delete(i.versions, k)
		return
	}
	i.versions[k] = version
}

// Describe implements prometheus.Collector.
func (i *modelInfo) Describe(ch chan<- *prometheus.Desc) { ch <- i.desc }

// Collect implements prometheus.Collector. The series are copied out
// first so a slow scrape does not hold up the workers recording versions.
func (i *modelInfo) Collect(ch chan<- prometheus.Metric) {
	type series struct {
		k       Key
		version int
	}
	i.mu.Lock()
	all := make([]series, 0, len(i.versions))
	for k, v := range i.versions {
		all = append(all, series{k, v})
	}
	i.mu.Unlock()
	for _, s := range all {
		ch <- prometheus.MustNewConstMetric(i.desc, prometheus.GaugeValue, 1, s.k.Model, s.k.Environment, "v"+strconv.Itoa(s.version))
	}
}

// canaryDecision counts a look's decision and exports the weight it leaves
// live and whether the canary is held inconclusive.
func (m *Metrics) canaryDecision(k Key, d analysis.Decision, weight int, providerErr bool) {
	m.canaryDecisions.WithLabelValues(k.Model, k.Environment, string(d.Action)).Inc()
	if providerErr {
		m.canaryProviderErr.WithLabelValues(k.Model, k.Environment).Inc()
	}
	m.canaryWeight.WithLabelValues(k.Model, k.Environment).Set(float64(weight))
	inc := 0.0
	if d.Action == analysis.ActionInconclusive {
		inc = 1
	}
	m.canaryInconcl.WithLabelValues(k.Model, k.Environment).Set(inc)
}

// canaryVerifyLook counts a look of the check after promotion, as
// decision "verify-<action>" (verify-rollback is a revert).
func (m *Metrics) canaryVerifyLook(k Key, d analysis.Decision, providerErr bool) {
	m.canaryDecisions.WithLabelValues(k.Model, k.Environment, "verify-"+string(d.Action)).Inc()
	if providerErr {
		m.canaryProviderErr.WithLabelValues(k.Model, k.Environment).Inc()
	}
}

// forgetCanary drops the gauges of a canary that ended.
func (m *Metrics) forgetCanary(k Key) {
	m.canaryWeight.DeleteLabelValues(k.Model, k.Environment)
	m.canaryInconcl.DeleteLabelValues(k.Model, k.Environment)
}
