package mlflowclient_test

// Integration tests against real MLflow servers: one 3.x and one 2.x, both
// with the basic-auth app (the reconciler's production setup), started once
// for the package and shared; every test runs against both and isolates
// itself with unique model and experiment names.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/test/testenv"
)

// live holds the shared servers; started on first use so that
// `go test -run TestDecode` does not pay for MLflow start-up.
var live struct {
	once    sync.Once
	servers []*testenv.MLflow
	err     error
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, s := range live.servers {
		if err := s.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "%s close: %v\n", s.Name, err)
		}
	}
	os.Exit(code)
}

func liveServers(t testing.TB) []*testenv.MLflow {
	t.Helper()
	testenv.RequireE2E(t)
	live.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		logDir := os.Getenv("MODELSYNC_TEST_LOGDIR")
		// The newest 3.x and 2.x, and the oldest supported release, on
		// sqlite; and the newest 3.x on PostgreSQL, the backend MLflow runs
		// on at scale (another SQL dialect, transaction isolation and
		// concurrent writers). One server more keeps the added start time
		// modest; test/testenv runs the registry on PostgreSQL with 2.x and
		// 2.9.2 too.
		kinds := []testenv.MLflowOptions{{Major: 3}, {Major: 2}, {Major: 2, Floor: true},
			{Major: 3, Backend: testenv.BackendPostgres}}
		servers := make([]*testenv.MLflow, len(kinds))
		errs := make([]error, len(kinds))
		var wg sync.WaitGroup
		for i, opts := range kinds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				opts.BasicAuth, opts.LogDir = true, logDir
				servers[i], errs[i] = testenv.StartMLflow(ctx, opts)
			}()
		}
		wg.Wait()
		for _, s := range servers {
			if s != nil {
				live.servers = append(live.servers, s)
			}
		}
		live.err = errors.Join(errs...)
	})
	if live.err != nil {
		t.Fatalf("starting MLflow servers: %v", live.err)
	}
	return live.servers
}

// eachServer runs fn against each server in parallel subtests.
func eachServer(t *testing.T, fn func(t *testing.T, s *testenv.MLflow)) {
	t.Helper()
	for _, s := range liveServers(t) {
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			fn(t, s)
		})
	}
}

// counter tallies attempts per "METHOD endpoint" through Config.Observe.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) observe(method, endpoint string, status int, _ time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[method+" "+endpoint]++
}

func (c *counter) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

func liveConfig(s *testenv.MLflow, url string) mlflowclient.Config {
	return mlflowclient.Config{
		TrackingURI: url, Username: s.Username, Password: s.Password,
		Timeout: 60 * time.Second, MaxRetries: 5,
		BackoffBase: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
	}
}

func liveClient(t testing.TB, s *testenv.MLflow, obs *counter) *mlflowclient.Client {
	t.Helper()
	cfg := liveConfig(s, s.URL)
	if obs != nil {
		cfg.Observe = obs.observe
	}
	c, err := mlflowclient.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// proxied returns a client that reaches s through a fault proxy.
func proxied(t *testing.T, s *testenv.MLflow, obs *counter) (*mlflowclient.Client, *testenv.FaultProxy) {
	t.Helper()
	p, err := testenv.NewFaultProxy(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	cfg := liveConfig(s, p.URL)
	if obs != nil {
		cfg.Observe = obs.observe
	}
	c, err := mlflowclient.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, p
}

func match(method, endpoint string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return r.Method == method && strings.HasSuffix(r.URL.Path, "/api/2.0/mlflow/"+endpoint)
	}
}

// attempts counts what the client sent (from its Observe hook) and how many
// of those the proxy answered with an injected fault instead of forwarding.
// The proxy records forwarded requests only after relaying the reply, so
// its log may still lack the last one when the client returns; injected
// faults are recorded before the client sees them.
func attempts(obs *counter, p *testenv.FaultProxy, method, endpoint string) (sent, injected int) {
	for _, r := range p.Requests() {
		if r.Injected && r.Method == method && strings.HasSuffix(r.Path, "/api/2.0/mlflow/"+endpoint) {
			injected++
		}
	}
	return obs.get(method + " " + endpoint), injected
}

// fixture is a registered model with versions backed by a finished run.
type fixture struct {
	model string
	run   *mlflowclient.Run
}

func newFixture(t testing.TB, c *mlflowclient.Client, versions int) fixture {
	t.Helper()
	ctx := t.Context()
	expID, err := c.EnsureExperiment(ctx, testenv.UniqueName("exp"))
	if err != nil {
		t.Fatalf("EnsureExperiment: %v", err)
	}
	run, err := c.CreateRun(ctx, mlflowclient.CreateRunRequest{ExperimentID: expID, RunName: "train", Tags: map[string]string{"team": "risk"}})
	if err != nil {
		t.Fatalf("CreateRun: %v", err)
	}
	metrics := []mlflowclient.Metric{{Key: "auc", Value: 0.91, Step: 1}, {Key: "loss", Value: mlflowclient.Float(math.NaN())}}
	if err := c.LogBatch(ctx, run.Info.RunID, metrics, map[string]string{"lr": "0.01"}, map[string]string{"stage": "train"}); err != nil {
		t.Fatalf("LogBatch: %v", err)
	}
	if _, err := c.UpdateRun(ctx, run.Info.RunID, mlflowclient.RunFinished, time.Time{}); err != nil {
		t.Fatalf("UpdateRun: %v", err)
	}
	f := fixture{model: testenv.UniqueName("model"), run: run}
	if _, created, err := c.EnsureRegisteredModel(ctx, mlflowclient.CreateRegisteredModelRequest{Name: f.model, Description: "fixture"}); err != nil || !created {
		t.Fatalf("EnsureRegisteredModel: created=%v err=%v", created, err)
	}
	for i := 1; i <= versions; i++ {
		mv, err := c.CreateModelVersion(ctx, f.versionRequest())
		if err != nil {
			t.Fatalf("CreateModelVersion: %v", err)
		}
		if mv.Version != i {
			t.Fatalf("created version %d, want %d", mv.Version, i)
		}
	}
	return f
}

func (f fixture) versionRequest() mlflowclient.CreateModelVersionRequest {
	return mlflowclient.CreateModelVersionRequest{Name: f.model, Source: f.run.Info.ArtifactURI + "/model", RunID: f.run.Info.RunID}
}

func TestLiveModelsVersionsAndRuns(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testenv.MLflow) {
		ctx := t.Context()
		c := liveClient(t, s, nil)
		ver, err := c.ServerVersion(ctx)
		if err != nil || !strings.HasPrefix(ver, fmt.Sprintf("%d.", s.Major)) {
			t.Fatalf("ServerVersion = %q, %v", ver, err)
		}
		f := newFixture(t, c, 2)

		run, err := c.GetRun(ctx, f.run.Info.RunID)
		if err != nil {
			t.Fatalf("GetRun: %v", err)
		}
		m := run.MetricMap()
		if m["auc"] != 0.91 || !math.IsNaN(m["loss"]) {
			t.Errorf("metrics = %v, want auc 0.91 and NaN loss", m)
		}
		if run.Params["lr"] != "0.01" || run.Tags["team"] != "risk" || run.Tags["stage"] != "train" || run.Info.Status != mlflowclient.RunFinished || run.Info.EndTime == 0 {
			t.Errorf("run = %+v", run)
		}

		model, err := c.GetRegisteredModel(ctx, f.model)
		if err != nil {
			t.Fatalf("GetRegisteredModel: %v", err)
		}
		if model.Name != f.model || model.Description != "fixture" || len(model.Aliases) != 0 {
			t.Errorf("model = %+v", model)
		}
		mv, err := c.GetModelVersion(ctx, f.model, 2)
		if err != nil {
			t.Fatalf("GetModelVersion: %v", err)
		}
		if mv.Version != 2 || mv.RunID != f.run.Info.RunID || mv.Source != f.run.Info.ArtifactURI+"/model" || mv.Status != mlflowclient.StatusReady || mv.CurrentStage != mlflowclient.StageNone {
			t.Errorf("version = %+v", mv)
		}

		// Existing model: create says so (400, not 409), ensure is a no-op.
		_, err = c.CreateRegisteredModel(ctx, mlflowclient.CreateRegisteredModelRequest{Name: f.model})
		var ae *mlflowclient.APIError
		if !mlflowclient.IsAlreadyExists(err) || !errors.As(err, &ae) || ae.StatusCode != 400 {
			t.Errorf("duplicate create: %v", err)
		}
		if _, created, err := c.EnsureRegisteredModel(ctx, mlflowclient.CreateRegisteredModelRequest{Name: f.model}); err != nil || created {
			t.Errorf("EnsureRegisteredModel on existing: created=%v err=%v", created, err)
		}
		if _, err := c.GetRegisteredModel(ctx, f.model+"-missing"); !mlflowclient.IsNotFound(err) {
			t.Errorf("missing model: %v", err)
		}
		if _, err := c.GetModelVersion(ctx, f.model, 99); !mlflowclient.IsNotFound(err) || !strings.Contains(err.Error(), "version 99") {
			t.Errorf("missing version: %v", err)
		}
		if _, err := c.GetExperimentByName(ctx, testenv.UniqueName("no-exp")); !mlflowclient.IsNotFound(err) {
			t.Errorf("missing experiment: %v", err)
		}
	})
}

func TestLiveAliases(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testenv.MLflow) {
		ctx := t.Context()
		c := liveClient(t, s, nil)
		f := newFixture(t, c, 2)

		if err := c.SetAlias(ctx, f.model, "prod", 1); err != nil {
			t.Fatalf("SetAlias: %v", err)
		}
		aliases, err := c.ReadAliases(ctx, f.model)
		if err != nil || len(aliases) != 1 || aliases["prod"] != 1 {
			t.Fatalf("ReadAliases = %v, %v", aliases, err)
		}
		mv, err := c.GetModelVersionByAlias(ctx, f.model, "prod")
		if err != nil || mv.Version != 1 || !slices.Contains(mv.Aliases, "prod") {
			t.Fatalf("GetModelVersionByAlias = %+v, %v", mv, err)
		}

		// An unset alias: get-by-alias says INVALID_PARAMETER_VALUE (400),
		// not 404; the alias map is what decides.
		_, err = c.GetModelVersionByAlias(ctx, f.model, "staging")
		var ae *mlflowclient.APIError
		if !mlflowclient.IsInvalidParameter(err) || mlflowclient.IsNotFound(err) || !errors.As(err, &ae) || ae.StatusCode != 400 {
			t.Errorf("unset alias: %v", err)
		}
		// A missing model: 3.x says 404, 2.x the same 400 as an unset alias.
		_, err = c.GetModelVersionByAlias(ctx, f.model+"-missing", "prod")
		if (s.Major == 3 && !mlflowclient.IsNotFound(err)) || (s.Major == 2 && !mlflowclient.IsInvalidParameter(err)) {
			t.Errorf("alias of missing model on %d.x: %v", s.Major, err)
		}
		if err := c.DeleteAlias(ctx, f.model, "staging"); err != nil {
			t.Errorf("deleting an unset alias must succeed: %v", err)
		}
		if err := c.SetAlias(ctx, f.model, "staging", 99); !mlflowclient.IsNotFound(err) {
			t.Errorf("alias to missing version: %v", err)
		}

		// Read-compare-write helpers and their request counts.
		before := c.Stats()
		if changed, err := c.EnsureAlias(ctx, f.model, "prod", 1); err != nil || changed {
			t.Errorf("EnsureAlias unchanged: changed=%v err=%v", changed, err)
		}
		if d := diff(c.Stats(), before); d.Reads != 1 || d.Writes != 0 {
			t.Errorf("EnsureAlias without change made %+v", d)
		}
		before = c.Stats()
		if changed, err := c.EnsureAlias(ctx, f.model, "prod", 2); err != nil || !changed {
			t.Errorf("EnsureAlias move: changed=%v err=%v", changed, err)
		}
		if d := diff(c.Stats(), before); d.Reads != 1 || d.Writes != 1 {
			t.Errorf("EnsureAlias with change made %+v", d)
		}
		before = c.Stats()
		if changed, err := c.SetAliasIfDifferent(ctx, f.model, "prod", 2, 2); err != nil || changed {
			t.Errorf("SetAliasIfDifferent equal: changed=%v err=%v", changed, err)
		}
		if changed, err := c.SetAliasIfDifferent(ctx, f.model, "canary", 0, 1); err != nil || !changed {
			t.Errorf("SetAliasIfDifferent new: changed=%v err=%v", changed, err)
		}
		if d := diff(c.Stats(), before); d.Reads != 0 || d.Writes != 1 {
			t.Errorf("SetAliasIfDifferent made %+v, want exactly one write", d)
		}
		if aliases, _ := c.ReadAliases(ctx, f.model); aliases["prod"] != 2 || aliases["canary"] != 1 || len(aliases) != 2 {
			t.Errorf("aliases = %v", aliases)
		}
		if changed, err := c.EnsureDeleteAlias(ctx, f.model, "canary"); err != nil || !changed {
			t.Errorf("EnsureDeleteAlias: changed=%v err=%v", changed, err)
		}
		if changed, err := c.EnsureDeleteAlias(ctx, f.model, "canary"); err != nil || changed {
			t.Errorf("EnsureDeleteAlias again: changed=%v err=%v", changed, err)
		}
		if aliases, _ := c.ReadAliases(ctx, f.model); len(aliases) != 1 || aliases["prod"] != 2 {
			t.Errorf("aliases after delete = %v", aliases)
		}
	})
}

func diff(a, b mlflowclient.Stats) mlflowclient.Stats {
	return mlflowclient.Stats{Reads: a.Reads - b.Reads, Writes: a.Writes - b.Writes, Retries: a.Retries - b.Retries, Failures: a.Failures - b.Failures}
}

func TestLivePagination(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testenv.MLflow) {
		ctx := t.Context()
		obs := &counter{}
		c := liveClient(t, s, obs)
		prefix := testenv.UniqueName("page")
		for i := range 5 {
			name := fmt.Sprintf("%s-%d", prefix, i)
			if _, err := c.CreateRegisteredModel(ctx, mlflowclient.CreateRegisteredModelRequest{Name: name, Tags: map[string]string{"batch": prefix}}); err != nil {
				t.Fatalf("create %s: %v", name, err)
			}
		}
		models, err := c.SearchRegisteredModels(ctx, mlflowclient.SearchOptions{Filter: fmt.Sprintf("name LIKE '%s-%%'", prefix), OrderBy: []string{"name DESC"}, PageSize: 2})
		if err != nil {
			t.Fatalf("SearchRegisteredModels: %v", err)
		}
		var names []string
		for _, m := range models {
			names = append(names, m.Name)
		}
		want := []string{prefix + "-4", prefix + "-3", prefix + "-2", prefix + "-1", prefix + "-0"}
		if !slices.Equal(names, want) {
			t.Errorf("models = %v, want %v", names, want)
		}
		if n := obs.get("GET registered-models/search"); n != 3 {
			t.Errorf("%d search requests for 5 models in pages of 2, want 3", n)
		}
		// Tag filter, and an iterator the caller stops early.
		seen := 0
		for m, err := range c.RegisteredModels(ctx, mlflowclient.SearchOptions{Filter: fmt.Sprintf("tags.batch = '%s'", prefix), PageSize: 2}) {
			if err != nil {
				t.Fatalf("iterate: %v", err)
			}
			if !strings.HasPrefix(m.Name, prefix) {
				t.Errorf("tag filter returned %s", m.Name)
			}
			if seen++; seen == 3 {
				break
			}
		}
		if n := obs.get("GET registered-models/search"); n != 5 {
			t.Errorf("stopping after 3 items made %d page requests in total, want 3+2", n)
		}

		f := newFixture(t, c, 5)
		vs, err := c.SearchModelVersions(ctx, mlflowclient.SearchOptions{Filter: fmt.Sprintf("name = '%s'", f.model), OrderBy: []string{"version_number ASC"}, PageSize: 2})
		if err != nil {
			t.Fatalf("SearchModelVersions: %v", err)
		}
		var got []int
		for _, v := range vs {
			got = append(got, v.Version)
		}
		if !slices.Equal(got, []int{1, 2, 3, 4, 5}) {
			t.Errorf("versions = %v", got)
		}
		if n := obs.get("GET model-versions/search"); n != 3 {
			t.Errorf("%d version search requests, want 3", n)
		}
		vs, err = c.SearchModelVersions(ctx, mlflowclient.SearchOptions{Filter: fmt.Sprintf("name = '%s' AND version_number > 3", f.model), OrderBy: []string{"version_number DESC"}})
		if err != nil || len(vs) != 2 || vs[0].Version != 5 || vs[1].Version != 4 {
			t.Errorf("numeric filter = %+v, %v", vs, err)
		}
	})
}

func TestLiveTransitionStage(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testenv.MLflow) {
		ctx := t.Context()
		c := liveClient(t, s, nil)
		f := newFixture(t, c, 2)
		mv, err := c.TransitionModelVersionStage(ctx, f.model, 1, "production", false)
		if err != nil || mv.CurrentStage != mlflowclient.StageProduction {
			t.Fatalf("v1 -> Production: %+v, %v", mv, err)
		}
		mv, err = c.TransitionModelVersionStage(ctx, f.model, 2, mlflowclient.StageProduction, true)
		if err != nil || mv.CurrentStage != mlflowclient.StageProduction {
			t.Fatalf("v2 -> Production (archive existing): %+v, %v", mv, err)
		}
		v1, err := c.GetModelVersion(ctx, f.model, 1)
		if err != nil || v1.CurrentStage != mlflowclient.StageArchived {
			t.Errorf("v1 after archive_existing_versions: %+v, %v", v1, err)
		}
		model, err := c.GetRegisteredModel(ctx, f.model)
		if err != nil {
			t.Fatal(err)
		}
		stages := map[string]int{}
		for _, lv := range model.LatestVersions {
			stages[lv.CurrentStage] = lv.Version
		}
		if stages[mlflowclient.StageProduction] != 2 || stages[mlflowclient.StageArchived] != 1 {
			t.Errorf("latest versions per stage = %v", stages)
		}
		before := c.Stats()
		_, err = c.TransitionModelVersionStage(ctx, f.model, 2, mlflowclient.StageArchived, true)
		if !errors.Is(err, mlflowclient.ErrInvalidArgument) {
			t.Errorf("archive_existing with Archived: %v", err)
		}
		if d := diff(c.Stats(), before); d.Writes != 0 {
			t.Errorf("invalid transition was sent: %+v", d)
		}
		if _, err := c.TransitionModelVersionStage(ctx, f.model, 2, "Staging", false); err != nil {
			t.Errorf("v2 -> Staging: %v", err)
		}
	})
}

func TestLiveTags(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testenv.MLflow) {
		ctx := t.Context()
		c := liveClient(t, s, nil)
		f := newFixture(t, c, 1)

		if err := c.SetModelVersionTag(ctx, f.model, 1, "validation", "passed"); err != nil {
			t.Fatalf("SetModelVersionTag: %v", err)
		}
		if changed, err := c.EnsureVersionTag(ctx, f.model, 1, "validation", "passed"); err != nil || changed {
			t.Errorf("EnsureVersionTag same value: changed=%v err=%v", changed, err)
		}
		if changed, err := c.EnsureVersionTag(ctx, f.model, 1, "validation", "failed"); err != nil || !changed {
			t.Errorf("EnsureVersionTag new value: changed=%v err=%v", changed, err)
		}
		if changed, err := c.EnsureVersionTag(ctx, f.model, 1, "empty", ""); err != nil || !changed {
			t.Errorf("EnsureVersionTag empty value: changed=%v err=%v", changed, err)
		}
		mv, err := c.GetModelVersion(ctx, f.model, 1)
		if err != nil || mv.Tags["validation"] != "failed" {
			t.Fatalf("version tags = %v, %v", mv.Tags, err)
		}
		if v, ok := mv.Tags["empty"]; !ok || v != "" {
			t.Errorf("empty-valued tag = %q, %v", v, ok)
		}
		if err := c.DeleteModelVersionTag(ctx, f.model, 1, "validation"); err != nil {
			t.Fatalf("DeleteModelVersionTag: %v", err)
		}
		if changed, err := c.EnsureDeleteVersionTag(ctx, f.model, 1, "validation"); err != nil || changed {
			t.Errorf("EnsureDeleteVersionTag on absent tag: changed=%v err=%v", changed, err)
		}
		if changed, err := c.EnsureDeleteVersionTag(ctx, f.model, 1, "empty"); err != nil || !changed {
			t.Errorf("EnsureDeleteVersionTag: changed=%v err=%v", changed, err)
		}
		if mv, _ := c.GetModelVersion(ctx, f.model, 1); len(mv.Tags) != 0 {
			t.Errorf("tags after deletes = %v", mv.Tags)
		}
		if err := c.SetModelVersionTag(ctx, f.model, 7, "k", "v"); !mlflowclient.IsNotFound(err) {
			t.Errorf("tag on missing version: %v", err)
		}

		if err := c.SetRegisteredModelTag(ctx, f.model, "owner", "risk"); err != nil {
			t.Fatalf("SetRegisteredModelTag: %v", err)
		}
		if changed, err := c.EnsureRegisteredModelTag(ctx, f.model, "owner", "risk"); err != nil || changed {
			t.Errorf("EnsureRegisteredModelTag same: changed=%v err=%v", changed, err)
		}
		if changed, err := c.EnsureRegisteredModelTag(ctx, f.model, "tier", "gold"); err != nil || !changed {
			t.Errorf("EnsureRegisteredModelTag new: changed=%v err=%v", changed, err)
		}
		if err := c.DeleteRegisteredModelTag(ctx, f.model, "owner"); err != nil {
			t.Fatalf("DeleteRegisteredModelTag: %v", err)
		}
		m, err := c.GetRegisteredModel(ctx, f.model)
		if err != nil || len(m.Tags) != 1 || m.Tags["tier"] != "gold" {
			t.Errorf("model tags = %v, %v", m.Tags, err)
		}
	})
}

func TestLiveDownloadURI(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testenv.MLflow) {
		ctx := t.Context()
		c := liveClient(t, s, nil)
		f := newFixture(t, c, 1)
		want := f.run.Info.ArtifactURI + "/model"
		uri, err := c.ModelVersionDownloadURI(ctx, f.model, 1)
		if err != nil || uri != want {
			t.Errorf("download URI = %q, %v; want %s", uri, err, want)
		}
		if _, err := c.ModelVersionDownloadURI(ctx, f.model, 42); !mlflowclient.IsNotFound(err) {
			t.Errorf("download URI of missing version: %v", err)
		}
		if err := c.SetAlias(ctx, f.model, "prod", 1); err != nil {
			t.Fatal(err)
		}

		// A runs:/ source is kept as given by a REST create (download URI =
		// source); models:/ sources are resolved by the server at create.
		// (2.x fails a create from models:/<name>@<alias> with a 500.)
		for _, src := range []string{"runs:/" + f.run.Info.RunID + "/model", "models:/" + f.model + "/1"} {
			req := f.versionRequest()
			req.Source = src
			mv, err := c.CreateModelVersion(ctx, req)
			if err != nil {
				t.Fatalf("CreateModelVersion(%s): %v", src, err)
			}
			wantDownload := want
			if strings.HasPrefix(src, "runs:/") {
				wantDownload = src
			}
			if uri, err := c.ModelVersionDownloadURI(ctx, f.model, mv.Version); err != nil || uri != wantDownload {
				t.Errorf("download URI of %s = %q, %v; want %s", src, uri, err, wantDownload)
			}
			if uri, err := c.ModelVersionStorageURI(ctx, f.model, mv.Version); err != nil || uri != want {
				t.Errorf("storage URI of %s = %q, %v; want %s", src, uri, err, want)
			}
		}
		for _, src := range []string{"runs:/" + f.run.Info.RunID + "/model", "models:/" + f.model + "/2", "models:/" + f.model + "@prod"} {
			if uri, err := c.ResolveArtifactURI(ctx, src); err != nil || uri != want {
				t.Errorf("ResolveArtifactURI(%s) = %q, %v; want %s", src, uri, err, want)
			}
		}
		if _, err := c.ResolveArtifactURI(ctx, "models:/"+f.model+"/Production"); !errors.Is(err, mlflowclient.ErrInvalidArgument) {
			t.Errorf("stage URI: %v", err)
		}
		if uri, err := c.ResolveArtifactURI(ctx, "s3://bucket/p/model"); err != nil || uri != "s3://bucket/p/model" {
			t.Errorf("s3 URI = %q, %v", uri, err)
		}

		if s.Major < 3 {
			return
		}
		// 3.x log_model registers models:/m-<id>; the files live under the
		// logged model, not the run.
		id, artifactURI, err := createLoggedModel(ctx, s, f.run)
		if err != nil {
			t.Fatal(err)
		}
		req := f.versionRequest()
		req.Source, req.ModelID = "models:/"+id, id
		mv, err := c.CreateModelVersion(ctx, req)
		if err != nil {
			t.Fatalf("CreateModelVersion(models:/%s): %v", id, err)
		}
		if uri, err := c.ModelVersionStorageURI(ctx, f.model, mv.Version); err != nil || uri != artifactURI {
			t.Errorf("storage URI of logged model version = %q, %v; want %s", uri, err, artifactURI)
		}
	})
}

// createLoggedModel uses the 3.x logged-models API directly; the client
// only reads logged models.
func createLoggedModel(ctx context.Context, s *testenv.MLflow, run *mlflowclient.Run) (id, artifactURI string, err error) {
	body := fmt.Sprintf(`{"experiment_id":%q,"name":"model","source_run_id":%q}`, run.Info.ExperimentID, run.Info.RunID)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/api/2.0/mlflow/logged-models", strings.NewReader(body))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(s.Username, s.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	var out struct {
		Model struct {
			Info struct {
				ModelID     string `json:"model_id"`
				ArtifactURI string `json:"artifact_uri"`
			} `json:"info"`
		} `json:"model"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.Model.Info.ModelID == "" {
		return "", "", fmt.Errorf("create logged model: HTTP %d, %v", resp.StatusCode, err)
	}
	return out.Model.Info.ModelID, out.Model.Info.ArtifactURI, nil
}

func TestLiveBasicAuthFailures(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testenv.MLflow) {
		ctx := t.Context()
		wrong := "wrong-" + testenv.UniqueName("pw")
		for name, cfg := range map[string]mlflowclient.Config{
			"wrong password": {TrackingURI: s.URL, Username: s.Username, Password: wrong},
			"token":          {TrackingURI: s.URL, Token: wrong},
			"no credentials": {TrackingURI: s.URL},
		} {
			c, err := mlflowclient.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.GetRegisteredModel(ctx, "anything")
			var ae *mlflowclient.APIError
			if !errors.As(err, &ae) || ae.StatusCode != http.StatusUnauthorized || ae.Code != mlflowclient.CodeUnauthenticated || !mlflowclient.IsUnauthenticated(err) {
				t.Errorf("%s: err = %v", name, err)
				continue
			}
			if msg := err.Error(); !strings.Contains(msg, s.URL) || strings.Contains(msg, wrong) || strings.Contains(msg, s.Password) {
				t.Errorf("%s: error %q must name %s and no secret", name, msg, s.URL)
			}
			if st := c.Stats(); st.Reads != 1 || st.Retries != 0 {
				t.Errorf("%s: 401 was retried: %+v", name, st)
			}
		}
		// A READ-only user may read but not write (403 PERMISSION_DENIED).
		admin := liveClient(t, s, nil)
		f := newFixture(t, admin, 1)
		user, pw := testenv.UniqueName("reader"), "Pw-"+testenv.UniqueName("x")
		if err := createUser(ctx, s, user, pw); err != nil {
			t.Fatal(err)
		}
		reader, err := mlflowclient.New(mlflowclient.Config{TrackingURI: s.URL, Username: user, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reader.ReadAliases(ctx, f.model); err != nil {
			t.Errorf("reader ReadAliases: %v", err)
		}
		err = reader.SetAlias(ctx, f.model, "prod", 1)
		if !mlflowclient.IsPermissionDenied(err) || strings.Contains(err.Error(), pw) {
			t.Errorf("reader SetAlias: %v", err)
		}
		if err := reader.DeleteAlias(ctx, f.model, "prod"); !mlflowclient.IsPermissionDenied(err) {
			t.Errorf("reader DeleteAlias (needs MANAGE): %v", err)
		}
	})
}

// createUser calls the basic-auth plugin's user API, which is not part of
// the registry client.
func createUser(ctx context.Context, s *testenv.MLflow, user, pw string) error {
	body := fmt.Sprintf(`{"username":%q,"password":%q}`, user, pw)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/api/2.0/mlflow/users/create", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(s.Username, s.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("create user %s: HTTP %d", user, resp.StatusCode)
	}
	return nil
}

func TestLiveRetryWriteOn503(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testenv.MLflow) {
		ctx := t.Context()
		f := newFixture(t, liveClient(t, s, nil), 0)
		obs := &counter{}
		c, p := proxied(t, s, obs)
		p.Inject(testenv.Fault{Status: http.StatusServiceUnavailable, Times: 2, Match: match("POST", "model-versions/create")})
		mv, err := c.CreateModelVersion(ctx, f.versionRequest())
		if err != nil {
			t.Fatalf("CreateModelVersion through two 503s: %v", err)
		}
		if mv.Version != 1 {
			t.Errorf("version = %d", mv.Version)
		}
		if sent, injected := attempts(obs, p, "POST", "model-versions/create"); sent != 3 || injected != 2 {
			t.Errorf("create attempts = %d (%d answered by the proxy), want 3 (2)", sent, injected)
		}
		if st := c.Stats(); st.Retries != 2 || st.Writes != 3 || st.Failures != 2 {
			t.Errorf("stats = %+v", st)
		}
		vs, err := liveClient(t, s, nil).SearchModelVersions(ctx, mlflowclient.SearchOptions{Filter: fmt.Sprintf("name = '%s'", f.model)})
		if err != nil || len(vs) != 1 {
			t.Errorf("versions on the server = %d (%v), want exactly 1", len(vs), err)
		}
	})
}

func TestLiveNoBlindRetryOfAmbiguousWrites(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testenv.MLflow) {
		ctx := t.Context()
		direct := liveClient(t, s, nil)
		f := newFixture(t, direct, 0)
		obs := &counter{}
		c, p := proxied(t, s, obs)

		// The server registers the version but the client sees a 500.
		p.Inject(testenv.Fault{Status: http.StatusInternalServerError, Times: 1, AfterForward: true, Match: match("POST", "model-versions/create")})
		_, err := c.CreateModelVersion(ctx, f.versionRequest())
		var ae *mlflowclient.APIError
		if !errors.As(err, &ae) || ae.StatusCode != 500 || !mlflowclient.IsRetryable(err) {
			t.Fatalf("create with lost reply: %v", err)
		}
		if sent, _ := attempts(obs, p, "POST", "model-versions/create"); sent != 1 {
			t.Errorf("a create with an unknown outcome was resent: %d attempts", sent)
		}
		if vs, err := direct.SearchModelVersions(ctx, mlflowclient.SearchOptions{Filter: fmt.Sprintf("name = '%s'", f.model)}); err != nil || len(vs) != 1 {
			t.Errorf("versions on the server = %d (%v), want 1", len(vs), err)
		}

		// A dropped connection on a write is reported, not resent.
		p.Inject(testenv.Fault{DropConnection: true, Times: 1, Match: match("POST", "registered-models/alias")})
		err = c.SetAlias(ctx, f.model, "prod", 1)
		if err == nil || !mlflowclient.IsRetryable(err) {
			t.Fatalf("SetAlias over a dropped connection: %v", err)
		}
		if sent, _ := attempts(obs, p, "POST", "registered-models/alias"); sent != 1 {
			t.Errorf("alias write resent blindly: %d attempts", sent)
		}

		// Reads are retried on 502 ...
		p.Inject(testenv.Fault{Status: http.StatusBadGateway, Times: 2, Match: match("GET", "registered-models/get")})
		if _, err := c.GetRegisteredModel(ctx, f.model); err != nil {
			t.Errorf("read through two 502s: %v", err)
		}
		if sent, injected := attempts(obs, p, "GET", "registered-models/get"); sent != 3 || injected != 2 {
			t.Errorf("read attempts = %d (%d answered by the proxy), want 3 (2)", sent, injected)
		}
		// ... and on dropped connections. Keep-alives are off so that Go's
		// transport does not replay the GET on its own.
		noReuse := liveConfig(s, p.URL)
		noReuse.HTTPClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		readObs := &counter{}
		noReuse.Observe = readObs.observe
		fresh, err := mlflowclient.New(noReuse)
		if err != nil {
			t.Fatal(err)
		}
		p.Inject(testenv.Fault{DropConnection: true, Times: 1, Match: match("GET", "model-versions/get")})
		if _, err := fresh.GetModelVersion(ctx, f.model, 1); err != nil {
			t.Errorf("read over a dropped connection: %v", err)
		}
		if sent := readObs.get("GET model-versions/get"); sent != 2 {
			t.Errorf("read attempts over a dropped connection = %d, want 2", sent)
		}

		// Retries stop at MaxRetries.
		cfg := liveConfig(s, p.URL)
		cfg.MaxRetries = 2
		bounded, err := mlflowclient.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		p.Inject(testenv.Fault{Status: http.StatusServiceUnavailable, Match: match("GET", "model-versions/get")})
		_, err = bounded.GetModelVersion(ctx, f.model, 1)
		if !errors.As(err, &ae) || ae.StatusCode != 503 || ae.Code != mlflowclient.CodeTemporarilyUnavail {
			t.Errorf("persistent 503: %v", err)
		}
		if st := bounded.Stats(); st.Reads != 3 || st.Retries != 2 {
			t.Errorf("MaxRetries=2 made %+v", st)
		}

		// And at the caller's context: cancelling after the first failure
		// ends the call with that failure, without further attempts.
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var attempts atomic.Int32
		cfg.MaxRetries = 10
		cfg.Observe = func(method, endpoint string, status int, _ time.Duration) {
			if attempts.Add(1) == 1 {
				cancel()
			}
		}
		cancelled, err := mlflowclient.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = cancelled.GetModelVersion(cctx, f.model, 1)
		if !errors.As(err, &ae) || ae.StatusCode != 503 || attempts.Load() != 1 {
			t.Errorf("cancelled context: err = %v after %d attempts", err, attempts.Load())
		}
	})
}

func TestLiveEnsureAliasConvergesOverDroppedConnection(t *testing.T) {
	for _, after := range []bool{false, true} {
		name := "dropped before the server"
		if after {
			name = "dropped after the server acted"
		}
		t.Run(name, func(t *testing.T) {
			eachServer(t, func(t *testing.T, s *testenv.MLflow) {
				ctx := t.Context()
				direct := liveClient(t, s, nil)
				f := newFixture(t, direct, 2)
				if err := direct.SetAlias(ctx, f.model, "prod", 1); err != nil {
					t.Fatal(err)
				}
				obs := &counter{}
				c, p := proxied(t, s, obs)
				p.Inject(testenv.Fault{DropConnection: true, AfterForward: after, Times: 1, Match: match("POST", "registered-models/alias")})

				changed, err := c.EnsureAlias(ctx, f.model, "prod", 2)
				if err != nil || !changed {
					t.Fatalf("EnsureAlias: changed=%v err=%v", changed, err)
				}
				// The server must act on exactly one alias write: after a drop
				// before forwarding the write is repeated once; after a drop
				// past the server the re-read sees it applied and stops.
				sent, injected := attempts(obs, p, "POST", "registered-models/alias")
				applied := sent - injected
				if after {
					applied = sent
				}
				wantSent := 2
				if after {
					wantSent = 1
				}
				if sent != wantSent || injected != 1 || applied != 1 {
					t.Errorf("alias writes sent %d, dropped %d, applied %d; want %d, 1, 1", sent, injected, applied, wantSent)
				}
				if n := obs.get("GET registered-models/get"); n != 2 {
					t.Errorf("%d alias reads, want 2 (initial read and the re-read after the drop)", n)
				}
				if aliases, _ := direct.ReadAliases(ctx, f.model); aliases["prod"] != 2 {
					t.Errorf("aliases = %v", aliases)
				}
				// Converged: a second call writes nothing.
				before := c.Stats()
				if changed, err := c.EnsureAlias(ctx, f.model, "prod", 2); err != nil || changed {
					t.Errorf("second EnsureAlias: changed=%v err=%v", changed, err)
				}
				if d := diff(c.Stats(), before); d.Writes != 0 {
					t.Errorf("second EnsureAlias wrote: %+v", d)
				}
			})
		})
	}
}

func TestLiveEnsureModelVersionOnce(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testenv.MLflow) {
		ctx := t.Context()
		direct := liveClient(t, s, nil)
		f := newFixture(t, direct, 0)
		obs := &counter{}
		c, p := proxied(t, s, obs)
		// The create lands, the reply is lost.
		p.Inject(testenv.Fault{DropConnection: true, AfterForward: true, Times: 1, Match: match("POST", "model-versions/create")})
		key := testenv.UniqueName("build")
		req := f.versionRequest()
		req.Tags = map[string]string{"git_sha": "abc123"}
		mv, created, err := c.EnsureModelVersion(ctx, req, key)
		if err != nil || !created || mv.Version != 1 || mv.Tags[mlflowclient.IdempotencyTagKey] != key || mv.Tags["git_sha"] != "abc123" {
			t.Fatalf("EnsureModelVersion: %+v created=%v err=%v", mv, created, err)
		}
		mv2, created, err := c.EnsureModelVersion(ctx, req, key)
		if err != nil || created || mv2.Version != 1 {
			t.Errorf("EnsureModelVersion again: %+v created=%v err=%v", mv2, created, err)
		}
		if sent, _ := attempts(obs, p, "POST", "model-versions/create"); sent != 1 {
			t.Errorf("%d create requests, want 1", sent)
		}
		mv3, created, err := c.EnsureModelVersion(ctx, req, key+"-other")
		if err != nil || !created || mv3.Version != 2 {
			t.Errorf("EnsureModelVersion with a new key: %+v created=%v err=%v", mv3, created, err)
		}
		vs, err := direct.SearchModelVersions(ctx, mlflowclient.SearchOptions{Filter: fmt.Sprintf("name = '%s'", f.model)})
		if err != nil || len(vs) != 2 {
			t.Errorf("versions on the server = %d (%v), want 2", len(vs), err)
		}
	})
}

// BenchmarkLiveEnsureAlias measures the request cost of the alias helpers
// (reported as reads/op and writes/op) and their latency on loopback.
func BenchmarkLiveEnsureAlias(b *testing.B) {
	for _, s := range liveServers(b) {
		b.Run(s.Name, func(b *testing.B) {
			ctx := b.Context()
			c := liveClient(b, s, nil)
			f := newFixture(b, c, 2)
			report := func(b *testing.B, before mlflowclient.Stats) {
				d := diff(c.Stats(), before)
				b.ReportMetric(float64(d.Reads)/float64(b.N), "reads/op")
				b.ReportMetric(float64(d.Writes)/float64(b.N), "writes/op")
			}
			b.Run("noop", func(b *testing.B) {
				if _, err := c.EnsureAlias(ctx, f.model, "prod", 1); err != nil {
					b.Fatal(err)
				}
				before := c.Stats()
				b.ResetTimer()
				for range b.N {
					if changed, err := c.EnsureAlias(ctx, f.model, "prod", 1); err != nil || changed {
						b.Fatalf("changed=%v err=%v", changed, err)
					}
				}
				report(b, before)
			})
			b.Run("move", func(b *testing.B) {
				before := c.Stats()
				for i := range b.N {
					if _, err := c.EnsureAlias(ctx, f.model, "prod", 1+i%2); err != nil {
						b.Fatal(err)
					}
				}
				report(b, before)
			})
			b.Run("known-current", func(b *testing.B) {
				aliases, err := c.ReadAliases(ctx, f.model)
				if err != nil {
					b.Fatal(err)
				}
				cur := aliases["prod"]
				before := c.Stats()
				b.ResetTimer()
				for range b.N {
					next := 3 - cur
					if _, err := c.SetAliasIfDifferent(ctx, f.model, "prod", cur, next); err != nil {
						b.Fatal(err)
					}
					cur = next
				}
				report(b, before)
			})
		})
	}
}
