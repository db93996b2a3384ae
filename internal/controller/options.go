package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/modelsync/modelsync/internal/apiauth"
	"github.com/modelsync/modelsync/internal/repo"
	"github.com/modelsync/modelsync/reconciler"
)

// Defaults, following Flux's controllers (see docs in the package comment).
const (
	DefaultInterval       = time.Minute
	DefaultJitterPercent  = 5
	DefaultResyncInterval = 10 * time.Minute
	DefaultGitTimeout     = 60 * time.Second
	DefaultConcurrency    = 4
	DefaultMinRetryDelay  = 750 * time.Millisecond
	DefaultMaxRetryDelay  = 15 * time.Minute
	// MaxWebhookBody caps a generic webhook's body, as Flux's receiver does.
	MaxWebhookBody = 3 << 20
)

// Options configure a Controller. Git and Targets are required.
type Options struct {
	// Git is the models repository's owner, shared with the other
	// components of the process that read it; the controller does not
	// close it.
	Git *repo.Repository
	// Branch is the config branch (default "main").
	Branch string
	// Targets are applied in order, as `modelsync apply` does.
	Targets []reconciler.Target

	// Interval between fetches (default 1m), with ±JitterPercent (default 5).
	Interval      time.Duration
	JitterPercent float64
	// ResyncInterval is how often every model is re-planned, even if Git
	// did not change, to correct drift (default 10m).
	ResyncInterval time.Duration
	// GitTimeout bounds one fetch (default 60s).
	GitTimeout time.Duration
	// Concurrency is the number of workers (default 4).
	Concurrency int
	// MinRetryDelay and MaxRetryDelay shape the per-item exponential
	// backoff after a failure (default 750ms to 15m).
	MinRetryDelay time.Duration
	MaxRetryDelay time.Duration

	// Windows are the sync windows of the environments.
	Windows []SyncWindow
	// StateDir keeps pins.json. Empty keeps pins in memory only, so they
	// are lost on restart.
	StateDir string
	// Now is the clock sync windows and audit entries use (default time.Now).
	Now func() time.Time

	// Logger receives structured logs (default: JSON to stderr is the
	// caller's choice; nil discards).
	Logger *slog.Logger
	// Metrics is the registry to record into; nil creates one.
	Metrics *Metrics
	// Audit receives the audit log as JSON lines; AuditFile, when set, is
	// also appended to (created 0600).
	Audit     io.Writer
	AuditFile string
	// Events, when set, records Kubernetes Events on each environment's
	// InferenceService when a model's state there changes.
	Events kubernetes.Interface
	// LeaderElection, when set, makes only the Lease holder write.
	LeaderElection *LeaderElection
	// WebhookSecret verifies POST /webhooks/generic; the endpoint answers
	// 404 while it is empty.
	WebhookSecret []byte
	// APIAuth authenticate and authorize every /api/v1 request (see
	// Handler), in order. None refuses them all: the API never falls open.
	APIAuth []apiauth.Provider
	// Analysis, when set, runs the canary analyses the manifests ask for.
	Analysis *AnalysisOptions
	// APIAnonymousRead opens GET /api/v1/status and /api/v1/pins to
	// callers without a token.
	APIAnonymousRead bool
	// Artifacts, when set, is asked before a version is served in an
	// environment whose modelsync.yaml sets security.verifyArtifacts: an
	// error (a changed artifact digest) holds the environment where it
	// is and is the item's last error in status.
	Artifacts ArtifactVerifier
}

// ArtifactVerifier checks that a model version still holds the artifacts
// it was first served with in env (internal/scanrecord.Verifier).
type ArtifactVerifier interface {
	VerifyServing(ctx context.Context, m *reconciler.DesiredModel, env string, version int) error
}

// LeaderElection configures a coordination.k8s.io Lease.
type LeaderElection struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string // default "modelsync-controller"
	// Identity names this replica (default: hostname and a random suffix).
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod default to 15s, 10s, 2s
	// (client-go's recommended values). A standby counts the lease from
	// when it last saw the Lease change and polls every RetryPeriod plus up
	// to 120% jitter, so after a leader dies without releasing the Lease it
	// takes over at most LeaseDuration + 2 × 2.2 × RetryPeriod later (see
	// TakeoverBound); a leader that stops cleanly releases it at once.
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
}

// leaderJitter is client-go's leaderelection.JitterFactor: each poll of
// the Lease waits RetryPeriod plus up to this many RetryPeriods more.
const leaderJitter = 1.2

// ValidateLeaderElection checks the Lease timings the way client-go's elector
// needs them, so a bad combination stops the process at start instead of
// leaving a replica that never campaigns: the renew deadline must be shorter
// than the lease, and longer than a jittered retry period.
func ValidateLeaderElection(lease, renew, retry time.Duration) error {
	switch {
	case lease <= 0 || renew <= 0 || retry <= 0:
		return fmt.Errorf("leader election: lease duration %s, renew deadline %s and retry period %s must all be positive", lease, renew, retry)
	case renew >= lease:
		return fmt.Errorf("leader election: renew deadline %s must be shorter than the lease duration %s", renew, lease)
	case float64(renew) <= leaderJitter*float64(retry):
		return fmt.Errorf("leader election: renew deadline %s must be longer than %.1f × the retry period %s (client-go adds up to %.0f%% jitter to each retry)",
			renew, leaderJitter, retry, leaderJitter*100)
	}
	return nil
}

// TakeoverBound is the longest a standby may take to lead after the leader
// dies without releasing the Lease: it last saw the Lease change up to one
// jittered poll after the final renewal, and notices the expiry up to one
// jittered poll after the lease ran out.
func TakeoverBound(lease, retry time.Duration) time.Duration {
	return lease + 2*time.Duration((1+leaderJitter)*float64(retry))
}

// Health is a serving health in Argo CD's vocabulary (Healthy, Progressing,
// Degraded, Suspended, Missing) and the canary's traffic step.
type Health struct {
	Status     string `json:"status"`
	CanaryStep string `json:"canaryStep,omitempty"`
	// Traffic is the live traffic split the serving target reported.
	Traffic []reconciler.TrafficSplit `json:"traffic,omitempty"`
}

func (o *Options) defaults() error {
	if o.Git == nil {
		return errors.New("controller: Options.Git is nil")
	}
	if o.Branch == "" {
		o.Branch = "main"
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.Interval < 0 {
		return fmt.Errorf("controller: interval %s is negative", o.Interval)
	}
	if o.JitterPercent == 0 {
		o.JitterPercent = DefaultJitterPercent
	}
	if o.ResyncInterval == 0 {
		o.ResyncInterval = DefaultResyncInterval
	}
	if o.GitTimeout == 0 {
		o.GitTimeout = DefaultGitTimeout
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.MinRetryDelay == 0 {
		o.MinRetryDelay = DefaultMinRetryDelay
	}
	if o.MaxRetryDelay == 0 {
		o.MaxRetryDelay = DefaultMaxRetryDelay
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	if le := o.LeaderElection; le != nil {
		if le.Client == nil || le.Namespace == "" {
			return errors.New("controller: leader election needs a Kubernetes client and a namespace")
		}
		if le.Name == "" {
			le.Name = "modelsync-controller"
		}
		if le.LeaseDuration == 0 {
			le.LeaseDuration = 15 * time.Second
		}
		if le.RenewDeadline == 0 {
			le.RenewDeadline = 10 * time.Second
		}
		if le.RetryPeriod == 0 {
			le.RetryPeriod = 2 * time.Second
		}
		if err := ValidateLeaderElection(le.LeaseDuration, le.RenewDeadline, le.RetryPeriod); err != nil {
			return fmt.Errorf("controller: %w", err)
		}
	}
	if a := o.Analysis; a != nil && (a.SpecFor == nil || a.Revisions == nil || a.Evaluator == nil || a.Store == nil) {
		return errors.New("controller: canary analysis needs SpecFor, Revisions, an Evaluator and a Store")
	}
	seen := map[string]bool{}
	for _, t := range o.Targets {
		if seen[t.Name()] {
			return fmt.Errorf("controller: target %q configured twice", t.Name())
		}
		seen[t.Name()] = true
	}
	return nil
}
