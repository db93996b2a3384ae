package policy

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/redact"
	"github.com/modelsync/modelsync/reconciler"
)

// Input is the document the rules judge: one pull request with everything
// known about it. policy/input.schema.json describes it field by field and
// policy/testdata/input.example.json is a complete example.
type Input struct {
	PR      PullRequest `json:"pr"`
	Reviews []Review    `json:"reviews"`
	Plan    PlanDoc     `json:"plan"`
	// Models holds the manifests the pull request touches, keyed by model
	// name. Unchanged models may be included (Before equal to After); the
	// rules skip them.
	Models map[string]ModelDoc `json:"models"`
	// Registry holds MLflow facts for the models in Plan.Changes.
	Registry map[string]RegistryModel `json:"registry"`
	// Releases holds the release tag each model would move between.
	Releases map[string]ReleaseChange `json:"releases"`
	// ConfigChanges lists what the pull request changes in modelsync.yaml,
	// per environment it touches (BuildConfigChanges).
	ConfigChanges []ConfigChange `json:"config_changes"`
	// ManifestErrors lists the problems of manifests on the head that the
	// pull request introduces or leaves in files it touches
	// (BuildManifestErrors). A broken manifest is no model in Models.
	ManifestErrors []ManifestError `json:"manifest_errors"`
	// Security holds the scan records of the versions Plan.Changes moves,
	// keyed by model (policy/security.go).
	Security map[string]SecurityModel `json:"security"`
	// RegistryConfigured is false when no model registry was available to
	// supply Registry, so rules that need its facts can say that they
	// cannot judge rather than that the registry lacks a fact.
	RegistryConfigured bool `json:"registry_configured"`
	// Policy is filled by Evaluate with the revision of the rules used.
	Policy PolicyInfo `json:"policy"`
	// Now is the evaluation time; time.now_ns() in the rules returns it.
	Now time.Time `json:"now"`
}

// PullRequest is what GitHub says about the pull request.
type PullRequest struct {
	Number       int      `json:"number"`
	Author       string   `json:"author"`
	Base         GitRef   `json:"base"`
	Head         GitRef   `json:"head"`
	Labels       []string `json:"labels"`
	ChangedFiles []string `json:"changed_files"`
}

// GitRef is a branch and the commit it pointed at.
type GitRef struct {
	Ref string `json:"ref"`
	SHA string `json:"sha"`
}

// Review is one pull request review as GitHub lists it. State is one of
// APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED, PENDING.
type Review struct {
	User        string    `json:"user"`
	State       string    `json:"state"`
	SubmittedAt time.Time `json:"submitted_at"`
	// CommitID is the head commit the review was made on.
	CommitID string `json:"commit_id"`
}

// PlanDoc is the reconciler's plan in its JSON form plus Changes, the
// per-model, per-environment summary the rules mostly read.
type PlanDoc struct {
	Revision string                  `json:"revision"`
	Targets  []string                `json:"targets"`
	Summary  reconciler.Summary      `json:"summary"`
	Actions  []reconciler.Action     `json:"actions"`
	Errors   []reconciler.ModelError `json:"errors"`
	// Warnings are environments left out of the desired state (a release
	// environment without a release tag).
	Warnings []reconciler.ModelError `json:"warnings"`
	Waits    []reconciler.Wait       `json:"waits"`
	// Held are actions a wait keeps back; they run when it ends.
	Held []reconciler.Action `json:"held"`
	// UnobservedTargets could not be read: the plan says nothing about them.
	UnobservedTargets []string `json:"unobservedTargets"`
	Changes           []Change `json:"changes"`
}

// NewPlanDoc builds the plan section of the input. p may be nil when no
// plan could be made; the sections are then empty lists.
func NewPlanDoc(p *reconciler.Plan, changes []Change) PlanDoc {
	d := PlanDoc{
		Targets: []string{}, Actions: []reconciler.Action{}, Errors: []reconciler.ModelError{}, Warnings: []reconciler.ModelError{},
		Waits: []reconciler.Wait{}, Held: []reconciler.Action{}, UnobservedTargets: []string{}, Changes: nonNil(changes),
	}
	if p != nil {
		d.Revision = p.Revision()
		d.Targets = nonNil(p.Targets())
		d.Summary = p.Summary()
		d.Actions = nonNil(p.Actions())
		d.Errors = nonNil(p.Errors())
		d.Warnings = nonNil(p.Warnings())
		d.Waits = nonNil(p.Waits())
		d.Held = nonNil(p.Held())
		d.UnobservedTargets = nonNil(p.Unobserved())
	}
	return d
}

// Change says what a pull request does to one model in one environment.
// Versions are MLflow version numbers; 0 means none: FromVersion 0 is a
// model new to the environment, ToVersion 0 one leaving it, CanaryFrom or
// CanaryTo 0 no canary. A Change whose versions are all equal changes only
// the rollout (canary weight or steps).
type Change struct {
	Model       string `json:"model"`
	Environment string `json:"environment"`
	FromVersion int    `json:"from_version"`
	ToVersion   int    `json:"to_version"`
	CanaryFrom  int    `json:"canary_from"`
	CanaryTo    int    `json:"canary_to"`
	// Analysis is the canary's analysis after the pull request with
	// modelsync.yaml's defaults merged in, as the controller will run it;
	// absent without one.
	Analysis *AnalysisDoc `json:"analysis,omitempty"`
}

// AnalysisDoc is a canary analysis in the form rules read: durations in
// seconds, defaults filled, the provider's address without credentials.
type AnalysisDoc struct {
	Provider            string  `json:"provider"`
	IntervalSeconds     float64 `json:"interval_seconds"`
	StepDurationSeconds float64 `json:"step_duration_seconds"`
	MinSamples          int     `json:"min_samples"`
	// MaxDurationSeconds is 0 when the analysis has no time limit.
	MaxDurationSeconds float64 `json:"max_duration_seconds"`
	Alpha              float64 `json:"alpha"`
	OnInconclusive     string  `json:"on_inconclusive"`
	// Metrics are the tested metrics; Guards the names of threshold guards.
	Metrics []AnalysisMetricDoc `json:"metrics"`
	Guards  []string            `json:"guards"`
	// PostPromotionSeconds is 0 without a post-promotion check.
	PostPromotionSeconds float64 `json:"post_promotion_seconds"`
}

// AnalysisMetricDoc is one tested metric.
type AnalysisMetricDoc struct {
	Name   string  `json:"name"`
	Kind   string  `json:"kind"`
	Margin float64 `json:"margin"`
	// GuardMaxRate is 0 without a guard.
	GuardMaxRate float64 `json:"guard_max_rate"`
}

// NewAnalysisDoc describes a resolved analysis (nil gives nil).
func NewAnalysisDoc(a *manifest.Analysis) *AnalysisDoc {
	if a == nil {
		return nil
	}
	d := &AnalysisDoc{
		IntervalSeconds:     a.Interval.Seconds(),
		StepDurationSeconds: a.StepDuration.Seconds(),
		MinSamples:          a.MinSamples,
		MaxDurationSeconds:  a.MaxDuration.Seconds(),
		Alpha:               a.Alpha,
		OnInconclusive:      a.OnInconclusive,
		Metrics:             []AnalysisMetricDoc{},
		Guards:              []string{},
	}
	if a.Provider != nil {
		d.Provider = redact.URL(a.Provider.Address)
	}
	for _, m := range a.Metrics {
		if m.IsGuard() {
			d.Guards = append(d.Guards, m.Name)
			continue
		}
		md := AnalysisMetricDoc{Name: m.MetricName(), Kind: m.Kind, Margin: m.Margin}
		if m.Guard != nil {
			md.GuardMaxRate = m.Guard.MaxRate
		}
		d.Metrics = append(d.Metrics, md)
	}
	if a.PostPromotion != nil {
		d.PostPromotionSeconds = a.PostPromotion.Duration.Seconds()
	}
	return d
}

// BuildChanges compares two desired states (the base branch's and the
// pull request's) and lists every model and environment whose version,
// canary version, canary weight or canary steps differ, sorted by model and
// then environment. Either state may be nil, meaning no models. A model
// broken in the pull request's state is left out: the reconciler keeps
// what it runs, so nothing changes for it (its errors are reported, and
// denied, on their own).
func BuildChanges(before, after *reconciler.DesiredState) []Change {
	type key struct{ model, env string }
	envs := map[key][2]*reconciler.DesiredEnv{}
	collect := func(d *reconciler.DesiredState, side int) {
		if d == nil {
			return
		}
		for mi := range d.Models {
			m := &d.Models[mi]
			for ei := range m.Environments {
				e := &m.Environments[ei]
				k := key{m.Name, e.Environment}
				pair := envs[k]
				pair[side] = e
				envs[k] = pair
			}
		}
	}
	collect(before, 0)
	collect(after, 1)
	changes := []Change{}
	for k, pair := range envs {
		if after != nil && after.Broken(k.model) {
			continue
		}
		b, a := pair[0], pair[1]
		if sameRollout(b, a) {
			continue
		}
		c := Change{Model: k.model, Environment: k.env}
		if b != nil {
			c.FromVersion = b.Version
			if b.Canary != nil {
				c.CanaryFrom = b.Canary.Version
			}
		}
		if a != nil {
			c.ToVersion = a.Version
			if a.Canary != nil {
				c.CanaryTo = a.Canary.Version
				c.Analysis = NewAnalysisDoc(a.Canary.Analysis)
			}
		}
		changes = append(changes, c)
	}
	slices.SortFunc(changes, func(x, y Change) int {
		if c := strings.Compare(x.Model, y.Model); c != 0 {
			return c
		}
		return strings.Compare(x.Environment, y.Environment)
	})
	return changes
}

func sameRollout(b, a *reconciler.DesiredEnv) bool {
	if b == nil || a == nil {
		return b == a
	}
	if b.Version != a.Version {
		return false
	}
	if b.Canary == nil || a.Canary == nil {
		return b.Canary == a.Canary
	}
	// An edit of the analysis alone (a looser alpha, a wider margin) is a
	// change the rules must see.
	return b.Canary.Version == a.Canary.Version &&
		b.Canary.Weight == a.Canary.Weight &&
		slices.Equal(b.Canary.Steps, a.Canary.Steps) &&
		reflect.DeepEqual(NewAnalysisDoc(b.Canary.Analysis), NewAnalysisDoc(a.Canary.Analysis))
}

// ModelDoc is one model's manifest before and after the pull request.
type ModelDoc struct {
	// Before is the manifest on the base branch; nil for a new model.
	Before *manifest.Model `json:"before"`
	// After is the manifest on the pull request's head; nil when deleted.
	After *manifest.Model `json:"after"`
	// File is the manifest's path in the repository.
	File string `json:"file"`
	// Lines maps field paths (e.g. "spec.environments.prod.version",
	// "spec.dependencies[0]") to their line in File, so violations can be
	// annotated on the line they concern.
	Lines map[string]int `json:"lines"`
}

// BuildModels builds input.models from the repository loaded at the base
// and at the head. names limits it to those models; nil means every model
// valid on either side. Lines come from the head, or from the base for a
// deleted model. Models that fail validation are absent from a
// manifest.Repo, so they appear as null on that side.
func BuildModels(before, after *manifest.Repo, names []string) map[string]ModelDoc {
	if names == nil {
		set := map[string]bool{}
		for _, r := range []*manifest.Repo{before, after} {
			if r != nil {
				for n := range r.Models {
					set[n] = true
				}
			}
		}
		names = slices.Sorted(maps.Keys(set))
	}
	docs := make(map[string]ModelDoc, len(names))
	for _, n := range names {
		d := ModelDoc{File: manifest.ModelPath(n), Lines: map[string]int{}}
		if before != nil {
			d.Before = before.Models[n]
		}
		var pos manifest.Positions
		if after != nil {
			d.After = after.Models[n]
			pos = after.Lines[n]
		}
		if d.After == nil && before != nil {
			pos = before.Lines[n]
		}
		for field, p := range pos.All() {
			d.Lines[field] = p.Line
		}
		docs[n] = d
	}
	return docs
}

// RegistryModel is what the MLflow registry knows about one model.
type RegistryModel struct {
	// Versions is keyed by the decimal version number.
	Versions map[string]RegistryVersion `json:"versions"`
	// ProdVersion is the version serving prod now; 0 when none.
	ProdVersion int `json:"prod_version"`
}

// RegistryVersion is what the registry knows about one model version.
type RegistryVersion struct {
	// RunMetrics are the latest metrics of the run that produced the
	// version. Non-finite values (NaN, ±Inf) cannot be encoded: leave them
	// out, and the rules treat the metric as missing.
	RunMetrics map[string]float64 `json:"run_metrics"`
	Tags       map[string]string  `json:"tags"`
	CreatedAt  time.Time          `json:"created_at"`
	Aliases    []string           `json:"aliases"`
	// StagingHours is how long the version has run in staging in total,
	// from SoakHours over its audit tags.
	// Nil (absent from the JSON) means the version never ran in staging,
	// which the promotion rule reports as such rather than as 0 hours.
	StagingHours *float64 `json:"staging_hours,omitempty"`
}

// Audit tags the reconciler sets on a model version when it enters and
// leaves an environment's alias, e.g. modelsync.audit.staging.since.
const (
	AuditTagPrefix      = "modelsync.audit."
	AuditSinceTagSuffix = ".since"
	AuditUntilTagSuffix = ".until"
)

// SoakHours derives how long a version ran in env from its audit tags:
// from <prefix><env>.since (RFC 3339) to <prefix><env>.until, or to now
// while it is still there. ok is false when the version never entered env
// or a tag does not parse; the promotion rule then treats it as never
// having run there.
func SoakHours(tags map[string]string, env string, now time.Time) (hours float64, ok bool) {
	since, err := time.Parse(time.RFC3339, tags[AuditTagPrefix+env+AuditSinceTagSuffix])
	if err != nil {
		return 0, false
	}
	end := now
	if u, present := tags[AuditTagPrefix+env+AuditUntilTagSuffix]; present {
		if end, err = time.Parse(time.RFC3339, u); err != nil {
			return 0, false
		}
	}
	if end.Before(since) {
		return 0, false
	}
	return end.Sub(since).Hours(), true
}

// ReleaseChange is a model's release tag before and after the pull
// request, e.g. "v1.2.0" to "v1.3.0". Empty means no release.
type ReleaseChange struct {
	Before string `json:"before,omitempty"`
	After  string `json:"after,omitempty"`
}

// PolicyInfo names the rules that judged the input.
type PolicyInfo struct {
	Revision string `json:"revision"`
	Source   string `json:"source"`
}

// normalized returns a copy in which nil lists and maps are empty, so the
// rules see [] and {} rather than null and the gate package's input checks
// only fire for input that is really missing.
func (in *Input) normalized() Input {
	out := *in
	out.PR.Labels = nonNil(out.PR.Labels)
	out.PR.ChangedFiles = nonNil(out.PR.ChangedFiles)
	out.Reviews = nonNil(out.Reviews)
	out.Plan.Targets = nonNil(out.Plan.Targets)
	out.Plan.Actions = nonNil(out.Plan.Actions)
	out.Plan.Errors = nonNil(out.Plan.Errors)
	out.Plan.Warnings = nonNil(out.Plan.Warnings)
	out.Plan.UnobservedTargets = nonNil(out.Plan.UnobservedTargets)
	out.Plan.Waits = nonNil(out.Plan.Waits)
	out.Plan.Held = nonNil(out.Plan.Held)
	out.Plan.Changes = nonNil(out.Plan.Changes)
	out.Models = nonNilMap(out.Models)
	out.Registry = nonNilMap(out.Registry)
	out.Security = nonNilMap(out.Security)
	out.Releases = nonNilMap(out.Releases)
	out.ConfigChanges = nonNil(out.ConfigChanges)
	out.ManifestErrors = nonNil(out.ManifestErrors)
	return out
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func nonNilMap[V any](m map[string]V) map[string]V {
	if m == nil {
		return map[string]V{}
	}
	return m
}
