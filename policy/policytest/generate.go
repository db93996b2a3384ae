// Package policytest generates policy inputs of any size for benchmarks and
// load tests: a models repository of n models of which a pull request
// changes some, with registry facts, reviews and release tags that make
// most changes pass and a few fail in known ways.
package policytest

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/policy"
	"github.com/modelsync/modelsync/reconciler"
)

// Spec sizes a generated input.
type Spec struct {
	// Models is the number of models in the repository.
	Models int
	// Changed is how many of them the pull request changes; every tenth
	// changed model breaks one rule (see BrokenRules).
	Changed int
}

// BrokenRules lists, in order, the rule each tenth changed model breaks.
var BrokenRules = []string{
	"performance.metric_missing",
	"dependencies.unpinned",
	"promotion.staging_too_short",
	"canary.first_step_too_large",
	"compliance.tag_missing",
}

// Expected counts the denies Generate's input yields under the default
// rules.
func (s Spec) Expected() (denies int) { return (s.Changed + 9) / 10 }

const headSHA = "c0ffee0000000000000000000000000000000001"

// Generate builds the input. It is deterministic: the same Spec always
// gives the same document.
func Generate(s Spec) *policy.Input {
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	in := &policy.Input{
		PR: policy.PullRequest{
			Number: 7, Author: "alice",
			Base:   policy.GitRef{Ref: "main", SHA: "ba5e000000000000000000000000000000000001"},
			Head:   policy.GitRef{Ref: "bulk-promotion", SHA: headSHA},
			Labels: []string{"promotion"},
		},
		Reviews: []policy.Review{
			{User: "owner-0", State: "APPROVED", SubmittedAt: now.Add(-2 * time.Hour), CommitID: headSHA},
			{User: "carol", State: "COMMENTED", SubmittedAt: now.Add(-90 * time.Minute), CommitID: headSHA},
			{User: "carol", State: "APPROVED", SubmittedAt: now.Add(-time.Hour), CommitID: headSHA},
		},
		Models:   map[string]policy.ModelDoc{},
		Registry: map[string]policy.RegistryModel{},
		Security: map[string]policy.SecurityModel{},
		Releases: map[string]policy.ReleaseChange{},
		// The pull request changes no configuration and breaks no manifest.
		ConfigChanges:      []policy.ConfigChange{},
		ManifestErrors:     []policy.ManifestError{},
		RegistryConfigured: true,
		Now:                now,
	}
	var before, after reconciler.DesiredState
	for i := range s.Models {
		name := fmt.Sprintf("model-%04d", i)
		base := model(name)
		// A separate copy, as two loads of the repository would give.
		same := model(name)
		doc := policy.ModelDoc{Before: base, After: same, File: manifest.ModelPath(name), Lines: lines()}
		before.Models = append(before.Models, desired(base))
		if i < s.Changed {
			head := change(base, i)
			doc.After = head
			in.PR.ChangedFiles = append(in.PR.ChangedFiles, doc.File)
			in.Registry[name] = registry(i)
			in.Security[name] = security()
			in.Releases[name] = policy.ReleaseChange{Before: "v1.4.0", After: fmt.Sprintf("v1.5.%d", i)}
			after.Models = append(after.Models, desired(head))
		} else {
			after.Models = append(after.Models, desired(base))
		}
		in.Models[name] = doc
	}
	in.Plan = policy.NewPlanDoc(nil, policy.BuildChanges(&before, &after))
	in.Plan.Revision = "bulk-promotion@sha1:" + headSHA
	in.Plan.Targets = []string{"mlflow", "kserve", "storage"}
	for _, c := range in.Plan.Changes {
		to := fmt.Sprint(c.ToVersion)
		if c.CanaryTo != 0 {
			to += fmt.Sprintf(" + canary %d", c.CanaryTo)
		}
		in.Plan.Actions = append(in.Plan.Actions,
			reconciler.Action{Target: "mlflow", Kind: "alias", Model: c.Model, Environment: c.Environment,
				Resource: "alias " + c.Environment, Op: reconciler.OpUpdate, From: fmt.Sprint(c.FromVersion), To: to, Revision: in.Plan.Revision},
			reconciler.Action{Target: "kserve", Kind: "InferenceService", Model: c.Model, Environment: c.Environment,
				Resource: "ml-" + c.Environment + "/" + c.Model, Op: reconciler.OpUpdate, To: to, Revision: in.Plan.Revision})
		in.Plan.Summary.Update += 2
	}
	return in
}

func model(name string) *manifest.Model {
	return &manifest.Model{
		APIVersion: manifest.APIVersion, Kind: manifest.KindModel,
		Metadata: manifest.Metadata{Name: name, Labels: map[string]string{"team": "growth"}},
		Spec: manifest.ModelSpec{
			Team:   "growth",
			Owners: []string{"owner-0", "owner-1"},
			Environments: map[string]manifest.EnvironmentSpec{
				"dev":     {Version: 6},
				"staging": {Version: 5},
				"prod":    {Version: 4},
			},
			Serving: manifest.Serving{Path: "serving", ModelFormat: "sklearn"},
			ModelCard: manifest.ModelCard{
				Description: "Scores " + name + " events for the growth team.",
				IntendedUse: "Ranking, with a person reviewing the top of the list.",
				Datasets: []manifest.Dataset{
					{Name: "events", Version: "2025-12-31"},
					{Name: "accounts", Version: "2026-01-15"},
				},
				Metrics:     map[string]float64{"accuracy": 0.9, "f1": 0.85},
				Limitations: []string{"Not calibrated for accounts younger than 14 days."},
				License:     "Proprietary",
				Contact:     "growth-ml@example.com",
			},
			Compliance:   []string{"GDPR", "SOC2"},
			Dependencies: []string{"scikit-learn==1.5.2", "numpy==1.26.4", "pandas==2.2.3", "joblib==1.4.2", "scipy==1.14.1"},
		},
	}
}

// change promotes version 5 to prod: as a canary for even i, as the
// stable version for odd i. Every tenth model breaks one rule.
func change(base *manifest.Model, i int) *manifest.Model {
	m := *base
	m.Spec.Environments = maps.Clone(base.Spec.Environments)
	m.Spec.Dependencies = slices.Clone(base.Spec.Dependencies)
	m.Spec.Compliance = slices.Clone(base.Spec.Compliance)
	prod := m.Spec.Environments["prod"]
	if i%2 == 0 {
		prod.Canary = &manifest.Canary{Version: 5, Steps: []int{10, 25, 50}, Analysis: &manifest.Analysis{
			Metrics: []manifest.AnalysisMetric{{Name: "error-rate", Query: "sum(rate(errors[5m]))"}},
		}}
	} else {
		prod.Version = 5
	}
	if i%10 == 0 {
		switch BrokenRules[(i/10)%len(BrokenRules)] {
		case "dependencies.unpinned":
			m.Spec.Dependencies[2] = "pandas>=2"
		case "canary.first_step_too_large":
			prod.Canary.Steps = []int{60, 80}
		case "compliance.tag_missing":
			m.Spec.Compliance = []string{"GDPR"}
		}
	}
	m.Spec.Environments["prod"] = prod
	return &m
}

// security gives every version a clean scan record, so the security rules
// judge them as they would a scanned repository.
func security() policy.SecurityModel {
	s := policy.SecurityModel{Versions: map[string]policy.SecurityVersion{}}
	for v := 1; v <= 6; v++ {
		d := fmt.Sprintf("sha256:%064d", v)
		s.Versions[fmt.Sprint(v)] = policy.SecurityVersion{Result: "safe", Digest: d, Scanner: "modelsync-scan/1",
			ScannedAt: time.Date(2026, 1, v, 1, 0, 0, 0, time.UTC), DangerousGlobals: []string{}, UnknownGlobals: []string{},
			Dependencies: &policy.SecurityDependencies{Vulnerabilities: []policy.SecurityVulnerability{}, Unpinned: []string{}, ExpiredAllows: []string{}},
			Approved:     map[string]string{"staging": d}}
	}
	return s
}

func registry(i int) policy.RegistryModel {
	r := policy.RegistryModel{ProdVersion: 4, Versions: map[string]policy.RegistryVersion{}}
	for v := 1; v <= 6; v++ {
		rv := policy.RegistryVersion{
			RunMetrics:   map[string]float64{"accuracy": 0.9, "precision": 0.88, "recall": 0.86, "f1": 0.87},
			Tags:         map[string]string{"mlflow.source.type": "JOB", "git_sha": fmt.Sprintf("%040d", v)},
			CreatedAt:    time.Date(2026, 1, v, 0, 0, 0, 0, time.UTC),
			StagingHours: hours(72),
		}
		switch v {
		case 4:
			rv.Aliases = []string{"prod"}
		case 5:
			rv.Aliases = []string{"staging"}
			rv.RunMetrics["precision"] = 0.875
		}
		r.Versions[fmt.Sprint(v)] = rv
	}
	if i%10 == 0 {
		v5 := r.Versions["5"]
		switch BrokenRules[(i/10)%len(BrokenRules)] {
		case "performance.metric_missing":
			delete(v5.RunMetrics, "recall")
		case "promotion.staging_too_short":
			v5.StagingHours = hours(3)
		}
		r.Versions["5"] = v5
	}
	return r
}

func desired(m *manifest.Model) reconciler.DesiredModel {
	d := reconciler.DesiredModel{Name: m.Metadata.Name, RegisteredModel: m.Metadata.Name, Owners: m.Spec.Owners}
	for _, env := range []string{"dev", "staging", "prod"} {
		spec := m.Spec.Environments[env]
		e := reconciler.DesiredEnv{Environment: env, Version: spec.Version}
		if c := spec.Canary; c != nil {
			e.Canary = &reconciler.DesiredCanary{Version: c.Version, Steps: c.Steps, Weight: c.Steps[0]}
		}
		d.Environments = append(d.Environments, e)
	}
	return d
}

func lines() map[string]int {
	fields := []string{
		"apiVersion", "kind", "metadata", "metadata.name", "spec", "spec.team", "spec.owners",
		"spec.environments", "spec.environments.dev", "spec.environments.dev.version",
		"spec.environments.staging", "spec.environments.staging.version",
		"spec.environments.prod", "spec.environments.prod.version", "spec.environments.prod.canary",
		"spec.environments.prod.canary.version", "spec.environments.prod.canary.steps",
		"spec.serving", "spec.modelCard", "spec.modelCard.description", "spec.compliance",
		"spec.dependencies", "spec.dependencies[0]", "spec.dependencies[1]", "spec.dependencies[2]",
	}
	out := make(map[string]int, len(fields))
	for i, f := range fields {
		out[f] = i + 1
	}
	return out
}

func hours(h float64) *float64 { return &h }
