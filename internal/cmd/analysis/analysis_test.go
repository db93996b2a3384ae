package analysis

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	stats "github.com/modelsync/modelsync/internal/analysis"
	"github.com/modelsync/modelsync/internal/canary"
	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/wiring"
)

func sample() canary.Status {
	at := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
	return canary.Status{Model: "llama", Environment: "prod", StableVersion: 3, CandidateVersion: 4, Weight: 50,
		Revisions: canary.Revisions{Canary: "llama-predictor-00002", Stable: "llama-predictor-00001"},
		State: stats.State{Started: at, Step: 1, Looks: 12, ProviderErrors: 1, Windows: []stats.Window{
			{Weight: 20, Started: at, Requests: stats.Arms{Canary: stats.Counts{Total: 600}, Stable: stats.Counts{Total: 2400}}},
			{Weight: 50, Started: at.Add(10 * time.Minute), Requests: stats.Arms{Canary: stats.Counts{Total: 210}, Stable: stats.Counts{Total: 205}}}}},
		Decision: &stats.Decision{Action: stats.ActionHold, Reason: "canary requests 210 of 500", At: at.Add(14 * time.Minute), Step: 1, Weight: 50,
			Metrics: []stats.MetricResult{{Name: "errors", Canary: stats.Counts{Bad: 4, Total: 810}, Stable: stats.Counts{Bad: 20, Total: 2605}, Margin: 1.2,
				RatioResult: stats.RatioResult{Estimate: 0.64, Lower: 0.2, Upper: 1.9}}},
			SRM: stats.SRMResult{RoutedShare: 0.5, ObservedShare: 0.506}},
		Next: "look again at 15:15:00; advance to 80% once no longer waiting for: canary requests 210 of 500"}
}

func runCmd(t *testing.T, server string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	f := wiring.New(cmdutil.IOStreams{Out: &out, ErrOut: &errOut}, func(k string) string {
		if k == "MODELSYNC_TOKEN" {
			return "tok-0123456789abcdef"
		}
		return ""
	}, "")
	cmd := NewCmdAnalysis(f, nil)
	cmd.SetArgs(append(args, "--server", server))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.Execute()
	return out.String(), err
}

func TestAnalysisCommand(t *testing.T) {
	var gotPath, gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotAuth = r.URL.Path, r.Header.Get("Authorization")
		json.NewEncoder(w).Encode(sample())
	}))
	defer srv.Close()
	out, err := runCmd(t, srv.URL, "llama", "--env", "prod")
	if err != nil {
		t.Fatal(err)
	}
	if gotPath != "/api/v1/analysis/llama/prod" || gotAuth != "Bearer tok-0123456789abcdef" {
		t.Fatalf("request %s with %q", gotPath, gotAuth)
	}
	for _, want := range []string{
		"Canary of llama in prod: v4 (candidate) against v3 (stable)",
		"live weight 50%",
		"errors  4/810             20/2605           0.64   0.2..1.9  1.2     undecided",
		"Split: canary share 0.5060 observed, 0.50 routed",
		"Decision: hold at 2026-12-07T15:14:00Z — canary requests 210 of 500",
		"Next: look again at 15:15:00; advance to 80%",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, err = runCmd(t, srv.URL, "llama", "--env", "prod", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var st canary.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Decision == nil || st.Decision.Metrics[0].Upper != 1.9 {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if _, err := runCmd(t, srv.URL, "llama"); err == nil || !strings.Contains(err.Error(), "--env is required") {
		t.Fatalf("without --env: %v", err)
	}
}

// A reverted promotion shows the check's windows, counts and verdict.
func TestWriteTextVerification(t *testing.T) {
	st := sample()
	at := time.Date(2026, 12, 7, 16, 0, 0, 0, time.UTC)
	st.Verification = &canary.Verification{PostPromotion: canary.PostPromotion{Duration: 30 * time.Minute},
		Promoted: "llama-predictor-00002", Previous: "llama-predictor-00001", PromotedAt: at, By: "analysis", Result: canary.VerifyReverted,
		Decision: &stats.Decision{Action: stats.ActionRollback, At: at.Add(30 * time.Minute), Reason: "errors: canary worse than stable",
			Metrics: []stats.MetricResult{{Name: "errors", Canary: stats.Counts{Bad: 400, Total: 10000}, Stable: stats.Counts{Bad: 100, Total: 10000}, Margin: 1.2,
				RatioResult: stats.RatioResult{Estimate: 4, Lower: 2.9, Upper: 5.6, Harmful: true}}}}}
	var b bytes.Buffer
	if err := WriteText(&b, st); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Check after promotion (30m0s before against 30m0s after; weaker than the canary): reverted",
		"v4 (llama-predictor-00002) from 2026-12-07T16:00:00Z to 2026-12-07T16:30:00Z against v3 (llama-predictor-00001) from 2026-12-07T15:30:00Z",
		"errors  400/10000           100/10000           4      2.9..5.6  1.2     worse than stable",
		"Decision: rollback at 2026-12-07T16:30:00Z — errors: canary worse than stable",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
}
