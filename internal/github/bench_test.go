package github_test

import (
	"slices"
	"testing"
	"time"

	ghub "github.com/modelsync/modelsync/internal/github"
	"github.com/modelsync/modelsync/internal/github/githubtest"
	"github.com/modelsync/modelsync/test/testenv"
)

// BenchmarkWebhookToFinalStatus measures, per delivery, the time from
// sending a signed pull_request webhook to the GitHub stand-in recording
// the final modelsync/policy status: signature check, Git fetch from a real
// git daemon, desired state at base and head, policy evaluation and the
// REST calls on loopback. GitHub's own latency is not part of it. Run with
// -benchtime=50x; it reports p50 and p95 in milliseconds.
func BenchmarkWebhookToFinalStatus(b *testing.B) {
	m := newModelsRepo(b)
	h := newHarness(b, m.URL)
	api := h.API
	sha, files := m.branch(b, "promote-churn", func(wd *testenv.Workdir) { setProd(b, wd, "3", "4") })
	api.PutPR(githubtest.PR{Number: 1, State: "open", Author: "carol", BaseRef: "main", HeadRef: "promote-churn", HeadSHA: sha, Files: files})
	final := make(chan time.Time, 1)
	api.OnStatus(func(s githubtest.Status) {
		if s.Context == ghub.StatusContext && s.State != "pending" {
			final <- time.Now()
		}
	})
	// One warm-up delivery: the first one clones the repository and
	// compiles the policy, which a running server does once.
	h.deliver(b, "pull_request", api.PullRequestEvent("opened", 1))
	<-final
	durations := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		// Fresh statuses, so the gate writes its result every time rather
		// than skipping an unchanged one.
		api.ClearStatuses(sha)
		start := time.Now()
		if code := h.send(b, "pull_request", api.PullRequestEvent("synchronize", 1)); code != 202 {
			b.Fatalf("delivery: %d", code)
		}
		durations = append(durations, (<-final).Sub(start))
		h.Gate.Wait()
	}
	b.StopTimer()
	slices.Sort(durations)
	pct := func(p float64) float64 {
		i := int(p*float64(len(durations))+0.5) - 1
		i = max(0, min(i, len(durations)-1))
		return float64(durations[i].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.95), "p95-ms")
	b.ReportMetric(float64(durations[len(durations)-1].Microseconds())/1000, "max-ms")
}
