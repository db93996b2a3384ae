package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/cmd/serve"
	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/controller"
	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/internal/wiring"
	"github.com/modelsync/modelsync/test/fixture"
	"github.com/modelsync/modelsync/test/testenv"
)

// serve with the controller component against a real MLflow and a Git
// server: the first fetch syncs the example's aliases, a pushed commit
// announced on the generic webhook moves one, and /metrics, /api/v1/status
// and the audit log say so.
func TestServeController(t *testing.T) {
	ml := testenv.NewMLflow(t, testenv.MLflowOptions{Major: 3})
	gitsrv := testenv.NewGitServer(t)
	admin, err := mlflowclient.New(mlflowclient.Config{TrackingURI: ml.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	fixture.RegisterExample(t, admin, fixture.RegisterOptions{})
	dir := exampleRepo(t)
	if _, err := gitsrv.NewBareRepo("models"); err != nil {
		t.Fatal(err)
	}
	gitIn(t, dir, "push", "-q", gitsrv.AuthHTTPURL("models"), "main", "--tags")

	secret := "generic-secret"
	env := map[string]string{"MLFLOW_TRACKING_URI": ml.URL, "MODELSYNC_CACHE_DIR": t.TempDir(), serve.EnvGenericWebhookSecret: secret, serve.EnvAPIToken: testAPIToken,
		"MODELSYNC_GIT_USERNAME": gitsrv.Username, "MODELSYNC_GIT_PASSWORD": gitsrv.Password}
	var audit, logs bytes.Buffer
	f := wiring.New(cmdutil.IOStreams{In: strings.NewReader(""), Out: &syncWriter{w: &audit}, ErrOut: &syncWriter{w: &logs}}, func(k string) string { return env[k] }, "")
	addr := make(chan string, 1)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- serve.Run(runCtx, &serve.Options{Factory: f, Listen: "127.0.0.1:0", Interval: time.Hour, ResyncInterval: time.Hour, Concurrency: 2,
			Repo: cmdutil.RepoFlags{URL: gitsrv.HTTPURL + "models.git", Branch: "main"}, OnListen: func(a string) { addr <- a }})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case err := <-done:
		t.Fatalf("serve exited: %v\n%s", err, logs.String())
	}
	eventually(t, "example aliases synced", func() bool {
		a, err := admin.ReadAliases(ctx, "customer-churn-predictor")
		return err == nil && a["dev"] == 5 && a["staging"] == 4 && a["prod"] == 3
	})
	if c := get(t, base+"/readyz"); c != 200 {
		t.Fatalf("/readyz = %d", c)
	}

	// A commit moves dev to v2; the generic webhook triggers the fetch.
	work := t.TempDir() + "/w"
	gitIn(t, "", "clone", "-q", gitsrv.AuthHTTPURL("models"), work)
	churn := work + "/models/customer-churn-predictor/model.yaml"
	b, _ := os.ReadFile(churn)
	os.WriteFile(churn, bytes.Replace(b, []byte("    dev:\n      version: 5"), []byte("    dev:\n      version: 2"), 1), 0o644)
	gitIn(t, work, "commit", "-qam", "dev back to v2")
	gitIn(t, work, "push", "-q", "origin", "main")
	body := []byte(`{"ref":"refs/heads/main"}`)
	req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/generic", bytes.NewReader(body))
	req.Header.Set("X-Modelsync-Signature", controller.Sign([]byte(secret), body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("generic webhook = %d", resp.StatusCode)
	}
	eventually(t, "dev alias moved to v2", func() bool {
		a, err := admin.ReadAliases(ctx, "customer-churn-predictor")
		return err == nil && a["dev"] == 2
	})

	var st struct {
		Revision string
		Rows     []struct{ Model, Environment, Desired, State string }
	}
	resp, err = apiGet(base + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	found := false
	for _, r := range st.Rows {
		if r.Model == "customer-churn-predictor" && r.Environment == "dev" && strings.HasPrefix(r.Desired, "v2") {
			found = true
		}
	}
	if !found {
		t.Fatalf("status lacks churn dev v2: %+v", st.Rows)
	}
	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `modelsync_target_requests_total{code="200",operation=`) || !strings.Contains(string(metrics), `target="mlflow"`) {
		t.Fatalf("metrics lack MLflow request counts:\n%s", metrics)
	}
	if !strings.Contains(audit.String(), `"model":"customer-churn-predictor"`) || !strings.Contains(audit.String(), `"environment":"dev"`) {
		t.Fatalf("audit log lacks the dev change:\n%s", audit.String())
	}
}

func gitIn(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=T", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=T", "GIT_COMMITTER_EMAIL=t@example.com")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
