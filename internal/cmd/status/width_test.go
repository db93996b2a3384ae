package status

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

// demoStatus is what the controller answers in `make demo` once the
// llama canary runs, plus a model with a long name: revision names and
// traffic lists in the canary prose, a closed prod window.
const demoStatus = `{
  "revision": "main@sha1:0f3c1d2e9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d",
  "ready": true, "leader": true, "identity": "modelsync-controller-7d9f8b6c5-x2x4q",
  "rows": [
    {"model": "customer-churn-predictor", "environment": "prod", "desired": "v3", "desiredVersion": 3, "live": "v3",
     "state": "synced", "drift": false, "health": "Healthy", "window": {"open": false, "reason": "weekend freeze", "nextOpen": "2026-12-08T08:00:00Z"}},
    {"model": "llama2-7b-alpaca", "environment": "prod", "desired": "v3 (canary v4 at 50%)", "desiredVersion": 3,
     "live": "v3 (canary v4 at 20%)", "state": "out-of-sync", "drift": true, "health": "Progressing",
     "canaryStep": "latest ready llama2-7b-alpaca-predictor-00002, rolled out llama2-7b-alpaca-predictor-00001 (previous -), traffic [prev:llama2-7b-alpaca-predictor-00001 80%, latest:llama2-7b-alpaca-predictor-00002 20%]",
     "canary": {"version": 4, "weight": 50, "liveWeight": 20, "step": 2, "steps": [20, 50, 80, 100],
       "traffic": [{"revision": "llama2-7b-alpaca-predictor-00001", "tag": "prev", "percent": 80}, {"revision": "llama2-7b-alpaca-predictor-00002", "tag": "latest", "percent": 20, "latest": true}]},
     "window": {"open": false, "nextOpen": "2026-12-08T08:00:00Z"}, "pin": {"model": "llama2-7b-alpaca", "environment": "prod", "version": 3}},
    {"model": "recommendation-ranker-transformer-multilingual-large", "environment": "staging", "desired": "v12 (canary v13 at 10%)", "desiredVersion": 12,
     "live": "v12 (canary v13 at 10%)", "state": "synced", "health": "Healthy",
     "canaryStep": "latest ready recommendation-ranker-transformer-multilingual-large-predictor-00013, rolled out recommendation-ranker-transformer-multilingual-large-predictor-00012 (previous recommendation-ranker-transformer-multilingual-large-predictor-00011), traffic [prev:recommendation-ranker-transformer-multilingual-large-predictor-00012 90%, latest:recommendation-ranker-transformer-multilingual-large-predictor-00013 10%]",
     "canary": {"version": 13, "weight": 10, "liveWeight": 10, "step": 1, "steps": [10, 25, 50], "traffic": []},
     "window": {"open": true}},
    {"model": "sentiment-bert-legacy", "environment": "-", "desired": "(in no environment)", "live": "unknown", "state": "synced",
     "health": "unknown", "window": {"open": true}}
  ]
}`

func demoServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/status" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(demoStatus))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestStatusDefaultTableFits120Columns(t *testing.T) {
	err, out := run(t, nil, "--server", demoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if n := utf8.RuneCountInString(line); n > 120 && !strings.Contains(line, ": ") {
			t.Errorf("table line is %d columns wide (max 120):\n%s", n, line)
		}
	}
	flat := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{
		"MODEL ENV DESIRED LIVE STATE DRIFT HEALTH CANARY WINDOW PIN",
		// The canary: version, live share → desired share, step of steps.
		"llama2-7b-alpaca prod v3 v3 out-of-sync yes Progressing v4 20%→50% (2/4) closed v3",
		"customer-churn-predictor prod v3 v3 synced - Healthy - closed -",
		// A canary at its desired share shows it once.
		"v12 v12 synced - Healthy v13 10% (1/3) open -",
		// The window's reopening, once for its environment.
		"Sync window of prod is closed until 2026-12-08T08:00:00Z",
		"weekend freeze",
		"sentiment-bert-legacy - none unknown synced",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "Sync window of prod") != 1 {
		t.Errorf("the prod window is not reported exactly once:\n%s", out)
	}
	if !strings.Contains(out, "recommendation-ranker-transf…") {
		t.Errorf("long model name not shortened with an ellipsis:\n%s", out)
	}
	if strings.Contains(out, "predictor-0000") {
		t.Errorf("revision names in the default table:\n%s", out)
	}
}

func TestStatusWideKeepsFullDetail(t *testing.T) {
	err, out := run(t, nil, "--server", demoServer(t), "-o", "wide")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"recommendation-ranker-transformer-multilingual-large",
		"traffic [prev:llama2-7b-alpaca-predictor-00001 80%, latest:llama2-7b-alpaca-predictor-00002 20%]",
		"v3 (canary v4 at 50%)",
		"closed until 2026-12-08T08:00:00Z",
		"(in no environment)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("wide output lacks %q:\n%s", want, out)
		}
	}
}
