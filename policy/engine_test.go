package policy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

func loadExample(t testing.TB) *Input {
	t.Helper()
	raw, err := os.ReadFile("testdata/input.example.json")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var in Input
	if err := dec.Decode(&in); err != nil {
		t.Fatalf("decoding the example input: %v", err)
	}
	return &in
}

func loadDefault(t testing.TB, opts ...Option) *Engine {
	t.Helper()
	e, err := Load(context.Background(), DefaultSource(), opts...)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return e
}

func ruleIDs(vs []Violation) []string {
	var ids []string
	for _, v := range vs {
		ids = append(ids, v.Rule)
	}
	return ids
}

func TestEvaluateExamplePasses(t *testing.T) {
	e := loadDefault(t)
	res, err := e.Evaluate(context.Background(), loadExample(t))
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	if !res.Passed() || len(res.Denies) != 0 {
		t.Fatalf("example should pass, got denies %+v", res.Denies)
	}
	want := Violation{
		Rule:        "performance.small_regression",
		Title:       "Small regression against prod",
		Description: "A metric that is below prod's but within the allowed regression is\nreported so reviewers see the trade-off.",
		Message:     "churn v4 (canary in prod): precision is 0.87, below prod v3 (0.88) but within the allowed 0.02",
		Model:       "churn", Environment: "prod",
		File: "models/churn/model.yaml", Line: 14,
	}
	if len(res.Warnings) != 1 || res.Warnings[0] != want {
		t.Fatalf("warnings = %+v\nwant [%+v]", res.Warnings, want)
	}
	if res.Policy.Revision != "modelsync-default" || res.Policy.Source != "embedded" {
		t.Errorf("policy = %+v", res.Policy)
	}
}

func TestEvaluateDenies(t *testing.T) {
	e := loadDefault(t)
	in := loadExample(t)
	after := *in.Models["churn"].After
	after.Spec.Compliance = []string{"GDPR"}
	after.Spec.Dependencies = []string{"scikit-learn>=1.5"}
	doc := in.Models["churn"]
	doc.After = &after
	in.Models["churn"] = doc
	in.Reviews = in.Reviews[:2] // bob only

	res, err := e.Evaluate(context.Background(), in)
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	if res.Passed() {
		t.Fatal("a PR with denies passed")
	}
	got := map[string]Violation{}
	for _, v := range res.Denies {
		got[v.Rule] = v
	}
	for rule, line := range map[string]int{"compliance.tag_missing": 36, "dependencies.unpinned": 38, "approvals.too_few": 11} {
		v, ok := got[rule]
		if !ok {
			t.Errorf("no %s deny; denies: %v", rule, ruleIDs(res.Denies))
			continue
		}
		if v.File != "models/churn/model.yaml" || v.Line != line || v.Model != "churn" || v.Title == "" || v.Description == "" {
			t.Errorf("%s: %+v; want line %d with title and description", rule, v, line)
		}
	}
	if len(res.Denies) != 3 {
		t.Errorf("denies = %v, want 3", ruleIDs(res.Denies))
	}
}

func TestEvaluateGateDeniesMissingInput(t *testing.T) {
	// A zero Input still has every section (normalized to empty), so only
	// the head SHA and author are missing; nothing is waved through.
	e := loadDefault(t)
	res, err := e.Evaluate(context.Background(), &Input{})
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	if res.Passed() {
		t.Fatal("an empty input passed")
	}
	for _, v := range res.Denies {
		if v.Rule != "gate.input_invalid" {
			t.Errorf("unexpected deny %+v", v)
		}
	}
}

func TestWithConfigOverridesOneThreshold(t *testing.T) {
	e := loadDefault(t, WithConfig(map[string]any{"performance": map[string]any{"minimum": 0.9}}))
	res, err := e.Evaluate(context.Background(), loadExample(t))
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	// precision 0.87 and recall 0.86 fall below 0.9; the other thresholds
	// keep their defaults, so the gate package finds the config complete.
	if ids := ruleIDs(res.Denies); !slices.Equal(ids, []string{"performance.metric_below_minimum", "performance.metric_below_minimum", "performance.metric_below_minimum"}) {
		t.Fatalf("denies = %v", ids)
	}
}

func TestWithConfigCannotDisableByOmission(t *testing.T) {
	e := loadDefault(t, WithConfig(map[string]any{"promotion": "off"}))
	res, _ := e.Evaluate(context.Background(), loadExample(t))
	if res.Passed() || !slices.Contains(ruleIDs(res.Denies), "gate.config_invalid") {
		t.Fatalf("a broken config passed: %+v", res)
	}
}

// failing bundles: each must fail closed with the given kind.
func TestEvaluateFailsClosed(t *testing.T) {
	heavy := `package modelsync.rules.slow

deny contains "never" if {
	some i in numbers.range(1, 100000)
	some j in numbers.range(1, 100000)
	i * j == -1
}
`
	cases := []struct {
		name    string
		rego    string
		timeout time.Duration
		mutate  func(*Input)
		kind    FailureKind
	}{
		{
			name: "builtin error",
			// Without StrictBuiltinErrors a division by zero is undefined
			// and the rule silently does not fire.
			rego: "package modelsync.rules.x\n\ndeny contains \"too many\" if 10 / count(input.reviews) > 1\n",
			kind: FailureEval,
		},
		{
			name: "conflicting values",
			rego: "package modelsync.rules.x\n\nlevel := 1 if input.pr.number > 0\n\nlevel := 2 if input.pr.number > 1\n\ndeny contains \"x\" if level > 5\n",
			kind: FailureEval,
		},
		{name: "timeout", rego: heavy, timeout: 50 * time.Millisecond, kind: FailureTimeout},
		{
			name: "undefined",
			rego: "package modelsync.rules.x\n\ndeny := {\"x\"} if input.pr.number == -1\n",
			kind: FailureUndefined,
		},
		{
			name: "ref-head object instead of set",
			rego: "package modelsync.rules.x\n\ndeny[msg] if {\n\tmsg := \"x\"\n}\n",
			kind: FailureMalformed,
		},
		{
			name: "element without msg",
			rego: "package modelsync.rules.x\n\ndeny contains {\"rule\": \"x\"} if true\n",
			kind: FailureMalformed,
		},
		{
			name: "element of the wrong type",
			rego: "package modelsync.rules.x\n\ndeny contains 42 if true\n",
			kind: FailureMalformed,
		},
		{
			name: "input that cannot be encoded",
			rego: "package modelsync.rules.x\n\ndeny contains \"x\" if false\n",
			mutate: func(in *Input) {
				in.Registry = map[string]RegistryModel{"m": {Versions: map[string]RegistryVersion{"1": {RunMetrics: map[string]float64{"f1": math.NaN()}}}}}
			},
			kind: FailureInput,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeBundle(t, map[string]string{"x.rego": tc.rego})
			e, err := Load(context.Background(), DirSource(dir), WithTimeout(tc.timeout))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			in := &Input{PR: PullRequest{Number: 3}}
			if tc.mutate != nil {
				tc.mutate(in)
			}
			res, err := e.Evaluate(context.Background(), in)
			var ee *EvalError
			if !errors.As(err, &ee) {
				t.Fatalf("err = %v, want *EvalError", err)
			}
			if ee.Kind != tc.kind {
				t.Fatalf("kind = %s, want %s (%v)", ee.Kind, tc.kind, err)
			}
			if res.Passed() || !res.Failed || res.Reason == "" {
				t.Fatalf("result does not fail closed: %+v", res)
			}
			if ee.Retryable() != (tc.kind == FailureTimeout) {
				t.Errorf("Retryable() = %v for %s", ee.Retryable(), tc.kind)
			}
			if !strings.Contains(err.Error(), "pull request #3") {
				t.Errorf("error does not name the PR: %v", err)
			}
		})
	}
}

func TestEvaluateCanceledContextFailsClosed(t *testing.T) {
	e := loadDefault(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := e.Evaluate(ctx, loadExample(t))
	var ee *EvalError
	if !errors.As(err, &ee) || ee.Kind != FailureCanceled || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want a canceled EvalError", err)
	}
	if res.Passed() {
		t.Fatal("canceled evaluation passed")
	}
}

func TestLoadRejects(t *testing.T) {
	cases := map[string]string{
		"http.send":          "package modelsync.rules.x\n\ndeny contains \"x\" if http.send({\"method\": \"GET\", \"url\": \"http://127.0.0.1:1\"}).status_code == 200\n",
		"net.lookup_ip_addr": "package modelsync.rules.x\n\ndeny contains \"x\" if count(net.lookup_ip_addr(\"localhost\")) > 0\n",
		"opa.runtime":        "package modelsync.rules.x\n\ndeny contains \"x\" if opa.runtime().env.HOME\n",
		"rego_parse_error":   "package modelsync.rules.x\n\ndeny contains \"x\" if {\n",
		"no deny rule":       "package modelsync.rules.x\n\nwarn contains \"x\" if true\n",
	}
	for want, src := range cases {
		t.Run(want, func(t *testing.T) {
			dir := writeBundle(t, map[string]string{"x.rego": src})
			_, err := Load(context.Background(), DirSource(dir))
			if err == nil {
				t.Fatal("Load accepted the bundle")
			}
			if want == "no deny rule" {
				if !errors.Is(err, ErrNoRules) {
					t.Fatalf("err = %v, want ErrNoRules", err)
				}
				return
			}
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v, want it to mention %s", err, want)
			}
		})
	}
	if _, err := Load(context.Background(), Source{}); !errors.Is(err, ErrNoSource) {
		t.Errorf("zero Source: err = %v, want ErrNoSource", err)
	}
	if _, err := Load(context.Background(), DirSource(filepath.Join(t.TempDir(), "missing"))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing dir: err = %v, want fs.ErrNotExist", err)
	}
}

// copyEmbedded returns the default bundle's files keyed by path below the
// bundle root.
func copyEmbedded(t *testing.T) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := fs.WalkDir(embeddedBundle, embeddedRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(embeddedBundle, p)
		files[strings.TrimPrefix(p, embeddedRoot+"/")] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := files[".manifest"]; !ok {
		t.Fatal("the embedded bundle lost its .manifest")
	}
	return files
}

func TestSourcesAgree(t *testing.T) {
	files := copyEmbedded(t)
	dir := t.TempDir()
	mapfs := fstest.MapFS{}
	var tgz bytes.Buffer
	gz := gzip.NewWriter(&tgz)
	tw := tar.NewWriter(gz)
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
		mapfs[path.Join("policy", name)] = &fstest.MapFile{Data: body, Mode: 0o644}
		if err := tw.WriteHeader(&tar.Header{Name: "/" + name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	mapfs["models/churn/model.yaml"] = &fstest.MapFile{Data: []byte("not policy")}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if err := os.WriteFile(tarball, tgz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	in := loadExample(t)
	in.Reviews = in.Reviews[:2] // one approval: a deny every source must find
	sources := []Source{
		DefaultSource(),
		DirSource(dir),
		TarballSource(tarball),
		FSSource(mapfs, "policy").WithRevision("main@sha1:base"),
	}
	var want []Violation
	for i, src := range sources {
		e, err := Load(context.Background(), src)
		if err != nil {
			t.Fatalf("Load(%s): %v", src, err)
		}
		res, err := e.Evaluate(context.Background(), in)
		if err != nil {
			t.Fatalf("Evaluate(%s): %v", src, err)
		}
		if i == 0 {
			want = res.Denies
			if len(want) == 0 {
				t.Fatal("no deny to compare")
			}
			continue
		}
		if !slices.Equal(res.Denies, want) {
			t.Errorf("%s: denies %+v, want %+v", src, res.Denies, want)
		}
	}
	e, _ := Load(context.Background(), sources[3])
	if got := e.Policy(); got.Revision != "main@sha1:base" || got.Source != "fs:policy" {
		t.Errorf("FSSource policy = %+v", got)
	}
}

func TestPolicyAndTimeReachTheRules(t *testing.T) {
	dir := writeBundle(t, map[string]string{"x.rego": `package modelsync.rules.x

deny contains sprintf("rev %s", [input.policy.revision]) if true

deny contains "late" if time.now_ns() > time.parse_rfc3339_ns("2030-01-01T00:00:00Z")
`})
	e, err := Load(context.Background(), DirSource(dir).WithRevision("r1"))
	if err != nil {
		t.Fatal(err)
	}
	for year, want := range map[int][]string{2026: {"rev r1"}, 2031: {"late", "rev r1"}} {
		res, err := e.Evaluate(context.Background(), &Input{Now: time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		var msgs []string
		for _, v := range res.Denies {
			msgs = append(msgs, v.Message)
			if v.Rule != "modelsync.rules.x.deny" {
				t.Errorf("string deny got rule %q", v.Rule)
			}
		}
		slices.Sort(msgs)
		if !slices.Equal(msgs, want) {
			t.Errorf("now=%d: denies %v, want %v", year, msgs, want)
		}
	}
}

func TestConcurrentEvaluate(t *testing.T) {
	e := loadDefault(t)
	base := loadExample(t)
	inputs := make([]*Input, 8)
	want := make([]Result, len(inputs))
	for i := range inputs {
		in := *base
		in.Reviews = base.Reviews[:1+i%3]
		inputs[i] = &in
		r, err := e.Evaluate(context.Background(), &in)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = r
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 8 {
		wg.Go(func() {
			for k := range 10 {
				i := (g + k) % len(inputs)
				r, err := e.Evaluate(context.Background(), inputs[i])
				if err != nil || !slices.Equal(r.Denies, want[i].Denies) || !slices.Equal(r.Warnings, want[i].Warnings) {
					errs <- "concurrent evaluation differs from sequential"
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

func TestFieldAncestors(t *testing.T) {
	got := fieldAncestors("spec.environments.prod.canary.steps[1]")
	want := []string{"spec.environments.prod.canary.steps[1]", "spec.environments.prod.canary.steps", "spec.environments.prod.canary", "spec.environments.prod", "spec.environments", "spec"}
	if !slices.Equal(got, want) {
		t.Fatalf("fieldAncestors = %v", got)
	}
	if fieldAncestors("") != nil {
		t.Fatal("empty field has ancestors")
	}
}

// TestInputValueMatchesOPAConversion checks the direct JSON-to-term
// conversion against OPA's own, on the example and on a generated-like
// input where some models are unchanged.
func TestInputValueMatchesOPAConversion(t *testing.T) {
	e := loadDefault(t)
	in := loadExample(t)
	same := *in.Models["churn"].Before
	in.Models["steady"] = ModelDoc{Before: in.Models["churn"].Before, After: &same, File: "models/steady/model.yaml"}
	in.Models["gone"] = ModelDoc{Before: in.Models["churn"].Before, File: "models/gone/model.yaml", Lines: map[string]int{"spec": 5}}
	in.Models["new"] = ModelDoc{After: in.Models["churn"].After, File: "models/new/model.yaml", Lines: map[string]int{}}
	doc := in.normalized()
	got, err := e.inputValue(&doc)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	want, err := ast.InterfaceToValue(generic)
	if err != nil {
		t.Fatal(err)
	}
	if got.Compare(want) != 0 {
		t.Fatalf("converted input differs from OPA's conversion:\n got %v\nwant %v", got, want)
	}
}

// TestUnchangedModelIsNotJudged covers the shared-term path: a manifest
// that differs only in ways JSON cannot see (a nil against an empty map)
// counts as unchanged, and its violations are not the pull request's.
func TestUnchangedModelIsNotJudged(t *testing.T) {
	e := loadDefault(t)
	in := loadExample(t)
	legacy := *in.Models["churn"].Before
	legacy.Metadata.Name = "legacy"
	legacy.Spec.Dependencies = []string{"pandas"}
	legacy.Metadata.Labels = nil
	copyOf := legacy
	copyOf.Metadata.Labels = map[string]string{}
	in.Models["legacy"] = ModelDoc{Before: &legacy, After: &copyOf, File: "models/legacy/model.yaml"}
	res, err := e.Evaluate(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Passed() {
		t.Fatalf("an unchanged model's violations blocked the PR: %+v", res.Denies)
	}
	edited := copyOf
	edited.Spec.Team = "platform"
	in.Models["legacy"] = ModelDoc{Before: &legacy, After: &edited, File: "models/legacy/model.yaml"}
	res, err = e.Evaluate(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if ids := ruleIDs(res.Denies); !slices.Equal(ids, []string{"dependencies.unpinned"}) {
		t.Fatalf("edited model: denies %v, want dependencies.unpinned", ids)
	}
}

func TestTermCache(t *testing.T) {
	c := newTermCache()
	a := ast.StringTerm("a")
	c.put(7, []byte(`{"a":1}`), a)
	if got, ok := c.get(7, []byte(`{"a":1}`)); !ok || got != a {
		t.Fatal("cache miss on identical bytes")
	}
	// Same hash, different bytes: a collision must not return the term.
	if _, ok := c.get(7, []byte(`{"a":2}`)); ok {
		t.Fatal("cache hit on different bytes with the same hash")
	}
	for i := range maxCachedTerms {
		c.put(uint64(100+i), []byte{byte(i)}, a)
	}
	if n := len(c.entries); n > maxCachedTerms {
		t.Fatalf("cache grew to %d entries", n)
	}
}

func TestManifestTermsReusedAcrossEvaluations(t *testing.T) {
	e := loadDefault(t)
	in := loadExample(t)
	doc := in.normalized()
	first, err := e.inputValue(&doc)
	if err != nil {
		t.Fatal(err)
	}
	second, err := e.inputValue(&doc)
	if err != nil {
		t.Fatal(err)
	}
	path := ast.MustParseRef("x.models.churn.before")[1:]
	a, errA := first.Find(path)
	b, errB := second.Find(path)
	if errA != nil || errB != nil {
		t.Fatalf("models.churn.before missing: %v %v", errA, errB)
	}
	if a.(ast.Object) != b.(ast.Object) {
		t.Fatal("the second conversion rebuilt an identical manifest")
	}
	if first.Compare(second) != 0 {
		t.Fatal("conversions differ")
	}
}
