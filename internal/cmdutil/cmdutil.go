// Package cmdutil holds what every modelsync command shares: I/O streams,
// the environment, exit codes and the flags that locate the repository and
// the targets. Commands receive a *Factory, so tests run them against
// buffers and a fake environment.
package cmdutil

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/modelsync/modelsync/internal/gitsource"
	"github.com/modelsync/modelsync/internal/repo"
	"github.com/modelsync/modelsync/reconciler"
)

// Exit codes, documented in the README.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitChanges = 2 // plan: the plan has changes (terraform plan -detailed-exitcode)
)

// IOStreams are where a command reads and writes.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// Factory gives commands their dependencies.
type Factory struct {
	IO      IOStreams
	Getenv  func(string) string
	Version string
	// BuildTargets returns the targets the flags and environment configure,
	// in execution order. An empty result means none is configured.
	BuildTargets func(ctx context.Context, getenv func(string) string, flags *TargetFlags, desired *reconciler.DesiredState) ([]reconciler.Target, error)
}

// ExitError carries an exit code other than 1. When Err is nil the command
// has already printed what it had to say.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// ErrSilent ends a command with exit code 1 after it printed its own report.
var ErrSilent = &ExitError{Code: ExitFailure}

// ExitCode maps an error returned by a command to the process exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return ExitFailure
}

// RepoFlags locate the models repository.
type RepoFlags struct {
	URL      string
	Branch   string
	CacheDir string
}

// AddRepoFlags registers --repo, --branch and --cache-dir.
func AddRepoFlags(cmd *cobra.Command, f *RepoFlags) {
	cmd.Flags().StringVar(&f.URL, "repo", ".", "models repository: a local path, or a file://, https://, ssh:// or git:// URL")
	cmd.Flags().StringVar(&f.Branch, "branch", "main", "branch whose modelsync.yaml and model list are authoritative")
	cmd.Flags().StringVar(&f.CacheDir, "cache-dir", "", "where clones are kept (default $MODELSYNC_CACHE_DIR or ~/.cache/modelsync/repos)")
}

// OpenRepo clones or fetches the repository the flags name. Credentials come
// from MODELSYNC_GIT_* environment variables, never from flags, so they do
// not show in process listings.
func (f *Factory) OpenRepo(ctx context.Context, flags RepoFlags) (*repo.Snapshot, error) {
	cache := flags.CacheDir
	if cache == "" {
		cache = repo.DefaultCacheDir(f.Getenv)
	}
	return repo.Open(ctx, repo.Options{URL: flags.URL, CacheDir: cache, Auth: gitsource.AuthFromEnv(f.Getenv)})
}

// Desired opens the repository and computes the desired state, reporting
// malformed release tags on stderr.
func (f *Factory) Desired(ctx context.Context, flags RepoFlags) (*reconciler.DesiredState, *repo.Snapshot, error) {
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

// TargetFlags configure which targets plan and apply talk to.
type TargetFlags struct {
	// Only limits the run to these targets (names as in a plan).
	Only []string
	// MLflowURI overrides MLFLOW_TRACKING_URI.
	MLflowURI string
	// Kubeconfig and KubeContext select the cluster, as kubectl does.
	Kubeconfig  string
	KubeContext string
	// KServe turns the KServe target on; AllowEmpty lets it prune when the
	// repository renders no models at all.
	KServe     bool
	AllowEmpty bool
	// S3 turns the artifact storage target on; S3Endpoint and S3PathStyle
	// point it at an S3-compatible store.
	S3          bool
	S3Endpoint  string
	S3PathStyle bool
	// MLflowObserve, when set, sees every MLflow request (for metrics).
	MLflowObserve func(method, endpoint string, status int, dur time.Duration)
	// Progress receives progress of long artifact copies: a bar when it is
	// a terminal, periodic log lines otherwise. Nil: no progress output.
	Progress io.Writer
	// ArtifactsDestination maps mlflow-artifacts:/ URIs to storage, e.g.
	// s3://mlflow/artifacts (the server's --artifacts-destination).
	ArtifactsDestination string
}

// AddTargetFlags registers the target selection flags.
func AddTargetFlags(cmd *cobra.Command, f *TargetFlags) {
	cmd.Flags().StringSliceVar(&f.Only, "target", nil, "only plan these targets (mlflow, kserve, s3); default: every configured target")
	cmd.Flags().StringVar(&f.MLflowURI, "mlflow-uri", "", "MLflow tracking URI (default $MLFLOW_TRACKING_URI)")
	cmd.Flags().StringVar(&f.Kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG or ~/.kube/config)")
	cmd.Flags().StringVar(&f.KubeContext, "context", "", "kubeconfig context")
	cmd.Flags().BoolVar(&f.KServe, "kserve", false, "reconcile KServe InferenceServices in the cluster of the kubeconfig")
	cmd.Flags().BoolVar(&f.AllowEmpty, "allow-empty", false, "with prune: true, allow deleting every managed InferenceService when the repository has no models")
	cmd.Flags().BoolVar(&f.S3, "s3", false, "reconcile storage classes of model artifacts in S3 (AWS credential chain: env, shared config, web identity)")
	cmd.Flags().StringVar(&f.S3Endpoint, "s3-endpoint", "", "S3-compatible endpoint, e.g. http://127.0.0.1:9000 (default: AWS)")
	cmd.Flags().BoolVar(&f.S3PathStyle, "s3-path-style", false, "address buckets by path, as most S3-compatible stores need")
	cmd.Flags().StringVar(&f.ArtifactsDestination, "artifacts-destination", "", "storage URI behind mlflow-artifacts:/ (the MLflow server's --artifacts-destination), e.g. s3://mlflow/artifacts")
}

// ErrNoTargets is returned by plan and apply when nothing is configured:
// an empty plan would look like "in sync" when nothing was checked.
var ErrNoTargets = errors.New("no targets configured: set MLFLOW_TRACKING_URI (or --mlflow-uri) for the MLflow registry, --kserve for KServe, --s3 for artifact storage")

// Targets builds the configured targets and refuses to go on with none.
func (f *Factory) Targets(ctx context.Context, flags *TargetFlags, desired *reconciler.DesiredState) ([]reconciler.Target, error) {
	if f.BuildTargets == nil {
		return nil, ErrNoTargets
	}
	ts, err := f.BuildTargets(ctx, f.Getenv, flags, desired)
	if err != nil {
		return nil, err
	}
	if len(ts) == 0 {
		return nil, ErrNoTargets
	}
	return ts, nil
}

// CloseTargets releases what targets hold open (informers, connections).
func CloseTargets(targets []reconciler.Target) {
	for _, t := range targets {
		switch c := t.(type) {
		case io.Closer:
			_ = c.Close()
		case interface{ Close() }:
			c.Close()
		}
	}
}

// Output formats shared by commands that print data.
const (
	FormatText = "text"
	FormatJSON = "json"
	FormatYAML = "yaml"
)

// CheckFormat rejects an output format the command does not offer.
func CheckFormat(got string, allowed ...string) error {
	for _, a := range allowed {
		if got == a {
			return nil
		}
	}
	return fmt.Errorf("unknown output format %q; expected one of %v", got, allowed)
}

// WriteJSON writes v as indented JSON.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// WriteYAML writes v as YAML by way of its JSON form, so field names match
// the JSON output.
func WriteYAML(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var generic any
	if err := yaml.Unmarshal(b, &generic); err != nil {
		return err
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(generic); err != nil {
		return err
	}
	return enc.Close()
}
