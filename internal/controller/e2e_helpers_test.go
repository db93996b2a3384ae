package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/apiauth"
	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/internal/wiring"
	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/test/testenv"
)

const churn = "customer-churn-predictor"

// exampleModels are the registered models and version counts the example
// repository needs.
func exampleModels() map[string]int {
	return map[string]int{churn: 5, "llama2-7b-alpaca": 4, "fraud-detector-xgb": 2, "sentiment-bert-legacy": 3}
}

// registerExample registers the example repository's models in MLflow.
func registerExample(t *testing.T, c *mlflowclient.Client) {
	t.Helper()
	ctx := context.Background()
	exp, err := c.EnsureExperiment(ctx, "modelsync-controller")
	if err != nil {
		t.Fatal(err)
	}
	for name, versions := range exampleModels() {
		if _, err := c.CreateRegisteredModel(ctx, mlflowclient.CreateRegisteredModelRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
		for v := 1; v <= versions; v++ {
			run, err := c.CreateRun(ctx, mlflowclient.CreateRunRequest{ExperimentID: exp})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.CreateModelVersion(ctx, mlflowclient.CreateModelVersionRequest{Name: name, Source: fmt.Sprintf("s3://models/%s/%d", name, v), RunID: run.Info.RunID}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// env is one test's real servers: MLflow with the example models, and a
// Git server holding the example repository, with a working copy to push
// further commits from.
type env struct {
	t      *testing.T
	mlflow *testenv.MLflow
	admin  *mlflowclient.Client
	git    *testenv.GitServer
	work   *testenv.Workdir
	url    string // what controllers fetch
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testenv.RequireE2E(t)
	srv := testenv.NewMLflow(t, testenv.MLflowOptions{Major: 3})
	admin, err := mlflowclient.New(mlflowclient.Config{TrackingURI: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	registerExample(t, admin)
	g := testenv.NewGitServer(t)
	if _, err := g.NewBareRepo("models"); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "models")
	if out, err := exec.Command("../../test/scripts/example-repo.sh", dir).CombinedOutput(); err != nil {
		t.Fatalf("example-repo.sh: %v\n%s", err, out)
	}
	push := exec.Command("git", "-C", dir, "push", "--quiet", g.AuthHTTPURL("models"), "main", "--tags")
	push.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1")
	if out, err := push.CombinedOutput(); err != nil {
		t.Fatalf("pushing the example repository failed: %v\n%s", err, out)
	}
	return &env{t: t, mlflow: srv, admin: admin, git: g, work: testenv.NewWorkdir(t, g.AuthHTTPURL("models")), url: g.DaemonURL + "models.git"}
}

// mlflowTarget builds the MLflow target against url (MLflow itself or a
// proxy in front of it) the way serve does, through the wiring; the
// controller's backoff is under test, so the client does not retry by
// itself.
func mlflowTarget(t *testing.T, url string, m *Metrics) reconciler.Target {
	t.Helper()
	env := map[string]string{"MLFLOW_TRACKING_URI": url, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
	f := wiring.New(cmdutil.IOStreams{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard}, func(k string) string { return env[k] }, "")
	f.Flags.MLflowObserve = m.TargetRequestObserver("mlflow")
	targets, err := f.Targets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wiring.CloseTargets(targets) })
	if len(targets) != 1 || targets[0].Name() != "mlflow" {
		t.Fatalf("wiring built %d targets, want the MLflow target alone", len(targets))
	}
	return targets[0]
}

// running is a controller started for a test.
type running struct {
	*Controller
	srv    *httptest.Server
	cancel context.CancelFunc
	done   chan struct{}
	audit  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) entries(t *testing.T) []AuditEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []AuditEntry
	for _, line := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if line == "" {
			continue
		}
		var e AuditEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}

// start runs a controller until the test ends. mlflowURL defaults to the
// MLflow server; tweak adjusts the options before New.
func (e *env) start(mlflowURL string, tweak func(*Options)) *running {
	e.t.Helper()
	if mlflowURL == "" {
		mlflowURL = e.mlflow.URL
	}
	m := NewMetrics()
	audit := &syncBuffer{}
	opts := Options{
		Git:      newGit(e.t, e.url),
		Targets:  []reconciler.Target{mlflowTarget(e.t, mlflowURL, m)},
		Interval: time.Hour, // tests drive fetches through Trigger
		Metrics:  m,
		Audit:    audit,
		StateDir: e.t.TempDir(),
		// Short backoff keeps retrying tests quick; the shape is the same.
		MinRetryDelay:  100 * time.Millisecond,
		MaxRetryDelay:  2 * time.Second,
		WebhookSecret:  []byte("test-secret"),
		ResyncInterval: time.Hour,
		APIAuth:        []apiauth.Provider{testTokens(e.t)},
	}
	if tweak != nil {
		tweak(&opts)
	}
	c, err := New(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Controller: c, srv: httptest.NewServer(c.Handler()), cancel: cancel, done: make(chan struct{}), audit: audit}
	go func() {
		defer close(r.done)
		if err := c.Run(ctx); err != nil {
			e.t.Error(err)
		}
	}()
	e.t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	r.cancel()
	<-r.done
	r.srv.Close()
	r.Close()
}

// commit rewrites files in the working copy, commits and pushes.
func (e *env) commit(msg string, edit func(w *testenv.Workdir)) string {
	e.t.Helper()
	edit(e.work)
	sha := e.work.Commit(msg)
	e.work.Push("main")
	return sha
}

// setVersion changes one environment's version in a model file.
func (e *env) setVersion(model, envName string, from, to int) func(*testenv.Workdir) {
	return func(w *testenv.Workdir) {
		e.t.Helper()
		rel := "models/" + model + "/model.yaml"
		b, err := os.ReadFile(filepath.Join(w.Dir, rel))
		if err != nil {
			e.t.Fatal(err)
		}
		old := fmt.Sprintf("    %s:\n      version: %d\n", envName, from)
		if !bytes.Contains(b, []byte(old)) {
			e.t.Fatalf("%s has no %q", rel, old)
		}
		w.WriteFile(rel, strings.Replace(string(b), old, fmt.Sprintf("    %s:\n      version: %d\n", envName, to), 1))
	}
}

func (e *env) alias(model, alias string) int {
	e.t.Helper()
	a, err := e.admin.ReadAliases(context.Background(), model)
	if err != nil {
		e.t.Fatal(err)
	}
	return a[alias]
}

// eventually polls cond until it holds or the deadline passes; the
// deadline only bounds a hung test, it asserts nothing about speed.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ok, detail := cond()
		if ok {
			return
		}
		last = detail
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("gave up waiting for %s; last: %s", what, last)
}

func (r *running) row(model, envName string) (StatusRow, bool) {
	for _, row := range r.Status().Rows {
		if row.Model == model && row.Environment == envName {
			return row, true
		}
	}
	return StatusRow{}, false
}

// allSynced waits until every row is synced at the given revision prefix.
func (r *running) waitSynced(t *testing.T, revisionSuffix string) {
	t.Helper()
	eventually(t, "every model synced", func() (bool, string) {
		st := r.Status()
		if !strings.HasSuffix(st.Revision, revisionSuffix) || len(st.Rows) == 0 {
			return false, "revision " + st.Revision
		}
		for _, row := range st.Rows {
			if row.State != StateSynced || (row.Environment != "-" && row.Live != row.Desired) {
				return false, fmt.Sprintf("%s/%s %s %s %s", row.Model, row.Environment, row.State, row.Message, row.LastError)
			}
		}
		return true, ""
	})
}

func postJSON(t *testing.T, url string, body any) *http.Response {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func (e *env) head() string {
	e.t.Helper()
	return e.work.Run("rev-parse", "HEAD")
}
