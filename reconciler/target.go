package reconciler

import (
	"context"
	"fmt"
	"reflect"
	"time"
)

// Target is one system modelsync keeps true to Git: the MLflow registry,
// KServe, or artifact storage. A target observes live state, plans the
// actions that would make it match the desired state, and applies one
// action at a time.
//
// Targets are written as a TypedTarget and turned into a Target by Typed,
// so the observation keeps its type from Observe to Plan.
type Target interface {
	// Name is the target's short name, e.g. "mlflow"; actions carry it.
	Name() string
	// Observe reads the live state the desired state concerns. An error
	// means the target as a whole could not be read; a problem with one
	// model belongs in the TargetPlan's Errors instead.
	Observe(ctx context.Context, desired *DesiredState) (Observation, error)
	// Plan compares desired with observed and returns the actions in the
	// order they must run. It does no I/O, so it is deterministic.
	Plan(desired *DesiredState, observed Observation) TargetPlan
	// Apply performs one action planned by this target. It must be safe to
	// repeat: a retried or re-planned action converges rather than doubles.
	Apply(ctx context.Context, action Action) error
}

// Observation is a target's record of live state, passed from Observe back
// to Plan of the same target. It is opaque: only the Target that made it
// can open it, so a target never has to guess its type.
type Observation interface {
	// observedBy is unexported so that only this package makes
	// observations; a target's own data rides inside.
	observedBy() Target
}

// TypedTarget is a target whose observation is of its own type O. Typed
// turns it into a Target.
type TypedTarget[O any] interface {
	Name() string
	// Observe reads live state, as Target.Observe. A nil O with a nil
	// error is refused before it can reach Plan.
	Observe(ctx context.Context, desired *DesiredState) (O, error)
	// Plan receives only what this target's own Observe returned.
	Plan(desired *DesiredState, observed O) TargetPlan
	Apply(ctx context.Context, action Action) error
}

// Typed adapts a TypedTarget to Target. The adapter checks, once for every
// target, that the observation Plan receives is one its own Observe made;
// anything else becomes a plan error naming the target instead of a failed
// type assertion inside it. Capabilities of the typed target (Waiter,
// StorageReporter, HealthReporter, io.Closer) are found with As, and
// ActionValidator is forwarded so plan validation sees it.
func Typed[O any](t TypedTarget[O]) Target { return &typed[O]{t: t} }

type typed[O any] struct{ t TypedTarget[O] }

type observation[O any] struct {
	by    *typed[O]
	value O
}

func (o *observation[O]) observedBy() Target {
	if o == nil || o.by == nil {
		return nil
	}
	return o.by
}

func (a *typed[O]) Name() string { return a.t.Name() }

func (a *typed[O]) Observe(ctx context.Context, d *DesiredState) (Observation, error) {
	o, err := a.t.Observe(ctx, d)
	if err != nil {
		return nil, err
	}
	if isNil(o) {
		return nil, fmt.Errorf("target %s observed nothing at %s and reported no error", a.t.Name(), d.Revision)
	}
	return &observation[O]{by: a, value: o}, nil
}

func (a *typed[O]) Plan(d *DesiredState, obs Observation) TargetPlan {
	o, ok := obs.(*observation[O])
	if !ok || o == nil || o.by != a {
		from := "nothing"
		if obs != nil && obs.observedBy() != nil {
			from = "target " + obs.observedBy().Name()
		}
		return TargetPlan{Errors: []ModelError{{Target: a.t.Name(),
			Message: fmt.Sprintf("plan at %s got an observation made by %s, not by this target; nothing planned", d.Revision, from)}}}
	}
	return a.t.Plan(d, o.value)
}

func (a *typed[O]) Apply(ctx context.Context, action Action) error { return a.t.Apply(ctx, action) }

// ValidateAction forwards to the typed target when it validates actions,
// so callers that look for ActionValidator on a Target keep finding it.
func (a *typed[O]) ValidateAction(action Action) error {
	if v, ok := any(a.t).(ActionValidator); ok {
		return v.ValidateAction(action)
	}
	return nil
}

// Unwrap returns the typed target, for As.
func (a *typed[O]) Unwrap() any { return a.t }

// isNil reports whether v is nil or a nil pointer, map, slice, channel,
// function or interface: an observation nobody could read.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Chan, reflect.Func, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

// As finds capability C on t or on what t wraps (a target made by Typed,
// or any wrapper with an Unwrap() any method), as errors.As does for
// errors. Callers ask for what they need instead of casting to a concrete
// target type.
func As[C any](t Target) (C, bool) {
	var v any = t
	for v != nil {
		if c, ok := v.(C); ok {
			return c, true
		}
		u, ok := v.(interface{ Unwrap() any })
		if !ok {
			break
		}
		v = u.Unwrap()
	}
	var zero C
	return zero, false
}

// ActionValidator is implemented by targets that can check an action
// before any action of the plan is applied.
type ActionValidator interface {
	ValidateAction(Action) error
}

// Waiter is implemented by targets whose writes take effect some time
// after they are applied, such as an InferenceService rolling out a new
// revision. `apply --wait` uses it to wait for what a run applied.
type Waiter interface {
	// WaitFor names the resource an applied action of this target leaves
	// to settle, e.g. "InferenceService prod/churn", or "" when the action
	// needs no wait. Actions naming the same resource are waited for once.
	WaitFor(a Action) string
	// Wait blocks until the resource WaitFor named for a is healthy, turns
	// unhealthy for good, or timeout passes; the error says which.
	Wait(ctx context.Context, a Action, timeout time.Duration) error
}

// StorageReporter is implemented by targets that keep model artifacts in
// storage. `modelsync cost` prices what it reports.
type StorageReporter interface {
	// StorageUsage observes the desired models' artifacts and plans their
	// changes: what each model stores, object by object, with the storage
	// class the plan would move it to. Models that cannot be observed or
	// planned are returned as errors; the rest are reported.
	StorageUsage(ctx context.Context, desired *DesiredState) ([]ArtifactUsage, []ModelError, error)
}

// ArtifactUsage is what one model stores, object by object.
type ArtifactUsage struct {
	Model   string         `json:"model"`
	Objects []StoredObject `json:"objects"`
}

// StoredObject is one stored object and the model versions that use it.
type StoredObject struct {
	Versions []int  `json:"versions"`
	Bucket   string `json:"bucket"`
	Key      string `json:"key"`
	Class    string `json:"class"`
	Bytes    int64  `json:"bytes"`
	// Since is when the object entered its class.
	Since time.Time `json:"since,omitzero"`
	// Planned is the class a plan moves the object to, PlannedDelete, or ""
	// for no change.
	Planned string `json:"planned,omitempty"`
}

// PlannedDelete is StoredObject.Planned for an object the plan deletes.
const PlannedDelete = "(deleted)"

// HealthReporter is implemented by targets that serve models and can say
// how a model serves in one environment.
type HealthReporter interface {
	// ServingHealth judges what serves model in env: Status is one of
	// Healthy, Progressing, Degraded, Suspended or Missing (Argo CD's
	// vocabulary); CanaryStep describes canary progress when env has a
	// canary. An error means the health could not be read.
	ServingHealth(ctx context.Context, model string, env DesiredEnv) (ServingHealth, error)
}

// ServingHealth is how a model serves in one environment.
type ServingHealth struct {
	Status     string `json:"status"`
	Reason     string `json:"reason,omitempty"`
	Message    string `json:"message,omitempty"`
	CanaryStep string `json:"canaryStep,omitempty"`
	// Traffic is the live traffic split, when the target knows it, so a
	// status can show a canary's live share without parsing CanaryStep.
	Traffic []TrafficSplit `json:"traffic,omitempty"`
}

// TrafficSplit is the share of traffic one serving revision receives.
type TrafficSplit struct {
	Revision string `json:"revision"`
	// Tag is the target's name for the revision's role, e.g. "prev".
	Tag     string `json:"tag,omitempty"`
	Percent int    `json:"percent"`
	// Latest marks the newest revision, which carries a canary.
	Latest bool `json:"latest,omitempty"`
}
