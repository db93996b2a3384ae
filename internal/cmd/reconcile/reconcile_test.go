package reconcile

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/apiauth"
	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/controller"
	"github.com/modelsync/modelsync/internal/controller/apiclient"
	"github.com/modelsync/modelsync/internal/repo"
	"github.com/modelsync/modelsync/internal/wiring"
)

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
	for c.Desired() == nil {
		if time.Now().After(deadline) {
			t.Fatal("controller never fetched")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c, srv.URL
}

// testToken is the controller's API token; the command sends it from
// $MODELSYNC_TOKEN.
const testToken = "ci-token-0123456789abcdef"

func run(t *testing.T, args ...string) (error, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	f := wiring.New(cmdutil.IOStreams{Out: &out, ErrOut: &errOut}, func(k string) string { return map[string]string{"MODELSYNC_TOKEN": testToken}[k] }, "")
	cmd := NewCmdReconcile(f, nil)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.ExecuteContext(context.Background())
	return err, out.String()
}

func TestReconcileQueuesModel(t *testing.T) {
	c, url := startController(t)
	before := time.Now()
	err, out := run(t, "customer-churn-predictor", "--env", "prod", "--server", url)
	if err != nil {
		t.Fatal(err)
	}
	if out != "Queued customer-churn-predictor (environment prod) for reconciliation.\n" {
		t.Fatalf("out = %q", out)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var attempt time.Time
		for _, r := range c.Status().Rows {
			if r.Model == "customer-churn-predictor" && r.Environment == "prod" {
				attempt = r.LastAttempt
			}
		}
		if attempt.After(before) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the queued reconcile never ran")
		}
		time.Sleep(50 * time.Millisecond)
	}

	err, _ = run(t, "no-such-model", "--server", url)
	if !apiclient.IsNotFound(err) || !strings.Contains(err.Error(), "model no-such-model is not in the models repository") {
		t.Fatalf("unknown model: %v", err)
	}
	err, _ = run(t, "customer-churn-predictor", "--env", "qa", "--server", url)
	if !apiclient.IsNotFound(err) {
		t.Fatalf("unknown environment: %v", err)
	}
}
