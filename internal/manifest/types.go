// Package manifest defines the files of a models repository (modelsync.yaml
// and models/<name>/model.yaml), decodes them strictly with positions, and
// validates them so that every problem names file, line, column and field.
package manifest

// APIVersion is the only schema version this build understands.
const APIVersion = "modelsync.dev/v1alpha1"

// Kinds of documents in a models repository.
const (
	KindRepository = "Repository"
	KindModel      = "Model"
)

// ConfigFile is the repository configuration at the root of the repo.
const ConfigFile = "modelsync.yaml"

// ModelsDir holds one folder per model, each with a ModelFile.
const (
	ModelsDir = "models"
	ModelFile = "model.yaml"
)

// SourceReleases is the environment source that follows a model's newest
// semver release tag instead of a branch head.
const SourceReleases = "releases"

// RepoConfig is modelsync.yaml.
type RepoConfig struct {
	APIVersion string `yaml:"apiVersion" json:"apiVersion" jsonschema:"enum=modelsync.dev/v1alpha1"`
	Kind       string `yaml:"kind" json:"kind" jsonschema:"enum=Repository"`
	// Environments in promotion order: a version should pass through each
	// earlier environment before it reaches a later one.
	Environments []Environment `yaml:"environments" json:"environments" jsonschema:"minItems=1"`
	// AllowedSources lists the branches an environment's source may name
	// besides "releases". Absent or empty, only the branch modelsync.yaml
	// is read from (the controller's --branch, a pull request's base) may
	// be a source, so no environment follows a branch nobody reviews.
	AllowedSources []string `yaml:"allowedSources,omitempty" json:"allowedSources,omitempty"`
	Defaults       Defaults `yaml:"defaults,omitempty" json:"defaults,omitempty"`
	// ExtraStorageClasses are storage class names an S3-compatible store
	// accepts besides the S3 API's own (STANDARD, GLACIER_IR, ...), so a
	// lifecycle may name them; a class in neither is refused as a typo.
	ExtraStorageClasses []string `yaml:"extraStorageClasses,omitempty" json:"extraStorageClasses,omitempty" jsonschema:"uniqueItems=true"`
	// Prune lets the reconciler delete serving objects it created for models or
	// environments that left the repository.
	Prune bool `yaml:"prune,omitempty" json:"prune,omitempty"`
	// CreateNamespaces lets the reconciler create missing environment namespaces.
	CreateNamespaces bool `yaml:"createNamespaces,omitempty" json:"createNamespaces,omitempty"`
	// Serving holds repository-wide rules for rendering serving manifests.
	Serving ServingPolicy `yaml:"serving,omitempty" json:"serving,omitempty"`
	// SyncWindows allow or deny changes to environments on a schedule, as
	// Argo CD's sync windows do; deny wins where windows overlap.
	SyncWindows []SyncWindow `yaml:"syncWindows,omitempty" json:"syncWindows,omitempty"`
	// Analysis holds the Prometheus provider and the defaults of every
	// canary analysis.
	Analysis *AnalysisDefaults `yaml:"analysis,omitempty" json:"analysis,omitempty"`
}

// SyncWindow is a recurring period in which the reconciler may (allow) or
// may not (deny) change environments. With any allow window for an
// environment, changes happen only inside allow windows.
type SyncWindow struct {
	Kind string `yaml:"kind" json:"kind" jsonschema:"enum=allow,enum=deny"`
	// Schedule is a five-field cron expression for each window's start.
	Schedule string `yaml:"schedule" json:"schedule"`
	// Duration is how long each window lasts.
	Duration Duration `yaml:"duration" json:"duration"`
	// Environments the window applies to; empty means all.
	Environments []string `yaml:"environments,omitempty" json:"environments,omitempty"`
	// TimeZone interprets Schedule, e.g. Europe/Berlin; default UTC.
	TimeZone string `yaml:"timeZone,omitempty" json:"timeZone,omitempty"`
}

// Environment is one place a model runs.
type Environment struct {
	Name string `yaml:"name" json:"name" jsonschema:"pattern=^[a-z][-a-z0-9]*$"`
	// Namespace is the Kubernetes namespace of the environment's InferenceServices.
	Namespace string `yaml:"namespace" json:"namespace"`
	// Alias is the MLflow alias that names the environment's version; default: Name.
	Alias string `yaml:"alias,omitempty" json:"alias,omitempty"`
	// Source is a branch name (e.g. "main") or "releases": the newest semver
	// release tag <model>/vX.Y.Z of each model. A branch must be listed in
	// allowedSources, or be the branch modelsync.yaml is read from.
	Source string `yaml:"source" json:"source"`
	// Prerelease lets a "releases" environment take tags such as v1.2.0-rc.1.
	Prerelease bool `yaml:"prerelease,omitempty" json:"prerelease,omitempty"`
}

// Defaults apply to every model that does not say otherwise.
type Defaults struct {
	Registry  RegistryDefaults `yaml:"registry,omitempty" json:"registry,omitempty"`
	Lifecycle Lifecycle        `yaml:"lifecycle,omitempty" json:"lifecycle,omitempty"`
}

// RegistryDefaults says how environments are written into the MLflow registry.
type RegistryDefaults struct {
	// Mode is "aliases" (default), "stages" (legacy MLflow stages) or "both".
	Mode string `yaml:"mode,omitempty" json:"mode,omitempty" jsonschema:"enum=aliases,enum=stages,enum=both"`
}

// ServingPolicy limits what a model's kustomization may produce.
type ServingPolicy struct {
	// ExtraKinds lists kinds besides InferenceService a render may yield.
	ExtraKinds []string `yaml:"extraKinds,omitempty" json:"extraKinds,omitempty"`
	// AllowRemoteBases lets kustomizations reference remote bases and files,
	// but only https:// URLs of a host RemoteBaseHosts lists.
	AllowRemoteBases bool `yaml:"allowRemoteBases,omitempty" json:"allowRemoteBases,omitempty"`
	// RemoteBaseHosts are the hosts (host or host:port) whose https:// URLs
	// a kustomization may name when AllowRemoteBases is set; empty allows none.
	RemoteBaseHosts []string `yaml:"remoteBaseHosts,omitempty" json:"remoteBaseHosts,omitempty"`
	// ForceConflicts takes fields owned by other field managers on apply.
	ForceConflicts bool `yaml:"forceConflicts,omitempty" json:"forceConflicts,omitempty"`
}

// Lifecycle says where a model's artifacts live over time. Class names are
// the S3 API's storage classes, or names modelsync.yaml lists in
// extraStorageClasses for S3-compatible stores with classes of their own.
type Lifecycle struct {
	ActiveClass      string   `yaml:"activeClass,omitempty" json:"activeClass,omitempty"`
	ArchivedClass    string   `yaml:"archivedClass,omitempty" json:"archivedClass,omitempty"`
	ArchiveAfter     Duration `yaml:"archiveAfter,omitempty" json:"archiveAfter,omitzero"`
	DeepArchiveClass string   `yaml:"deepArchiveClass,omitempty" json:"deepArchiveClass,omitempty"`
	DeepArchiveAfter Duration `yaml:"deepArchiveAfter,omitempty" json:"deepArchiveAfter,omitzero"`
	DeleteAfter      Duration `yaml:"deleteAfter,omitempty" json:"deleteAfter,omitzero"`
	// AllowDelete must be true before any artifact is deleted.
	AllowDelete bool `yaml:"allowDelete,omitempty" json:"allowDelete,omitempty"`
	// RollbackWindow keeps a version's artifacts hot for this long after it
	// last ran anywhere, so a rollback never waits for a restore.
	RollbackWindow Duration `yaml:"rollbackWindow,omitempty" json:"rollbackWindow,omitzero"`
}

// Model is models/<name>/model.yaml.
type Model struct {
	APIVersion string    `yaml:"apiVersion" json:"apiVersion" jsonschema:"enum=modelsync.dev/v1alpha1"`
	Kind       string    `yaml:"kind" json:"kind" jsonschema:"enum=Model"`
	Metadata   Metadata  `yaml:"metadata" json:"metadata"`
	Spec       ModelSpec `yaml:"spec" json:"spec"`
}

// Metadata names the model.
type Metadata struct {
	// Name must equal the model's folder name.
	Name        string            `yaml:"name" json:"name" jsonschema:"pattern=^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"`
	Labels      map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty" json:"annotations,omitempty"`
}

// ModelSpec is everything Git decides about a model.
type ModelSpec struct {
	// Registry names the MLflow registered model; default: metadata.name.
	Registry Registry `yaml:"registry,omitempty" json:"registry,omitempty"`
	Team     string   `yaml:"team,omitempty" json:"team,omitempty"`
	// Owners are the GitHub logins whose approval counts as the owners'.
	Owners []string `yaml:"owners" json:"owners" jsonschema:"minItems=1"`
	// Environments maps an environment name from modelsync.yaml to what runs
	// there. A model in no environment is retired: its versions are archived.
	Environments map[string]EnvironmentSpec `yaml:"environments,omitempty" json:"environments,omitempty"`
	Serving      Serving                    `yaml:"serving" json:"serving"`
	Lifecycle    Lifecycle                  `yaml:"lifecycle,omitempty" json:"lifecycle,omitempty"`
	ModelCard    ModelCard                  `yaml:"modelCard,omitempty" json:"modelCard,omitempty"`
	Compliance   []string                   `yaml:"compliance,omitempty" json:"compliance,omitempty"`
	// Dependencies are the packages the model needs, e.g. "scikit-learn==1.5.2".
	Dependencies []string `yaml:"dependencies,omitempty" json:"dependencies,omitempty"`
	// Suspend stops the reconciler from changing anything for this model.
	Suspend bool `yaml:"suspend,omitempty" json:"suspend,omitempty"`
}

// Registry locates the model in MLflow.
type Registry struct {
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
}

// EnvironmentSpec is the desired state of one model in one environment.
type EnvironmentSpec struct {
	// Version is the MLflow model version number that serves all traffic.
	Version int     `yaml:"version" json:"version" jsonschema:"minimum=1"`
	Canary  *Canary `yaml:"canary,omitempty" json:"canary,omitempty"`
}

// Canary sends part of the traffic to a candidate version.
type Canary struct {
	Version int `yaml:"version" json:"version" jsonschema:"minimum=1"`
	// Steps are the traffic percentages a progressive rollout walks through.
	Steps []int `yaml:"steps,omitempty" json:"steps,omitempty"`
	// Weight is the current traffic percentage; default: the first step.
	Weight   int       `yaml:"weight,omitempty" json:"weight,omitempty" jsonschema:"minimum=1,maximum=99"`
	Analysis *Analysis `yaml:"analysis,omitempty" json:"analysis,omitempty"`
}

// Analysis configures automated canary analysis: at every interval the
// controller reads each arm's counters from Prometheus and an anytime-valid
// test decides whether the canary advances, is promoted or rolled back.
// Unset fields take the defaults of modelsync.yaml's analysis block, then
// the built-in ones.
type Analysis struct {
	// Provider is the Prometheus to ask; default: modelsync.yaml's
	// analysis.prometheus (or serve's --prometheus-url).
	Provider *AnalysisProvider `yaml:"provider,omitempty" json:"provider,omitempty"`
	// Interval is how often to look; default 1m.
	Interval Duration `yaml:"interval,omitempty" json:"interval,omitzero"`
	// StepDuration is the minimum time at each weight step; default 10m.
	StepDuration Duration `yaml:"stepDuration,omitempty" json:"stepDuration,omitzero"`
	// MinSamples is the minimum number of canary requests per step; default 500.
	MinSamples int `yaml:"minSamples,omitempty" json:"minSamples,omitempty" jsonschema:"minimum=1"`
	// MaxDuration ends an analysis without a decision as inconclusive; default: none.
	MaxDuration Duration `yaml:"maxDuration,omitempty" json:"maxDuration,omitzero"`
	// Alpha is the false-rollback budget over the whole canary and all
	// metrics; default 0.05.
	Alpha float64 `yaml:"alpha,omitempty" json:"alpha,omitempty" jsonschema:"exclusiveMinimum=0,maximum=0.5"`
	// OnInconclusive is what happens after maxDuration: hold (default, with
	// an alert) or rollback.
	OnInconclusive string `yaml:"onInconclusive,omitempty" json:"onInconclusive,omitempty" jsonschema:"enum=hold,enum=rollback"`
	// Metrics are tested metrics (kind errors, latency or ratio) and hard
	// guards (name, query and max or min, without a kind).
	Metrics    []AnalysisMetric  `yaml:"metrics,omitempty" json:"metrics,omitempty"`
	Thresholds map[string]string `yaml:"thresholds,omitempty" json:"thresholds,omitempty"`
	// PostPromotion compares the promoted revision with the previous one
	// over an equal window before the change, and rolls back when it is
	// clearly worse.
	PostPromotion *PostPromotion `yaml:"postPromotion,omitempty" json:"postPromotion,omitempty"`
}

// Metric kinds of a tested analysis metric.
const (
	// MetricErrors is the share of requests answered with a 5xx status.
	MetricErrors = "errors"
	// MetricLatency is the share of requests slower than a histogram
	// bucket boundary (le).
	MetricLatency = "latency"
	// MetricRatio is any bad (or good) and total counter pair.
	MetricRatio = "ratio"
)

// AnalysisProvider says how to reach Prometheus. Credentials are never
// written here: only the names of environment variables that hold them.
type AnalysisProvider struct {
	// Address is the Prometheus base URL, e.g. http://prometheus.monitoring:9090.
	Address string `yaml:"address,omitempty" json:"address,omitempty"`
	// BearerTokenEnv names the environment variable holding a bearer token.
	BearerTokenEnv string `yaml:"bearerTokenEnv,omitempty" json:"bearerTokenEnv,omitempty" jsonschema:"pattern=^[A-Za-z_][A-Za-z0-9_]*$"`
	// BasicAuth names the environment variables holding a user and password.
	BasicAuth *BasicAuthEnv `yaml:"basicAuth,omitempty" json:"basicAuth,omitempty"`
	TLS       *ProviderTLS  `yaml:"tls,omitempty" json:"tls,omitempty"`
}

// BasicAuthEnv names the environment variables of HTTP basic auth.
type BasicAuthEnv struct {
	UsernameEnv string `yaml:"usernameEnv" json:"usernameEnv" jsonschema:"pattern=^[A-Za-z_][A-Za-z0-9_]*$"`
	PasswordEnv string `yaml:"passwordEnv" json:"passwordEnv" jsonschema:"pattern=^[A-Za-z_][A-Za-z0-9_]*$"`
}

// ProviderTLS are the TLS options of a provider.
type ProviderTLS struct {
	// CAFile is a PEM bundle trusted besides the system roots; a path on
	// the controller's file system (a mounted Secret), never the repository.
	CAFile             string `yaml:"caFile,omitempty" json:"caFile,omitempty"`
	InsecureSkipVerify bool   `yaml:"insecureSkipVerify,omitempty" json:"insecureSkipVerify,omitempty"`
}

// AnalysisMetric is either a tested metric (Kind set) or a hard guard (a
// query judged against max or min, Flagger style).
type AnalysisMetric struct {
	// Name identifies the metric; default: its kind.
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// Kind is errors, latency or ratio; empty for a guard entry.
	Kind string `yaml:"kind,omitempty" json:"kind,omitempty" jsonschema:"enum=errors,enum=latency,enum=ratio"`
	// Query is a guard's PromQL (a template like bad and total), judged
	// against Max or Min at every look.
	Query string   `yaml:"query,omitempty" json:"query,omitempty"`
	Max   *float64 `yaml:"max,omitempty" json:"max,omitempty"`
	Min   *float64 `yaml:"min,omitempty" json:"min,omitempty"`
	// Margin is the non-inferiority margin on the rate ratio: 1.2 lets the
	// canary have at most 20% more bad events than stable; default 1.2.
	Margin float64 `yaml:"margin,omitempty" json:"margin,omitempty" jsonschema:"exclusiveMinimum=1,maximum=50"`
	// LE is the histogram bucket boundary of a latency metric, as written
	// in the le label (for Knative's queue-proxy, milliseconds: "500").
	LE string `yaml:"le,omitempty" json:"le,omitempty"`
	// Bad, Good and Total are PromQL templates returning counter series
	// (not rates) for one arm, with {{.Namespace}}, {{.Name}} and
	// {{.Revision}}. A ratio metric needs total and one of bad or good;
	// errors and latency have built-in KServe Serverless templates that
	// these override.
	Bad   string `yaml:"bad,omitempty" json:"bad,omitempty"`
	Good  string `yaml:"good,omitempty" json:"good,omitempty"`
	Total string `yaml:"total,omitempty" json:"total,omitempty"`
	// Guard rolls back at once when the canary's bad share in the current
	// step reaches maxRate after at least minRequests canary requests.
	Guard *MetricGuard `yaml:"guard,omitempty" json:"guard,omitempty"`
}

// IsGuard reports whether m is a threshold guard rather than a tested metric.
func (m AnalysisMetric) IsGuard() bool { return m.Kind == "" }

// MetricName is the metric's name, defaulting to its kind.
func (m AnalysisMetric) MetricName() string {
	if m.Name != "" {
		return m.Name
	}
	return m.Kind
}

// MetricGuard is a Flagger-style threshold on a tested metric.
type MetricGuard struct {
	MaxRate     float64 `yaml:"maxRate" json:"maxRate" jsonschema:"exclusiveMinimum=0,maximum=1"`
	MinRequests int     `yaml:"minRequests,omitempty" json:"minRequests,omitempty" jsonschema:"minimum=0"`
}

// PostPromotion verifies a promoted version against the previous one.
type PostPromotion struct {
	// Duration is the window after promotion, compared with an equal window before it.
	Duration Duration `yaml:"duration" json:"duration"`
	// Metrics are tested metrics as in the analysis; default: the analysis's.
	Metrics []AnalysisMetric `yaml:"metrics,omitempty" json:"metrics,omitempty"`
}

// AnalysisDefaults is modelsync.yaml's analysis block: the provider and
// the settings every canary analysis takes unless it says otherwise.
type AnalysisDefaults struct {
	Prometheus     *AnalysisProvider `yaml:"prometheus,omitempty" json:"prometheus,omitempty"`
	Interval       Duration          `yaml:"interval,omitempty" json:"interval,omitzero"`
	StepDuration   Duration          `yaml:"stepDuration,omitempty" json:"stepDuration,omitzero"`
	MinSamples     int               `yaml:"minSamples,omitempty" json:"minSamples,omitempty" jsonschema:"minimum=1"`
	MaxDuration    Duration          `yaml:"maxDuration,omitempty" json:"maxDuration,omitzero"`
	Alpha          float64           `yaml:"alpha,omitempty" json:"alpha,omitempty" jsonschema:"exclusiveMinimum=0,maximum=0.5"`
	OnInconclusive string            `yaml:"onInconclusive,omitempty" json:"onInconclusive,omitempty" jsonschema:"enum=hold,enum=rollback"`
}

// Serving says how the model is served.
type Serving struct {
	// Path is the kustomize directory inside the model folder; an
	// overlays/<env> directory beside or below it is used when present.
	Path        string `yaml:"path" json:"path"`
	ModelFormat string `yaml:"modelFormat" json:"modelFormat"`
	Runtime     string `yaml:"runtime,omitempty" json:"runtime,omitempty"`
}

// ModelCard documents the model for reviewers and auditors.
type ModelCard struct {
	Description string             `yaml:"description,omitempty" json:"description,omitempty"`
	IntendedUse string             `yaml:"intendedUse,omitempty" json:"intendedUse,omitempty"`
	Datasets    []Dataset          `yaml:"datasets,omitempty" json:"datasets,omitempty"`
	Metrics     map[string]float64 `yaml:"metrics,omitempty" json:"metrics,omitempty"`
	Limitations []string           `yaml:"limitations,omitempty" json:"limitations,omitempty"`
	License     string             `yaml:"license,omitempty" json:"license,omitempty"`
	Contact     string             `yaml:"contact,omitempty" json:"contact,omitempty"`
}

// Dataset is a versioned training or evaluation dataset.
type Dataset struct {
	Name    string `yaml:"name" json:"name"`
	Version string `yaml:"version" json:"version"`
	URI     string `yaml:"uri,omitempty" json:"uri,omitempty"`
}
