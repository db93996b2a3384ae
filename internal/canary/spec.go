package canary

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/modelsync/modelsync/internal/analysis"
	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/prometheus"
	"github.com/modelsync/modelsync/reconciler"
)

// ErrSpec is wrapped by every error turning a manifest analysis into a Spec.
var ErrSpec = errors.New("invalid canary analysis")

// Built-in templates for KServe in Serverless (Knative) mode: Knative's
// queue-proxy counts every request a revision's pods answer in
// revision_app_request_count (labelled by response_code_class) and their
// latency in the histogram revision_app_request_latencies (milliseconds).
// The series are per pod; the evaluator tracks each one, so a pod restart
// is seen as that series' reset and not as lost traffic.
const (
	KnativeRequests = `revision_app_request_count{namespace_name="{{.Namespace}}",revision_name="{{.Revision}}"}`
	KnativeErrors   = `revision_app_request_count{namespace_name="{{.Namespace}}",revision_name="{{.Revision}}",response_code_class="5xx"}`
	KnativeFast     = `revision_app_request_latencies_bucket{namespace_name="{{.Namespace}}",revision_name="{{.Revision}}",le="{{.LE}}"}`
	KnativeLatency  = `revision_app_request_latencies_count{namespace_name="{{.Namespace}}",revision_name="{{.Revision}}"}`
)

// TemplateData is what a query template may use.
type TemplateData = manifest.QueryData

// Metric is one tested metric with its query templates. Bad and Good are
// alternatives: with Good set, bad events are Total − Good.
type Metric struct {
	Name   string  `json:"name"`
	Kind   string  `json:"kind"`
	Margin float64 `json:"margin"`
	LE     string  `json:"le,omitempty"`
	Bad    string  `json:"bad,omitempty"`
	Good   string  `json:"good,omitempty"`
	Total  string  `json:"total"`
}

// Guard is a threshold on a query's canary value (today's {name, query,
// max|min} entries), checked at every look.
type Guard struct {
	Name  string   `json:"name"`
	Query string   `json:"query"`
	Max   *float64 `json:"max,omitempty"`
	Min   *float64 `json:"min,omitempty"`
}

// PostPromotion compares a promoted revision with the previous one.
type PostPromotion struct {
	Duration time.Duration   `json:"duration"`
	Metrics  []Metric        `json:"metrics"`
	Config   analysis.Config `json:"config"`
}

// Spec is everything the evaluator needs to analyse one environment's canary.
type Spec struct {
	Model, Environment, Namespace, Name string
	// Alias is the environment's MLflow alias (the canary's is Alias-canary).
	Alias                           string
	StableVersion, CandidateVersion int
	Interval                        time.Duration
	OnInconclusive                  OnInconclusive
	// Config is the statistics' configuration: steps from the weight in
	// Git onwards, step duration, minimum samples, alpha and each metric's
	// margin and guard.
	Config analysis.Config
	// Metrics are the tested metrics' queries, in Config.Metrics' order.
	Metrics []Metric
	// Requests counts each arm's requests for the minimum-samples rule
	// and the sample-ratio check; empty uses the first metric's totals.
	Requests string
	Guards   []Guard
	// Provider is how to reach Prometheus (credentials by variable name).
	// Address is empty when neither the analysis nor modelsync.yaml names
	// one; the controller then uses serve's --prometheus-url (WithAddress),
	// and without that prometheus.New fails naming the missing address.
	Provider      prometheus.Config
	PostPromotion *PostPromotion
}

// SpecFor builds the Spec of model's canary in env, whose InferenceService
// is isvcName. It returns false when the environment has no canary with an
// analysis. The analysis must already be resolved (reconciler does it with
// modelsync.yaml's defaults); SpecFor resolves again without repository
// defaults so a hand-built DesiredEnv works too.
func SpecFor(model string, env reconciler.DesiredEnv, isvcName string) (Spec, bool, error) {
	c := env.Canary
	if c == nil || c.Analysis == nil {
		return Spec{}, false, nil
	}
	a := c.Analysis.Resolved(nil)
	where := fmt.Sprintf("model %s environment %s", model, env.Environment)
	s := Spec{
		Model: model, Environment: env.Environment, Namespace: env.Namespace, Name: isvcName,
		Alias: env.Alias, StableVersion: env.Version, CandidateVersion: c.Version,
		Interval:       a.Interval.Duration,
		OnInconclusive: OnInconclusive(a.OnInconclusive),
		Requests:       KnativeRequests,
	}
	s.Config = analysis.Config{
		Steps:        stepsFrom(c.Steps, c.Weight),
		StepDuration: a.StepDuration.Duration,
		MinSamples:   int64(a.MinSamples),
		MaxDuration:  a.MaxDuration.Duration,
		Alpha:        a.Alpha,
	}
	if p := a.Provider; p != nil {
		s.Provider = prometheus.Config{Address: p.Address, BearerTokenEnv: p.BearerTokenEnv}
		if p.BasicAuth != nil {
			s.Provider.UsernameEnv, s.Provider.PasswordEnv = p.BasicAuth.UsernameEnv, p.BasicAuth.PasswordEnv
		}
		if p.TLS != nil {
			s.Provider.CAFile, s.Provider.InsecureSkipVerify = p.TLS.CAFile, p.TLS.InsecureSkipVerify
		}
	}
	var err error
	s.Metrics, s.Guards, s.Config.Metrics, err = metricsOf(a.Metrics)
	if err != nil {
		return Spec{}, true, fmt.Errorf("%w: %s: %w", ErrSpec, where, err)
	}
	if !builtinOnly(a.Metrics) {
		// Custom templates may count something other than requests (labelled
		// feedback); without the built-in request counter the sample-ratio
		// check uses the first metric's totals.
		s.Requests = ""
		for _, m := range a.Metrics {
			if m.Kind == manifest.MetricErrors && m.Total == "" {
				s.Requests = KnativeRequests
			}
		}
	}
	if pp := a.PostPromotion; pp != nil {
		ms, _, cms, err := metricsOf(pp.Metrics)
		if err != nil {
			return Spec{}, true, fmt.Errorf("%w: %s: postPromotion: %w", ErrSpec, where, err)
		}
		cfg := s.Config
		cfg.Steps = []int{50} // before and after windows of equal length
		cfg.Metrics = cms
		cfg.StepDuration = pp.Duration.Duration
		s.PostPromotion = &PostPromotion{Duration: pp.Duration.Duration, Metrics: ms, Config: cfg}
	}
	if _, err := analysis.New(s.Config); err != nil {
		return Spec{}, true, fmt.Errorf("%w: %s: %w", ErrSpec, where, err)
	}
	return s, true, nil
}

// stepsFrom returns the steps the analysis walks: from the weight written
// in Git onwards, since that is where the rollout stands. A canary with a
// weight and no steps has one step.
func stepsFrom(steps []int, weight int) []int {
	if len(steps) == 0 {
		return []int{weight}
	}
	if i := slices.Index(steps, weight); i > 0 {
		return slices.Clone(steps[i:])
	}
	return slices.Clone(steps)
}

func builtinOnly(ms []manifest.AnalysisMetric) bool {
	for _, m := range ms {
		if !m.IsGuard() && (m.Kind == manifest.MetricRatio || m.Bad != "" || m.Good != "" || m.Total != "") {
			return false
		}
	}
	return true
}

// metricsOf splits resolved manifest metrics into tested metrics (with
// built-in templates filled in) and guards.
func metricsOf(ms []manifest.AnalysisMetric) ([]Metric, []Guard, []analysis.Metric, error) {
	var (
		out    []Metric
		guards []Guard
		cfg    []analysis.Metric
	)
	for i, m := range ms {
		if m.IsGuard() {
			if m.Query == "" {
				continue // a legacy entry without a query checks nothing
			}
			if _, err := Render(m.Query, sampleData); err != nil {
				return nil, nil, nil, fmt.Errorf("metrics[%d] %q: %w", i, m.Name, err)
			}
			guards = append(guards, Guard{Name: m.Name, Query: m.Query, Max: m.Max, Min: m.Min})
			continue
		}
		x, err := MetricFor(m)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("metrics[%d] %q: %w", i, m.MetricName(), err)
		}
		out = append(out, x)
		am := analysis.Metric{Name: x.Name, Margin: x.Margin}
		if g := m.Guard; g != nil {
			am.GuardMaxRate, am.GuardMinRequests = g.MaxRate, int64(g.MinRequests)
		}
		cfg = append(cfg, am)
	}
	return out, guards, cfg, nil
}

// MetricFor fills a tested metric's templates: the user's where given,
// else the built-in KServe Serverless ones for its kind. Every template is
// rendered once with sample values, so a broken one fails here, at
// validate time, and not at the first look.
func MetricFor(m manifest.AnalysisMetric) (Metric, error) {
	x := Metric{Name: m.MetricName(), Kind: m.Kind, Margin: m.Margin, LE: m.LE, Bad: m.Bad, Good: m.Good, Total: m.Total}
	if x.Margin == 0 {
		x.Margin = manifest.DefaultMargin
	}
	switch m.Kind {
	case manifest.MetricErrors:
		if x.Bad == "" && x.Good == "" {
			x.Bad = KnativeErrors
		}
		if x.Total == "" {
			x.Total = KnativeRequests
		}
	case manifest.MetricLatency:
		if m.LE == "" {
			return Metric{}, errors.New("a latency metric needs le, the histogram bucket boundary (e.g. \"500\" for 500 ms in Knative's histogram)")
		}
		if _, err := strconv.ParseFloat(m.LE, 64); err != nil {
			return Metric{}, fmt.Errorf("le %q is not a number", m.LE)
		}
		if x.Bad == "" && x.Good == "" {
			x.Good = KnativeFast
		}
		if x.Total == "" {
			x.Total = KnativeLatency
		}
	case manifest.MetricRatio:
		if x.Total == "" || (x.Bad == "") == (x.Good == "") {
			return Metric{}, errors.New("a ratio metric needs total and exactly one of bad or good")
		}
	default:
		return Metric{}, fmt.Errorf("unknown kind %q (want errors, latency or ratio)", m.Kind)
	}
	if x.Bad != "" && x.Good != "" {
		return Metric{}, errors.New("bad and good are alternatives; set one")
	}
	data := sampleData
	data.LE = x.LE
	for _, t := range []struct{ field, text string }{{"bad", x.Bad}, {"good", x.Good}, {"total", x.Total}} {
		if t.text == "" {
			continue
		}
		if _, err := Render(t.text, data); err != nil {
			return Metric{}, fmt.Errorf("%s: %w", t.field, err)
		}
	}
	return x, nil
}

// sampleData renders templates at validate time.
var sampleData = manifest.SampleQueryData

// Render executes a query template (manifest.RenderQuery).
func Render(text string, d TemplateData) (string, error) { return manifest.RenderQuery(text, d) }

// WithAddress fills the provider address from a fallback (serve's
// --prometheus-url) when the manifests name none.
func (s Spec) WithAddress(fallback string) Spec {
	if s.Provider.Address == "" {
		s.Provider.Address = fallback
	}
	return s
}
