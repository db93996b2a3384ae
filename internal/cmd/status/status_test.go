package status

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/apiauth"
	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/controller"
	"github.com/modelsync/modelsync/internal/repo"
	"github.com/modelsync/modelsync/internal/wiring"
)

// startController runs a real controller with no targets (plan-only) on
// the example repository and serves its API.
func startController(t *testing.T) (*controller.Controller, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "models")
	if out, err := exec.Command("../../../test/scripts/example-repo.sh", dir).CombinedOutput(); err != nil {
		t.Fatalf("example-repo.sh: %v\n%s", err, out)
	}
	models, err := repo.New(context.Background(), repo.Options{URL: dir, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { models.Close() })
	tokens := apiauth.NewStaticTokens()
	if err := tokens.Add(testToken, "ci"); err != nil {
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
	deadline := time.Now().Add(60 * time.Second)
	for {
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
		time.Sleep(50 * time.Millisecond)
	}
	return c, srv.URL
}

// testToken is the controller's API token; the command sends it from
// $MODELSYNC_TOKEN.
const testToken = "ci-token-0123456789abcdef"

func run(t *testing.T, env map[string]string, args ...string) (error, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	f := wiring.New(cmdutil.IOStreams{Out: &out, ErrOut: &errOut}, func(k string) string {
		if k == "MODELSYNC_TOKEN" {
			return testToken
		}
		return env[k]
	}, "")
	cmd := NewCmdStatus(f, nil)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.ExecuteContext(context.Background())
	return err, out.String()
}

func TestStatusTableAndJSON(t *testing.T) {
	_, url := startController(t)
	err, out := run(t, map[string]string{"MODELSYNC_SERVER": url})
	if err != nil {
		t.Fatal(err)
	}
	flat := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{
		"MODEL ENV DESIRED LIVE STATE DRIFT HEALTH CANARY WINDOW PIN",
		"customer-churn-predictor prod v3 v3 synced - unknown - open -",
		"llama2-7b-alpaca prod v3 v3 synced - unknown v4 20% (1/3) open -",
		"sentiment-bert-legacy - none - synced",
		"controller standalone (leader)",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	err, out = run(t, map[string]string{"MODELSYNC_SERVER": url}, "-o", "wide")
	if err != nil {
		t.Fatal(err)
	}
	flat = strings.Join(strings.Fields(out), " ")
	for _, want := range []string{
		"llama2-7b-alpaca prod v3 (canary v4 at 20%) v3 (canary v4 at 20%) synced - unknown v4 at 20% open -",
		"sentiment-bert-legacy - (in no environment) - synced",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("wide status lacks %q:\n%s", want, out)
		}
	}
	err, out = run(t, nil, "--server", url, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var st controller.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if !st.Ready || !st.Leader || len(st.Rows) != 8 || !strings.HasPrefix(st.Revision, "main@sha1:") {
		t.Fatalf("status = %+v", st)
	}
	for _, r := range st.Rows {
		if r.Model == "llama2-7b-alpaca" && r.Environment == "prod" {
			if c := r.Canary; c == nil || c.Version != 4 || c.Weight != 20 || c.Step != 1 || len(c.Steps) != 3 || r.DesiredVersion != 3 {
				t.Errorf("llama2-7b-alpaca/prod canary = %+v, desiredVersion %d", c, r.DesiredVersion)
			}
		}
	}
}

func TestStatusReportsUnreachableServer(t *testing.T) {
	srv := httptest.NewServer(nil)
	url := srv.URL
	srv.Close()
	err, _ := run(t, nil, "--server", url)
	if err == nil || !strings.Contains(err.Error(), "contacting the controller") {
		t.Fatalf("err = %v", err)
	}
	if err, _ := run(t, nil, "-o", "yaml"); err == nil {
		t.Fatal("yaml output accepted")
	}
}
