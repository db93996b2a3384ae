// Package serve implements `modelsync serve`: the long-running process.
// Today it hosts the GitHub webhook receiver and PR gate; the controller
// will add its own components to the same server.
package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/modelsync/modelsync/internal/apiauth"
	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/controller"
	"github.com/modelsync/modelsync/internal/dashboard"
	ghub "github.com/modelsync/modelsync/internal/github"
	"github.com/modelsync/modelsync/internal/github/prcheck"
	"github.com/modelsync/modelsync/internal/gitsource"
	"github.com/modelsync/modelsync/internal/memlimit"
	"github.com/modelsync/modelsync/internal/prverdict"
	"github.com/modelsync/modelsync/internal/repo"
	"github.com/modelsync/modelsync/internal/textio"
	"github.com/modelsync/modelsync/internal/wiring"
	"github.com/modelsync/modelsync/reconciler"
)

// Components that --only selects.
const (
	ComponentController = "controller"
	ComponentWebhooks   = "webhooks"
)

var components = []string{ComponentController, ComponentWebhooks}

// Environment variables read by serve besides the GitHub client's
// (cmdutil.EnvGitHub*). Secrets come only from the environment (or a key
// file), never from flags, so they stay out of process listings.
const (
	EnvWebhookSecret = "MODELSYNC_GITHUB_WEBHOOK_SECRET"
	EnvRepository    = "MODELSYNC_GITHUB_REPOSITORY"
	// EnvGenericWebhookSecret verifies POST /webhooks/generic (other Git hosts).
	EnvGenericWebhookSecret = "MODELSYNC_WEBHOOK_SECRET"
	// EnvAPIToken is a static bearer token for /api/v1 (audited as
	// "token:default").
	EnvAPIToken = "MODELSYNC_API_TOKEN"
	// EnvPodNamespace is the namespace the pod runs in (downward API): the
	// default namespace of API SubjectAccessReviews.
	EnvPodNamespace = "POD_NAMESPACE"
)

// VerdictsFile, under --state-dir, keeps the PR gate's last verdicts per
// model for the dashboard across restarts.
const VerdictsFile = "pr-verdicts.jsonl"

// DefaultListen keeps the API on loopback unless told otherwise; the
// probes and metrics have their own listener (DefaultProbeListen) so a
// kubelet or Prometheus never needs the API port.
const (
	DefaultListen      = "127.0.0.1:8080"
	DefaultProbeListen = ":8081"
)

// Options are the inputs of serve.
type Options struct {
	Factory *wiring.Factory
	Repo    cmdutil.RepoFlags
	Only    []string
	Listen  string
	// ProbeListen serves /healthz, /readyz and /metrics; empty serves
	// them on Listen.
	ProbeListen string

	// API authentication: static tokens ($MODELSYNC_API_TOKEN and
	// APITokensFile), Kubernetes TokenReview + SubjectAccessReview in
	// APIAuthzNamespace, and read-only routes opened to anyone.
	APITokensFile     string
	KubeAPIAuth       bool
	APIAuthzNamespace string
	APIAnonymousRead  bool

	// The web dashboard on the API listener: on unless NoDashboard; its
	// read-only pages open to anyone with DashboardAnonymousRead; its
	// rollback button writes to Git as DashboardRollback says.
	NoDashboard            bool
	DashboardAnonymousRead bool
	DashboardRollback      string

	GitHubRepository string
	GitHubAPIURL     string
	AppID            int64
	InstallationID   int64
	AppKeyFile       string
	TargetURL        string

	// Controller settings.
	Interval                time.Duration
	ResyncInterval          time.Duration
	Concurrency             int
	StateDir                string
	AuditLog                string
	LeaderElect             bool
	LeaderElectionNamespace string
	LeaderElectionID        string
	// LeaseDuration, RenewDeadline and RetryPeriod are the Lease timings
	// (Flux's flags); controller.ValidateLeaderElection checks them.
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
	// GitCacheMiB bounds the Git objects and decoded directories the
	// controller keeps in memory between fetches (0: the default).
	GitCacheMiB int64
	// MemoryLimit is --memory-limit, the Go runtime's soft memory limit;
	// unset, GOMEMLIMIT or 90% of the container's cgroup limit
	// (memlimit.Decide).
	MemoryLimit memlimit.Flag

	// PrometheusURL is the canary analysis' Prometheus where neither the
	// manifest nor modelsync.yaml names one.
	PrometheusURL string
	// CanaryWriteBack is how a canary's promotion, rollback or revert
	// reaches Git: auto, pr, direct or off (see chooseWriteBack).
	CanaryWriteBack string

	// OnListen, when set, is called with the bound address once the server
	// accepts connections (tests listen on port 0); OnProbeListen likewise
	// for the probe listener.
	OnListen      func(addr string)
	OnProbeListen func(addr string)
	// Transport replaces the HTTP transport to GitHub (tests).
	Transport http.RoundTripper
	// DashboardCanaries replaces the controller as the dashboard's canary
	// source (tests).
	DashboardCanaries dashboard.Canaries
	// Hooks receive base-branch pushes and release tags.
	Hooks ghub.Hooks
}

// NewCmdServe builds the command; runF replaces the work in tests of flags.
func NewCmdServe(f *wiring.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f}
	var memoryLimit string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the controller and the GitHub webhook receiver and PR gate",
		Long: `Serve runs modelsync's long-lived components behind one HTTP server:

  controller  fetches the models repository every --interval (and at once on
              a webhook), reconciles each model and environment into the
              configured targets, and serves /api/v1/status, /api/v1/reconcile,
              /api/v1/pins and POST /webhooks/generic (HMAC-signed, for Git
              hosts other than GitHub).
  webhooks    POST /webhooks/github: pull request, review, push and tag events;
              posts the modelsync/policy statuses and the plan comment; pushes
              to the base branch and release tags trigger the controller.

By default the controller runs, and the webhooks component too when
` + EnvWebhookSecret + ` is set. The API and webhooks listen on --listen
(loopback by default); /healthz, /readyz and /metrics on --probe-listen.
/healthz answers while the process runs; /readyz once the first fetch
succeeded and while it accepts work.

The controller also serves a web dashboard on --listen (/, /models/<name>,
/audit): sign in on /login with the same tokens as the API; the read-only
pages need "get status", reconcile now "create reconciles", roll back
"create rollbacks" (written to Git as --dashboard-rollback says).
--dashboard-anonymous-read opens the read-only pages; --no-dashboard turns
it off.

Every /api/v1 request needs a bearer token: $` + EnvAPIToken + ` or a line
of --api-tokens-file (full access), or with --kube-api-auth a Kubernetes
token whose holder RBAC allows the route's verb on modelsync.io resources
(status: get; pins: list, create, delete; reconciles: create) in
--api-authz-namespace. Refusals answer 401 or 403 and are audited; the
audit log names the authenticated caller, never a name the caller sends.

Environment:
  ` + EnvWebhookSecret + `  webhook secret (required)
  ` + cmdutil.EnvGitHubToken + `                     token, or a GitHub App:
  ` + cmdutil.EnvGitHubAppID + `, ` + cmdutil.EnvGitHubInstallationID + `, ` + cmdutil.EnvGitHubAppKeyFile + `
  ` + EnvRepository + `      owner/name of the models repository
  ` + cmdutil.EnvGitHubAPIURL + `         GitHub Enterprise API URL
  ` + EnvGenericWebhookSecret + `        secret of POST /webhooks/generic
  ` + EnvAPIToken + `             static API bearer token (at least 16 characters)
  MLFLOW_TRACKING_URI (and MLFLOW_TRACKING_*)  the registry target, and facts for the rules
  MODELSYNC_GIT_*, AWS_*, KUBECONFIG  as for plan and apply`,
		Example: `  # the controller for MLflow and KServe, with leader election in-cluster
  MLFLOW_TRACKING_URI=http://mlflow:5000 modelsync serve --repo https://github.com/acme/models.git \
    --kserve --leader-elect --leader-election-namespace modelsync-system

  # only the PR gate
  MODELSYNC_GITHUB_WEBHOOK_SECRET=... GITHUB_TOKEN=... \
    modelsync serve --only webhooks --listen :8080 --repo https://github.com/acme/models.git --github-repository acme/models`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, c := range opts.Only {
				if !slices.Contains(components, c) {
					return fmt.Errorf("unknown component %q for --only; expected one of %v", c, components)
				}
			}
			if err := controller.ValidateLeaderElection(opts.LeaseDuration, opts.RenewDeadline, opts.RetryPeriod); err != nil {
				return fmt.Errorf("--leader-election-lease-duration %s, --leader-election-renew-deadline %s, --leader-election-retry-period %s: %w",
					opts.LeaseDuration, opts.RenewDeadline, opts.RetryPeriod, err)
			}
			if opts.GitCacheMiB < 1 {
				return fmt.Errorf("--git-cache-mib %d: want at least 1", opts.GitCacheMiB)
			}
			if cmd.Flags().Changed("memory-limit") {
				n, err := memlimit.ParseSize(memoryLimit)
				if err != nil {
					return fmt.Errorf("--memory-limit: %w", err)
				}
				opts.MemoryLimit = memlimit.Flag{Set: true, Bytes: n}
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return Run(cmd.Context(), opts)
		},
	}
	cmdutil.AddRepoFlags(cmd, &opts.Repo)
	cmd.Flags().StringSliceVar(&opts.Only, "only", nil, "run only these components ("+strings.Join(components, ", ")+"); default: all")
	cmd.Flags().StringVar(&opts.Listen, "listen", DefaultListen, "address of the API and webhooks (loopback by default; :8080 for all interfaces)")
	cmd.Flags().StringVar(&opts.ProbeListen, "probe-listen", DefaultProbeListen, "address of /healthz, /readyz and /metrics; empty serves them on --listen")
	cmd.Flags().StringVar(&opts.APITokensFile, "api-tokens-file", "", "file of \"token,name\" lines accepted as API bearer tokens (audited as token:<name>)")
	cmd.Flags().BoolVar(&opts.KubeAPIAuth, "kube-api-auth", false, "accept Kubernetes bearer tokens on the API: TokenReview authenticates, SubjectAccessReview on modelsync.io resources authorizes")
	cmd.Flags().StringVar(&opts.APIAuthzNamespace, "api-authz-namespace", "", "namespace SubjectAccessReviews ask about (default $"+EnvPodNamespace+", else modelsync-system)")
	cmd.Flags().BoolVar(&opts.APIAnonymousRead, "api-anonymous-read", false, "let callers without a token read GET /api/v1/status and /api/v1/pins")
	cmd.Flags().BoolVar(&opts.NoDashboard, "no-dashboard", false, "do not serve the web dashboard on --listen")
	cmd.Flags().BoolVar(&opts.DashboardAnonymousRead, "dashboard-anonymous-read", false, "let browsers without a sign-in see the dashboard's read-only pages (no actions)")
	cmd.Flags().StringVar(&opts.DashboardRollback, "dashboard-rollback", RollbackAuto,
		"how the dashboard's rollback writes to Git: "+RollbackPullRequest+" (a branch and a pull request, needs $"+cmdutil.EnvGitHubToken+"), "+RollbackDirect+
			" (a commit on the branch), "+RollbackOff+", or "+RollbackAuto+" ("+RollbackPullRequest+" when $"+cmdutil.EnvGitHubToken+" is set, else "+RollbackOff+")")
	cmd.Flags().StringVar(&opts.GitHubRepository, "github-repository", "", "owner/name of the models repository on GitHub (default $"+EnvRepository+")")
	cmd.Flags().StringVar(&opts.GitHubAPIURL, "github-api-url", "", "GitHub Enterprise API URL, e.g. https://ghe.example.com/api/v3 (default $"+cmdutil.EnvGitHubAPIURL+")")
	cmd.Flags().Int64Var(&opts.AppID, "github-app-id", 0, "GitHub App id (default $"+cmdutil.EnvGitHubAppID+")")
	cmd.Flags().Int64Var(&opts.InstallationID, "github-app-installation-id", 0, "GitHub App installation id (default $"+cmdutil.EnvGitHubInstallationID+")")
	cmd.Flags().StringVar(&opts.AppKeyFile, "github-app-private-key-file", "", "GitHub App private key PEM file (default $"+cmdutil.EnvGitHubAppKeyFile+")")
	cmd.Flags().StringVar(&opts.TargetURL, "status-target-url", "", "URL linked from commit statuses")
	cmdutil.AddTargetFlags(cmd, &f.Flags)
	cmd.Flags().DurationVar(&opts.Interval, "interval", controller.DefaultInterval, "how often to fetch the models repository (±5% jitter)")
	cmd.Flags().DurationVar(&opts.ResyncInterval, "resync-interval", controller.DefaultResyncInterval, "how often every model is re-planned to correct drift")
	cmd.Flags().IntVar(&opts.Concurrency, "concurrency", controller.DefaultConcurrency, "model×environment items reconciled at once")
	cmd.Flags().StringVar(&opts.StateDir, "state-dir", "", "directory for pins (rollback --now) and the PR gate's last verdicts per model (dashboard); empty keeps them in memory")
	cmd.Flags().StringVar(&opts.AuditLog, "audit-log", "", "also append the audit log (JSON lines) to this file; it always goes to stdout")
	cmd.Flags().BoolVar(&opts.LeaderElect, "leader-elect", false, "elect a leader with a coordination.k8s.io Lease; only the leader writes")
	cmd.Flags().StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", "modelsync-system", "namespace of the leader election Lease")
	cmd.Flags().StringVar(&opts.LeaderElectionID, "leader-election-id", "modelsync-controller", "name of the leader election Lease")
	cmd.Flags().DurationVar(&opts.LeaseDuration, "leader-election-lease-duration", 15*time.Second,
		"how long a standby waits, from when it last saw the Lease renewed, before it takes the Lease over")
	cmd.Flags().DurationVar(&opts.RenewDeadline, "leader-election-renew-deadline", 10*time.Second,
		"how long the leader keeps trying to renew the Lease before it stops writing; shorter than the lease duration")
	cmd.Flags().DurationVar(&opts.RetryPeriod, "leader-election-retry-period", 2*time.Second,
		"how often replicas try to acquire or renew the Lease (plus up to 120% jitter); renew deadline > 1.2 × retry period")
	cmd.Flags().Int64Var(&opts.GitCacheMiB, "git-cache-mib", gitsource.DefaultCacheSize>>20,
		"MiB of Git objects and decoded directories the controller keeps in memory between fetches; raise it for repositories of many thousands of models")
	cmd.Flags().StringVar(&memoryLimit, "memory-limit", "",
		"soft memory limit of the Go runtime, e.g. 900MiB or 1Gi (0: none); default $"+memlimit.EnvGoMemLimit+", else 90% of the container's cgroup memory limit")
	cmd.Flags().StringVar(&opts.PrometheusURL, "prometheus-url", "",
		"Prometheus of canary analyses that name none (canary.analysis.provider, else modelsync.yaml analysis.prometheus.address, else this)")
	cmd.Flags().StringVar(&opts.CanaryWriteBack, "canary-write-back", WriteBackAuto,
		"how a canary analysis records a promotion, rollback or revert in Git: pr (a pull request; needs GitHub credentials as for the webhooks), direct (a commit on the branch), off, or auto (pr with GitHub credentials, else direct)")
	return cmd
}

// Server is the HTTP server every component registers on.
type Server struct {
	mux      *http.ServeMux
	draining atomic.Bool
	ready    []func(context.Context) error
}

// NewServer returns a server with /healthz and /readyz.
func NewServer() *Server {
	s := &Server{mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		fmt.Fprintln(w, "ok")
	})
	s.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if s.draining.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		for _, check := range s.ready {
			if err := check(r.Context()); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		w.WriteHeader(http.StatusOK)
		fmt.Fprintln(w, "ready")
	})
	return s
}

// Handle registers a component's handler.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// AddReadyCheck adds a condition /readyz requires.
func (s *Server) AddReadyCheck(check func(context.Context) error) { s.ready = append(s.ready, check) }

// Handler returns the server's root handler.
func (s *Server) Handler() http.Handler { return s.mux }

// Serve serves on ln until ctx ends, then drains for up to grace.
func (s *Server) Serve(ctx context.Context, ln net.Listener, grace time.Duration, log *slog.Logger) error {
	srv := &http.Server{
		Handler: s.mux,
		// Slow clients must not hold connections: GitHub sends the whole
		// delivery at once.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.draining.Store(true)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Run starts the selected components and serves until ctx ends.
func Run(ctx context.Context, opts *Options) error {
	f := opts.Factory
	log := slog.New(slog.NewJSONHandler(f.IO.ErrOut, nil))
	// Before anything large is read: the collector must know the bound
	// from the first fetch on.
	mem := memlimit.Decide(opts.MemoryLimit, f.Getenv, os.DirFS("/"), memlimit.DefaultShare)
	if limit := mem.Apply(); limit == math.MaxInt64 {
		log.Info("no soft memory limit", "source", mem.Source)
	} else {
		log.Info("soft memory limit", "bytes", limit, "limit", textio.FormatBytes(limit), "source", mem.Source)
	}
	only := opts.Only
	if len(only) == 0 {
		only = []string{ComponentController}
		if f.Getenv(EnvWebhookSecret) != "" {
			only = append(only, ComponentWebhooks)
		}
	}
	srv := NewServer()
	// The probes and metrics listener: the same server when ProbeListen is
	// empty.
	probes := srv
	if opts.ProbeListen != "" {
		probes = NewServer()
	}
	var closers []func()
	defer func() {
		for _, c := range slices.Backward(closers) {
			c()
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// One owner of the clone cache for every component: the controller and
	// the gate fetch through it, so their fetches coalesce instead of two
	// mirrors rewriting one directory under each other. Opened by the first
	// component that needs it, once its own configuration is checked, and
	// closed after every component (closers run in reverse).
	var git *repo.Repository
	openGit := func(ctx context.Context) (*repo.Repository, error) {
		if git != nil {
			return git, nil
		}
		cache := opts.Repo.CacheDir
		if cache == "" {
			cache = repo.DefaultCacheDir(f.Getenv)
		}
		g, err := repo.New(ctx, repo.Options{URL: opts.Repo.URL, CacheDir: cache, Auth: gitsource.AuthFromEnv(f.Getenv), CacheSize: opts.GitCacheMiB << 20, MaxBlobSize: opts.Repo.MaxBlobSize()})
		if err != nil {
			return nil, err
		}
		git = g
		closers = append(closers, func() { _ = g.Close() })
		return g, nil
	}
	// The PR gate's verdicts, kept for the dashboard's model pages when
	// both run in this process (durable under --state-dir).
	var verdicts *prverdict.Log
	if slices.Contains(only, ComponentWebhooks) {
		vopts := prverdict.Options{}
		if opts.StateDir != "" {
			vopts.File = filepath.Join(opts.StateDir, VerdictsFile)
		}
		v, err := prverdict.Open(vopts)
		if err != nil {
			return err
		}
		verdicts = v
	}
	var ctrl *controller.Controller
	ctrlDone := make(chan error, 1)
	if slices.Contains(only, ComponentController) {
		var auditLog *dashboard.AuditLog
		if !opts.NoDashboard {
			auditLog = dashboard.NewAuditLog(0)
			// History from before this process: the tail of --audit-log.
			if opts.AuditLog != "" {
				if fh, err := os.Open(opts.AuditLog); err == nil {
					err = auditLog.Preload(fh)
					fh.Close()
					if err != nil {
						log.Warn("reading the audit log for the dashboard failed", "file", opts.AuditLog, "error", err)
					}
				}
			}
		}
		c, providers, storage, err := buildController(ctx, opts, openGit, log, auditLog)
		if err != nil {
			return err
		}
		ctrl = c
		closers = append(closers, func() { _ = c.Close() })
		// Everything the controller serves; /healthz and /readyz stay the
		// server's, with the controller's readiness as one of its checks.
		srv.Handle("/api/", c.Handler())
		srv.Handle("POST /webhooks/generic", c.Handler())
		if !opts.NoDashboard {
			h, err := buildDashboard(opts, c, auditLog, providers, log, dashboardSources{Storage: storage, Verdicts: verdicts})
			if err != nil {
				_ = c.Close()
				return err
			}
			srv.Handle("/", h)
		}
		probes.Handle("GET /metrics", c.Handler())
		ready := func(context.Context) error {
			if !c.Ready() {
				return errors.New("controller has not fetched the repository yet")
			}
			return nil
		}
		srv.AddReadyCheck(ready)
		if probes != srv {
			probes.AddReadyCheck(ready)
		}
		if opts.Hooks.Reconcile == nil {
			opts.Hooks.Reconcile = func(_ context.Context, branch, sha string) { c.Trigger("github push to " + branch + " " + sha) }
		}
		if opts.Hooks.Rollout == nil {
			opts.Hooks.Rollout = func(_ context.Context, model, tag string) { c.Trigger("github release tag " + tag) }
		}
		go func() { ctrlDone <- c.Run(ctx) }()
	}
	if slices.Contains(only, ComponentWebhooks) {
		gate, handler, err := buildWebhooks(ctx, opts, openGit, log, ctrl, verdicts)
		if err != nil {
			return err
		}
		closers = append(closers, gate.Close)
		srv.Handle("POST "+ghub.WebhookPath, handler)
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", opts.Listen, err)
	}
	var pln net.Listener
	if probes != srv {
		if pln, err = net.Listen("tcp", opts.ProbeListen); err != nil {
			ln.Close()
			return fmt.Errorf("listen on %s (--probe-listen): %w", opts.ProbeListen, err)
		}
	}
	log.Info("modelsync serve listening", "addr", ln.Addr().String(), "components", only)
	if !authConfigured(opts) && ctrl != nil {
		log.Warn("no API credentials configured: every /api/v1 request is refused; set " + EnvAPIToken + ", --api-tokens-file or --kube-api-auth")
	}
	if opts.OnListen != nil {
		opts.OnListen(ln.Addr().String())
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ctx, ln, 20*time.Second, log) }()
	if pln != nil {
		log.Info("modelsync serve probes listening", "addr", pln.Addr().String())
		if opts.OnProbeListen != nil {
			opts.OnProbeListen(pln.Addr().String())
		}
		// A failed probe listener shows as failing probes; the kubelet
		// restarts the process.
		go func() {
			if err := probes.Serve(ctx, pln, 20*time.Second, log); err != nil {
				log.Error("probe listener failed", "addr", pln.Addr().String(), "err", err)
			}
		}()
	}
	select {
	case err := <-serveErr:
		cancel()
		if ctrl != nil {
			<-ctrlDone
		}
		return err
	case err := <-ctrlDone:
		// The controller only returns early on a fatal error (say, a lost
		// leader lease that must restart the process).
		cancel()
		<-serveErr
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("controller: %w", err)
		}
		return nil
	}
}

// buildController wires the controller to the targets, the cluster (leader
// election, events, health) and the audit log the flags configure.
// The artifact storage target, when configured, is returned too: the
// dashboard prices what it stores.
func buildController(ctx context.Context, opts *Options, openGit func(context.Context) (*repo.Repository, error), log *slog.Logger, auditLog io.Writer) (*controller.Controller, []apiauth.Provider, reconciler.StorageReporter, error) {
	f := opts.Factory
	metrics := controller.NewMetrics()
	f.Flags.MLflowObserve = metrics.TargetRequestObserver("mlflow")
	f.Flags.Progress = f.IO.ErrOut
	identity := ""
	if opts.LeaderElect {
		// Every Kubernetes client of this replica names it, so the API
		// server's audit log can tell which replica wrote.
		identity = controller.NewIdentity()
		f.UserAgent = "modelsync/" + f.Version + " (" + identity + ")"
	}
	// Credentials first: a mistyped token must stop serve before it opens
	// anything.
	static, err := staticTokens(opts)
	if err != nil {
		return nil, nil, nil, err
	}
	targets, err := f.Targets(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	git, err := openGit(ctx)
	if err != nil {
		wiring.CloseTargets(targets)
		return nil, nil, nil, err
	}
	copts := controller.Options{
		Git:            git,
		Branch:         opts.Repo.Branch,
		Targets:        targets,
		Interval:       opts.Interval,
		ResyncInterval: opts.ResyncInterval,
		Concurrency:    opts.Concurrency,
		StateDir:       opts.StateDir,
		Logger:         log,
		Metrics:        metrics,
		Audit:          f.IO.Out,
		AuditFile:      opts.AuditLog,
		WebhookSecret:  []byte(f.Getenv(EnvGenericWebhookSecret)),
	}
	copts.APIAnonymousRead = opts.APIAnonymousRead
	if f.Flags.S3 && f.HasMLflow() {
		// security.verifyArtifacts in modelsync.yaml turns the check on;
		// it reads the artifacts through the S3 target's client.
		if copts.Artifacts, err = f.Verifier(ctx, wiring.VerifierOptions{}); err != nil {
			wiring.CloseTargets(targets)
			return nil, nil, nil, fmt.Errorf("artifact verifier: %w", err)
		}
	}
	if static.Len() > 0 {
		copts.APIAuth = append(copts.APIAuth, static)
	}
	if opts.LeaderElect || f.Flags.KServe || opts.KubeAPIAuth {
		rc, err := f.KubeConfig()
		if err != nil {
			wiring.CloseTargets(targets)
			return nil, nil, nil, fmt.Errorf("kubeconfig: %w", err)
		}
		kc, err := kubernetes.NewForConfig(rc)
		if err != nil {
			wiring.CloseTargets(targets)
			return nil, nil, nil, err
		}
		if f.Flags.KServe {
			// Serving health comes from the KServe target itself
			// (reconciler.HealthReporter).
			copts.Events = kc
			// Canary analyses need the InferenceServices' status.
			dyn, err := dynamic.NewForConfig(rc)
			if err != nil {
				wiring.CloseTargets(targets)
				return nil, nil, nil, err
			}
			if copts.Analysis, err = buildAnalysis(opts, kc, dyn, log); err != nil {
				wiring.CloseTargets(targets)
				return nil, nil, nil, err
			}
		}
		if opts.LeaderElect {
			copts.LeaderElection = leaderElection(opts, kc, identity)
		}
		if opts.KubeAPIAuth {
			ns := firstNonEmpty(opts.APIAuthzNamespace, f.Getenv(EnvPodNamespace), "modelsync-system")
			k, err := apiauth.NewKubernetes(apiauth.KubernetesOptions{Client: kc, Namespace: ns})
			if err != nil {
				wiring.CloseTargets(targets)
				return nil, nil, nil, err
			}
			copts.APIAuth = append(copts.APIAuth, k)
		}
	}
	if auditLog != nil {
		// The dashboard reads the entries the audit log records.
		copts.Audit = io.MultiWriter(f.IO.Out, auditLog)
	}
	c, err := controller.New(copts)
	if err != nil {
		wiring.CloseTargets(targets)
		return nil, nil, nil, err
	}
	var storage reconciler.StorageReporter
	for _, t := range targets {
		if r, ok := reconciler.As[reconciler.StorageReporter](t); ok {
			storage = r
			break
		}
	}
	return c, copts.APIAuth, storage, nil
}

// leaderElection is the Lease configuration the flags give.
func leaderElection(opts *Options, kc kubernetes.Interface, identity string) *controller.LeaderElection {
	return &controller.LeaderElection{Client: kc, Namespace: opts.LeaderElectionNamespace, Name: opts.LeaderElectionID, Identity: identity,
		LeaseDuration: opts.LeaseDuration, RenewDeadline: opts.RenewDeadline, RetryPeriod: opts.RetryPeriod}
}

func buildWebhooks(ctx context.Context, opts *Options, openGit func(context.Context) (*repo.Repository, error), log *slog.Logger, ctrl *controller.Controller, verdicts *prverdict.Log) (*ghub.Gate, http.Handler, error) {
	getenv := opts.Factory.Getenv
	secret := getenv(EnvWebhookSecret)
	if secret == "" {
		return nil, nil, ghub.ErrNoWebhookSecret
	}
	repoName := firstNonEmpty(opts.GitHubRepository, getenv(EnvRepository))
	if repoName == "" {
		return nil, nil, fmt.Errorf("--github-repository (or $%s) is required for the webhooks component", EnvRepository)
	}
	ref, err := ghub.ParseRepoRef(repoName)
	if err != nil {
		return nil, nil, err
	}
	f := opts.Factory
	f.GitHubFlags = cmdutil.GitHubFlags{APIURL: opts.GitHubAPIURL, AppID: opts.AppID, InstallationID: opts.InstallationID,
		AppKeyFile: opts.AppKeyFile, Transport: opts.Transport}
	if ctrl != nil {
		f.GitHubFlags.OnRateLimit = func(remaining int, known bool) {
			if known {
				ctrl.Metrics().SetGitHubRateLimitRemaining(float64(remaining))
			}
		}
	}
	client, err := f.GitHub()
	if err != nil {
		return nil, nil, err
	}
	git, err := openGit(ctx)
	if err != nil {
		return nil, nil, err
	}
	rs := ghub.NewRepoSync(git)
	gopts := ghub.GateOptions{Client: client, Repository: ref, Sync: rs.Sync, FetchPull: rs.FetchPullHead, Hooks: opts.Hooks, Logger: log, TargetURL: opts.TargetURL,
		Verdicts: verdicts}
	if f.HasMLflow() {
		// Without a registry, rules that need its facts deny: the gate
		// fails closed rather than skipping them. The client is the
		// controller's, when it runs: one per process.
		mc, err := f.MLflow()
		if err != nil {
			return nil, nil, fmt.Errorf("registry facts: %w", err)
		}
		gopts.Registry = &prcheck.MLflowFacts{Client: mc}
	}
	gate, err := ghub.NewGate(gopts)
	if err != nil {
		return nil, nil, err
	}
	handler, err := ghub.NewWebhookHandler(ghub.WebhookOptions{Secret: []byte(secret), Handler: gate, Logger: log})
	if err != nil {
		gate.Close()
		return nil, nil, err
	}
	return gate, handler, nil
}

// staticTokens reads $MODELSYNC_API_TOKEN and --api-tokens-file. A token
// that is set but unusable (too short, a malformed line) stops serve: an
// operator who meant to protect the API must not find it open or closed
// by accident.
func staticTokens(opts *Options) (*apiauth.StaticTokens, error) {
	st := apiauth.NewStaticTokens()
	if tok := opts.Factory.Getenv(EnvAPIToken); tok != "" {
		if err := st.Add(tok, "default"); err != nil {
			return nil, fmt.Errorf("$%s: %w", EnvAPIToken, err)
		}
	}
	if opts.APITokensFile != "" {
		fh, err := os.Open(opts.APITokensFile)
		if err != nil {
			return nil, fmt.Errorf("--api-tokens-file: %w", err)
		}
		defer fh.Close()
		if err := st.ReadTokensFile(opts.APITokensFile, fh); err != nil {
			return nil, fmt.Errorf("--api-tokens-file: %w", err)
		}
	}
	return st, nil
}

// authConfigured reports whether any API credential is configured.
func authConfigured(opts *Options) bool {
	return opts.Factory.Getenv(EnvAPIToken) != "" || opts.APITokensFile != "" || opts.KubeAPIAuth
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
