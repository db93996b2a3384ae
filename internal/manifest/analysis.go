package manifest

import (
	"slices"
	"time"
)

// Built-in analysis defaults, used where neither the model file nor
// modelsync.yaml says otherwise.
const (
	DefaultAnalysisInterval = time.Minute
	DefaultStepDuration     = 10 * time.Minute
	DefaultMinSamples       = 500
	DefaultAnalysisAlpha    = 0.05
	DefaultMargin           = 1.2
	DefaultOnInconclusive   = "hold"
)

// Resolved returns the analysis with every unset setting filled from
// modelsync.yaml's defaults (d may be nil) and then the built-in ones, so
// the controller acts on exactly what validate showed. Provider fields are
// taken as a whole: an analysis that names its own provider does not
// inherit the repository's credentials for another address.
func (a Analysis) Resolved(d *AnalysisDefaults) Analysis {
	var def AnalysisDefaults
	if d != nil {
		def = *d
	}
	if a.Provider == nil && def.Prometheus != nil {
		p := *def.Prometheus
		a.Provider = &p
	}
	if a.Interval.Duration == 0 {
		a.Interval = orDuration(def.Interval, DefaultAnalysisInterval)
	}
	if a.StepDuration.Duration == 0 {
		a.StepDuration = orDuration(def.StepDuration, DefaultStepDuration)
	}
	if a.MinSamples == 0 {
		a.MinSamples = def.MinSamples
		if a.MinSamples == 0 {
			a.MinSamples = DefaultMinSamples
		}
	}
	if a.MaxDuration.Duration == 0 {
		a.MaxDuration = def.MaxDuration
	}
	if a.Alpha == 0 {
		a.Alpha = def.Alpha
		if a.Alpha == 0 {
			a.Alpha = DefaultAnalysisAlpha
		}
	}
	if a.OnInconclusive == "" {
		a.OnInconclusive = def.OnInconclusive
		if a.OnInconclusive == "" {
			a.OnInconclusive = DefaultOnInconclusive
		}
	}
	a.Metrics = resolveMetrics(a.Metrics)
	if !slices.ContainsFunc(a.Metrics, func(m AnalysisMetric) bool { return !m.IsGuard() }) {
		// An analysis of guards only (the form before tested metrics
		// existed) still needs evidence to advance: the built-in error
		// ratio gives it, and the guards keep rolling back as before.
		a.Metrics = append(a.Metrics, AnalysisMetric{Name: MetricErrors, Kind: MetricErrors, Margin: DefaultMargin})
	}
	if a.PostPromotion != nil {
		pp := *a.PostPromotion
		if len(pp.Metrics) == 0 {
			for _, m := range a.Metrics {
				if !m.IsGuard() {
					pp.Metrics = append(pp.Metrics, m)
				}
			}
		} else {
			pp.Metrics = resolveMetrics(pp.Metrics)
		}
		a.PostPromotion = &pp
	}
	return a
}

func resolveMetrics(ms []AnalysisMetric) []AnalysisMetric {
	out := make([]AnalysisMetric, len(ms))
	for i, m := range ms {
		if !m.IsGuard() {
			if m.Name == "" {
				m.Name = m.Kind
			}
			if m.Margin == 0 {
				m.Margin = DefaultMargin
			}
		}
		out[i] = m
	}
	return out
}

func orDuration(d Duration, def time.Duration) Duration {
	if d.Duration != 0 {
		return d
	}
	return Duration{def}
}
