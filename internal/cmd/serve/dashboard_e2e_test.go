package serve_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/modelsync/modelsync/internal/analysis"
	"github.com/modelsync/modelsync/internal/canary"
	"github.com/modelsync/modelsync/internal/cmd/serve"
	"github.com/modelsync/modelsync/internal/cmdutil"
	ghub "github.com/modelsync/modelsync/internal/github"
	"github.com/modelsync/modelsync/internal/github/githubtest"
	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/internal/wiring"
	"github.com/modelsync/modelsync/test/fixture"
	"github.com/modelsync/modelsync/test/testenv"
)

// llamaCanary is the analysis of llama2-7b-alpaca's prod canary (v4 at
// 20/50/80 in the example), made by the real analyzer from counts: four
// looks at 20% and three at 50%, so the chart must have seven points.
type llamaCanary struct {
	status canary.Status
	looks  []analysis.Decision
}

func (c *llamaCanary) CanaryStatus(model, env string) (canary.Status, bool) {
	return c.status, model == "llama2-7b-alpaca" && env == "prod"
}

func (c *llamaCanary) CanaryLooks(model, env string) []analysis.Decision {
	if model == "llama2-7b-alpaca" && env == "prod" {
		return c.looks
	}
	return nil
}

const llamaLooks = 7

func newLlamaCanary(t *testing.T) *llamaCanary {
	t.Helper()
	a, err := analysis.New(analysis.Config{Steps: []int{20, 50, 80}, StepDuration: 2 * time.Minute, MinSamples: 200,
		Metrics: []analysis.Metric{{Name: "errors", Margin: 1.2}}})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Hour).UTC()
	st := a.Start(at)
	c := &llamaCanary{}
	var d analysis.Decision
	for step, looks := range []int{4, 3} {
		if step > 0 {
			if st, err = a.Advance(st, at); err != nil {
				t.Fatal(err)
			}
		}
		w := int64(st.Windows[st.Step].Weight)
		for k := int64(1); k <= int64(looks); k++ {
			at = at.Add(time.Minute)
			n := k * 1000
			cn, sn := n*w/100, n*(100-w)/100
			st, d, err = a.Look(st, analysis.Look{At: at, Metrics: map[string]analysis.Arms{"errors": {
				Canary: analysis.Counts{Bad: cn / 90, Total: cn}, Stable: analysis.Counts{Bad: sn / 100, Total: sn}}}})
			if err != nil {
				t.Fatal(err)
			}
			c.looks = append(c.looks, d)
		}
	}
	c.status = canary.Status{Model: "llama2-7b-alpaca", Environment: "prod", StableVersion: 3, CandidateVersion: 4,
		Weight: st.Windows[st.Step].Weight, State: st, Decision: &d, Next: "look again in 1m"}
	return c
}

// The dashboard in a real headless Chromium against serve running on the
// test environment (Git server, MLflow) with the example repository.
func TestDashboardInBrowser(t *testing.T) {
	testenv.RequireE2E(t)
	chromium, err := testenv.ChromiumPath()
	if err != nil {
		t.Fatal(err)
	}
	ml := testenv.NewMLflow(t, testenv.MLflowOptions{Major: 3})
	gitsrv := testenv.NewGitServer(t)
	minio := testenv.NewMinIO(t)
	admin, err := mlflowclient.New(mlflowclient.Config{TrackingURI: ml.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Artifacts where the registry's sources point (s3://models/<model>/<v>),
	// v KiB each, for the model page's storage cost.
	if err := minio.MakeBucket(ctx, "models", false); err != nil {
		t.Fatal(err)
	}
	s3c := minio.Client(ctx)
	for name, versions := range fixture.ExampleVersions {
		for v := 1; v <= versions; v++ {
			if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("models"), Key: aws.String(fmt.Sprintf("%s/%d/model.bin", name, v)),
				Body: strings.NewReader(strings.Repeat("w", 1024*v))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Setenv("AWS_ACCESS_KEY_ID", minio.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", minio.SecretKey)
	t.Setenv("AWS_REGION", minio.Region)
	// Runs with metrics, a parameter and a dataset tag: the lineage.
	fixture.RegisterExample(t, admin, fixture.RegisterOptions{WithRuns: true})
	// GitHub: the dashboard's rollback opens a pull request through its
	// API, and the PR gate judges it.
	api := githubtest.New(t, "acme", "models", "ghp_dashboard_test")
	const webhookSecret = "dashboard-webhook-secret"
	if _, err := gitsrv.NewBareRepo("models"); err != nil {
		t.Fatal(err)
	}
	gitIn(t, exampleRepo(t), "push", "-q", gitsrv.AuthHTTPURL("models"), "main", "--tags")

	shots, err := os.MkdirTemp("", "modelsync-dashboard-screenshots-")
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	start := func(anonymous bool) string {
		t.Helper()
		env := map[string]string{"MLFLOW_TRACKING_URI": ml.URL, "MODELSYNC_CACHE_DIR": t.TempDir(), serve.EnvAPIToken: testAPIToken,
			"MODELSYNC_GIT_USERNAME": gitsrv.Username, "MODELSYNC_GIT_PASSWORD": gitsrv.Password,
			cmdutil.EnvGitHubToken: api.Token, cmdutil.EnvGitHubAPIURL: api.URL, serve.EnvRepository: "acme/models", serve.EnvWebhookSecret: webhookSecret}
		f := wiring.New(cmdutil.IOStreams{In: strings.NewReader(""), Out: &syncBuffer{}, ErrOut: &logs}, func(k string) string { return env[k] }, "")
		f.Flags.S3, f.Flags.S3Endpoint, f.Flags.S3PathStyle = true, minio.Endpoint, true
		addr := make(chan string, 1)
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- serve.Run(runCtx, &serve.Options{Factory: f, Listen: "127.0.0.1:0", ProbeListen: "", Interval: time.Second, ResyncInterval: time.Hour,
				Concurrency: 2, Repo: cmdutil.RepoFlags{URL: gitsrv.HTTPURL + "models.git", Branch: "main"},
				DashboardRollback: serve.RollbackPullRequest, DashboardAnonymousRead: anonymous, DashboardCanaries: newLlamaCanary(t), StateDir: t.TempDir(),
				OnListen: func(a string) { addr <- a }})
		}()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
		select {
		case a := <-addr:
			return "http://" + a
		case err := <-done:
			t.Fatalf("serve exited: %v\n%s", err, logs.String())
		}
		return ""
	}
	base := start(false)

	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.WindowSize(1280, 900), chromedp.Flag("disable-dev-shm-usage", true))...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	// The first call starts the browser and must not carry a timeout. It
	// turns on the network log: every request the page makes, in order.
	if _, err := chromedp.Call(browser, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	var netMu sync.Mutex
	var requests []string
	sent := chromedp.Events(browser, network.RequestWillBeSent)
	go func() {
		for ev, err := range sent {
			if err != nil {
				return
			}
			netMu.Lock()
			requests = append(requests, ev.Request.Method+" "+strings.TrimPrefix(ev.Request.URL, base))
			netMu.Unlock()
		}
	}()
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, cancel := context.WithTimeout(browser, 60*time.Second)
		defer cancel()
		if err := chromedp.Do(c, actions...); err != nil {
			t.Fatalf("%s: %v\nserve log tail:\n%s", what, err, tail(logs.String(), 30))
		}
	}
	shot := func(name string) string {
		t.Helper()
		png := value(t, browser, "screenshot "+name, chromedp.FullScreenshot(100))
		p := filepath.Join(shots, name+".png")
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
		return p
	}
	eval := func(js string) any {
		return value(t, browser, js, chromedp.Evaluate[any](js, chromedp.EvalAwaitPromise))
	}
	text := func(sel string) string { return value(t, browser, "text of "+sel, chromedp.Text(chromedp.CSS(sel))) }
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	visible := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.WaitVisible(css(sel)) }

	// 1. Unauthenticated: the login page, with 401.
	run("open / signed out", chromedp.Navigate(base+"/"), visible("#token"))
	if status := eval(`performance.getEntriesByType("navigation")[0].responseStatus`); status != float64(401) || !strings.Contains(text("h1"), "Sign in") {
		t.Fatalf("signed-out overview: status %v, heading %q", status, text("h1"))
	}
	shot("login")

	// 2. Sign in with the API token; the overview shows every model ×
	// environment with the versions the controller reports.
	run("sign in", chromedp.SendKeys(css("#token"), testAPIToken), chromedp.Submit(css("#token")), visible("#overview"))
	var st struct {
		Rows []struct{ Model, Environment, Desired, State string }
	}
	eventually(t, "every row reconciled", func() bool {
		resp, err := apiGet(base + "/api/v1/status")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		st.Rows = nil
		if json.NewDecoder(resp.Body).Decode(&st) != nil || len(st.Rows) == 0 {
			return false
		}
		for _, r := range st.Rows {
			if r.State == "unknown" {
				return false
			}
		}
		return true
	})
	run("reload the overview", chromedp.Navigate(base+"/"), visible("#overview"))
	cells := overviewCells(t, browser)
	for _, r := range st.Rows {
		if r.Environment == "-" {
			continue
		}
		if got := cells[r.Model+"/"+r.Environment]; !strings.HasPrefix(got, r.Desired) {
			t.Errorf("overview %s/%s = %q, status says desired %q", r.Model, r.Environment, got, r.Desired)
		}
	}
	for k, want := range map[string]string{"customer-churn-predictor/dev": "v5", "customer-churn-predictor/staging": "v4", "customer-churn-predictor/prod": "v3",
		"llama2-7b-alpaca/prod": "v3 (canary v4 at 20%)"} {
		if got := cells[k]; !strings.HasPrefix(got, want) {
			t.Errorf("overview %s = %q, want %s", k, got, want)
		}
	}
	shot("overview")

	// 3. An idle page makes no request beyond its one event stream.
	netMu.Lock()
	requests = nil
	netMu.Unlock()
	run("reload for the network log", chromedp.Reload(), visible("#overview"), chromedp.Sleep(4*time.Second))
	netMu.Lock()
	idle := slices.Clone(requests)
	netMu.Unlock()
	var streams, others []string
	for _, r := range idle {
		switch {
		case r == "GET /events":
			streams = append(streams, r)
		case r == "GET /" || strings.HasPrefix(r, "GET /static/"):
		default:
			others = append(others, r)
		}
	}
	if len(streams) != 1 || len(others) != 0 {
		t.Errorf("idle overview made %d event streams and other requests %v; log %v", len(streams), others, idle)
	}
	t.Logf("network log of the idle overview over 4s: %v", idle)

	// 4. A commit pushed to the Git server updates the open page without
	// a reload: the marker set in the page survives and the cell changes.
	eval(`window.__noReload = 42`)
	work := t.TempDir() + "/w"
	gitIn(t, "", "clone", "-q", gitsrv.AuthHTTPURL("models"), work)
	churn := work + "/models/customer-churn-predictor/model.yaml"
	b, _ := os.ReadFile(churn)
	if !strings.Contains(string(b), "    dev:\n      version: 5") {
		t.Fatalf("example changed: %s", b)
	}
	os.WriteFile(churn, []byte(strings.Replace(string(b), "    dev:\n      version: 5", "    dev:\n      version: 2", 1)), 0o644)
	gitIn(t, work, "commit", "-qam", "dev back to v2")
	gitIn(t, work, "push", "-q", "origin", "main")
	deadline := time.Now().Add(90 * time.Second)
	for {
		if c := overviewCells(t, browser)["customer-churn-predictor/dev"]; strings.HasPrefix(c, "v2") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the open overview never showed dev v2: %v", overviewCells(t, browser))
		}
		time.Sleep(500 * time.Millisecond)
	}
	if marker := eval(`window.__noReload || 0`); marker != float64(42) {
		t.Fatalf("the page was reloaded (marker %v), not updated live", marker)
	}

	// 5. The model page: the canary chart has one point per recorded look.
	run("open the llama page", chromedp.Navigate(base+"/models/llama2-7b-alpaca"), visible("#env-prod svg.chart"))
	if points := eval(`document.querySelectorAll("#env-prod svg.chart circle.pt-canary title").length`); points != float64(llamaLooks) {
		t.Errorf("chart has %v canary points, want %d", points, llamaLooks)
	}
	// Its lineage (from MLflow) and storage cost (from MinIO, priced as
	// `modelsync cost` prices it); the page refreshes itself when a read
	// finishes after its budget.
	waitJS(t, browser, "prod's lineage and the storage cost", `!!document.querySelector('#env-prod .lineage[data-version="3"] .run-id') && !!document.getElementById("storage-total")`)
	lin := text(`#env-prod .lineage[data-version="3"]`)
	if !strings.Contains(lin, "accuracy") || !strings.Contains(lin, "0.88") || !strings.Contains(lin, "max_depth") || !strings.Contains(lin, "customer-activity@2024-06-30") {
		t.Errorf("prod v3's lineage on the page: %s", lin)
	}
	if st := text("#env-prod .env-storage"); !strings.HasPrefix(st, "STANDARD · ") || !strings.HasSuffix(st, "/month") {
		t.Errorf("prod v3's storage: %q", st)
	}
	if rows := eval(`document.querySelectorAll("table.storage tbody tr").length`); rows != float64(fixture.ExampleVersions["llama2-7b-alpaca"]) {
		t.Errorf("storage table has %v rows, want one per stored version", rows)
	}
	shot("model-llama2-7b-alpaca")

	// 6. Roll back churn staging v4 → v3 from the page: a pull request
	// opened through the GitHub API from a pushed branch, an audit entry
	// naming the user.
	run("roll back", chromedp.Navigate(base+"/models/customer-churn-predictor"), visible("#env-staging"),
		chromedp.SetValue(css(`#env-staging select[name="to"]`), "3"),
		chromedp.Click(css(`#env-staging form[action$="/rollback"] button`)), visible("#confirm"))
	shot("rollback-confirm")
	run("confirm", chromedp.Click(css("#confirm")), visible("#result"))
	if res := text("#result"); !strings.Contains(res, "opened pull request #1 to roll customer-churn-predictor in staging back from v4 to v3") {
		t.Fatalf("rollback result: %s\n%s", res, tail(logs.String(), 30))
	}
	shot("rollback-result")
	prs := api.PRs()
	if len(prs) != 1 || prs[0].BaseRef != "main" || prs[0].Title != "rollback: customer-churn-predictor in staging from v4 to v3" || !strings.Contains(prs[0].Body, "token:default") {
		t.Fatalf("pull requests on GitHub: %+v", prs)
	}
	gitDir := filepath.Join(gitsrv.Root, "models.git")
	out, err := exec.Command("git", "--git-dir", gitDir, "log", "-1", "--format=%H|%an|%s", prs[0].HeadRef).CombinedOutput()
	head, rest, _ := strings.Cut(strings.TrimSpace(string(out)), "|")
	if err != nil || rest != "token:default (modelsync dashboard)|rollback: customer-churn-predictor in staging from v4 to v3" {
		t.Fatalf("no rollback commit on branch %s: %v %s", prs[0].HeadRef, err, out)
	}
	if out, err := exec.Command("git", "--git-dir", gitDir, "log", "-1", "--format=%s", "main").CombinedOutput(); err != nil || strings.Contains(string(out), "rollback") {
		t.Fatalf("the rollback reached main without the pull request: %v %s", err, out)
	}

	// 7. The PR gate judges the pull request; its verdict shows on the
	// open model page, live.
	run("open the churn page", chromedp.Navigate(base+"/models/customer-churn-predictor"), visible("#verdicts"))
	if rows := eval(`document.querySelectorAll("table.verdicts tbody tr").length`); rows != float64(0) {
		t.Fatalf("%v verdicts before the gate judged anything", rows)
	}
	eval(`window.__noReload = 43`)
	api.SetHead(1, head, []string{"models/customer-churn-predictor/model.yaml"})
	if code := githubtest.Deliver(t, base+ghub.WebhookPath, githubtest.Delivery{Event: "pull_request", ID: "dash-1",
		Payload: api.PullRequestEvent("opened", 1), Secret: []byte(webhookSecret)}); code != 202 {
		t.Fatalf("pull_request delivery: %d", code)
	}
	var verdict githubtest.Status
	eventually(t, "the gate's verdict on the rollback pull request", func() bool {
		st, ok := api.Latest(head, ghub.StatusContext)
		verdict = st
		return ok && st.State != "pending"
	})
	waitJS(t, browser, "the verdict on the model page", `!!document.querySelector("table.verdicts tbody tr")`)
	if marker := eval(`window.__noReload || 0`); marker != float64(43) {
		t.Errorf("the model page was reloaded (marker %v), not updated live", marker)
	}
	if row := text("table.verdicts tbody tr"); !strings.Contains(row, "#1") || !strings.Contains(row, head[:7]) || !strings.Contains(row, verdict.State) {
		t.Errorf("verdict row %q, GitHub status %+v", row, verdict)
	}
	shot("model-verdicts")

	// Merging the pull request (a fast-forward of main) rolls staging back.
	gitIn(t, work, "fetch", "-q", "origin", prs[0].HeadRef)
	gitIn(t, work, "push", "-q", "origin", "FETCH_HEAD:main")
	eventually(t, "staging alias rolled back to v3", func() bool {
		a, err := admin.ReadAliases(ctx, "customer-churn-predictor")
		return err == nil && a["staging"] == 3
	})

	// 8. The audit page: filter, the rollback entry, and both exports.
	run("audit filtered", chromedp.Navigate(base+"/audit"), visible("#audit"),
		chromedp.SendKeys(css(`input[name="action"]`), "rollback-requested"), chromedp.Submit(css(`input[name="action"]`)))
	waitJS(t, browser, "the filtered audit page", `location.search.includes("action=rollback") && document.readyState === "complete"`)
	run("audit loaded", visible("#audit-total"))
	if rows, html := eval(`document.querySelectorAll("#audit tbody tr").length`), text("#audit"); rows != float64(1) || !strings.Contains(html, "token:default") || !strings.Contains(html, "customer-churn-predictor") {
		t.Fatalf("audit filter: %v rows\n%s", rows, html)
	}
	shot("audit")
	csvText, _ := eval(`fetch(document.getElementById("export-csv").href).then(r => r.text())`).(string)
	jsonText, _ := eval(`fetch(document.getElementById("export-json").href).then(r => r.text())`).(string)
	if lines := strings.Split(strings.TrimSpace(csvText), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "id,time,actor") || !strings.Contains(lines[1], "rollback-requested") {
		t.Errorf("CSV export: %q", csvText)
	}
	var exported struct{ Entries []map[string]any }
	if err := json.Unmarshal([]byte(jsonText), &exported); err != nil || len(exported.Entries) != 1 || exported.Entries[0]["actor"] != "token:default" {
		t.Errorf("JSON export: %v %s", err, jsonText)
	}
	run("entry link", chromedp.Click(css(`#audit tbody a`)), visible("dl.facts"))
	if html := text("main"); !strings.Contains(html, "rollback-requested") || !strings.Contains(html, "v3") || !strings.Contains(html, "pull request #1") {
		t.Errorf("audit entry page: %s", html)
	}

	// 9. Phone width and dark mode stay readable (screenshots only).
	if _, err := chromedp.Call(browser, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}}); err != nil {
		t.Fatal(err)
	}
	run("phone dark", chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+"/models/customer-churn-predictor"), visible("#env-dev"))
	shot("model-phone-dark")
	if _, err := chromedp.Call(browser, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{}); err != nil {
		t.Fatal(err)
	}

	// 10. A read-only browser (anonymous reading enabled) sees the pages
	// and no action button.
	ro := start(true)
	// /readyz turns ready once Git is fetched, a moment before the desired
	// state is computed; the page knows the model from then on.
	eventually(t, "the read-only server knows the model", func() bool { return get(t, ro+"/models/customer-churn-predictor") == 200 })
	run("read-only", chromedp.EmulateViewport(1280, 900), chromedp.Navigate(ro+"/models/customer-churn-predictor"), visible("#env-dev"))
	if n := eval(`document.querySelectorAll(".actions, a[href*='/reconcile'], form[action$='/rollback']").length`); n != float64(0) || strings.Contains(text("main"), "Reconcile now") {
		t.Errorf("read-only page shows %v actions", n)
	}
	shot("model-read-only")

	if os.Getenv("MODELSYNC_UPDATE_DOCS") == "1" {
		for src, dst := range map[string]string{"overview": "dashboard-overview.png", "model-llama2-7b-alpaca": "dashboard-model.png"} {
			b, err := os.ReadFile(filepath.Join(shots, src+".png"))
			if err == nil {
				err = os.WriteFile(filepath.Join("..", "..", "..", "docs", dst), b, 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	fmt.Printf("dashboard screenshots: %s\n", shots)
}

// waitJS evaluates js until it is true; errors while a navigation
// replaces the page's context are retried.
func waitJS(t *testing.T, browser context.Context, what, js string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, cancel := context.WithTimeout(browser, 5*time.Second)
		ok, err := chromedp.Run(c, chromedp.Evaluate[bool](js))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s never held (last error %v)", what, js, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// value runs one action that returns a value, with a timeout.
func value[T any](t *testing.T, browser context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	c, cancel := context.WithTimeout(browser, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// overviewCells reads the overview table: model/env -> the cell's first
// line (the desired version).
func overviewCells(t *testing.T, browser context.Context) map[string]string {
	t.Helper()
	return value(t, browser, "read the overview", chromedp.Evaluate[map[string]string](`(() => {
		const envs = [...document.querySelectorAll("#overview thead th")].slice(1).map(th => th.textContent.trim());
		const out = {};
		for (const tr of document.querySelectorAll("#overview tbody tr")) {
			const model = tr.querySelector("th a").textContent.trim();
			[...tr.querySelectorAll("td")].forEach((td, i) => { const b = td.querySelector("b"); if (b) out[model + "/" + envs[i]] = b.textContent; });
		}
		return out;
	})()`))
}
