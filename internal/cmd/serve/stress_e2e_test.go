package serve_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/cmd/serve"
	"github.com/modelsync/modelsync/internal/cmdutil"
	ghub "github.com/modelsync/modelsync/internal/github"
	"github.com/modelsync/modelsync/internal/github/githubtest"
	"github.com/modelsync/modelsync/internal/wiring"
	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/test/testenv"
)

// quietTarget observes nothing and plans nothing: the stress test is about
// the controller's fetches, not about what it applies.
type quietTarget struct{}

func (quietTarget) Name() string { return "quiet" }
func (quietTarget) Observe(context.Context, *reconciler.DesiredState) (reconciler.Observation, error) {
	return nil, nil
}
func (quietTarget) Plan(*reconciler.DesiredState, reconciler.Observation) reconciler.TargetPlan {
	return reconciler.TargetPlan{}
}
func (quietTarget) Apply(context.Context, reconciler.Action) error { return nil }

// stressPR is an open pull request changing one model's dev version; each
// update flips the version between two values.
type stressPR struct {
	number   int
	branch   string
	file     string
	from, to string
	heads    []string // every head it had, the last one current
}

// serve's controller and PR gate share the models repository. Pushes to
// the base branch make both fetch at once (the push webhook triggers the
// controller and re-checks every open pull request), while the controller
// also polls every 100 ms and pull requests get new heads. With one owner of
// the clone cache none of this may fail: no commit status is ever "error",
// every pull request ends with a verdict on its latest head, and nothing is
// logged at error level (no failed fetch, no failed evaluation).
func TestServeStressSharedGitOwner(t *testing.T) {
	start := time.Now()
	gitsrv := testenv.NewGitServer(t)
	if _, err := gitsrv.NewBareRepo("acme/models"); err != nil {
		t.Fatal(err)
	}
	remote := gitsrv.DaemonURL + "acme/models.git"
	gitIn(t, exampleRepo(t), "push", "-q", remote, "refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*")
	wd := testenv.NewWorkdir(t, remote)

	prs := []*stressPR{
		{number: 1, branch: "churn-dev", file: "models/customer-churn-predictor/model.yaml", from: "5", to: "4"},
		{number: 2, branch: "fraud-dev", file: "models/fraud-detector-xgb/model.yaml", from: "2", to: "1"},
		{number: 3, branch: "llama-dev", file: "models/llama2-7b-alpaca/model.yaml", from: "4", to: "3"},
	}
	api := githubtest.New(t, "acme", "models", "ghp_stress")
	push := func(pr *stressPR) {
		t.Helper()
		wd.Run("checkout", "--quiet", "-B", pr.branch, "origin/"+pr.branch)
		p := filepath.Join(wd.Dir, pr.file)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		old := "    dev:\n      version: " + pr.from + "\n"
		if !bytes.Contains(b, []byte(old)) {
			t.Fatalf("%s has no dev version %s", pr.file, pr.from)
		}
		wd.WriteFile(pr.file, strings.Replace(string(b), old, "    dev:\n      version: "+pr.to+"\n", 1))
		pr.from, pr.to = pr.to, pr.from
		head := wd.Commit(fmt.Sprintf("%s: dev to v%s", pr.branch, pr.from))
		wd.Push("HEAD:refs/heads/" + pr.branch)
		wd.Run("fetch", "--quiet", "origin")
		pr.heads = append(pr.heads, head)
		api.PutPR(githubtest.PR{Number: pr.number, State: "open", Author: "carol", BaseRef: "main", HeadRef: pr.branch, HeadSHA: head, Files: []string{pr.file}})
	}
	for _, pr := range prs {
		wd.Run("checkout", "--quiet", "-B", pr.branch, "origin/main")
		wd.Push("HEAD:refs/heads/" + pr.branch)
		wd.Run("fetch", "--quiet", "origin")
		push(pr)
	}

	secret := "stress-secret"
	env := map[string]string{serve.EnvWebhookSecret: secret, "GITHUB_TOKEN": "ghp_stress", serve.EnvRepository: "acme/models",
		cmdutil.EnvGitHubAPIURL: api.URL, "MODELSYNC_CACHE_DIR": t.TempDir()}
	var logs bytes.Buffer
	f := wiring.New(cmdutil.IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &syncWriter{w: &logs}},
		func(k string) string { return env[k] }, "")
	f.Targets = func(context.Context) ([]reconciler.Target, error) { return []reconciler.Target{quietTarget{}}, nil }
	addr := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serve.Run(ctx, &serve.Options{Factory: f, Only: []string{serve.ComponentController, serve.ComponentWebhooks},
			Listen: "127.0.0.1:0", Interval: 100 * time.Millisecond, ResyncInterval: time.Hour, Concurrency: 2, GitCacheMiB: 64,
			Repo: cmdutil.RepoFlags{URL: remote, Branch: "main"}, OnListen: func(a string) { addr <- a }})
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
	defer stop()
	var hook string
	select {
	case a := <-addr:
		hook = "http://" + a + ghub.WebhookPath
	case err := <-done:
		t.Fatalf("serve exited: %v\n%s", err, logs.String())
	}
	delivery := 0
	deliver := func(event string, payload any) {
		t.Helper()
		delivery++
		if c := githubtest.Deliver(t, hook, githubtest.Delivery{Event: event, ID: fmt.Sprintf("d%d", delivery), Payload: payload, Secret: []byte(secret)}); c != 202 {
			t.Fatalf("%s delivery: status %d, want 202", event, c)
		}
	}
	for _, pr := range prs {
		deliver("pull_request", api.PullRequestEvent("opened", pr.number))
	}

	// 50 pushes to main, each announced at once; every fifth is followed
	// by a new head of one pull request. Nothing waits for the work the
	// deliveries start, so fetches overlap.
	const pushes = 50
	wd.Run("checkout", "--quiet", "-B", "main", "origin/main")
	before := wd.Run("rev-parse", "HEAD")
	for i := range pushes {
		wd.WriteFile(fmt.Sprintf("notes/push-%02d.md", i), "base push\n")
		after := wd.Commit(fmt.Sprintf("base push %d", i))
		wd.Push("HEAD:refs/heads/main")
		deliver("push", api.PushEvent("refs/heads/main", before, after, "main", false, false))
		before = after
		if i%5 == 4 {
			pr := prs[(i/5)%len(prs)]
			push(pr)
			deliver("pull_request", api.PullRequestEvent("synchronize", pr.number))
			wd.Run("checkout", "--quiet", "main")
		}
	}
	pushed := time.Since(start)

	// Every pull request ends with a verdict on its latest head, and the
	// statuses stop changing (no evaluation left in flight).
	verdicts := func() bool {
		for _, pr := range prs {
			st, ok := api.Latest(pr.heads[len(pr.heads)-1], ghub.StatusContext)
			if !ok || st.State == "pending" {
				return false
			}
		}
		return true
	}
	posted := func() int {
		n := 0
		for _, pr := range prs {
			for _, h := range pr.heads {
				n += len(api.Statuses(h))
			}
		}
		return n
	}
	deadline := time.Now().Add(60 * time.Second)
	for last, quiet := -1, 0; quiet < 5; {
		if time.Now().After(deadline) {
			t.Fatalf("pull requests did not settle on a verdict within a minute\n%s", tail(logs.String(), 40))
		}
		time.Sleep(200 * time.Millisecond)
		if n := posted(); verdicts() && n == last {
			quiet++
		} else {
			last, quiet = n, 0
		}
	}
	stop()

	errored := 0
	for _, pr := range prs {
		for _, h := range pr.heads {
			for _, st := range api.Statuses(h) {
				if st.State == "error" {
					errored++
					t.Errorf("PR #%d head %.12s: %s = error: %s", pr.number, h, st.Context, st.Description)
				}
			}
		}
		st, _ := api.Latest(pr.heads[len(pr.heads)-1], ghub.StatusContext)
		if st.State != "success" && st.State != "failure" {
			t.Errorf("PR #%d ends with %s = %q on its latest head, want a verdict", pr.number, ghub.StatusContext, st.State)
		}
	}
	logErrors := 0
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var entry struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &entry) == nil && entry.Level == "ERROR" {
			logErrors++
			t.Errorf("error logged: %s", sc.Text())
		}
	}
	t.Logf("%d base pushes and %d pull request heads in %v; settled after %v; %d statuses posted, %d error statuses, %d error log lines",
		pushes, len(prs)*(1+pushes/5/len(prs)), pushed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), posted(), errored, logErrors)
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}
