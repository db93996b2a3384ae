package controller

import (
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// The Lease timings of the options are the ones the elector runs with, and
// client-go accepts them.
func TestLeaderElectionTimingsReachTheElector(t *testing.T) {
	c, err := New(Options{Git: newGit(t, t.TempDir()), StateDir: t.TempDir(), LeaderElection: &LeaderElection{
		Client: fake.NewClientset(), Namespace: "ns", Identity: "a",
		LeaseDuration: 30 * time.Second, RenewDeadline: 20 * time.Second, RetryPeriod: 5 * time.Second,
	}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.electorConfig(&resourcelock.LeaseLock{LockConfig: resourcelock.ResourceLockConfig{Identity: "a"}})
	if cfg.LeaseDuration != 30*time.Second || cfg.RenewDeadline != 20*time.Second || cfg.RetryPeriod != 5*time.Second || !cfg.ReleaseOnCancel {
		t.Errorf("elector config = lease %s renew %s retry %s release %v", cfg.LeaseDuration, cfg.RenewDeadline, cfg.RetryPeriod, cfg.ReleaseOnCancel)
	}
	if _, err := leaderelection.NewLeaderElector(cfg); err != nil {
		t.Errorf("client-go refuses the configuration: %v", err)
	}
	// Unset timings take client-go's recommended values.
	c, err = New(Options{Git: newGit(t, t.TempDir()), StateDir: t.TempDir(), LeaderElection: &LeaderElection{Client: fake.NewClientset(), Namespace: "ns"}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg := c.electorConfig(&resourcelock.LeaseLock{}); cfg.LeaseDuration != 15*time.Second || cfg.RenewDeadline != 10*time.Second || cfg.RetryPeriod != 2*time.Second {
		t.Errorf("default elector config = lease %s renew %s retry %s", cfg.LeaseDuration, cfg.RenewDeadline, cfg.RetryPeriod)
	}
}

// Every combination ValidateLeaderElection accepts, client-go accepts too,
// and what it refuses is refused before the controller starts.
func TestValidateLeaderElection(t *testing.T) {
	for _, tc := range []struct {
		lease, renew, retry time.Duration
		want                string
	}{
		{15 * time.Second, 10 * time.Second, 2 * time.Second, ""},
		{60 * time.Second, 40 * time.Second, 10 * time.Second, ""},
		{10 * time.Second, 10 * time.Second, 2 * time.Second, "shorter than the lease duration"},
		{10 * time.Second, 15 * time.Second, 2 * time.Second, "shorter than the lease duration"},
		{15 * time.Second, 10 * time.Second, 10 * time.Second, "longer than 1.2 × the retry period"},
		{15 * time.Second, 10 * time.Second, 9 * time.Second, "longer than 1.2 × the retry period"},
		{15 * time.Second, 10 * time.Second, -time.Second, "must all be positive"},
	} {
		err := ValidateLeaderElection(tc.lease, tc.renew, tc.retry)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s/%s/%s: %v", tc.lease, tc.renew, tc.retry, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s/%s/%s: err = %v, want %q", tc.lease, tc.renew, tc.retry, err, tc.want)
		}
		_, err = New(Options{Git: newGit(t, t.TempDir()), StateDir: t.TempDir(), LeaderElection: &LeaderElection{
			Client: fake.NewClientset(), Namespace: "ns", LeaseDuration: tc.lease, RenewDeadline: tc.renew, RetryPeriod: tc.retry}})
		if err == nil {
			t.Errorf("%s/%s/%s: New accepted it", tc.lease, tc.renew, tc.retry)
		}
	}
	if got := TakeoverBound(15*time.Second, 2*time.Second); got != 23800*time.Millisecond {
		t.Errorf("TakeoverBound(15s, 2s) = %s, want 23.8s", got)
	}
}
