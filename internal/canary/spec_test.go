package canary

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/prometheus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestBuiltinTemplatesRender(t *testing.T) {
	d := TemplateData{Namespace: "prod", Name: "llm", Revision: "llm-predictor-00002"}
	m, err := MetricFor(manifest.AnalysisMetric{Kind: manifest.MetricErrors})
	if err != nil {
		t.Fatal(err)
	}
	bad, _ := Render(m.Bad, d)
	total, _ := Render(m.Total, d)
	if bad != `revision_app_request_count{namespace_name="prod",revision_name="llm-predictor-00002",response_code_class="5xx"}` ||
		total != `revision_app_request_count{namespace_name="prod",revision_name="llm-predictor-00002"}` || m.Margin != 1.2 || m.Name != "errors" {
		t.Fatalf("errors: %+v\n%s\n%s", m, bad, total)
	}
	m, err = MetricFor(manifest.AnalysisMetric{Kind: manifest.MetricLatency, LE: "250", Margin: 1.5})
	if err != nil {
		t.Fatal(err)
	}
	d.LE = m.LE
	good, _ := Render(m.Good, d)
	total, _ = Render(m.Total, d)
	// Slow requests are count − bucket(le): exact counts, no histogram_quantile.
	if m.Bad != "" || good != `revision_app_request_latencies_bucket{namespace_name="prod",revision_name="llm-predictor-00002",le="250"}` ||
		total != `revision_app_request_latencies_count{namespace_name="prod",revision_name="llm-predictor-00002"}` {
		t.Fatalf("latency: %+v\n%s\n%s", m, good, total)
	}
	for _, bad := range []manifest.AnalysisMetric{
		{Kind: manifest.MetricLatency},
		{Kind: manifest.MetricRatio, Good: "x"},
		{Kind: manifest.MetricRatio, Good: "x", Bad: "y", Total: "z"},
		{Kind: manifest.MetricRatio, Good: `x{r="{{.Version}}"}`, Total: "z"},
	} {
		if _, err := MetricFor(bad); err == nil {
			t.Errorf("MetricFor(%+v) accepted", bad)
		}
	}
}

func TestSpecFor(t *testing.T) {
	a := &manifest.Analysis{
		Provider:       &manifest.AnalysisProvider{Address: "http://prom:9090", BasicAuth: &manifest.BasicAuthEnv{UsernameEnv: "U", PasswordEnv: "P"}},
		OnInconclusive: "rollback",
		Metrics: []manifest.AnalysisMetric{
			{Kind: manifest.MetricErrors, Guard: &manifest.MetricGuard{MaxRate: 0.5, MinRequests: 20}},
			{Name: "p95", Query: `histogram_quantile(0.95, x{revision_name="{{.Revision}}"})`, Max: ptr(2.5)},
		},
	}
	s, ok, err := SpecFor("llm", desiredEnv("prod", []int{10, 25, 50}, 25, a), "llm")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	// The walk starts at the weight written in Git.
	if !slices.Equal(s.Config.Steps, []int{25, 50}) || s.Interval != time.Minute || s.OnInconclusive != InconclusiveRollback {
		t.Fatalf("spec %+v", s)
	}
	if s.Provider.UsernameEnv != "U" || s.Provider.PasswordEnv != "P" || s.Requests != KnativeRequests {
		t.Fatalf("provider %+v requests %q", s.Provider, s.Requests)
	}
	if len(s.Guards) != 1 || s.Guards[0].Name != "p95" || s.Config.Metrics[0].GuardMaxRate != 0.5 || s.Config.Metrics[0].GuardMinRequests != 20 {
		t.Fatalf("guards %+v metrics %+v", s.Guards, s.Config.Metrics)
	}
	guardsOnly := &manifest.Analysis{Provider: a.Provider, Metrics: a.Metrics[1:]}
	s, _, err = SpecFor("llm", desiredEnv("prod", []int{10}, 10, guardsOnly), "llm")
	if err != nil || len(s.Metrics) != 1 || s.Metrics[0].Kind != manifest.MetricErrors || len(s.Guards) != 1 {
		t.Fatalf("guards only: %+v, %v", s.Metrics, err)
	}
	if _, ok, err := SpecFor("llm", desiredEnv("prod", []int{10}, 10, nil), "llm"); ok || err != nil {
		t.Fatalf("no analysis: ok %v err %v", ok, err)
	}
	noAddr := &manifest.Analysis{Metrics: []manifest.AnalysisMetric{{Kind: manifest.MetricErrors}}}
	s, _, err = SpecFor("llm", desiredEnv("prod", []int{10}, 10, noAddr), "llm")
	if err != nil || s.Provider.Address != "" || s.WithAddress("http://flag:9090").Provider.Address != "http://flag:9090" || s.WithAddress("").Provider.Address != "" {
		t.Fatalf("no address: %+v, %v", s.Provider, err)
	}
	if _, err := prometheus.New(s.Provider); !errors.Is(err, prometheus.ErrConfig) {
		t.Fatalf("client without an address: %v", err)
	}
	bad := &manifest.Analysis{Metrics: []manifest.AnalysisMetric{{Kind: manifest.MetricLatency}}}
	if _, _, err := SpecFor("llm", desiredEnv("prod", []int{10}, 10, bad), "llm"); !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), "needs le") {
		t.Fatalf("err = %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func isvc(pred map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"name": "llm", "namespace": "prod"}}}
	if pred != nil {
		u.Object["status"] = map[string]any{"components": map[string]any{"predictor": pred}}
	}
	return u
}

func TestRevisionsOf(t *testing.T) {
	canarying := map[string]any{
		"latestRolledoutRevision":   "llm-predictor-00001",
		"previousRolledoutRevision": "llm-predictor-00000",
		"traffic": []any{
			map[string]any{"revisionName": "llm-predictor-00002", "latestRevision": true, "percent": int64(10), "tag": "latest"},
			map[string]any{"revisionName": "llm-predictor-00001", "latestRevision": false, "percent": int64(90), "tag": "prev"},
		},
	}
	got, err := RevisionsOf(isvc(canarying))
	if err != nil || got != (Revisions{Canary: "llm-predictor-00002", Stable: "llm-predictor-00001"}) {
		t.Fatalf("got %+v, %v", got, err)
	}
	for name, pred := range map[string]map[string]any{
		"no status": nil,
		"first deployment": {"latestRolledoutRevision": "llm-predictor-00001", "traffic": []any{
			map[string]any{"revisionName": "llm-predictor-00001", "latestRevision": true, "percent": int64(100)}}},
		"candidate not ready": {"latestRolledoutRevision": "llm-predictor-00001", "traffic": []any{
			map[string]any{"revisionName": "llm-predictor-00001", "latestRevision": false, "percent": int64(100)}}},
		"no rolled-out revision": {"traffic": []any{
			map[string]any{"revisionName": "llm-predictor-00002", "latestRevision": true, "percent": int64(10)}}},
	} {
		if _, err := RevisionsOf(isvc(pred)); !errors.Is(err, ErrNoRevisions) {
			t.Errorf("%s: err = %v, want ErrNoRevisions", name, err)
		}
	}
	if prev, ok := PreviousRevision(isvc(canarying)); !ok || prev != "llm-predictor-00000" {
		t.Fatalf("previous = %q %v", prev, ok)
	}
}
