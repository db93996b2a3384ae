package manifest

import (
	"strings"
	"testing"
	"time"
)

// analysisModel is goodModel with an analysis on prod's canary; line 15
// is "analysis:", metrics start at line 17.
const analysisModel = `apiVersion: modelsync.dev/v1alpha1
kind: Model
metadata:
  name: churn
spec:
  owners: [alice]
  environments:
    dev:
      version: 2
    prod:
      version: 1
      canary:
        version: 2
        steps: [10, 25, 50]
        analysis:
          metrics:
            - {kind: errors}
            - {kind: latency, le: "500", margin: 1.5}
            - {name: p95, query: "histogram_quantile(0.95, x)", max: 2.5}
  serving:
    path: serving
    modelFormat: sklearn
`

func TestAnalysisLoadsAndResolves(t *testing.T) {
	cfg := testConfig + "analysis:\n  prometheus: {address: \"http://prom:9090\", bearerTokenEnv: PROM_TOKEN}\n  stepDuration: 5m\n"
	repo, err := Load(repoFS(cfg, map[string]string{"churn": analysisModel}))
	if err != nil {
		t.Fatal(err)
	}
	if errs := repo.AllErrors(); len(errs) > 0 {
		t.Fatalf("unexpected problems:\n%v", errs)
	}
	a := repo.Models["churn"].Spec.Environments["prod"].Canary.Analysis.Resolved(repo.Config.Analysis)
	if a.Provider == nil || a.Provider.Address != "http://prom:9090" || a.Provider.BearerTokenEnv != "PROM_TOKEN" {
		t.Fatalf("provider not taken from modelsync.yaml: %+v", a.Provider)
	}
	if a.StepDuration.Duration != 5*time.Minute || a.Interval.Duration != time.Minute || a.MinSamples != 500 || a.Alpha != 0.05 || a.OnInconclusive != "hold" {
		t.Fatalf("defaults not merged: %+v", a)
	}
	if a.Metrics[0].Name != "errors" || a.Metrics[0].Margin != 1.2 || a.Metrics[1].Margin != 1.5 || a.Metrics[2].Margin != 0 {
		t.Fatalf("metric defaults: %+v", a.Metrics)
	}
}

func TestAnalysisValidationErrors(t *testing.T) {
	cases := []struct {
		name     string
		old, new string
		want     string
	}{
		{"unknown kind", "{kind: errors}", "{kind: error}",
			`models/churn/model.yaml:17:22: spec.environments.prod.canary.analysis.metrics[0].kind: expected errors, latency or ratio, got "error"`},
		{"latency without le", `{kind: latency, le: "500", margin: 1.5}`, `{kind: latency}`,
			`models/churn/model.yaml:18:15: spec.environments.prod.canary.analysis.metrics[1].le: required: the histogram bucket boundary requests must beat, as in the le label ("500" for 500 ms in Knative's histogram)`},
		{"margin at 1", "margin: 1.5", "margin: 1",
			`models/churn/model.yaml:18:50: spec.environments.prod.canary.analysis.metrics[1].margin: expected a rate-ratio margin above 1 and at most 50 (1.2: at most 20% more bad events than stable), got 1`},
		{"template with unknown field", "{kind: errors}", `{kind: errors, bad: 'x{revision="{{.Version}}"}'}`,
			`models/churn/model.yaml:17:35: spec.environments.prod.canary.analysis.metrics[0].bad: template "x{revision=\"{{.Version}}\"}" cannot be rendered (it may use {{.Namespace}}, {{.Name}}, {{.Revision}} and, for latency, {{.LE}}): template: query:1:14: executing "query" at <.Version>: can't evaluate field Version in type manifest.QueryData`},
		{"template that does not parse", "{kind: errors}", `{kind: errors, bad: 'x{{.Revision'}`,
			`models/churn/model.yaml:17:35: spec.environments.prod.canary.analysis.metrics[0].bad: template "x{{.Revision" does not parse: template: query:1: unclosed action`},
		{"ratio without total", "{kind: errors}", "{kind: ratio, good: correct}",
			`models/churn/model.yaml:17:15: spec.environments.prod.canary.analysis.metrics[0].total: required: a PromQL template counting all events of one arm, e.g. model_total_predictions{revision="{{.Revision}}"}`},
		{"guard without bound", `, max: 2.5}`, `}`,
			`models/churn/model.yaml:19:15: spec.environments.prod.canary.analysis.metrics[2]: a guard needs max or min to judge its query against`},
		{"guard rate above 1", "{kind: errors}", "{kind: errors, guard: {maxRate: 2}}",
			`models/churn/model.yaml:17:47: spec.environments.prod.canary.analysis.metrics[0].guard.maxRate: expected a bad-event share above 0 and at most 1 (0.5: half the canary's requests fail), got 2`},
		{"duplicate metric", `{kind: latency, le: "500", margin: 1.5}`, `{kind: errors, margin: 1.5}`,
			`models/churn/model.yaml:18:15: spec.environments.prod.canary.analysis.metrics[1].name: duplicate metric "errors" (also spec.environments.prod.canary.analysis.metrics[0]); name one of them`},
		{"alpha too large", "          metrics:\n", "          alpha: 0.9\n          metrics:\n",
			`models/churn/model.yaml:16:18: spec.environments.prod.canary.analysis.alpha: expected a false-rollback budget above 0 and at most 0.5 (e.g. 0.05), got 0.9`},
		{"bad onInconclusive", "          metrics:\n", "          onInconclusive: wait\n          metrics:\n",
			`models/churn/model.yaml:16:27: spec.environments.prod.canary.analysis.onInconclusive: expected hold or rollback, got "wait"`},
		{"interval too short", "          metrics:\n", "          interval: 1s\n          metrics:\n",
			`models/churn/model.yaml:16:21: spec.environments.prod.canary.analysis.interval: expected at least 5s between looks, got "1s"`},
		{"address with credentials", "          metrics:\n", "          provider: {address: \"http://u:secret@prom:9090\"}\n          metrics:\n",
			`models/churn/model.yaml:16:31: spec.environments.prod.canary.analysis.provider.address: must not carry credentials or a query; name environment variables in bearerTokenEnv or basicAuth instead`},
		{"token variable name", "          metrics:\n", "          provider: {bearerTokenEnv: \"my-token\"}\n          metrics:\n",
			`models/churn/model.yaml:16:38: spec.environments.prod.canary.analysis.provider.bearerTokenEnv: expected the name of an environment variable (letters, digits, '_'), got "my-token"`},
		{"postPromotion without duration", "          metrics:\n", "          postPromotion: {metrics: [{kind: errors}]}\n          metrics:\n",
			`models/churn/model.yaml:16:11: spec.environments.prod.canary.analysis.postPromotion.duration: required: how long to watch the promoted version, e.g. "30m"`},
		{"unknown analysis field", "          metrics:\n", "          steps: [1]\n          metrics:\n",
			`models/churn/model.yaml:16:11: spec.environments.prod.canary.analysis.steps: unknown field "steps"; expected one of: alpha, interval, maxDuration, metrics, minSamples, onInconclusive, postPromotion, provider, stepDuration, thresholds`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(analysisModel, tc.old) {
				t.Fatalf("test bug: %q not in model", tc.old)
			}
			body := strings.Replace(analysisModel, tc.old, tc.new, 1)
			repo, err := Load(repoFS(testConfig, map[string]string{"churn": body}))
			if err != nil {
				t.Fatal(err)
			}
			if got := repo.AllErrors().Error(); got != tc.want {
				t.Fatalf("problems:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestAnalysisDefaultsValidation(t *testing.T) {
	cfg := testConfig + "analysis:\n  prometheus: {address: \"ftp://prom\"}\n  minSamples: -3\n"
	repo, err := Load(repoFS(cfg, nil))
	if err != nil {
		t.Fatal(err)
	}
	want := `modelsync.yaml:11:25: analysis.prometheus.address: expected an http(s) URL such as http://prometheus.monitoring:9090, got "ftp://prom"` + "\n" +
		`modelsync.yaml:12:15: analysis.minSamples: expected a positive number of canary requests per step, got -3`
	if got := repo.ConfigErrors.Error(); got != want {
		t.Fatalf("problems:\n%s\nwant:\n%s", got, want)
	}
}
