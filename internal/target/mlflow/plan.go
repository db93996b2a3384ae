package mlflow

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/reconciler"
)

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

// Plan implements reconciler.TypedTarget.
func (t *Target) Plan(d *reconciler.DesiredState, obs *observation) reconciler.TargetPlan {
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
		return nil, fmt.Errorf("registered model %q %w", m.RegisteredModel, ErrModelMissing)
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
		acts = append(acts, planStages(d, m, live, places)...)
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
			if mv.Tags[mlflowclient.TagEnvironments] != envs {
				// The version moved: record where it runs now and which
				// revision, by whom, put it there (the last environment in
				// promotion order decides, so the value is deterministic).
				last := ps[len(ps)-1]
				set[mlflowclient.TagEnvironments] = envs
				set[mlflowclient.TagRevision] = last.revision
				set[mlflowclient.TagDeployedBy] = last.author
				residency(set, &del, mv.Tags, envNames(ps), now)
			}
			if mv.Tags[mlflowclient.TagLifecycle] == mlflowclient.LifecycleArchived {
				del = append(del, mlflowclient.TagLifecycle)
				if _, ok := mv.Tags[mlflowclient.TagArchivedAt]; ok {
					del = append(del, mlflowclient.TagArchivedAt)
				}
				add(reconciler.Action{Kind: KindUnarchive, Resource: versionResource(v), Op: reconciler.OpUpdate,
					From: mlflowclient.LifecycleArchived, To: "active (" + envs + ")", Revision: ps[len(ps)-1].revision,
					Payload: payload{Model: m.RegisteredModel, Version: v, DeleteTag: del, LastTag: mlflowclient.TagLifecycle}.raw()})
				del = nil
			}
			if len(set) > 0 {
				add(reconciler.Action{Kind: KindAuditTags, Resource: versionResource(v), Op: reconciler.OpUpdate,
					From: orNone(mv.Tags[mlflowclient.TagEnvironments]), To: envs, Revision: set[mlflowclient.TagRevision],
					Payload: payload{Model: m.RegisteredModel, Version: v, SetTags: set, DeleteTag: del, LastTag: mlflowclient.TagEnvironments}.raw()})
			}
			continue
		}
		// Unreferenced: archive what modelsync once deployed, or every
		// version of a retired model. A freshly registered version that no
		// environment has used yet is left alone.
		deployedBefore := mv.Tags[mlflowclient.TagRevision] != "" || mv.Tags[mlflowclient.TagEnvironments] != ""
		retired := len(m.Environments) == 0
		// In stage mode planStages moves an unreferenced version out of
		// Staging or Production whoever put it there (by hand, or before
		// modelsync was adopted); it is archived here too, so both modes
		// record an archived version the same way (lifecycle and
		// archived_at, which the artifact lifecycle reads).
		staged := (mode == manifest.ModeStages || mode == manifest.ModeBoth) && heldStage(mv.CurrentStage)
		if mv.Tags[mlflowclient.TagLifecycle] == mlflowclient.LifecycleArchived || !(deployedBefore || retired || staged) {
			if mv.Tags[mlflowclient.TagLifecycle] == mlflowclient.LifecycleArchived && mv.Tags[mlflowclient.TagEnvironments] != "" {
				// An earlier pass archived it but stopped before clearing the
				// environments it left; finish that.
				add(reconciler.Action{Kind: KindAuditTags, Resource: versionResource(v), Op: reconciler.OpUpdate,
					From: mv.Tags[mlflowclient.TagEnvironments], To: "none",
					Payload: payload{Model: m.RegisteredModel, Version: v, DeleteTag: []string{mlflowclient.TagEnvironments}}.raw()})
			}
			continue
		}
		set := map[string]string{mlflowclient.TagLifecycle: mlflowclient.LifecycleArchived, mlflowclient.TagArchivedAt: now.Format(time.RFC3339)}
		var del []string
		last := mlflowclient.TagLifecycle
		if mv.Tags[mlflowclient.TagEnvironments] != "" {
			// Clearing the environments comes last; until then the next
			// plan finishes an archive that stopped halfway.
			del, last = []string{mlflowclient.TagEnvironments}, mlflowclient.TagEnvironments
			residency(set, &del, mv.Tags, nil, now)
		}
		add(reconciler.Action{Kind: KindArchive, Resource: versionResource(v), Op: reconciler.OpUpdate,
			From: "active", To: mlflowclient.LifecycleArchived, Reason: "no environment references it",
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
	for _, p := range strings.Split(tags[mlflowclient.TagEnvironments], ",") {
		if p != "" && !strings.HasSuffix(p, ":canary") {
			before = append(before, p)
		}
	}
	for _, env := range now {
		since, until := mlflowclient.TagAuditPrefix+env+".since", mlflowclient.TagAuditPrefix+env+".until"
		if !slices.Contains(before, env) || tags[since] == "" {
			set[since] = stamp
			if _, ok := tags[until]; ok {
				*del = append(*del, until)
			}
		}
	}
	for _, env := range before {
		if !slices.Contains(now, env) {
			set[mlflowclient.TagAuditPrefix+env+".until"] = stamp
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
				a.Drift = hasPlacement(live.versions[desired].Tags[mlflowclient.TagEnvironments], aliasPlacement(d, alias))
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
//
// A move is drift, as for aliases, when Git did not change: the version's
// audit tag already records every environment that runs it (its stage was
// changed by hand), or an unreferenced version holds a stage although
// modelsync never placed it anywhere.
func planStages(d *reconciler.DesiredState, m *reconciler.DesiredModel, live *liveModel, places map[int][]placement) []reconciler.Action {
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
		recorded := live.versions[v].Tags[mlflowclient.TagEnvironments]
		drift := false
		if !used {
			// Leave untouched versions alone; archive only those that held
			// a stage modelsync manages.
			if !heldStage(cur) {
				continue
			}
			desired = mlflowclient.StageArchived
			drift = recorded == ""
		} else {
			drift = true
			for _, p := range places[v] {
				drift = drift && hasPlacement(recorded, p.String())
			}
		}
		if cur == desired {
			continue
		}
		a := reconciler.Action{Kind: KindStage, Resource: versionResource(v), Op: reconciler.OpUpdate,
			From: cur, To: desired, Drift: drift, Payload: payload{Model: m.RegisteredModel, Version: v, Stage: desired}.raw()}
		if drift {
			a.Reason = "stage changed outside Git"
		}
		acts = append(acts, a)
	}
	return acts
}

// heldStage reports the stages modelsync manages (and archives from).
func heldStage(s string) bool {
	return s == mlflowclient.StageStaging || s == mlflowclient.StageProduction
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

func versionLabel(v int) string { return "v" + strconv.Itoa(v) }

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
