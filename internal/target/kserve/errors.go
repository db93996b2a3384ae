package kserve

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel causes, matched with errors.Is, so callers and tests can tell
// why a model could not be rendered or applied without parsing messages.
var (
	// ErrOutsideModel: a kustomization reference, symlink or absolute path
	// points outside the model's folder (models/<name>/).
	ErrOutsideModel = errors.New("reference leaves the model folder")
	// ErrRemoteBase: a kustomization names something other than a local
	// path in the model folder (a repository, a URL) that the repository's
	// serving.allowRemoteBases and serving.remoteBaseHosts do not allow.
	ErrRemoteBase = errors.New("remote kustomize reference refused")
	// ErrTooLarge: the model folder holds more bytes or files than a render
	// reads (Config.MaxModelBytes, Config.MaxModelFiles).
	ErrTooLarge = errors.New("model folder too large to render")
	// ErrKindNotAllowed: the render yields a kind that serving.extraKinds does not list.
	ErrKindNotAllowed = errors.New("kind not allowed")
	// ErrInferenceServiceCount: the render yields zero or several InferenceServices.
	ErrInferenceServiceCount = errors.New("render must yield exactly one InferenceService")
	// ErrCanaryUnsupported: the canary is requested in a deployment mode in
	// which KServe silently ignores canaryTrafficPercent.
	ErrCanaryUnsupported = errors.New("canaryTrafficPercent works only in Knative (Serverless) deployment mode")
	// ErrNotManaged: an object of the desired name exists but modelsync did not create it.
	ErrNotManaged = errors.New("object exists and is not managed by modelsync")
	// ErrNamespaceMissing: the environment namespace is missing and
	// createNamespaces is off (a *NamespaceMissingError says which).
	ErrNamespaceMissing = errors.New("namespace does not exist")
	// ErrInvalidSpec: the API server or modelsync rejected the object's content.
	ErrInvalidSpec = errors.New("invalid serving spec")
	// ErrNeedsFetch: an offline render (validate) met a remote reference
	// the repository permits; it cannot be built without fetching it.
	ErrNeedsFetch = errors.New("render needs remote references, which an offline render does not fetch")
	// ErrPruneEmpty: pruning would delete every managed object because the
	// desired state holds no models.
	ErrPruneEmpty = errors.New("desired state holds no models; refusing to prune everything (set AllowEmpty)")
)

// ModelError ties an error to the model, environment and version it concerns.
type ModelError struct {
	Model       string
	Environment string
	// Version is the model version the predictor points at; 0 when unknown.
	Version int
	Err     error
}

func (e *ModelError) Error() string {
	var b strings.Builder
	b.WriteString("model ")
	b.WriteString(e.Model)
	if e.Environment != "" {
		b.WriteString(" in ")
		b.WriteString(e.Environment)
	}
	if e.Version > 0 {
		fmt.Fprintf(&b, " (version %d)", e.Version)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *ModelError) Unwrap() error { return e.Err }

// NamespaceMissingError is a write into an environment namespace that does
// not exist. modelsync does not look namespaces up (that needs a
// cluster-wide grant); the API server's answer to the write says so.
type NamespaceMissingError struct {
	Namespace string
}

func (e *NamespaceMissingError) Error() string {
	return fmt.Sprintf("namespace %s does not exist; pre-create it with its RoleBinding for modelsync (see Install in the README and deploy/README.md), or set createNamespaces in modelsync.yaml and grant modelsync deploy/components/create-namespaces", e.Namespace)
}

func (e *NamespaceMissingError) Is(target error) bool { return target == ErrNamespaceMissing }

// FieldConflict is one field another manager owns with a different value.
type FieldConflict struct {
	Manager string
	Field   string
}

// ConflictError is a server-side apply conflict: other field managers own
// fields modelsync wants to set. It is not retryable as is; the owner must
// give the field up, or the repository must set serving.forceConflicts.
type ConflictError struct {
	Namespace, Name string
	Conflicts       []FieldConflict
	// Message is the API server's text, used when no cause could be parsed.
	Message string
}

// Managers lists the conflicting managers, sorted and without repeats.
func (e *ConflictError) Managers() []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range e.Conflicts {
		if !seen[c.Manager] {
			seen[c.Manager] = true
			out = append(out, c.Manager)
		}
	}
	sortStrings(out)
	return out
}

func (e *ConflictError) Error() string {
	if len(e.Conflicts) == 0 {
		return fmt.Sprintf("apply conflict on %s/%s: %s (set serving.forceConflicts to take the fields over)", e.Namespace, e.Name, e.Message)
	}
	parts := make([]string, 0, len(e.Conflicts))
	for _, c := range e.Conflicts {
		parts = append(parts, fmt.Sprintf("%s owned by %q", c.Field, c.Manager))
	}
	return fmt.Sprintf("apply conflict on %s/%s with field manager(s) %s: %s (set serving.forceConflicts to take the fields over)",
		e.Namespace, e.Name, quoteJoin(e.Managers()), strings.Join(parts, ", "))
}

// NotHealthyError is returned by WaitHealthy when the InferenceService did
// not become healthy: it failed, was stopped, or the time ran out.
type NotHealthyError struct {
	Namespace, Name string
	Status          HealthStatus
	Reason          string
	Message         string
	// TimedOut is set when the wait ended by timeout rather than by a
	// terminal state; a timed-out wait may succeed when retried.
	TimedOut bool
}

func (e *NotHealthyError) Error() string {
	what := "is " + string(e.Status)
	if e.TimedOut {
		what = "did not become Healthy in time (last " + string(e.Status) + ")"
	}
	msg := fmt.Sprintf("InferenceService %s/%s %s", e.Namespace, e.Name, what)
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

func quoteJoin(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}

// ObjectError is a rendered object the KServe target refuses, naming it so
// that `validate` can point at the file that defines it.
type ObjectError struct {
	// Cause is the sentinel it matches with errors.Is, e.g. ErrKindNotAllowed.
	Cause                  error
	APIVersion, Kind, Name string
	Message                string
}

func (e *ObjectError) Error() string { return fmt.Sprintf("%v: %s", e.Cause, e.Message) }

func (e *ObjectError) Unwrap() error { return e.Cause }
