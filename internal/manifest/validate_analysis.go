package manifest

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

var (
	envVarName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// metricName fits MLflow metric keys and PromQL-free prose.
	metricName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
)

// minInterval keeps a misconfigured analysis from querying Prometheus in a
// tight loop.
const minInterval = 5 * time.Second

func validateProvider(v *validator, f string, p *AnalysisProvider) {
	if p == nil {
		return
	}
	if p.Address != "" {
		u, err := url.Parse(p.Address)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			v.fail(f+".address", "expected an http(s) URL such as http://prometheus.monitoring:9090, got %q", p.Address)
		case u.User != nil || u.RawQuery != "":
			// Never repeat the address: it holds credentials.
			v.fail(f+".address", "must not carry credentials or a query; name environment variables in bearerTokenEnv or basicAuth instead")
		}
	}
	if p.BearerTokenEnv != "" && !envVarName.MatchString(p.BearerTokenEnv) {
		v.fail(f+".bearerTokenEnv", "expected the name of an environment variable (letters, digits, '_'), got %q", p.BearerTokenEnv)
	}
	if b := p.BasicAuth; b != nil {
		if p.BearerTokenEnv != "" {
			v.fail(f+".basicAuth", "bearerTokenEnv and basicAuth are alternatives; set one")
		}
		for _, x := range []struct{ field, val string }{{"usernameEnv", b.UsernameEnv}, {"passwordEnv", b.PasswordEnv}} {
			if !envVarName.MatchString(x.val) {
				v.fail(f+".basicAuth."+x.field, "expected the name of an environment variable (letters, digits, '_'), got %q", x.val)
			}
		}
	}
	if t := p.TLS; t != nil && t.CAFile != "" && !filepath.IsAbs(t.CAFile) {
		v.fail(f+".tls.caFile", "expected an absolute path on the controller (a mounted Secret), got %q", t.CAFile)
	}
}

// analysisSettings are the fields the analysis and modelsync.yaml's
// defaults share.
type analysisSettings struct {
	interval, stepDuration, maxDuration Duration
	minSamples                          int
	alpha                               float64
	onInconclusive                      string
}

func validateSettings(v *validator, f string, s analysisSettings) {
	if s.interval.Duration != 0 && s.interval.Duration < minInterval {
		v.fail(f+".interval", "expected at least %s between looks, got %q", minInterval, s.interval)
	}
	if s.interval.Duration != 0 && s.stepDuration.Duration != 0 && s.stepDuration.Duration < s.interval.Duration {
		v.fail(f+".stepDuration", "expected at least one interval (%s), got %q", s.interval, s.stepDuration)
	}
	if s.minSamples < 0 {
		v.fail(f+".minSamples", "expected a positive number of canary requests per step, got %d", s.minSamples)
	}
	if s.maxDuration.Duration != 0 && s.stepDuration.Duration != 0 && s.maxDuration.Duration < s.stepDuration.Duration {
		v.fail(f+".maxDuration", "expected at least one step duration (%s), got %q", s.stepDuration, s.maxDuration)
	}
	if s.alpha != 0 && !(s.alpha > 0 && s.alpha <= 0.5) {
		v.fail(f+".alpha", "expected a false-rollback budget above 0 and at most 0.5 (e.g. 0.05), got %v", s.alpha)
	}
	switch s.onInconclusive {
	case "", "hold", "rollback":
	default:
		v.fail(f+".onInconclusive", "expected hold or rollback, got %q", s.onInconclusive)
	}
}

func validateAnalysisDefaults(v *validator, f string, d *AnalysisDefaults) {
	if d == nil {
		return
	}
	validateProvider(v, f+".prometheus", d.Prometheus)
	validateSettings(v, f, analysisSettings{d.Interval, d.StepDuration, d.MaxDuration, d.MinSamples, d.Alpha, d.OnInconclusive})
}

func validateAnalysis(v *validator, f string, a *Analysis) {
	validateProvider(v, f+".provider", a.Provider)
	validateSettings(v, f, analysisSettings{a.Interval, a.StepDuration, a.MaxDuration, a.MinSamples, a.Alpha, a.OnInconclusive})
	validateMetrics(v, f+".metrics", a.Metrics, true)
	if pp := a.PostPromotion; pp != nil {
		if pp.Duration.Duration <= 0 {
			v.fail(f+".postPromotion.duration", "required: how long to watch the promoted version, e.g. \"30m\"")
		}
		validateMetrics(v, f+".postPromotion.metrics", pp.Metrics, false)
	}
}

func validateMetrics(v *validator, f string, ms []AnalysisMetric, guards bool) {
	names := map[string]int{}
	for i, m := range ms {
		mf := fmt.Sprintf("%s[%d]", f, i)
		name := m.MetricName()
		if j, dup := names[name]; dup && name != "" {
			v.fail(mf+".name", "duplicate metric %q (also %s[%d]); name one of them", name, f, j)
		}
		names[name] = i
		if m.IsGuard() {
			if !guards {
				v.fail(mf+".kind", "required: errors, latency or ratio")
				continue
			}
			validateGuardEntry(v, mf, m)
			continue
		}
		validateTestedMetric(v, mf, m)
	}
}

// validateGuardEntry checks today's {name, query, max|min} entries.
func validateGuardEntry(v *validator, f string, m AnalysisMetric) {
	if m.Name == "" {
		v.fail(f+".name", "required: a guard's name (or set kind: errors, latency or ratio for a tested metric)")
	}
	if m.Query != "" {
		if _, err := RenderQuery(m.Query, SampleQueryData); err != nil {
			v.fail(f+".query", "%v", err)
		}
	}
	if m.Query != "" && m.Max == nil && m.Min == nil {
		v.fail(f, "a guard needs max or min to judge its query against")
	}
	for field, set := range map[string]bool{"margin": m.Margin != 0, "le": m.LE != "", "bad": m.Bad != "", "good": m.Good != "", "total": m.Total != "", "guard": m.Guard != nil} {
		if set {
			v.fail(f+"."+field, "only a tested metric (with kind) has %s", field)
		}
	}
}

func validateTestedMetric(v *validator, f string, m AnalysisMetric) {
	switch m.Kind {
	case MetricErrors, MetricLatency, MetricRatio:
	default:
		v.fail(f+".kind", "expected errors, latency or ratio, got %q", m.Kind)
		return
	}
	if m.Name != "" && !metricName.MatchString(m.Name) {
		v.fail(f+".name", "expected letters, digits, '_', '.' and '-' (at most 63), got %q", m.Name)
	}
	if m.Query != "" || m.Max != nil || m.Min != nil {
		v.fail(f+".query", "query, max and min belong to guards; a tested metric uses bad or good and total, and guard: {maxRate, minRequests}")
	}
	if m.Margin != 0 && !(m.Margin > 1 && m.Margin <= 50) {
		v.fail(f+".margin", "expected a rate-ratio margin above 1 and at most 50 (1.2: at most 20%% more bad events than stable), got %v", m.Margin)
	}
	if m.Bad != "" && m.Good != "" {
		v.fail(f+".good", "bad and good are alternatives; set one")
	}
	switch m.Kind {
	case MetricLatency:
		if m.LE == "" {
			v.fail(f+".le", "required: the histogram bucket boundary requests must beat, as in the le label (\"500\" for 500 ms in Knative's histogram)")
		} else if _, err := strconv.ParseFloat(m.LE, 64); err != nil {
			v.fail(f+".le", "expected a bucket boundary such as \"500\", got %q", m.LE)
		}
	case MetricRatio:
		if m.Total == "" {
			v.fail(f+".total", "required: a PromQL template counting all events of one arm, e.g. model_total_predictions{revision=\"{{.Revision}}\"}")
		}
		if m.Bad == "" && m.Good == "" {
			v.fail(f+".bad", "required: bad or good, a PromQL template counting the bad (or good) events of one arm")
		}
	}
	if m.LE != "" && m.Kind != MetricLatency {
		v.fail(f+".le", "only a latency metric has le")
	}
	data := SampleQueryData
	if m.LE != "" {
		data.LE = m.LE
	}
	for _, t := range []struct{ field, text string }{{"bad", m.Bad}, {"good", m.Good}, {"total", m.Total}} {
		if t.text == "" {
			continue
		}
		if _, err := RenderQuery(t.text, data); err != nil {
			v.fail(f+"."+t.field, "%v", err)
		}
	}
	if g := m.Guard; g != nil {
		if !(g.MaxRate > 0 && g.MaxRate <= 1) {
			v.fail(f+".guard.maxRate", "expected a bad-event share above 0 and at most 1 (0.5: half the canary's requests fail), got %v", g.MaxRate)
		}
		if g.MinRequests < 0 {
			v.fail(f+".guard.minRequests", "expected a non-negative number of canary requests, got %d", g.MinRequests)
		}
	}
}
