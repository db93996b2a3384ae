// Package wiring is the one place that builds clients and targets, and the
// one package (besides each target's own tests) that imports the target
// packages. Commands receive a *Factory and ask it for what they need;
// everything is built on first use and at most once, as cli/cli's factory
// does, so a command that needs no client (validate, desired) builds none
// and two users of one client (serve's controller and PR gate) share it.
package wiring

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"k8s.io/client-go/rest"

	"github.com/modelsync/modelsync/internal/cmdutil"
	ghub "github.com/modelsync/modelsync/internal/github"
	"github.com/modelsync/modelsync/internal/gitsource"
	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/internal/redact"
	"github.com/modelsync/modelsync/internal/repo"
	"github.com/modelsync/modelsync/internal/target/kserve"
	"github.com/modelsync/modelsync/internal/target/s3"
	"github.com/modelsync/modelsync/reconciler"
)

// Factory gives commands their dependencies.
type Factory struct {
	IO      cmdutil.IOStreams
	Getenv  func(string) string
	Version string

	// Flags configure the clients and targets. Every command that talks to
	// a target registers them on its own flag set (cmdutil.AddTargetFlags
	// with &f.Flags); one command runs per Factory, so they share the
	// struct. A command may adjust them until the first client is built,
	// not after: clients are built once.
	Flags cmdutil.TargetFlags
	// GitHubFlags configure the GitHub client the same way.
	GitHubFlags cmdutil.GitHubFlags

	// MLflow is the registry client for --mlflow-uri or
	// $MLFLOW_TRACKING_URI (credentials from MLFLOW_TRACKING_*). It fails
	// with ErrNoMLflow when neither is set.
	MLflow func() (*mlflowclient.Client, error)
	// KubeConfig is the cluster of --kubeconfig/--context, loaded the way
	// kubectl loads it.
	KubeConfig func() (*rest.Config, error)
	// S3 is the artifact store client of --s3-endpoint and the AWS
	// credential chain.
	S3 func(context.Context) (*awss3.Client, error)
	// GitHub is the REST client for $GITHUB_TOKEN or a GitHub App.
	GitHub func() (*ghub.Client, error)
	// UserAgent is sent to the Kubernetes API server (default
	// "modelsync/<version>"); serve adds the replica's identity so the
	// API server's audit log tells replicas apart. Set it before the
	// first client is built.
	UserAgent string
	// Targets builds the targets the flags configure, in execution order;
	// it refuses to return none (ErrNoTargets). Tests of commands put
	// in-memory targets here, as they would replace any other client.
	Targets func(context.Context) ([]reconciler.Target, error)
	// Locator maps model versions to artifact storage URIs; it needs the
	// MLflow client and remembers what it found.
	Locator func() (*mlflowclient.Locator, error)
}

// New returns a Factory whose clients are built on first use.
func New(io cmdutil.IOStreams, getenv func(string) string, version string) *Factory {
	f := &Factory{IO: io, Getenv: getenv, Version: version}
	f.MLflow = sync.OnceValues(f.newMLflow)
	f.KubeConfig = sync.OnceValues(func() (*rest.Config, error) {
		rc, err := kserve.LoadRESTConfig(f.Flags.Kubeconfig, f.Flags.KubeContext)
		if err != nil {
			return nil, err
		}
		rc.UserAgent = f.UserAgent
		if rc.UserAgent == "" {
			rc.UserAgent = "modelsync/" + nonEmpty(f.Version, "dev")
		}
		return rc, nil
	})
	f.S3 = onceCtx(func(ctx context.Context) (*awss3.Client, error) {
		// The SDK would put userinfo in request URLs, and its errors quote
		// them; credentials come from the AWS chain only.
		if redact.HasCredentials(f.Flags.S3Endpoint) {
			return nil, fmt.Errorf("s3 endpoint %s: remove the credentials from the address and set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead", redact.URL(f.Flags.S3Endpoint))
		}
		return s3.NewClient(ctx, s3.ClientOptions{Endpoint: f.Flags.S3Endpoint, PathStyle: f.Flags.S3PathStyle, ConnectTimeout: f.Flags.ConnectTimeout})
	})
	f.GitHub = sync.OnceValues(f.newGitHub)
	f.Targets = f.configuredTargets
	f.Locator = sync.OnceValues(func() (*mlflowclient.Locator, error) {
		c, err := f.MLflow()
		if err != nil {
			return nil, err
		}
		return &mlflowclient.Locator{Client: c, ArtifactsDestination: f.Flags.ArtifactsDestination}, nil
	})
	return f
}

// ErrNoMLflow is returned by Factory.MLflow when no tracking URI is set.
var ErrNoMLflow = errors.New("no MLflow tracking URI: set MLFLOW_TRACKING_URI or --mlflow-uri")

func (f *Factory) newMLflow() (*mlflowclient.Client, error) {
	cfg := mlflowclient.ConfigFromEnv(f.Getenv)
	if f.Flags.MLflowURI != "" {
		cfg.TrackingURI = f.Flags.MLflowURI
	}
	if f.Flags.MLflowObserve != nil {
		cfg.Observe = f.Flags.MLflowObserve
	}
	cfg.ConnectTimeout = f.Flags.ConnectTimeout
	if cfg.TrackingURI == "" {
		return nil, ErrNoMLflow
	}
	return mlflowclient.New(cfg)
}

// HasMLflow reports whether a tracking URI is configured, without building
// the client: commands use MLflow where it is configured and go on
// without it elsewhere.
func (f *Factory) HasMLflow() bool {
	return f.Flags.MLflowURI != "" || mlflowclient.ConfigFromEnv(f.Getenv).TrackingURI != ""
}

func (f *Factory) newGitHub() (*ghub.Client, error) {
	g := f.GitHubFlags
	opts := ghub.ClientOptions{Token: f.Getenv(cmdutil.EnvGitHubToken), BaseURL: g.APIURL, Transport: g.Transport}
	if opts.BaseURL == "" {
		opts.BaseURL = f.Getenv(cmdutil.EnvGitHubAPIURL)
	}
	// go-github's errors print the request URL, userinfo included.
	if redact.HasCredentials(opts.BaseURL) {
		return nil, fmt.Errorf("github API URL %s: remove the credentials from the address and set %s or a GitHub App instead", redact.URL(opts.BaseURL), cmdutil.EnvGitHubToken)
	}
	if g.OnRateLimit != nil {
		opts.OnRateLimit = func(st ghub.RateLimitState) { g.OnRateLimit(st.Remaining, st.Known) }
	}
	appID, instID, keyFile := g.AppID, g.InstallationID, g.AppKeyFile
	var err error
	if appID == 0 {
		if appID, err = envInt(f.Getenv, cmdutil.EnvGitHubAppID); err != nil {
			return nil, err
		}
	}
	if instID == 0 {
		if instID, err = envInt(f.Getenv, cmdutil.EnvGitHubInstallationID); err != nil {
			return nil, err
		}
	}
	if keyFile == "" {
		keyFile = f.Getenv(cmdutil.EnvGitHubAppKeyFile)
	}
	if appID != 0 || instID != 0 || keyFile != "" {
		if opts.Token != "" {
			return nil, fmt.Errorf("both $%s and a GitHub App are configured; use one", cmdutil.EnvGitHubToken)
		}
		if keyFile == "" {
			return nil, fmt.Errorf("GitHub App %d needs --github-app-private-key-file or $%s", appID, cmdutil.EnvGitHubAppKeyFile)
		}
		key, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("GitHub App %d private key: %w", appID, err)
		}
		opts.AppID, opts.InstallationID, opts.PrivateKey = appID, instID, key
	}
	return ghub.NewClient(opts)
}

func envInt(getenv func(string) string, name string) (int64, error) {
	s := getenv(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("$%s: %q is not a number", name, s)
	}
	return n, nil
}

// onceCtx memoises build like sync.OnceValues, except that a build cut
// short by its context is not remembered: the next caller, with a live
// context, builds again.
func onceCtx[T any](build func(context.Context) (T, error)) func(context.Context) (T, error) {
	var (
		mu   sync.Mutex
		done bool
		val  T
		err  error
	)
	return func(ctx context.Context) (T, error) {
		mu.Lock()
		defer mu.Unlock()
		if done {
			return val, err
		}
		v, e := build(ctx)
		if e != nil && ctx.Err() != nil {
			return v, e
		}
		done, val, err = true, v, e
		return val, err
	}
}

// OpenRepo clones or fetches the repository the flags name. Credentials come
// from MODELSYNC_GIT_* environment variables, never from flags, so they do
// not show in process listings.
func (f *Factory) OpenRepo(ctx context.Context, flags cmdutil.RepoFlags) (*repo.Snapshot, error) {
	cache := flags.CacheDir
	if cache == "" {
		cache = repo.DefaultCacheDir(f.Getenv)
	}
	return repo.Open(ctx, repo.Options{URL: flags.URL, CacheDir: cache, Auth: gitsource.AuthFromEnv(f.Getenv), MaxBlobSize: flags.MaxBlobSize()})
}

// Desired opens the repository and computes the desired state, reporting
// malformed release tags on stderr.
func (f *Factory) Desired(ctx context.Context, flags cmdutil.RepoFlags) (*reconciler.DesiredState, *repo.Snapshot, error) {
	snap, err := f.OpenRepo(ctx, flags)
	if err != nil {
		return nil, nil, err
	}
	for _, bad := range snap.BadTags() {
		fmt.Fprintf(f.IO.ErrOut, "warning: ignoring tag: %v\n", bad)
	}
	d, err := reconciler.ComputeDesired(snap, flags.Branch)
	if err != nil {
		return nil, nil, err
	}
	return d, snap, nil
}

// Plan is the shared path of plan and apply: desired state, targets, plan.
// The caller closes the targets (CloseTargets).
func (f *Factory) Plan(ctx context.Context, repoFlags cmdutil.RepoFlags) (*reconciler.Plan, []reconciler.Target, error) {
	_, p, targets, err := f.PlanDesired(ctx, repoFlags)
	return p, targets, err
}

// PlanDesired is Plan that also returns the desired state planned from
// (its configuration carries the sync windows plan and apply honour).
func (f *Factory) PlanDesired(ctx context.Context, repoFlags cmdutil.RepoFlags) (*reconciler.DesiredState, *reconciler.Plan, []reconciler.Target, error) {
	d, _, err := f.Desired(ctx, repoFlags)
	if err != nil {
		return nil, nil, nil, err
	}
	targets, err := f.Targets(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	p, err := reconciler.BuildPlan(ctx, d, targets)
	if err != nil {
		CloseTargets(targets)
		return nil, nil, nil, err
	}
	return d, p, targets, nil
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
