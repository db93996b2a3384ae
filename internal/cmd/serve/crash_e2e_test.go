package serve_test

// Process-level crash tests: the real modelsync binary is started, killed
// with SIGKILL, and started again (or replaced by a standby), and the
// registry must end exactly where Git says, with no write done twice.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/cmd/serve"
	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/test/fixture"
	"github.com/modelsync/modelsync/test/testenv"
)

var buildOnce struct {
	sync.Once
	path string
	err  error
}

// binary builds cmd/modelsync once per test binary.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "modelsync-bin-")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "modelsync")
		out, err := exec.Command("go", "build", "-o", buildOnce.path, "github.com/modelsync/modelsync/cmd/modelsync").CombinedOutput()
		if err != nil {
			buildOnce.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.path
}

type serveProc struct {
	cmd  *exec.Cmd
	url  string
	log  string
	done chan struct{}
}

func startServe(t *testing.T, env []string, args ...string) *serveProc {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	logPath := filepath.Join(t.TempDir(), "serve.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// Probes and metrics on the API listener: parallel processes must not
	// share the default probe port.
	cmd := exec.Command(binary(t), append([]string{"serve", "--only", "controller", "--listen", addr, "--probe-listen="}, args...)...)
	cmd.Env = append(slices.Clone(env), serve.EnvAPIToken+"="+testAPIToken)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serveProc{cmd: cmd, url: "http://" + addr, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logFile.Close(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			lines := strings.Split(string(b), "\n")
			t.Logf("last lines of %s:\n%s", logPath, strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
	})
	return p
}

func (p *serveProc) kill9() {
	_ = p.cmd.Process.Kill() // SIGKILL: no shutdown code runs
	<-p.done
}

func (p *serveProc) leader() bool {
	resp, err := apiGet(p.url + "/api/v1/status")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var st struct{ Leader bool }
	return json.NewDecoder(resp.Body).Decode(&st) == nil && st.Leader
}

// crashFixture is MLflow behind a recording proxy, with the example's
// models registered, and the example repository on a Git server.
type crashFixture struct {
	admin *mlflowclient.Client
	proxy *testenv.FaultProxy
	env   []string
	repo  string
	git   *testenv.GitServer
}

func newCrashFixture(t *testing.T) *crashFixture {
	ml := testenv.NewMLflow(t, testenv.MLflowOptions{Major: 3})
	gitsrv := testenv.NewGitServer(t)
	admin, err := mlflowclient.New(mlflowclient.Config{TrackingURI: ml.URL})
	if err != nil {
		t.Fatal(err)
	}
	fixture.RegisterExample(t, admin, fixture.RegisterOptions{})
	dir := exampleRepo(t)
	if _, err := gitsrv.NewBareRepo("models"); err != nil {
		t.Fatal(err)
	}
	gitIn(t, dir, "push", "-q", gitsrv.AuthHTTPURL("models"), "main", "--tags")
	proxy, err := testenv.NewFaultProxy(ml.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	env := append(os.Environ(), "MLFLOW_TRACKING_URI="+proxy.URL, "MODELSYNC_GIT_USERNAME="+gitsrv.Username, "MODELSYNC_GIT_PASSWORD="+gitsrv.Password)
	return &crashFixture{admin: admin, proxy: proxy, env: env, repo: gitsrv.HTTPURL + "models.git", git: gitsrv}
}

// workdir clones the fixture's repository to commit and push further
// changes from.
func (f *crashFixture) workdir(t *testing.T) *testenv.Workdir {
	return testenv.NewWorkdir(t, f.git.AuthHTTPURL("models"))
}

// wantAliases is what the example asks of MLflow (only the MLflow target
// runs here, so llama's canary alias is set at once).
var wantAliases = map[string]map[string]int{
	"customer-churn-predictor": {"dev": 5, "staging": 4, "prod": 3},
	"llama2-7b-alpaca":         {"dev": 4, "staging": 4, "prod": 3, "prod-canary": 4},
	"fraud-detector-xgb":       {"dev": 2},
}

// setAliases counts the aliases already at their desired version.
func (f *crashFixture) setAliases(t *testing.T) int {
	n := 0
	for model, want := range wantAliases {
		live, err := f.admin.ReadAliases(context.Background(), model)
		if err != nil {
			t.Fatal(err)
		}
		for alias, v := range want {
			if live[alias] == v {
				n++
			}
		}
	}
	return n
}

func (f *crashFixture) synced(t *testing.T) bool { return f.setAliases(t) == exampleAliases }

// waitSynced waits for every alias, naming the missing ones on timeout.
func (f *crashFixture) waitSynced(t *testing.T, when string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !f.synced(t) {
		if time.Now().After(deadline) {
			t.Fatalf("not converged %s: %s", when, f.missing(t))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// missing describes the aliases not yet at their desired version.
func (f *crashFixture) missing(t *testing.T) string {
	var out []string
	for model, want := range wantAliases {
		live, _ := f.admin.ReadAliases(context.Background(), model)
		for alias, v := range want {
			if live[alias] != v {
				out = append(out, fmt.Sprintf("%s %s=v%d (live v%d)", model, alias, v, live[alias]))
			}
		}
	}
	return strings.Join(out, ", ")
}

// aliasWrites counts set-alias requests that reached MLflow.
func (f *crashFixture) aliasWrites() int {
	n := 0
	for _, r := range f.proxy.Requests() {
		if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/registered-models/alias") && (r.Status == http.StatusOK || r.Dropped) {
			n++
		}
	}
	return n
}

// The example has 8 aliases to set (churn dev/staging/prod, llama
// dev/staging/prod/prod-canary, fraud dev).
const exampleAliases = 8

func waitUntil(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill -9 in the middle of the first sync; a restarted process converges
// and no alias is written twice.
func TestServeKilledDuringReconcileConverges(t *testing.T) {
	f := newCrashFixture(t)
	// Slow writes so the kill lands mid-sync.
	f.proxy.Inject(testenv.Fault{Latency: 400 * time.Millisecond, Match: func(r *http.Request) bool { return r.Method == http.MethodPost }})
	cache := t.TempDir()
	env := append(f.env, "MODELSYNC_CACHE_DIR="+cache)
	p := startServe(t, env, "--repo", f.repo, "--concurrency", "1")
	waitUntil(t, "the first alias write", 90*time.Second, func() bool { return f.aliasWrites() >= 1 })
	p.kill9()
	// A write the proxy had begun to forward lands; only then is MLflow's
	// state all the dead process will ever have written.
	if !f.proxy.WaitIdle(time.Minute) {
		t.Fatal("the proxy still forwards the killed process's requests after a minute")
	}
	done := f.setAliases(t)
	if done == exampleAliases {
		t.Fatal("the kill came after the sync finished; the test proves nothing")
	}
	f.proxy.Reset()
	startServe(t, env, "--repo", f.repo, "--concurrency", "2")
	f.waitSynced(t, "after the restart")
	// The restarted process writes exactly the aliases still missing.
	if n := f.aliasWrites(); n != exampleAliases-done {
		t.Fatalf("after the restart %d alias writes, want %d (%d of %d were set before the kill)", n, exampleAliases-done, done, exampleAliases)
	}
}

// Two replicas with leader election on a real kube-apiserver: kill -9 the
// leader mid-sync; the standby takes over, finishes, and writes nothing the
// leader had written.
func TestServeLeaderKilledStandbyTakesOver(t *testing.T) {
	kube := testenv.NewKube(t)
	ns, err := kube.NewNamespace(context.Background(), "modelsync")
	if err != nil {
		t.Fatal(err)
	}
	f := newCrashFixture(t)
	f.proxy.Inject(testenv.Fault{Latency: 400 * time.Millisecond, Match: func(r *http.Request) bool { return r.Method == http.MethodPost }})
	args := []string{"--repo", f.repo, "--concurrency", "1", "--leader-elect", "--leader-election-namespace", ns, "--kubeconfig", kube.KubeconfigPath}
	a := startServe(t, append(f.env, "MODELSYNC_CACHE_DIR="+t.TempDir()), args...)
	waitUntil(t, "replica A leads", 60*time.Second, a.leader)
	b := startServe(t, append(f.env, "MODELSYNC_CACHE_DIR="+t.TempDir()), args...)
	waitUntil(t, "the leader's first alias write", 90*time.Second, func() bool { return f.aliasWrites() >= 1 })
	if b.leader() {
		t.Fatal("two leaders")
	}
	a.kill9()
	// A write the proxy had begun to forward lands; only then is MLflow's
	// state all the dead process will ever have written.
	if !f.proxy.WaitIdle(time.Minute) {
		t.Fatal("the proxy still forwards the killed process's requests after a minute")
	}
	done := f.setAliases(t)
	if done == exampleAliases {
		t.Fatal("the kill came after the sync finished; the test proves nothing")
	}
	f.proxy.Reset()
	waitUntil(t, "replica B takes over", 60*time.Second, b.leader)
	f.waitSynced(t, "under the new leader")
	// The standby writes exactly what the dead leader had not.
	if n := f.aliasWrites(); n != exampleAliases-done {
		t.Fatalf("the new leader made %d alias writes, want %d (%d of %d were set before the kill)", n, exampleAliases-done, done, exampleAliases)
	}
}
