package kserve

import (
	"errors"
	"fmt"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// FieldManager is the server-side apply field manager modelsync writes as.
const FieldManager = "modelsync"

// Config tunes the KServe target. The zero value works.
type Config struct {
	// Kubeconfig is an explicit kubeconfig path. Empty means what kubectl
	// does: $KUBECONFIG (a list of files), then ~/.kube/config, then the
	// in-cluster service account.
	Kubeconfig string
	// Context selects a kubeconfig context; empty means the current one.
	Context string
	// FieldManager overrides the server-side apply manager name; default "modelsync".
	FieldManager string
	// AllowEmpty lets pruning proceed when the desired state holds no
	// models at all, which would otherwise delete every managed object.
	AllowEmpty bool
	// DefaultDeploymentMode is the cluster's KServe default (from its
	// inferenceservice-config ConfigMap): "Knative"/"Serverless" or
	// "Standard"/"RawDeployment". It is used for a canary on an object whose
	// mode neither its annotation nor its status tells; empty means unknown,
	// and then the canary is allowed until status.deploymentMode says otherwise.
	DefaultDeploymentMode string
	// CacheSyncTimeout bounds the first LIST of an informer; default 2
	// minutes. The wait for the caches to show modelsync's own last write
	// is bounded by the smaller of this and 10 seconds.
	CacheSyncTimeout time.Duration
	// ConnectTimeout bounds reaching the API server: dialing, and the probe
	// (GET /version) made before the first informer starts. An unreachable
	// server fails within it, the error naming the server and the cause
	// (UnreachableError). 0 means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// MaxModelBytes bounds what one render copies out of a model folder;
	// default 32 MiB. A file is refused from the size its file system
	// reports before any of it is read, and reads stop at the limit even
	// if that size is wrong, so a large blob in a repository costs no memory.
	MaxModelBytes int64
	// MaxModelFiles bounds the files of one model folder; default 2000.
	MaxModelFiles int
}

// Default render limits; see Config.MaxModelBytes and Config.MaxModelFiles.
const (
	DefaultMaxModelBytes = 32 << 20
	DefaultMaxModelFiles = 2000
)

func (c Config) renderLimits() renderLimits {
	l := renderLimits{bytes: c.MaxModelBytes, files: c.MaxModelFiles}
	if l.bytes <= 0 {
		l.bytes = DefaultMaxModelBytes
	}
	if l.files <= 0 {
		l.files = DefaultMaxModelFiles
	}
	return l
}

func (c Config) fieldManager() string {
	if c.FieldManager == "" {
		return FieldManager
	}
	return c.FieldManager
}

// catchUpTimeout bounds the wait for the caches to show modelsync's own
// writes; past it a plan reads the cache as it is, which is safe because
// every action is idempotent.
func (c Config) catchUpTimeout() time.Duration { return min(c.syncTimeout(), 10*time.Second) }

func (c Config) syncTimeout() time.Duration {
	if c.CacheSyncTimeout <= 0 {
		return 2 * time.Minute
	}
	return c.CacheSyncTimeout
}

// LoadRESTConfig resolves cluster credentials the way kubectl does:
// explicit path, else $KUBECONFIG, else ~/.kube/config, and the in-cluster
// configuration when none of those exists. context picks a context.
func LoadRESTConfig(kubeconfig, context string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: context}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	rc, err := cc.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) || errors.Is(err, clientcmd.ErrEmptyConfig) {
			return nil, fmt.Errorf("no Kubernetes configuration: no kubeconfig (KUBECONFIG, ~/.kube/config) and not running in a cluster")
		}
		what := "kubeconfig"
		if kubeconfig != "" {
			what = "kubeconfig " + kubeconfig
		}
		if context != "" {
			what += " context " + context
		}
		return nil, fmt.Errorf("loading %s: %w", what, err)
	}
	return rc, nil
}
