// Package reconcilertest provides an in-memory target for unit tests of
// code built on the reconciler: the planner's invariants, the controller's
// partitioning of a plan and the status it derives. The real targets are
// tested against real servers in their own packages; this one exists so
// that logic above them can be tested without any server.
package reconcilertest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/reconciler"
)

// Action kinds the fake plans. They mirror the shapes of the real targets:
// an environment-level change (an alias), a model-level record of where
// versions run (the registry's audit tags) and a delete of a model that
// left Git (KServe's prune).
const (
	KindSetVersion = "set-version"
	KindRecord     = "record-environments"
	KindDelete     = "delete"
)

// Target is an in-memory reconciler.Target. Live state is a version per
// "model/environment" and, per model, a record of which environments run
// which version. It is safe for concurrent use. The embedded
// reconciler.Target is the typed adapter over this fake; the rest are the
// controls a test turns.
type Target struct {
	reconciler.Target
	*state
}

// state is the fake's live state and the failures tests inject.
type state struct {
	name string

	mu sync.Mutex
	// live maps "model/environment" to the version running there.
	live map[string]int
	// records maps a model to its model-level record ("dev=v1,prod=v2").
	records map[string]string
	// waits maps "model/environment" to a reason the target must wait.
	waits map[string]string
	// failApply maps an action ID to the error Apply returns for it.
	failApply map[string]error
	// broken maps a model to a planning error.
	broken     map[string]string
	observeErr error
	applied    []reconciler.Action
	observed   []*reconciler.DesiredState
}

// New returns an empty target with the given name.
func New(name string) *Target {
	st := &state{name: name, live: map[string]int{}, records: map[string]string{}, waits: map[string]string{},
		failApply: map[string]error{}, broken: map[string]string{}}
	return &Target{Target: reconciler.Typed[*observation](typedFake{st}), state: st}
}

// typedFake implements reconciler.TypedTarget over the state.
type typedFake struct{ *state }

// SetLive records that version runs for model in env (0 removes it).
func (t *state) SetLive(model, env string, version int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if version == 0 {
		delete(t.live, model+"/"+env)
		return
	}
	t.live[model+"/"+env] = version
}

// Live returns the version running for model in env (0: none).
func (t *state) Live(model, env string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.live[model+"/"+env]
}

// Models lists the models with anything live, sorted.
func (t *state) Models() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	set := map[string]bool{}
	for k := range t.live {
		m, _, _ := strings.Cut(k, "/")
		set[m] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// Record returns the model-level record of model.
func (t *state) Record(model string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.records[model]
}

// SetRecord sets the model-level record of model, as a previous apply
// would have left it ("dev=v1,prod=v2"; "" removes it).
func (t *state) SetRecord(model, record string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if record == "" {
		delete(t.records, model)
		return
	}
	t.records[model] = record
}

// Wait makes the target ask model in env to wait for reason ("" ends it).
func (t *state) Wait(model, env, reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if reason == "" {
		delete(t.waits, model+"/"+env)
		return
	}
	t.waits[model+"/"+env] = reason
}

// FailApply makes Apply of the action with this ID return err (nil clears).
func (t *state) FailApply(actionID string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err == nil {
		delete(t.failApply, actionID)
		return
	}
	t.failApply[actionID] = err
}

// Break makes Plan report model as unplannable with message ("" clears).
func (t *state) Break(model, message string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if message == "" {
		delete(t.broken, model)
		return
	}
	t.broken[model] = message
}

// FailObserve makes Observe fail with err (nil clears).
func (t *state) FailObserve(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.observeErr = err
}

// Applied returns the actions applied so far, in order.
func (t *state) Applied() []reconciler.Action {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.applied)
}

// Observations returns the desired states Observe was called with.
func (t *state) Observations() []*reconciler.DesiredState {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.observed)
}

// Name implements reconciler.TypedTarget.
func (t typedFake) Name() string { return t.name }

// observation is a copy of live state taken by Observe.
type observation struct {
	live    map[string]int
	records map[string]string
	waits   map[string]string
	broken  map[string]string
}

// Observe implements reconciler.TypedTarget.
func (t typedFake) Observe(_ context.Context, d *reconciler.DesiredState) (*observation, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.observed = append(t.observed, d)
	if t.observeErr != nil {
		return nil, t.observeErr
	}
	return &observation{live: maps.Clone(t.live), records: maps.Clone(t.records), waits: maps.Clone(t.waits), broken: maps.Clone(t.broken)}, nil
}

type payload struct {
	Key     string `json:"key"`
	Version int    `json:"version,omitempty"`
	Record  string `json:"record,omitempty"`
}

// Plan implements reconciler.TypedTarget. Per model: one set-version action
// (resource "alias <alias>", as the MLflow target names it) per
// environment whose live version differs (none while it waits), one delete
// per live environment the model left, and one model-level record action
// when the environments' versions changed. With pruning on and a state
// covering the whole repository, every live model the state does not list
// is deleted; a partial state never touches models outside its scope.
func (t typedFake) Plan(d *reconciler.DesiredState, obs *observation) reconciler.TargetPlan {
	var tp reconciler.TargetPlan
	liveEnvs := map[string][]string{} // model -> environments with something live
	for k := range obs.live {
		m, e, _ := strings.Cut(k, "/")
		liveEnvs[m] = append(liveEnvs[m], e)
	}
	for i := range d.Models {
		m := &d.Models[i]
		if m.Suspended {
			continue
		}
		if msg, bad := obs.broken[m.Name]; bad {
			tp.Errors = append(tp.Errors, reconciler.ModelError{Model: m.Name, Target: t.name, Message: msg})
			continue
		}
		var record []string
		for _, e := range m.Environments {
			key := m.Name + "/" + e.Environment
			record = append(record, e.Environment+"=v"+strconv.Itoa(e.Version))
			if reason, ok := obs.waits[key]; ok {
				tp.Waits = append(tp.Waits, reconciler.Wait{Model: m.Name, Environment: e.Environment, Target: t.name, Reason: reason})
				continue
			}
			live, has := obs.live[key]
			if has && live == e.Version {
				continue
			}
			a := reconciler.Action{Target: t.name, Kind: KindSetVersion, Model: m.Name, Environment: e.Environment,
				Resource: "alias " + e.Alias, Op: reconciler.OpCreate, To: "v" + strconv.Itoa(e.Version),
				Revision: e.Revision, Payload: mustJSON(payload{Key: key, Version: e.Version})}
			if has {
				a.Op, a.From = reconciler.OpUpdate, "v"+strconv.Itoa(live)
			}
			tp.Actions = append(tp.Actions, a)
		}
		envs := liveEnvs[m.Name]
		sort.Strings(envs)
		for _, e := range envs {
			if _, ok := m.Env(e); !ok {
				tp.Actions = append(tp.Actions, deleteAction(t.name, m.Name, e, obs.live[m.Name+"/"+e], d.Revision))
			}
		}
		if rec := strings.Join(record, ","); rec != obs.records[m.Name] {
			tp.Actions = append(tp.Actions, reconciler.Action{Target: t.name, Kind: KindRecord, Model: m.Name,
				Resource: "record", Op: reconciler.OpUpdate, From: obs.records[m.Name], To: rec, Revision: d.Revision,
				Payload: mustJSON(payload{Key: m.Name, Record: rec})})
		}
	}
	if d.Config == nil || !d.Config.Prune {
		return tp
	}
	for _, m := range slices.Sorted(maps.Keys(liveEnvs)) {
		if _, inGit := d.Model(m); inGit || !d.Covers(m) || d.Broken(m) {
			continue
		}
		envs := liveEnvs[m]
		sort.Strings(envs)
		for _, e := range envs {
			tp.Actions = append(tp.Actions, deleteAction(t.name, m, e, obs.live[m+"/"+e], d.Revision))
		}
	}
	return tp
}

func deleteAction(target, model, env string, version int, revision string) reconciler.Action {
	return reconciler.Action{Target: target, Kind: KindDelete, Model: model, Environment: env,
		Resource: "alias " + env, Op: reconciler.OpDelete, From: "v" + strconv.Itoa(version), Revision: revision,
		Payload: mustJSON(payload{Key: model + "/" + env})}
}

// Apply implements reconciler.TypedTarget.
func (t typedFake) Apply(_ context.Context, a reconciler.Action) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.failApply[a.ID()]; err != nil {
		return err
	}
	var p payload
	if err := json.Unmarshal(a.Payload, &p); err != nil {
		return fmt.Errorf("action %s: payload: %w", a.ID(), err)
	}
	switch a.Kind {
	case KindSetVersion:
		t.live[p.Key] = p.Version
	case KindDelete:
		delete(t.live, p.Key)
	case KindRecord:
		t.records[p.Key] = p.Record
	default:
		return fmt.Errorf("action %s: unknown kind %q", a.ID(), a.Kind)
	}
	t.applied = append(t.applied, a)
	return nil
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain structs are marshalled
	}
	return b
}

// Env returns a desired environment running version, with a revision
// naming the environment so tests can tell sources apart.
func Env(name string, version int) reconciler.DesiredEnv {
	return reconciler.DesiredEnv{Environment: name, Namespace: "models-" + name, Alias: name, Version: version,
		Revision: "main@sha1:" + name}
}

// Model returns a desired model running in envs.
func Model(name string, envs ...reconciler.DesiredEnv) reconciler.DesiredModel {
	return reconciler.DesiredModel{Name: name, RegisteredModel: name, Environments: envs}
}

// Whole returns a desired state computed, as far as the targets can tell,
// from the whole repository: models not listed have left Git.
func Whole(cfg *manifest.RepoConfig, models ...reconciler.DesiredModel) *reconciler.DesiredState {
	slices.SortFunc(models, func(a, b reconciler.DesiredModel) int { return strings.Compare(a.Name, b.Name) })
	return &reconciler.DesiredState{Revision: "main@sha1:test", Config: cfg, Models: models, Scope: reconciler.WholeRepository()}
}
