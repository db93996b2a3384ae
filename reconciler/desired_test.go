package reconciler

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/modelsync/modelsync/internal/release"
)

// memSnapshot is a repository history held in memory: commits are file
// trees, branches and tags point at commits.
type memSnapshot struct {
	commits  map[string]fstest.MapFS
	branches map[string]string
	tags     []release.Tag
}

func (s *memSnapshot) BranchHead(b string) (Commit, error) {
	h, ok := s.branches[b]
	if !ok {
		return Commit{}, fmt.Errorf("no branch %q", b)
	}
	return s.Commit(h)
}

func (s *memSnapshot) Commit(h string) (Commit, error) {
	if _, ok := s.commits[h]; !ok {
		return Commit{}, fmt.Errorf("no commit %s", h)
	}
	return Commit{Hash: h, AuthorName: "Alice", AuthorEmail: "alice@example.com", When: time.Unix(0, 0).UTC()}, nil
}

func (s *memSnapshot) Tree(h string) (fs.FS, error) {
	t, ok := s.commits[h]
	if !ok {
		return nil, fmt.Errorf("no commit %s", h)
	}
	return t, nil
}

func (s *memSnapshot) ReleaseTags() []release.Tag { return s.tags }

func (s *memSnapshot) tag(t *testing.T, name, commit string) {
	tag, err := release.ParseTag(name)
	if err != nil {
		t.Fatal(err)
	}
	tag.Commit = commit
	s.tags = append(s.tags, tag)
}

const cfgYAML = `apiVersion: modelsync.dev/v1alpha1
kind: Repository
environments:
  - {name: dev, namespace: ns-dev, source: main}
  - {name: staging, namespace: ns-staging, source: main, alias: stage}
  - {name: prod, namespace: ns-prod, source: releases}
`

func modelYAML(name string, envs string) string {
	return `apiVersion: modelsync.dev/v1alpha1
kind: Model
metadata: {name: ` + name + `}
spec:
  owners: [alice]
  environments:
` + envs + `
  serving: {path: serving, modelFormat: sklearn}
`
}

func tree(models map[string]string) fstest.MapFS {
	t := fstest.MapFS{"modelsync.yaml": {Data: []byte(cfgYAML)}}
	for name, body := range models {
		t["models/"+name+"/model.yaml"] = &fstest.MapFile{Data: []byte(body)}
		t["models/"+name+"/serving/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources: []\n")}
	}
	return t
}

func TestComputeDesiredBranchesAndReleases(t *testing.T) {
	s := &memSnapshot{commits: map[string]fstest.MapFS{
		"c1": tree(map[string]string{"churn": modelYAML("churn", "    dev: {version: 2}\n    prod: {version: 1}")}),
		"c2": tree(map[string]string{"churn": modelYAML("churn", "    dev: {version: 3}\n    staging: {version: 2}\n    prod: {version: 2, canary: {version: 3, steps: [10, 50]}}")}),
		"c3": tree(map[string]string{
			"churn": modelYAML("churn", "    dev: {version: 4}\n    staging: {version: 3}\n    prod: {version: 9}"),
			"fraud": modelYAML("fraud", "    dev: {version: 1}"),
		}),
	}, branches: map[string]string{"main": "c3"}}
	s.tag(t, "churn/v1.0.0", "c1")
	s.tag(t, "churn/v1.1.0", "c2")
	s.tag(t, "churn/v1.2.0-rc.1", "c3") // pre-releases are not for prod

	d, err := ComputeDesired(s, "main")
	if err != nil {
		t.Fatal(err)
	}
	if d.Revision != "main@sha1:c3" || len(d.Errors) != 0 {
		t.Fatalf("revision %s errors %v", d.Revision, d.Errors)
	}
	var got []string
	for _, m := range d.Models {
		for _, e := range m.Environments {
			got = append(got, m.Name+" "+e.String()+" "+e.Alias+" "+e.Revision)
		}
	}
	want := []string{
		"churn dev: v4 dev main@sha1:c3",
		"churn staging: v3 stage main@sha1:c3",
		"churn prod: v2 (canary v3 at 10%) prod churn/v1.1.0@sha1:c2",
		"fraud dev: v1 dev main@sha1:c3",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("desired:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	churn, _ := d.Model("churn")
	prod, _ := churn.Env("prod")
	if prod.Canary.Alias != "prod-canary" || prod.Release != "churn/v1.1.0" {
		t.Fatalf("prod canary alias %q release %q", prod.Canary.Alias, prod.Release)
	}
	if vs := churn.ReferencedVersions(); fmt.Sprint(vs) != "[2 3 4]" {
		t.Fatalf("referenced versions %v", vs)
	}
	if _, err := fs.Stat(prod.Files, "models/churn/model.yaml"); err != nil {
		t.Fatalf("prod files are not the release commit's tree: %v", err)
	}
}

// A model's environments are held in a slice of exactly the configured
// environments: the desired state stays live in the controller, and the
// slices append grew took 1 KiB for three environments of 232 bytes.
func TestComputeDesiredSizesEnvironmentSlices(t *testing.T) {
	s := &memSnapshot{commits: map[string]fstest.MapFS{
		"c1": tree(map[string]string{
			"churn": modelYAML("churn", "    dev: {version: 2}\n    staging: {version: 1}\n    prod: {version: 1}"),
			"fraud": modelYAML("fraud", "    dev: {version: 1}"),
		}),
	}, branches: map[string]string{"main": "c1"}}
	s.tag(t, "churn/v1.0.0", "c1")
	d, err := ComputeDesired(s, "main")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range d.Models {
		if cap(m.Environments) != 3 {
			t.Errorf("%s: %d environments in a slice of %d, want 3 (the configured environments)", m.Name, len(m.Environments), cap(m.Environments))
		}
	}
}

func TestComputeDesiredPrereleaseEnvironment(t *testing.T) {
	cfg := strings.Replace(cfgYAML, "source: releases}", "source: releases, prerelease: true}", 1)
	c := tree(map[string]string{"churn": modelYAML("churn", "    prod: {version: 7}")})
	c["modelsync.yaml"] = &fstest.MapFile{Data: []byte(cfg)}
	s := &memSnapshot{commits: map[string]fstest.MapFS{"c1": c}, branches: map[string]string{"main": "c1"}}
	s.tag(t, "churn/v2.0.0-rc.1", "c1")
	d, err := ComputeDesired(s, "main")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := d.Model("churn")
	if e, ok := m.Env("prod"); !ok || e.Version != 7 || e.Release != "churn/v2.0.0-rc.1" {
		t.Fatalf("prerelease environment did not take the rc tag: %+v", m.Environments)
	}
}

// A model broken at its source is an error for that model alone.
func TestComputeDesiredBrokenModelBlocksOnlyItself(t *testing.T) {
	s := &memSnapshot{commits: map[string]fstest.MapFS{
		"c1": tree(map[string]string{"churn": modelYAML("churn", "    prod: {version: one}")}),
		"c2": tree(map[string]string{
			"churn": modelYAML("churn", "    dev: {version: 1}"),
			"fraud": modelYAML("fraud", "    dev: {version: zero}"),
		}),
	}, branches: map[string]string{"main": "c2"}}
	s.tag(t, "churn/v1.0.0", "c1")
	d, err := ComputeDesired(s, "main")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Models) != 0 {
		t.Fatalf("churn has a broken release and fraud a broken manifest; neither may be planned: %+v", d.Models)
	}
	if len(d.Errors) != 2 {
		t.Fatalf("errors = %v", d.Errors)
	}
	if e := d.Errors[0]; e.Model != "churn" || e.Environment != "prod" || !strings.Contains(e.Message, "release churn/v1.0.0 is invalid") || !strings.Contains(e.Message, "models/churn/model.yaml:7:21: spec.environments.prod.version: expected an integer") {
		t.Fatalf("churn error = %+v", e)
	}
	if e := d.Errors[1]; e.Model != "fraud" || !strings.Contains(e.Message, "spec.environments.dev.version") {
		t.Fatalf("fraud error = %+v", e)
	}
}

func TestComputeDesiredBrokenConfigFailsWhole(t *testing.T) {
	c := tree(nil)
	c["modelsync.yaml"] = &fstest.MapFile{Data: []byte("apiVersion: modelsync.dev/v1alpha1\nkind: Repository\nenvironments: []\n")}
	s := &memSnapshot{commits: map[string]fstest.MapFS{"c1": c}, branches: map[string]string{"main": "c1"}}
	_, err := ComputeDesired(s, "main")
	var ce *ConfigError
	if err == nil || !strings.Contains(err.Error(), "modelsync.yaml:3:1: environments: expected at least one environment") {
		t.Fatalf("err = %v", err)
	}
	if !asConfigError(err, &ce) || ce.Revision != "main@sha1:c1" {
		t.Fatalf("not a ConfigError: %T", err)
	}
}

func asConfigError(err error, target **ConfigError) bool {
	ce, ok := err.(*ConfigError)
	if ok {
		*target = ce
	}
	return ok
}

func TestRevision(t *testing.T) {
	h := strings.Repeat("ab", 20)
	cases := map[[2]string]string{
		{"main", h}:                   "main@sha1:" + h,
		{"refs/heads/main", h}:        "main@sha1:" + h,
		{"churn/v2.1.0", h}:           "churn/v2.1.0@sha1:" + h,
		{"refs/tags/churn/v2.1.0", h}: "churn/v2.1.0@sha1:" + h,
		{"", h}:                       "sha1:" + h,
	}
	for in, want := range cases {
		if got := Revision(in[0], in[1]); got != want {
			t.Errorf("Revision(%q) = %q, want %q", in[0], got, want)
		}
	}
}

// An environment following a branch that is neither the config branch nor
// in allowedSources makes the whole configuration invalid: prod must not
// follow a branch anyone can push to unreviewed (issue 13).
func TestComputeDesiredRefusesUnlistedSourceBranch(t *testing.T) {
	c := tree(nil)
	c["modelsync.yaml"] = &fstest.MapFile{Data: []byte(strings.Replace(cfgYAML, "source: releases}", "source: hotfix}", 1))}
	s := &memSnapshot{commits: map[string]fstest.MapFS{"c1": c}, branches: map[string]string{"main": "c1", "hotfix": "c1"}}
	_, err := ComputeDesired(s, "main")
	var ce *ConfigError
	if !asConfigError(err, &ce) || !strings.Contains(err.Error(), `environments[2].source: expected "releases" or "main" (the branch modelsync.yaml is read from), got "hotfix"`) {
		t.Fatalf("err = %v", err)
	}
	c["modelsync.yaml"] = &fstest.MapFile{Data: []byte(strings.Replace(cfgYAML, "source: releases}", "source: hotfix}", 1) + "allowedSources: [main, hotfix]\n")}
	if _, err := ComputeDesired(s, "main"); err != nil {
		t.Fatalf("listed branch: %v", err)
	}
}

// issue 14, point 6: a release environment a model declares but cannot
// get (no release tag, only pre-releases, or no tags at all as in a clone
// without tags) is a warning naming model, environment and what was
// expected, in the desired state, the plan, and their text.
func TestComputeDesiredWarnsOfMissingReleases(t *testing.T) {
	c := tree(map[string]string{
		"churn":    modelYAML("churn", "    dev: {version: 2}\n    prod: {version: 1}"),
		"fraud":    modelYAML("fraud", "    dev: {version: 1}\n    prod: {version: 1}"),
		"llama":    modelYAML("llama", "    dev: {version: 3}\n    prod: {version: 2}"),
		"dev-only": modelYAML("dev-only", "    dev: {version: 1}"),
	})
	s := &memSnapshot{commits: map[string]fstest.MapFS{"c1": c}, branches: map[string]string{"main": "c1"}}

	// No tags at all: every model declaring prod is named, with the hint.
	d, err := ComputeDesired(s, "main")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Warnings) != 3 || len(d.Errors) != 0 {
		t.Fatalf("warnings %v errors %v, want churn, fraud and llama prod", d.Warnings, d.Errors)
	}
	for _, w := range d.Warnings {
		if w.Environment != "prod" || !strings.Contains(w.Message, "expected a release tag "+w.Model+"/vX.Y.Z") || !strings.Contains(w.Message, "no release tags at all") || !strings.Contains(w.Message, "git fetch --tags") {
			t.Errorf("warning %v", w)
		}
	}
	if m, _ := d.Model("churn"); len(m.Environments) != 1 {
		t.Errorf("churn's other environments: %+v", m.Environments)
	}

	// With tags: only the unreleased model and the one with only
	// pre-releases are named; a model that does not declare prod is not.
	s.tag(t, "churn/v1.0.0", "c1")
	s.tag(t, "llama/v1.0.0-rc.1", "c1")
	d, err = ComputeDesired(s, "main")
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(d.Warnings)
	if len(d.Warnings) != 2 || !strings.Contains(got, "fraud/prod: left out: prod follows releases and the model has no release yet; expected a release tag fraud/vX.Y.Z") ||
		!strings.Contains(got, "llama/prod: left out: prod follows releases and takes no pre-release") {
		t.Fatalf("warnings %s", got)
	}
	if sub := d.Subset("fraud"); len(sub.Warnings) != 1 || sub.Warnings[0].Model != "fraud" {
		t.Errorf("subset warnings %v", sub.Warnings)
	}

	var text strings.Builder
	if err := WriteDesiredText(&text, d); err != nil || !strings.Contains(text.String(), "Warnings (environments left out") || !strings.Contains(text.String(), "! fraud/prod: left out") {
		t.Errorf("desired text:\n%s", text.String())
	}
	p, err := BuildPlan(context.Background(), d, nil)
	if err != nil {
		t.Fatal(err)
	}
	text.Reset()
	if err := WritePlanText(&text, p); err != nil || !strings.Contains(text.String(), "! llama/prod: left out") {
		t.Errorf("plan text:\n%s", text.String())
	}
	b, err := json.Marshal(p)
	if err != nil || !strings.Contains(string(b), `"warnings":[{"model":"fraud","environment":"prod","message":"left out:`) {
		t.Errorf("plan JSON: %s", b)
	}
	if b, _ := json.Marshal(d); !strings.Contains(string(b), `"warnings":[{"model":"fraud","environment":"prod"`) {
		t.Errorf("desired JSON: %s", b)
	}
}
