// Package mlflow is the MLflow registry target: it keeps each
// environment's alias (or stage) on the version Git names, archives versions
// no environment uses any more, and writes audit tags that say which Git
// revision put a version where.
package mlflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/reconciler"
)

// Name is the target's name in plans.
const Name = "mlflow"

// Tags modelsync writes on model versions. Nothing outside this prefix is
// ever written or removed.
const (
	TagPrefix       = "modelsync."
	TagRevision     = "modelsync.revision"
	TagEnvironments = "modelsync.environments"
	TagDeployedBy   = "modelsync.deployed_by"
	TagLifecycle    = "modelsync.lifecycle"
	TagArchivedAt   = "modelsync.archived_at"

	LifecycleArchived = "archived"

	// TagAuditPrefix starts the per-environment residency tags
	// modelsync.audit.<env>.since and .until (RFC 3339), which the promotion
	// policy reads to know how long a version ran in staging.
	TagAuditPrefix = "modelsync.audit."
)

// Action kinds this target plans.
const (
	KindSetAlias    = "set-alias"
	KindDeleteAlias = "delete-alias"
	KindStage       = "transition-stage"
	KindAuditTags   = "tag-version"
	KindArchive     = "archive-version"
	KindUnarchive   = "unarchive-version"
)

// Target implements reconciler.Target for an MLflow registry.
type Target struct {
	client *mlflowclient.Client
	now    func() time.Time
	// pageSize bounds search pages; version searches batch many models.
	pageSize int
	// perModelSearch is set once the server refused a multi-model version
	// search (MLflow 2.x), so later observations do not ask again.
	perModelSearch atomic.Bool
}

// Option configures a Target.
type Option func(*Target)

// WithClock sets the clock used for archived_at timestamps.
func WithClock(now func() time.Time) Option { return func(t *Target) { t.now = now } }

// New returns the MLflow target.
func New(client *mlflowclient.Client, opts ...Option) *Target {
	t := &Target{client: client, now: time.Now, pageSize: 1000}
	for _, o := range opts {
		o(t)
	}
	return t
}

// Name implements reconciler.Target.
func (t *Target) Name() string { return Name }

// observed is the live registry state of the desired models.
type observed struct {
	models map[string]*liveModel // by registered model name
}

type liveModel struct {
	exists   bool
	aliases  map[string]int
	versions map[int]mlflowclient.ModelVersion
}

// versionsPerSearch bounds the names in one `name IN (...)` filter, keeping
// the query string well under common URL limits.
const versionsPerSearch = 50

// Observe reads every desired model's aliases and versions: the registered
// models come from paged searches (aliases included), and versions from
// searches that cover many models each, so a quiet registry costs
// O(models / page size) requests, not one per version.
func (t *Target) Observe(ctx context.Context, d *reconciler.DesiredState) (reconciler.Observation, error) {
	obs := &observed{models: map[string]*liveModel{}}
	var names []string
	for _, m := range d.Models {
		if m.Suspended {
			continue
		}
		obs.models[m.RegisteredModel] = &liveModel{aliases: map[string]int{}, versions: map[int]mlflowclient.ModelVersion{}}
		names = append(names, m.RegisteredModel)
	}
	if len(names) == 0 {
		return obs, nil
	}
	sort.Strings(names)
	if len(names) <= 3 {
		// A handful of models: direct reads beat listing a shared registry.
		for _, n := range names {
			rm, err := t.client.GetRegisteredModel(ctx, n)
			if mlflowclient.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			obs.record(*rm)
		}
	} else {
		for rm, err := range t.client.RegisteredModels(ctx, mlflowclient.SearchOptions{PageSize: t.pageSize}) {
			if err != nil {
				return nil, err
			}
			obs.record(rm)
		}
	}
	var existing []string
	for _, n := range names {
		if obs.models[n].exists {
			existing = append(existing, n)
		}
	}
	for len(existing) > 0 {
		batch := existing
		if t.perModelSearch.Load() {
			batch = existing[:1]
		} else if len(batch) > versionsPerSearch {
			batch = batch[:versionsPerSearch]
		}
		err := t.searchVersions(ctx, obs, batch)
		if err != nil && len(batch) > 1 && mlflowclient.IsInvalidParameter(err) {
			// MLflow 2.x accepts IN only for run_id; search model by model
			// from now on.
			t.perModelSearch.Store(true)
			continue
		}
		if err != nil {
			return nil, err
		}
		existing = existing[len(batch):]
	}
	return obs, nil
}

func (t *Target) searchVersions(ctx context.Context, obs *observed, names []string) error {
	filter := nameIn(names)
	if len(names) == 1 {
		filter = "name = " + quote(names[0])
	}
	for mv, err := range t.client.ModelVersions(ctx, mlflowclient.SearchOptions{Filter: filter, PageSize: t.pageSize}) {
		if err != nil {
			return err
		}
		if lm, ok := obs.models[mv.Name]; ok {
			lm.versions[mv.Version] = mv
		}
	}
	return nil
}

func (o *observed) record(rm mlflowclient.RegisteredModel) {
	lm, ok := o.models[rm.Name]
	if !ok {
		return
	}
	lm.exists = true
	for _, a := range rm.Aliases {
		lm.aliases[a.Alias] = a.Version
	}
}

// nameIn builds an MLflow filter matching any of names.
func nameIn(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = quote(n)
	}
	return "name IN (" + strings.Join(quoted, ", ") + ")"
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `\'`) + "'" }

// payload is the action's own data; Apply needs nothing else.
type payload struct {
	Model   string `json:"model"`
	Alias   string `json:"alias,omitempty"`
	Version int    `json:"version,omitempty"`
	// Current is the alias's version when planned (0: unset), so applying
	// needs no read unless a write's outcome is unknown.
	Current   int               `json:"current,omitempty"`
	Stage     string            `json:"stage,omitempty"`
	SetTags   map[string]string `json:"setTags,omitempty"`
	DeleteTag []string          `json:"deleteTags,omitempty"`
	// LastTag is written after the other tags: the key the next plan reads
	// to tell whether this change finished (see mlflow.WriteVersionTags).
	LastTag string `json:"lastTag,omitempty"`
}

func (p payload) raw() json.RawMessage {
	b, err := json.Marshal(p)
	if err != nil {
		panic(err) // a struct of strings, ints and maps always marshals
	}
	return b
}

// Plan implements reconciler.Target.
func (t *Target) Plan(d *reconciler.DesiredState, o reconciler.Observation) reconciler.TargetPlan {
	obs := o.(*observed)
	var tp reconciler.TargetPlan
	mode := manifest.ModeAliases
	if d.Config != nil {
		mode = d.Config.RegistryMode()
	}
	now := t.now().UTC()
	for i := range d.Models {
		m := &d.Models[i]
		if m.Suspended {
			continue
		}
		acts, err := planModel(d, m, obs.models[m.RegisteredModel], mode, now)
		if err != nil {
			tp.Errors = append(tp.Errors, reconciler.ModelError{Model: m.Name, Target: Name, Message: err.Error()})
			continue
		}
		tp.Actions = append(tp.Actions, acts...)
	}
	return tp
}

// placement is where a version runs, e.g. "prod" or "prod:canary".
type placement struct {
	env      string
	canary   bool
	revision string
	author   string
}

func (p placement) String() string {
	if p.canary {
		return p.env + ":canary"
	}
	return p.env
}

func planModel(d *reconciler.DesiredState, m *reconciler.DesiredModel, live *liveModel, mode string, now time.Time) ([]reconciler.Action, error) {
	if live == nil || !live.exists {
		return nil, fmt.Errorf("registered model %q does not exist in MLflow", m.RegisteredModel)
	}
	// Every version Git references must be usable before anything moves.
	places := map[int][]placement{}
	for _, e := range m.Environments {
		author := e.Commit.AuthorName
		if e.Commit.AuthorEmail != "" {
			author += " <" + e.Commit.AuthorEmail + ">"
		}
		places[e.Version] = append(places[e.Version], placement{env: e.Environment, revision: e.Revision, author: author})
		if e.Canary != nil {
			places[e.Canary.Version] = append(places[e.Canary.Version], placement{env: e.Environment, canary: true, revision: e.Revision, author: author})
		}
	}
	var problems []string
	for _, v := range sortedKeys(places) {
		mv, ok := live.versions[v]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("version %d (wanted in %s) does not exist", v, joinPlaces(places[v])))
		case mv.Status == mlflowclient.StatusFailedRegistration:
			problems = append(problems, fmt.Sprintf("version %d (wanted in %s) failed registration: %s", v, joinPlaces(places[v]), mv.StatusMessage))
		case mv.Status == mlflowclient.StatusPendingRegistration:
			problems = append(problems, fmt.Sprintf("version %d (wanted in %s) is still pending registration", v, joinPlaces(places[v])))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("registered model %q: %s", m.RegisteredModel, strings.Join(problems, "; "))
	}

	var acts []reconciler.Action
	add := func(a reconciler.Action) {
		a.Target, a.Model = Name, m.Name
		acts = append(acts, a)
	}
	if mode == manifest.ModeAliases || mode == manifest.ModeBoth {
		acts = append(acts, planAliases(d, m, live)...)
	}
	if mode == manifest.ModeStages || mode == manifest.ModeBoth {
		acts = append(acts, planStages(d, m, live)...)
	}
	for i := range acts {
		acts[i].Target, acts[i].Model = Name, m.Name
	}

	// Audit tags and lifecycle, version by version in number order.
	for _, v := range sortedKeys(live.versions) {
		mv := live.versions[v]
		ps := places[v]
		if len(ps) > 0 {
			sort.Slice(ps, func(i, j int) bool {
				return envRank(d, ps[i].env) < envRank(d, ps[j].env) || (ps[i].env == ps[j].env && !ps[i].canary && ps[j].canary)
			})
			envs := joinPlaces(ps)
			set := map[string]string{}
			var del []string
			if mv.Tags[TagEnvironments] != envs {
				// The version moved: record where it runs now and which
				// revision, by whom, put it there (the last environment in
				// promotion order decides, so the value is deterministic).
				last := ps[len(ps)-1]
				set[TagEnvironments] = envs
				set[TagRevision] = last.revision
				set[TagDeployedBy] = last.author
				residency(set, &del, mv.Tags, envNames(ps), now)
			}
			if mv.Tags[TagLifecycle] == LifecycleArchived {
				del = append(del, TagLifecycle)
				if _, ok := mv.Tags[TagArchivedAt]; ok {
					del = append(del, TagArchivedAt)
				}
				add(reconciler.Action{Kind: KindUnarchive, Resource: versionResource(v), Op: reconciler.OpUpdate,
					From: LifecycleArchived, To: "active (" + envs + ")", Revision: ps[len(ps)-1].revision,
					Payload: payload{Model: m.RegisteredModel, Version: v, DeleteTag: del, LastTag: TagLifecycle}.raw()})
				del = nil
			}
			if len(set) > 0 {
				add(reconciler.Action{Kind: KindAuditTags, Resource: versionResource(v), Op: reconciler.OpUpdate,
					From: orNone(mv.Tags[TagEnvironments]), To: envs, Revision: set[TagRevision],
					Payload: payload{Model: m.RegisteredModel, Version: v, SetTags: set, DeleteTag: del, LastTag: TagEnvironments}.raw()})
			}
			continue
		}
		// Unreferenced: archive what modelsync once deployed, or every
		// version of a retired model. A freshly registered version that no
		// environment has used yet is left alone.
		deployedBefore := mv.Tags[TagRevision] != "" || mv.Tags[TagEnvironments] != ""
		retired := len(m.Environments) == 0
		if mv.Tags[TagLifecycle] == LifecycleArchived || !(deployedBefore || retired) {
			if mv.Tags[TagLifecycle] == LifecycleArchived && mv.Tags[TagEnvironments] != "" {
				// An earlier pass archived it but stopped before clearing the
				// environments it left; finish that.
				add(reconciler.Action{Kind: KindAuditTags, Resource: versionResource(v), Op: reconciler.OpUpdate,
					From: mv.Tags[TagEnvironments], To: "none",
					Payload: payload{Model: m.RegisteredModel, Version: v, DeleteTag: []string{TagEnvironments}}.raw()})
			}
			continue
		}
		set := map[string]string{TagLifecycle: LifecycleArchived, TagArchivedAt: now.Format(time.RFC3339)}
		var del []string
		last := TagLifecycle
		if mv.Tags[TagEnvironments] != "" {
			// Clearing the environments comes last; until then the next
			// plan finishes an archive that stopped halfway.
			del, last = []string{TagEnvironments}, TagEnvironments
			residency(set, &del, mv.Tags, nil, now)
		}
		add(reconciler.Action{Kind: KindArchive, Resource: versionResource(v), Op: reconciler.OpUpdate,
			From: "active", To: LifecycleArchived, Reason: "no environment references it",
			Payload: payload{Model: m.RegisteredModel, Version: v, SetTags: set, DeleteTag: del, LastTag: last}.raw()})
	}
	return acts, nil
}

// envNames lists the environments (not canaries) of placements.
func envNames(ps []placement) []string {
	var out []string
	for _, p := range ps {
		if !p.canary {
			out = append(out, p.env)
		}
	}
	return out
}

// residency stamps when a version entered (.since) and left (.until) each
// environment, comparing the environments it is recorded in with those it
// runs in now. Canary placements do not count as running there.
func residency(set map[string]string, del *[]string, tags map[string]string, now []string, at time.Time) {
	stamp := at.Format(time.RFC3339)
	var before []string
	for _, p := range strings.Split(tags[TagEnvironments], ",") {
		if p != "" && !strings.HasSuffix(p, ":canary") {
			before = append(before, p)
		}
	}
	for _, env := range now {
		since, until := TagAuditPrefix+env+".since", TagAuditPrefix+env+".until"
		if !slices.Contains(before, env) || tags[since] == "" {
			set[since] = stamp
			if _, ok := tags[until]; ok {
				*del = append(*del, until)
			}
		}
	}
	for _, env := range before {
		if !slices.Contains(now, env) {
			set[TagAuditPrefix+env+".until"] = stamp
		}
	}
}

// planAliases points each environment's alias (and canary alias) at the
// desired version and removes managed aliases the model no longer uses.
func planAliases(d *reconciler.DesiredState, m *reconciler.DesiredModel, live *liveModel) []reconciler.Action {
	want := map[string]int{}
	revision := map[string]string{}
	envOf := map[string]string{}
	for _, e := range m.Environments {
		want[e.Alias] = e.Version
		revision[e.Alias], envOf[e.Alias] = e.Revision, e.Environment
		if e.Canary != nil {
			want[e.Canary.Alias] = e.Canary.Version
			revision[e.Canary.Alias], envOf[e.Canary.Alias] = e.Revision, e.Environment
		}
	}
	var acts []reconciler.Action
	for _, alias := range managedAliases(d) {
		cur, has := live.aliases[alias]
		desired, wanted := want[alias]
		switch {
		case wanted && (!has || cur != desired):
			a := reconciler.Action{Kind: KindSetAlias, Environment: envOf[alias], Resource: "alias " + alias,
				Op: reconciler.OpCreate, To: versionLabel(desired), Revision: revision[alias],
				Payload: payload{Model: m.RegisteredModel, Alias: alias, Version: desired, Current: cur}.raw()}
			if has {
				a.Op, a.From = reconciler.OpUpdate, versionLabel(cur)
				// Git did not change if the desired version already records
				// this environment: someone moved the alias by hand.
				a.Drift = hasPlacement(live.versions[desired].Tags[TagEnvironments], aliasPlacement(d, alias))
				if a.Drift {
					a.Reason = "alias moved outside Git"
				}
			}
			acts = append(acts, a)
		case !wanted && has:
			acts = append(acts, reconciler.Action{Kind: KindDeleteAlias, Environment: aliasEnv(d, alias), Resource: "alias " + alias,
				Op: reconciler.OpDelete, From: versionLabel(cur), Reason: "no longer in Git",
				Payload: payload{Model: m.RegisteredModel, Alias: alias}.raw()})
		}
	}
	return acts
}

// managedAliases are the only aliases modelsync may touch: each
// environment's alias and its canary alias.
func managedAliases(d *reconciler.DesiredState) []string {
	var out []string
	if d.Config == nil {
		return out
	}
	for _, e := range d.Config.Environments {
		out = append(out, e.AliasName(), e.AliasName()+manifest.CanarySuffix)
	}
	return out
}

func aliasEnv(d *reconciler.DesiredState, alias string) string {
	if d.Config == nil {
		return ""
	}
	for _, e := range d.Config.Environments {
		if alias == e.AliasName() || alias == e.AliasName()+manifest.CanarySuffix {
			return e.Name
		}
	}
	return ""
}

func aliasPlacement(d *reconciler.DesiredState, alias string) string {
	env := aliasEnv(d, alias)
	if strings.HasSuffix(alias, manifest.CanarySuffix) && d.Config != nil {
		if e, ok := d.Config.Environment(env); !ok || e.AliasName() != alias {
			return env + ":canary"
		}
	}
	return env
}

func hasPlacement(tag, place string) bool {
	return place != "" && slices.Contains(strings.Split(tag, ","), place)
}

// Stage names modelsync writes in stage mode: the last environment in
// promotion order is Production, the one before it Staging.
func stageFor(d *reconciler.DesiredState, env string) string {
	if d.Config == nil {
		return ""
	}
	n := len(d.Config.Environments)
	switch envRank(d, env) {
	case n - 1:
		return mlflowclient.StageProduction
	case n - 2:
		return mlflowclient.StageStaging
	}
	return ""
}

// planStages gives each version the stage of the highest environment that
// runs it, None to versions only earlier environments run, and Archived to
// versions that held a stage but no environment runs any more. Versions are
// moved one by one (never archive_existing_versions), which has the same
// end state as MLflow's flag without archiving a version another
// environment still needs.
func planStages(d *reconciler.DesiredState, m *reconciler.DesiredModel, live *liveModel) []reconciler.Action {
	want := map[int]string{}
	for _, e := range m.Environments {
		s := stageFor(d, e.Environment)
		if stageRank(s) > stageRank(want[e.Version]) || want[e.Version] == "" {
			want[e.Version] = orStage(s)
		}
	}
	var acts []reconciler.Action
	for _, v := range sortedKeys(live.versions) {
		cur := orStage(live.versions[v].CurrentStage)
		desired, used := want[v]
		if !used {
			// Leave untouched versions alone; archive only those that held
			// a stage modelsync manages.
			if cur != mlflowclient.StageStaging && cur != mlflowclient.StageProduction {
				continue
			}
			desired = mlflowclient.StageArchived
		}
		if cur == desired {
			continue
		}
		acts = append(acts, reconciler.Action{Kind: KindStage, Resource: versionResource(v), Op: reconciler.OpUpdate,
			From: cur, To: desired, Payload: payload{Model: m.RegisteredModel, Version: v, Stage: desired}.raw()})
	}
	return acts
}

func stageRank(s string) int {
	switch s {
	case mlflowclient.StageProduction:
		return 3
	case mlflowclient.StageStaging:
		return 2
	case mlflowclient.StageNone, "":
		return 1
	}
	return 0
}

func orStage(s string) string {
	if s == "" {
		return mlflowclient.StageNone
	}
	return s
}

// ValidateAction implements reconciler.ActionValidator: a plan whose
// payloads do not decode writes nothing.
func (t *Target) ValidateAction(a reconciler.Action) error {
	p, err := decode(a)
	if err != nil {
		return err
	}
	switch a.Kind {
	case KindSetAlias:
		if p.Alias == "" || p.Version <= 0 {
			return errors.New("set-alias needs an alias and a version")
		}
	case KindDeleteAlias:
		if p.Alias == "" {
			return errors.New("delete-alias needs an alias")
		}
	case KindStage:
		if p.Version <= 0 || p.Stage == "" {
			return errors.New("transition-stage needs a version and a stage")
		}
	case KindAuditTags, KindArchive, KindUnarchive:
		if p.Version <= 0 {
			return errors.New(a.Kind + " needs a version")
		}
		for k := range p.SetTags {
			if !strings.HasPrefix(k, TagPrefix) {
				return fmt.Errorf("tag %q is outside the %s prefix", k, TagPrefix)
			}
		}
		for _, k := range p.DeleteTag {
			if !strings.HasPrefix(k, TagPrefix) {
				return fmt.Errorf("tag %q is outside the %s prefix", k, TagPrefix)
			}
		}
		if _, set := p.SetTags[p.LastTag]; p.LastTag != "" && !set && !slices.Contains(p.DeleteTag, p.LastTag) {
			return fmt.Errorf("last tag %q is neither set nor deleted", p.LastTag)
		}
	default:
		return fmt.Errorf("unknown action kind %q", a.Kind)
	}
	return nil
}

func decode(a reconciler.Action) (payload, error) {
	var p payload
	if err := json.Unmarshal(a.Payload, &p); err != nil {
		return p, fmt.Errorf("payload: %w", err)
	}
	if p.Model == "" {
		return p, errors.New("payload names no registered model")
	}
	return p, nil
}

// Apply implements reconciler.Target. Every write is read-compare-write in
// the client, so a retried or repeated action does not write twice.
func (t *Target) Apply(ctx context.Context, a reconciler.Action) error {
	p, err := decode(a)
	if err != nil {
		return err
	}
	where := fmt.Sprintf("model %s", p.Model)
	if a.Environment != "" {
		where += " environment " + a.Environment
	}
	if p.Version > 0 {
		where += " version " + strconv.Itoa(p.Version)
	}
	switch a.Kind {
	case KindSetAlias:
		_, err = t.client.SetAliasIfDifferent(ctx, p.Model, p.Alias, p.Current, p.Version)
	case KindDeleteAlias:
		_, err = t.client.EnsureDeleteAlias(ctx, p.Model, p.Alias)
	case KindStage:
		err = t.ensureStage(ctx, p)
	default:
		// The plan compared these tags with the live version.
		err = t.client.WriteVersionTags(ctx, p.Model, p.Version, p.SetTags, p.DeleteTag, p.LastTag)
	}
	if err != nil {
		return fmt.Errorf("%s: %s %s: %w", where, a.Kind, a.Resource, err)
	}
	return nil
}

func (t *Target) ensureStage(ctx context.Context, p payload) error {
	mv, err := t.client.GetModelVersion(ctx, p.Model, p.Version)
	if err != nil {
		return err
	}
	if orStage(mv.CurrentStage) == p.Stage {
		return nil
	}
	_, err = t.client.TransitionModelVersionStage(ctx, p.Model, p.Version, p.Stage, false)
	return err
}

func envRank(d *reconciler.DesiredState, env string) int {
	if d.Config == nil {
		return 0
	}
	for i, e := range d.Config.Environments {
		if e.Name == env {
			return i
		}
	}
	return -1
}

func joinPlaces(ps []placement) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func versionResource(v int) string { return "version " + strconv.Itoa(v) }
func versionLabel(v int) string    { return "v" + strconv.Itoa(v) }

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func sortedKeys[K int | string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
