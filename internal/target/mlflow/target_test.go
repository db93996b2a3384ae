package mlflow_test

// Integration tests of the MLflow target against real MLflow servers (the
// newest 3.x and 2.x and the oldest supported 2.9.2 on sqlite, and 3.x on PostgreSQL, started once for the package). Each test registers its
// own uniquely named models. The servers run without the basic-auth app,
// whose per-request password hashing makes every call slow; authentication
// errors are covered by internal/mlflowclient's tests against basic-auth servers.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/internal/target/mlflow"
	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/test/testenv"
)

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

func servers(t *testing.T) []*testenv.MLflow {
	t.Helper()
	testenv.RequireE2E(t)
	live.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		var wg sync.WaitGroup
		// The newest 3.x and 2.x, and the oldest supported release, on
		// sqlite; and the newest 3.x on PostgreSQL, the backend MLflow runs
		// on at scale (another SQL dialect, transaction isolation and
		// concurrent writers). One server more keeps the added start time
		// modest; test/testenv runs the registry on PostgreSQL with 2.x and
		// 2.9.2 too.
		kinds := []testenv.MLflowOptions{{Major: 3}, {Major: 2}, {Major: 2, Floor: true},
			{Major: 3, Backend: testenv.BackendPostgres}}
		res := make([]*testenv.MLflow, len(kinds))
		errs := make([]error, len(kinds))
		for i, opts := range kinds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				opts.LogDir = os.Getenv("MODELSYNC_TEST_LOGDIR")
				res[i], errs[i] = testenv.StartMLflow(ctx, opts)
			}()
		}
		wg.Wait()
		for _, s := range res {
			if s != nil {
				live.servers = append(live.servers, s)
			}
		}
		live.err = errors.Join(errs...)
	})
	if live.err != nil {
		t.Fatalf("starting MLflow: %v", live.err)
	}
	return live.servers
}

func eachServer(t *testing.T, fn func(t *testing.T, s *testenv.MLflow)) {
	for _, s := range servers(t) {
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			fn(t, s)
		})
	}
}

// requests counts reads and writes the target sends.
type requests struct{ reads, writes atomic.Int64 }

func (r *requests) observe(method, _ string, _ int, _ time.Duration) {
	if method == http.MethodGet {
		r.reads.Add(1)
	} else {
		r.writes.Add(1)
	}
}

func client(t *testing.T, s *testenv.MLflow, url string, obs *requests) *mlflowclient.Client {
	t.Helper()
	cfg := mlflowclient.Config{TrackingURI: url, Username: s.Username, Password: s.Password, Timeout: 30 * time.Second,
		MaxRetries: 5, BackoffBase: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond}
	if obs != nil {
		cfg.Observe = obs.observe
	}
	c, err := mlflowclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// register creates a registered model with n READY versions.
func register(t *testing.T, c *mlflowclient.Client, n int) string {
	t.Helper()
	ctx := context.Background()
	name := testenv.UniqueName("reg")
	if _, err := c.CreateRegisteredModel(ctx, mlflowclient.CreateRegisteredModelRequest{Name: name}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		if _, err := c.CreateModelVersion(ctx, mlflowclient.CreateModelVersionRequest{Name: name, Source: fmt.Sprintf("s3://artifacts/%s/v%d", name, i)}); err != nil {
			t.Fatal(err)
		}
	}
	return name
}

var testConfig = &manifest.RepoConfig{
	APIVersion: manifest.APIVersion, Kind: manifest.KindRepository,
	Environments: []manifest.Environment{
		{Name: "dev", Namespace: "dev", Source: "main"},
		{Name: "staging", Namespace: "staging", Source: "main"},
		{Name: "prod", Namespace: "prod", Source: manifest.SourceReleases},
	},
}

// env describes one environment of a desired model: version and optional
// canary version (0 = none).
type env struct {
	name            string
	version, canary int
}

func desired(cfg *manifest.RepoConfig, models map[string][]env) *reconciler.DesiredState {
	d := &reconciler.DesiredState{Revision: "main@sha1:abc", Config: cfg}
	for _, name := range sortedNames(models) {
		dm := reconciler.DesiredModel{Name: name, RegisteredModel: name}
		for _, e := range models[name] {
			ce, _ := cfg.Environment(e.name)
			de := reconciler.DesiredEnv{Environment: e.name, Namespace: ce.Namespace, Alias: ce.AliasName(), Version: e.version,
				Revision: "main@sha1:abc", Commit: reconciler.Commit{Hash: "abc", AuthorName: "Alice", AuthorEmail: "alice@example.com"}}
			if e.name == "prod" {
				de.Revision = name + "/v1.0.0@sha1:def"
			}
			if e.canary > 0 {
				de.Canary = &reconciler.DesiredCanary{Version: e.canary, Alias: ce.AliasName() + manifest.CanarySuffix, Weight: 10}
			}
			dm.Environments = append(dm.Environments, de)
		}
		d.Models = append(d.Models, dm)
	}
	return d
}

func sortedNames(m map[string][]env) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func plan(t *testing.T, tg *mlflow.Target, d *reconciler.DesiredState) *reconciler.Plan {
	t.Helper()
	p, err := reconciler.BuildPlan(context.Background(), d, []reconciler.Target{reconciler.Typed(tg)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func apply(t *testing.T, tg *mlflow.Target, p *reconciler.Plan) {
	t.Helper()
	res, err := reconciler.Apply(context.Background(), p, []reconciler.Target{reconciler.Typed(tg)}, reconciler.ApplyOptions{})
	if err != nil || !res.OK() {
		t.Fatalf("apply: %v %+v", err, res.Failed)
	}
}

func summary(p *reconciler.Plan) string {
	var lines []string
	for _, a := range p.Actions() {
		s := fmt.Sprintf("%s %s %s->%s", a.Kind, a.Resource, a.From, a.To)
		if a.Drift {
			s += " drift"
		}
		lines = append(lines, s)
	}
	return strings.Join(lines, "\n")
}

func expectPlan(t *testing.T, p *reconciler.Plan, want ...string) {
	t.Helper()
	if got := summary(p); got != strings.Join(want, "\n") {
		t.Fatalf("plan:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if len(p.Errors()) > 0 {
		t.Fatalf("plan errors: %v", p.Errors())
	}
}

// expectConverged fails unless a fresh plan for d has nothing to do.
func expectConverged(t *testing.T, tg *mlflow.Target, d *reconciler.DesiredState, after string) {
	t.Helper()
	if p := plan(t, tg, d); p.HasChanges() {
		t.Fatalf("plan after %s has changes:\n%s", after, summary(p))
	}
}

func aliases(t *testing.T, c *mlflowclient.Client, model string) map[string]int {
	t.Helper()
	a, err := c.ReadAliases(context.Background(), model)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func tags(t *testing.T, c *mlflowclient.Client, model string, v int) map[string]string {
	t.Helper()
	mv, err := c.GetModelVersion(context.Background(), model, v)
	if err != nil {
		t.Fatal(err)
	}
	return mv.Tags
}

func TestSyncPromoteRollbackArchive(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testenv.MLflow) {
		admin := client(t, s, s.URL, nil)
		m := register(t, admin, 3)
		// A tag and an alias modelsync does not own must survive everything.
		if err := admin.SetModelVersionTag(context.Background(), m, 1, "team.note", "keep"); err != nil {
			t.Fatal(err)
		}
		if err := admin.SetAlias(context.Background(), m, "champion", 1); err != nil {
			t.Fatal(err)
		}
		var obs requests
		now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
		tg := mlflow.New(client(t, s, s.URL, &obs), mlflow.WithClock(func() time.Time { return now }))

		// First sync.
		d := desired(testConfig, map[string][]env{m: {{"dev", 3, 0}, {"staging", 2, 0}, {"prod", 1, 0}}})
		p := plan(t, tg, d)
		expectPlan(t, p,
			"set-alias alias dev ->v3", "set-alias alias staging ->v2", "set-alias alias prod ->v1",
			"tag-version version 1 none->prod", "tag-version version 2 none->staging", "tag-version version 3 none->dev")
		apply(t, tg, p)
		if a := aliases(t, admin, m); a["dev"] != 3 || a["staging"] != 2 || a["prod"] != 1 || a["champion"] != 1 {
			t.Fatalf("aliases after first sync: %v", a)
		}
		if tg1 := tags(t, admin, m, 1); tg1[mlflowclient.TagRevision] != m+"/v1.0.0@sha1:def" || tg1[mlflowclient.TagDeployedBy] != "Alice <alice@example.com>" || tg1[mlflowclient.TagEnvironments] != "prod" {
			t.Fatalf("audit tags of v1: %v", tg1)
		}

		// No-op resync: zero writes.
		obs.reads.Store(0)
		obs.writes.Store(0)
		if p := plan(t, tg, d); p.HasChanges() {
			t.Fatalf("resync plan has changes:\n%s", summary(p))
		}
		if w := obs.writes.Load(); w != 0 {
			t.Fatalf("a no-op resync wrote %d times", w)
		}
		if r := obs.reads.Load(); r != 2 {
			t.Fatalf("a no-op resync of one model read %d times, want 2 (model + version search)", r)
		}

		// Promote staging's v2 to prod: v1 leaves every environment and is archived.
		d = desired(testConfig, map[string][]env{m: {{"dev", 3, 0}, {"staging", 2, 0}, {"prod", 2, 0}}})
		p = plan(t, tg, d)
		expectPlan(t, p, "set-alias alias prod v1->v2", "archive-version version 1 active->archived", "tag-version version 2 staging->staging,prod")
		apply(t, tg, p)
		tg1 := tags(t, admin, m, 1)
		if tg1[mlflowclient.TagLifecycle] != "archived" || tg1[mlflowclient.TagArchivedAt] != "2026-11-26T09:00:00Z" || tg1[mlflowclient.TagEnvironments] != "" || tg1["team.note"] != "keep" {
			t.Fatalf("v1 after archive: %v", tg1)
		}
		// Residency: v1 left prod, v2 entered it; v2 is still in staging since the first sync.
		if tg1["modelsync.audit.prod.since"] != "2026-11-26T09:00:00Z" || tg1["modelsync.audit.prod.until"] != "2026-11-26T09:00:00Z" {
			t.Fatalf("v1 residency: %v", tg1)
		}
		if tg2 := tags(t, admin, m, 2); tg2["modelsync.audit.staging.since"] == "" || tg2["modelsync.audit.prod.since"] == "" || tg2["modelsync.audit.prod.until"] != "" {
			t.Fatalf("v2 residency: %v", tg2)
		}

		// Roll prod back to v1: un-archived, alias moved back.
		d = desired(testConfig, map[string][]env{m: {{"dev", 3, 0}, {"staging", 2, 0}, {"prod", 1, 0}}})
		p = plan(t, tg, d)
		expectPlan(t, p, "set-alias alias prod v2->v1", "unarchive-version version 1 archived->active (prod)", "tag-version version 1 none->prod", "tag-version version 2 staging,prod->staging")
		apply(t, tg, p)
		tg1 = tags(t, admin, m, 1)
		if _, archived := tg1[mlflowclient.TagLifecycle]; archived || tg1[mlflowclient.TagEnvironments] != "prod" || tg1["modelsync.audit.prod.until"] != "" {
			t.Fatalf("v1 after rollback: %v", tg1)
		}
		if a := aliases(t, admin, m); a["prod"] != 1 || a["champion"] != 1 {
			t.Fatalf("aliases after rollback: %v", a)
		}
		expectConverged(t, tg, d, "rollback")
	})
}

func TestDriftAndCanary(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testenv.MLflow) {
		admin := client(t, s, s.URL, nil)
		m := register(t, admin, 4)
		tg := mlflow.New(client(t, s, s.URL, nil))
		d := desired(testConfig, map[string][]env{m: {{"prod", 3, 4}}})
		p := plan(t, tg, d)
		expectPlan(t, p, "set-alias alias prod ->v3", "set-alias alias prod-canary ->v4", "tag-version version 3 none->prod", "tag-version version 4 none->prod:canary")
		apply(t, tg, p)

		// Someone moves prod by hand.
		if err := admin.SetAlias(context.Background(), m, "prod", 1); err != nil {
			t.Fatal(err)
		}
		p = plan(t, tg, d)
		expectPlan(t, p, "set-alias alias prod v1->v3 drift")
		apply(t, tg, p)
		if a := aliases(t, admin, m); a["prod"] != 3 {
			t.Fatalf("drift not corrected: %v", a)
		}

		// The canary is promoted: v4 takes prod, the canary alias goes, v3 is archived.
		d = desired(testConfig, map[string][]env{m: {{"prod", 4, 0}}})
		p = plan(t, tg, d)
		expectPlan(t, p, "set-alias alias prod v3->v4", "delete-alias alias prod-canary v4->", "archive-version version 3 active->archived", "tag-version version 4 prod:canary->prod")
		apply(t, tg, p)
		if a := aliases(t, admin, m); a["prod"] != 4 || a["prod-canary"] != 0 {
			t.Fatalf("aliases after promotion: %v", a)
		}
	})
}

func TestStageMode(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testenv.MLflow) {
		admin := client(t, s, s.URL, nil)
		m := register(t, admin, 3)
		cfg := *testConfig
		cfg.Defaults.Registry.Mode = manifest.ModeStages
		tg := mlflow.New(client(t, s, s.URL, nil))
		d := desired(&cfg, map[string][]env{m: {{"dev", 3, 0}, {"staging", 2, 0}, {"prod", 1, 0}}})
		p := plan(t, tg, d)
		expectPlan(t, p, "transition-stage version 1 None->Production", "transition-stage version 2 None->Staging",
			"tag-version version 1 none->prod", "tag-version version 2 none->staging", "tag-version version 3 none->dev")
		apply(t, tg, p)
		d = desired(&cfg, map[string][]env{m: {{"dev", 3, 0}, {"staging", 3, 0}, {"prod", 2, 0}}})
		p = plan(t, tg, d)
		expectPlan(t, p, "transition-stage version 1 Production->Archived", "transition-stage version 2 Staging->Production", "transition-stage version 3 None->Staging",
			"archive-version version 1 active->archived", "tag-version version 2 staging->prod", "tag-version version 3 dev->dev,staging")
		apply(t, tg, p)
		for v, want := range map[int]string{1: "Archived", 2: "Production", 3: "Staging"} {
			mv, err := admin.GetModelVersion(context.Background(), m, v)
			if err != nil || mv.CurrentStage != want {
				t.Fatalf("v%d stage %q, want %s (%v)", v, mv.CurrentStage, want, err)
			}
		}
		if a := aliases(t, admin, m); len(a) != 0 {
			t.Fatalf("stage mode wrote aliases: %v", a)
		}
	})
}

// TestStageModeDriftAndArchiveRecords: in stage mode a stage changed by hand
// is reported as drift, as a hand-moved alias is, and a version moved to
// Archived gets the same lifecycle record alias mode writes, whoever had
// staged it.
func TestStageModeDriftAndArchiveRecords(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testenv.MLflow) {
		ctx := context.Background()
		admin := client(t, s, s.URL, nil)
		m := register(t, admin, 4)
		cfg := *testConfig
		cfg.Defaults.Registry.Mode = manifest.ModeStages
		now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
		tg := mlflow.New(client(t, s, s.URL, nil), mlflow.WithClock(func() time.Time { return now }))
		d := desired(&cfg, map[string][]env{m: {{"staging", 2, 0}, {"prod", 1, 0}}})
		apply(t, tg, plan(t, tg, d))
		expectConverged(t, tg, d, "first sync")

		// By hand: prod's version archived, an unreferenced version (as if
		// staged before modelsync was adopted) put in Production.
		for v, stage := range map[int]string{1: "Archived", 4: "Production"} {
			if _, err := admin.TransitionModelVersionStage(ctx, m, v, stage, false); err != nil {
				t.Fatal(err)
			}
		}
		p := plan(t, tg, d)
		expectPlan(t, p, "transition-stage version 1 Archived->Production drift", "transition-stage version 4 Production->Archived drift",
			"archive-version version 4 active->archived")
		apply(t, tg, p)
		expectConverged(t, tg, d, "correcting the drift")
		tv := tags(t, admin, m, 4)
		if tv[mlflowclient.TagLifecycle] != mlflowclient.LifecycleArchived || tv[mlflowclient.TagArchivedAt] != now.Format(time.RFC3339) {
			t.Fatalf("version 4 archived in stage mode without the lifecycle record: %v", tv)
		}
		if mv, err := admin.GetModelVersion(ctx, m, 1); err != nil || mv.CurrentStage != "Production" {
			t.Fatalf("version 1 not back in Production: %+v %v", mv, err)
		}
	})
}

// TestCapabilitiesProbedOncePerClient counts requests: a client learns once
// (GET /version) whether version searches may cover several models, and no
// plan, from any target sharing the client, sends a search the server
// answers 400.
func TestCapabilitiesProbedOncePerClient(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testenv.MLflow) {
		admin := client(t, s, s.URL, nil)
		a, b := register(t, admin, 1), register(t, admin, 1)
		var mu sync.Mutex
		calls := map[string]int{}
		cfg := mlflowclient.Config{TrackingURI: s.URL, Timeout: 30 * time.Second,
			Observe: func(method, endpoint string, status int, _ time.Duration) {
				mu.Lock()
				defer mu.Unlock()
				calls[fmt.Sprintf("%s %s %d", method, endpoint, status)]++
			}}
		c, err := mlflowclient.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		d := desired(testConfig, map[string][]env{a: {{"dev", 1, 0}}, b: {{"dev", 1, 0}}})
		for range 2 {
			plan(t, mlflow.New(c), d) // a new target each time, as every CLI command builds one
		}
		mu.Lock()
		defer mu.Unlock()
		if n := calls["GET /version 200"]; n != 1 {
			t.Errorf("GET /version sent %d times, want once per client: %v", n, calls)
		}
		for k, n := range calls {
			if strings.HasSuffix(k, " 400") {
				t.Errorf("%d requests answered 400 (%s): capabilities not known before asking: %v", n, k, calls)
			}
		}
		t.Logf("%s: requests %v", s.Name, calls)
	})
}

func TestMissingVersionBlocksOnlyItsModel(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testenv.MLflow) {
		admin := client(t, s, s.URL, nil)
		good, bad := register(t, admin, 2), register(t, admin, 2)
		tg := mlflow.New(client(t, s, s.URL, nil))
		d := desired(testConfig, map[string][]env{good: {{"dev", 2, 0}}, bad: {{"dev", 2, 0}, {"prod", 7, 0}}})
		p := plan(t, tg, d)
		errs := p.Errors()
		if len(errs) != 1 || errs[0].Model != bad || !strings.Contains(errs[0].Message, "version 7 (wanted in prod) does not exist") {
			t.Fatalf("errors = %v", errs)
		}
		res, err := reconciler.Apply(context.Background(), p, []reconciler.Target{reconciler.Typed(tg)}, reconciler.ApplyOptions{})
		if err != nil || len(res.Applied) != 2 {
			t.Fatalf("apply: %v %+v", err, res)
		}
		if a := aliases(t, admin, good); a["dev"] != 2 {
			t.Fatalf("healthy model not synced: %v", a)
		}
		if a := aliases(t, admin, bad); len(a) != 0 {
			t.Fatalf("broken model was partly synced: %v", a)
		}
	})
}

// 503s and a dropped connection on the alias write: the apply still ends
// with the alias set once and no duplicate effect.
func TestFaultsConvergeExactlyOnce(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testenv.MLflow) {
		admin := client(t, s, s.URL, nil)
		m := register(t, admin, 2)
		proxy, err := testenv.NewFaultProxy(s.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer proxy.Close()
		isAliasWrite := func(r *http.Request) bool {
			return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/registered-models/alias")
		}
		isTagWrite := func(r *http.Request) bool {
			return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/model-versions/set-tag")
		}
		proxy.Inject(testenv.Fault{Status: http.StatusServiceUnavailable, Times: 2, Match: isAliasWrite})
		// The tag write reaches MLflow, then the connection drops before the answer.
		proxy.Inject(testenv.Fault{DropConnection: true, AfterForward: true, Times: 1, Match: isTagWrite})
		tg := mlflow.New(client(t, s, proxy.URL, nil))
		d := desired(testConfig, map[string][]env{m: {{"prod", 2, 0}}})
		apply(t, tg, plan(t, tg, d))
		if a := aliases(t, admin, m); a["prod"] != 2 {
			t.Fatalf("alias = %v", a)
		}
		if tg2 := tags(t, admin, m, 2); tg2[mlflowclient.TagEnvironments] != "prod" {
			t.Fatalf("tags = %v", tg2)
		}
		var aliasOK, tagForwarded int
		for _, r := range proxy.Requests() {
			if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/registered-models/alias") && r.Status == http.StatusOK {
				aliasOK++
			}
			// A connection dropped after forwarding did reach MLflow.
			if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/model-versions/set-tag") && (!r.Injected || r.Dropped) {
				tagForwarded++
			}
		}
		if aliasOK != 1 {
			t.Fatalf("alias written %d times, want exactly 1", aliasOK)
		}
		// Four tags (audit.prod.since, deployed_by, environments, revision);
		// the dropped one was applied by MLflow, so re-reading finds it and
		// it is not resent.
		if tagForwarded != 4 {
			t.Fatalf("set-tag reached MLflow %d times, want 4: %+v", tagForwarded, proxy.Requests())
		}
		expectConverged(t, tg, d, "faults")
	})
}

// MLflow takes one tag per request, so an audit change can stop after any
// of its writes (a crash, a rejected request). Whatever was written, the
// next pass must finish it: the revision and author of the new deployment
// win, and a stale .until stamp of an environment re-entered is removed.
func TestInterruptedTagWritesConverge(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testenv.MLflow) {
		for written := range 4 {
			t.Run(fmt.Sprintf("after %d tag writes", written), func(t *testing.T) {
				admin := client(t, s, s.URL, nil)
				m := register(t, admin, 2)
				proxy, err := testenv.NewFaultProxy(s.URL)
				if err != nil {
					t.Fatal(err)
				}
				defer proxy.Close()
				now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
				tg := mlflow.New(client(t, s, proxy.URL, nil), mlflow.WithClock(func() time.Time { return now }))

				// v1 runs in staging and prod, then leaves prod for v2 and
				// stays in staging: it carries prod.until.
				apply(t, tg, plan(t, tg, desired(testConfig, map[string][]env{m: {{"staging", 1, 0}, {"prod", 1, 0}}})))
				now = now.Add(time.Hour)
				apply(t, tg, plan(t, tg, desired(testConfig, map[string][]env{m: {{"staging", 1, 0}, {"prod", 2, 0}}})))
				if tg1 := tags(t, admin, m, 1); tg1["modelsync.audit.prod.until"] != "2026-11-26T10:00:00Z" {
					t.Fatalf("v1 after leaving prod: %v", tg1)
				}

				// Roll prod back to v1 under a new revision and author; the
				// tag writes fail after `written` of them reached MLflow.
				now = now.Add(time.Hour)
				d := desired(testConfig, map[string][]env{m: {{"staging", 1, 0}, {"prod", 1, 0}}})
				prod := &d.Models[0].Environments[1]
				prod.Revision, prod.Commit = m+"/v1.0.1@sha1:fed", reconciler.Commit{Hash: "fed", AuthorName: "Bob", AuthorEmail: "bob@example.com"}
				var seen atomic.Int32
				proxy.Inject(testenv.Fault{Status: http.StatusBadRequest, Match: func(r *http.Request) bool {
					if r.Method != http.MethodDelete && !(r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/model-versions/set-tag")) {
						return false
					}
					return int(seen.Add(1)) > written
				}})
				res, err := reconciler.Apply(t.Context(), plan(t, tg, d), []reconciler.Target{reconciler.Typed(tg)}, reconciler.ApplyOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if res.OK() {
					t.Fatalf("apply succeeded although tag writes after the first %d were refused", written)
				}

				proxy.Reset()
				p := plan(t, tg, d)
				if !p.HasChanges() {
					t.Fatalf("after %d of the tag writes the next plan sees nothing to do; v1 tags: %v", written, tags(t, admin, m, 1))
				}
				apply(t, tg, p)
				want := map[string]string{
					mlflowclient.TagEnvironments:    "staging,prod",
					mlflowclient.TagRevision:        m + "/v1.0.1@sha1:fed",
					mlflowclient.TagDeployedBy:      "Bob <bob@example.com>",
					"modelsync.audit.staging.since": "2026-11-26T09:00:00Z",
					"modelsync.audit.prod.since":    "2026-11-26T11:00:00Z",
				}
				got := tags(t, admin, m, 1)
				for k, v := range want {
					if got[k] != v {
						t.Errorf("v1 tag %s = %q, want %q (all: %v)", k, got[k], v, got)
					}
				}
				if u, ok := got["modelsync.audit.prod.until"]; ok {
					t.Errorf("v1 kept prod.until = %q after re-entering prod", u)
				}
				expectConverged(t, tg, d, "convergence")
			})
		}
	})
}

// A model Git keeps without environments is retired: every version is
// archived, those it never deployed included.
func TestRetiredModelArchivesEveryVersion(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testenv.MLflow) {
		admin := client(t, s, s.URL, nil)
		m := register(t, admin, 2)
		now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
		tg := mlflow.New(client(t, s, s.URL, nil), mlflow.WithClock(func() time.Time { return now }))
		apply(t, tg, plan(t, tg, desired(testConfig, map[string][]env{m: {{"prod", 2, 0}}})))

		d := desired(testConfig, map[string][]env{m: nil})
		p := plan(t, tg, d)
		expectPlan(t, p, "delete-alias alias prod v2->", "archive-version version 1 active->archived", "archive-version version 2 active->archived")
		apply(t, tg, p)
		for v := 1; v <= 2; v++ {
			if tv := tags(t, admin, m, v); tv[mlflowclient.TagLifecycle] != mlflowclient.LifecycleArchived || tv[mlflowclient.TagEnvironments] != "" {
				t.Errorf("v%d after retiring: %v", v, tv)
			}
		}
		if tv := tags(t, admin, m, 2); tv["modelsync.audit.prod.until"] != "2026-11-26T09:00:00Z" {
			t.Errorf("v2 residency after retiring: %v", tv)
		}
		expectConverged(t, tg, d, "retiring")
	})
}
