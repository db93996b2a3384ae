package outputschema_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/modelsync/modelsync/internal/apiauth"
	"github.com/modelsync/modelsync/internal/cmd/root"
	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/controller"
	"github.com/modelsync/modelsync/internal/outputschema"
	"github.com/modelsync/modelsync/internal/repo"
	"github.com/modelsync/modelsync/internal/storagecost"
	"github.com/modelsync/modelsync/internal/wiring"
	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/reconciler/reconcilertest"
	"github.com/modelsync/modelsync/test/fixture"
)

// The checked-in schemas must match the Go types; regenerate with
// `make schema`.
func TestSchemaFilesAreCurrent(t *testing.T) {
	for _, file := range outputschema.Files() {
		want, err := outputschema.Schema(file)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(outputschema.Dir, file))
		if err != nil {
			t.Fatalf("%v (run `make schema`)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run `make schema`", file)
		}
	}
}

// validate checks out against the published schema file and that no
// value in it is null: an empty list must be [], not null.
func validate(t *testing.T, file string, out []byte) map[string]any {
	t.Helper()
	c := jsonschema.NewCompiler()
	doc, err := jsonschema.UnmarshalJSON(mustOpen(t, filepath.Join(outputschema.Dir, file)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddResource(file, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(file)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("output does not match %s: %v\n%s", file, err, out)
	}
	for _, p := range nulls(inst, "$") {
		t.Errorf("%s: %s is null\n%s", file, p, out)
	}
	var m map[string]any
	_ = json.Unmarshal(out, &m)
	return m
}

// nulls lists the paths of null values in a decoded JSON document.
func nulls(v any, path string) []string {
	switch v := v.(type) {
	case nil:
		return []string{path}
	case map[string]any:
		var out []string
		for k, e := range v {
			out = append(out, nulls(e, path+"."+k)...)
		}
		return out
	case []any:
		var out []string
		for i, e := range v {
			out = append(out, nulls(e, path+"["+itoa(i)+"]")...)
		}
		return out
	}
	return nil
}

func TestNullsFindsNullLists(t *testing.T) {
	var v any
	_ = json.Unmarshal([]byte(`{"a": [], "b": {"c": null}, "d": [1, null]}`), &v)
	if got := nulls(v, "$"); len(got) != 2 {
		t.Fatalf("nulls = %v, want $.b.c and $.d[1]", got)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func mustOpen(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// run runs a modelsync command line as the binary would.
func run(t *testing.T, env map[string]string, args ...string) (int, []byte) {
	t.Helper()
	var out, errOut bytes.Buffer
	cache := t.TempDir()
	f := wiring.New(cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, func(k string) string {
		if k == "MODELSYNC_CACHE_DIR" {
			return cache
		}
		return env[k]
	}, "test")
	code := root.Main(context.Background(), f, args)
	if errOut.Len() > 0 {
		t.Logf("stderr: %s", errOut.String())
	}
	return code, out.Bytes()
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Carol", "GIT_AUTHOR_EMAIL=carol@example.com", "GIT_COMMITTER_NAME=Carol", "GIT_COMMITTER_EMAIL=carol@example.com")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func TestDesiredOutputMatchesSchema(t *testing.T) {
	dir := fixture.ExampleRepo(t)
	code, out := run(t, nil, "desired", "--repo", dir, "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	m := validate(t, "desired.schema.json", out)
	if errs, ok := m["errors"].([]any); !ok || len(errs) != 0 {
		t.Errorf("errors = %#v, want []", m["errors"])
	}
}

func TestCheckOutputMatchesSchema(t *testing.T) {
	dir := fixture.ExampleRepo(t)
	git(t, dir, "checkout", "--quiet", "-b", "promote", "main")
	churn := filepath.Join(dir, "models/customer-churn-predictor/model.yaml")
	b, err := os.ReadFile(churn)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(churn, []byte(strings.Replace(string(b), "    prod:\n      version: 3\n", "    prod:\n      version: 4\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "commit", "--quiet", "-am", "Promote churn v4 to prod")
	git(t, dir, "checkout", "--quiet", "main")

	code, out := run(t, nil, "check", "--repo", dir, "--base", "main", "--head", "promote", "-o", "json")
	if code != 1 {
		t.Fatalf("exit %d, want 1 (denied)\n%s", code, out)
	}
	m := validate(t, "check.schema.json", out)
	change := m["changes"].([]any)[0].(map[string]any)
	if m["passed"] != false || change["from"] != 3.0 || change["to"] != 4.0 || change["display"] != "v3 → v4" {
		t.Errorf("passed %v, change %v", m["passed"], change)
	}

	code, out = run(t, nil, "check", "--repo", dir, "--base", "main", "--head", "main", "-o", "json")
	if code != 0 {
		t.Fatalf("no change: exit %d\n%s", code, out)
	}
	if m := validate(t, "check.schema.json", out); m["passed"] != true {
		t.Errorf("no change: passed = %v", m["passed"])
	}
}

// plan needs a live target; the fake target plans through the same
// reconciler and the command encodes the plan with the same MarshalJSON.
func TestPlanOutputMatchesSchema(t *testing.T) {
	target := reconcilertest.New("mlflow")
	target.SetLive("churn", "prod", 3)
	d := reconcilertest.Whole(nil, reconcilertest.Model("churn", reconcilertest.Env("prod", 6)))
	p, err := reconciler.BuildPlan(context.Background(), d, []reconciler.Target{target})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := cmdutil.WriteJSON(&out, p); err != nil {
		t.Fatal(err)
	}
	m := validate(t, "plan.schema.json", out.Bytes())
	a := m["actions"].([]any)[0].(map[string]any)
	if a["fromVersion"] != 3.0 || a["toVersion"] != 6.0 || !strings.Contains(a["display"].(string), "v3 -> v6") {
		t.Errorf("action = %v", a)
	}

	empty, err := reconciler.BuildPlan(context.Background(), reconcilertest.Whole(nil), []reconciler.Target{reconcilertest.New("mlflow")})
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := cmdutil.WriteJSON(&out, empty); err != nil {
		t.Fatal(err)
	}
	validate(t, "plan.schema.json", out.Bytes())
}

func TestStatusOutputMatchesSchema(t *testing.T) {
	dir := fixture.ExampleRepo(t)
	models, err := repo.New(context.Background(), repo.Options{URL: dir, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { models.Close() })
	tokens := apiauth.NewStaticTokens()
	if err := tokens.Add("ci-token-0123456789abcdef", "ci"); err != nil {
		t.Fatal(err)
	}
	c, err := controller.New(controller.Options{Git: models, Interval: time.Hour, APIAuth: []apiauth.Provider{tokens}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(func() { cancel(); <-done; srv.Close() })
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st := c.Status()
		synced := len(st.Rows) > 0
		for _, r := range st.Rows {
			synced = synced && r.State == controller.StateSynced
		}
		if synced {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("controller never synced: %+v", st)
		}
	}
	code, out := run(t, map[string]string{"MODELSYNC_TOKEN": "ci-token-0123456789abcdef"}, "status", "--server", srv.URL, "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	validate(t, "status.schema.json", out)
	if !bytes.Contains(out, []byte(`"desiredVersion": 3`)) || !bytes.Contains(out, []byte(`"liveVersion": 3`)) || !bytes.Contains(out, []byte(`"steps": [`)) {
		t.Errorf("status lacks the machine fields:\n%s", out)
	}
}

func TestCostOutputsMatchSchemasInCents(t *testing.T) {
	code, out := run(t, nil, "cost", "--estimate", "3x1234567891B", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	validate(t, "cost-estimate.schema.json", out)
	assertCents(t, out)

	prices := storagecost.DefaultPriceTable()
	at := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	rep := prices.Report(at, reconciler.ArtifactUsage{Model: "churn", Objects: []reconciler.StoredObject{
		{Versions: []int{3}, Bucket: "b", Key: "v3/model.pkl", Class: "STANDARD", Bytes: 987654321},
		{Versions: []int{2}, Bucket: "b", Key: "v2/model.pkl", Class: "GLACIER_IR", Bytes: 123456789},
	}})
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	validate(t, "cost.schema.json", buf.Bytes())
	assertCents(t, buf.Bytes())
}

// assertCents fails on any non-integer number with more than two decimals:
// money is in cents.
func assertCents(t *testing.T, out []byte) {
	t.Helper()
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case float64:
			if math.Abs(v*100-math.Round(v*100)) > 1e-9 {
				t.Errorf("amount %v is not in cents:\n%s", v, out)
			}
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	var v any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	walk(v)
}
