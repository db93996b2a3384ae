package policy

import (
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/reconciler"
)

// An edit of the canary analysis alone is a change the rules see, with the
// analysis as the controller runs it.
func TestBuildChangesCarriesAnalysis(t *testing.T) {
	an := func(alpha float64) *manifest.Analysis {
		a := manifest.Analysis{
			Provider: &manifest.AnalysisProvider{Address: "http://prom:9090"},
			Alpha:    alpha,
			Metrics: []manifest.AnalysisMetric{
				{Kind: manifest.MetricErrors, Guard: &manifest.MetricGuard{MaxRate: 0.5}},
				{Name: "p95", Query: "x", Max: new(float64)},
			},
		}.Resolved(nil)
		return &a
	}
	canary := func(a *manifest.Analysis) *reconciler.DesiredCanary {
		return &reconciler.DesiredCanary{Version: 4, Weight: 10, Steps: []int{10, 50}, Analysis: a}
	}
	got := BuildChanges(state(dm("churn", env("prod", 3, canary(an(0.05))))), state(dm("churn", env("prod", 3, canary(an(0.3))))))
	if len(got) != 1 || got[0].Analysis == nil {
		t.Fatalf("changes %+v, want the analysis edit", got)
	}
	d := *got[0].Analysis
	if d.Alpha != 0.3 || d.IntervalSeconds != time.Minute.Seconds() || d.StepDurationSeconds != 600 || d.MinSamples != 500 ||
		d.OnInconclusive != "hold" || d.Provider != "http://prom:9090" || len(d.Guards) != 1 || d.Guards[0] != "p95" ||
		len(d.Metrics) != 1 || d.Metrics[0] != (AnalysisMetricDoc{Name: "errors", Kind: "errors", Margin: 1.2, GuardMaxRate: 0.5}) {
		t.Fatalf("analysis doc %+v", d)
	}
	if got := BuildChanges(state(dm("churn", env("prod", 3, canary(an(0.05))))), state(dm("churn", env("prod", 3, canary(an(0.05)))))); len(got) != 0 {
		t.Fatalf("unchanged analysis listed: %+v", got)
	}
}
