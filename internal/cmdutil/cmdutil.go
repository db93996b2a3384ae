// Package cmdutil holds what every modelsync command shares: I/O streams,
// exit codes, output formats and the flags that locate the repository, the
// targets and GitHub. It builds nothing: clients and targets come from the
// factory in internal/wiring, which commands receive.
package cmdutil

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/modelsync/modelsync/internal/gitsource"
)

// Exit codes, documented in the README.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitChanges = 2 // plan: the plan has changes (terraform plan -detailed-exitcode)
	// ExitDenied (check): the policy was evaluated and denied the change.
	ExitDenied = 1
	// ExitNoVerdict (check): the change could not be judged (bad flags, an
	// unreadable repository or ref, a policy that does not load, a failed
	// evaluation), so CI can tell "fix the change" from "fix the job".
	ExitNoVerdict = 2
)

// IOStreams are where a command reads and writes.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
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
	// MaxFileMiB is the largest file read from the repository.
	MaxFileMiB int64
}

// MaxBlobSize is MaxFileMiB in bytes, for repo.Options.MaxBlobSize.
func (f RepoFlags) MaxBlobSize() int64 { return f.MaxFileMiB << 20 }

// AddRepoFlags registers --repo, --branch, --cache-dir and --max-file-mib.
func AddRepoFlags(cmd *cobra.Command, f *RepoFlags) {
	cmd.Flags().StringVar(&f.URL, "repo", ".", "models repository: a local path, or a file://, https://, ssh:// or git:// URL")
	cmd.Flags().StringVar(&f.Branch, "branch", "main", "branch whose modelsync.yaml and model list are authoritative")
	cmd.Flags().StringVar(&f.CacheDir, "cache-dir", "", "where clones are kept (default $MODELSYNC_CACHE_DIR or ~/.cache/modelsync/repos)")
	cmd.Flags().Int64Var(&f.MaxFileMiB, "max-file-mib", gitsource.DefaultMaxBlobSize>>20, "largest file read from the models repository, in MiB; larger ones are an error of their model (sizes are read from Git object headers, so they cost no memory)")
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
	// ConnectTimeout bounds reaching each endpoint (MLflow, the Kubernetes
	// API server, S3): an unreachable one fails within it, naming itself
	// and the cause. 0 means DefaultConnectTimeout.
	ConnectTimeout time.Duration
}

// DefaultConnectTimeout is --connect-timeout's default.
const DefaultConnectTimeout = 10 * time.Second

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
	cmd.Flags().DurationVar(&f.ConnectTimeout, "connect-timeout", DefaultConnectTimeout, "how long to try reaching MLflow, the Kubernetes API server or S3 before failing with the endpoint and the cause")
	cmd.Flags().StringVar(&f.ArtifactsDestination, "artifacts-destination", "", "storage URI behind mlflow-artifacts:/ (the MLflow server's --artifacts-destination), e.g. s3://mlflow/artifacts")
}

// GitHub environment variables. Secrets come only from the environment
// (or a key file), never from flags, so they stay out of process listings.
const (
	EnvGitHubToken          = "GITHUB_TOKEN"
	EnvGitHubAppID          = "MODELSYNC_GITHUB_APP_ID"
	EnvGitHubInstallationID = "MODELSYNC_GITHUB_APP_INSTALLATION_ID"
	EnvGitHubAppKeyFile     = "MODELSYNC_GITHUB_APP_PRIVATE_KEY_FILE"
	EnvGitHubAPIURL         = "MODELSYNC_GITHUB_API_URL"
)

// GitHubFlags configure the GitHub client. Zero values fall back to the
// environment variables above.
type GitHubFlags struct {
	// APIURL is the REST API root of GitHub Enterprise Server.
	APIURL         string
	AppID          int64
	InstallationID int64
	AppKeyFile     string
	// Transport replaces the HTTP transport (tests).
	Transport http.RoundTripper
	// OnRateLimit, when set, sees every rate-limit update (for metrics).
	OnRateLimit func(remaining int, known bool)
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
