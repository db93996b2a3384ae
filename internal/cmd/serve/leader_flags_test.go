package serve_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/modelsync/modelsync/internal/cmd/serve"
)

// The Lease timing flags default to client-go's recommended values, are
// validated before anything starts, and are what the controller's elector
// gets.
func TestServeLeaderElectionTimingFlags(t *testing.T) {
	var got *serve.Options
	f := factory(nil, &bytes.Buffer{})
	cmd := serve.NewCmdServe(f, func(_ context.Context, o *serve.Options) error { got = o; return nil })
	cmd.SetArgs(nil)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.LeaseDuration != 15*time.Second || got.RenewDeadline != 10*time.Second || got.RetryPeriod != 2*time.Second {
		t.Errorf("defaults: lease %s renew %s retry %s, want 15s 10s 2s", got.LeaseDuration, got.RenewDeadline, got.RetryPeriod)
	}

	cmd = serve.NewCmdServe(f, func(_ context.Context, o *serve.Options) error { got = o; return nil })
	cmd.SetArgs([]string{"--leader-elect", "--leader-election-lease-duration", "40s", "--leader-election-renew-deadline", "30s", "--leader-election-retry-period", "5s"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	kc := fake.NewClientset()
	le := serve.LeaderElection(got, kc, "replica-a")
	if le.LeaseDuration != 40*time.Second || le.RenewDeadline != 30*time.Second || le.RetryPeriod != 5*time.Second ||
		le.Identity != "replica-a" || le.Namespace != "modelsync-system" || le.Name != "modelsync-controller" || le.Client != kc {
		t.Errorf("controller.LeaderElection = %+v", le)
	}

	for args, want := range map[string]string{
		"--leader-election-lease-duration 10s":                                    "renew deadline 10s must be shorter than the lease duration 10s",
		"--leader-election-renew-deadline 20s":                                    "must be shorter than the lease duration",
		"--leader-election-retry-period 10s":                                      "renew deadline 10s must be longer than 1.2 × the retry period 10s",
		"--leader-election-retry-period 0s":                                       "must all be positive",
		"--leader-election-lease-duration 6s --leader-election-renew-deadline 2s": "renew deadline 2s must be longer than 1.2 × the retry period 2s",
	} {
		cmd = serve.NewCmdServe(f, func(context.Context, *serve.Options) error { t.Errorf("%s: ran", args); return nil })
		cmd.SetArgs(strings.Fields(args))
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--leader-election-") {
			t.Errorf("%s: err = %v, want %q", args, err, want)
		}
	}
}
