package controller

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/test/testenv"
)

// A commit pushed to the Git server reaches MLflow after a signed generic
// webhook, re-planning only the model whose files changed.
func TestPushReachesMLflowAfterWebhook(t *testing.T) {
	e := newEnv(t)
	c := e.start("", nil)
	eventually(t, "ready", func() (bool, string) { return c.Ready(), "" })
	c.waitSynced(t, "")
	if got := e.alias(churn, "prod"); got != 3 {
		t.Fatalf("churn prod alias = %d after first sync, want 3", got)
	}
	first := len(c.audit.entries(t))
	if first == 0 {
		t.Fatal("first sync wrote no audit entries")
	}

	sha := e.commit("churn dev back to v4", e.setVersion(churn, "dev", 5, 4))

	body := []byte(`{"ref":"refs/heads/main"}`)
	req, _ := http.NewRequest(http.MethodPost, c.srv.URL+"/webhooks/generic", bytes.NewReader(body))
	req.Header.Set("X-Modelsync-Signature", Sign([]byte("wrong"), body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("badly signed webhook: %d, want 401", resp.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodPost, c.srv.URL+"/webhooks/generic", bytes.NewReader(body))
	req.Header.Set("X-Modelsync-Signature", Sign([]byte("test-secret"), body))
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("signed webhook: %d, want 202", resp.StatusCode)
	}

	eventually(t, "churn dev alias at v4", func() (bool, string) {
		got := e.alias(churn, "dev")
		return got == 4, fmt.Sprint("dev alias ", got)
	})
	c.waitSynced(t, sha)
	row, _ := c.row(churn, "dev")
	if row.Desired != "v4" || row.Live != "v4" || !strings.HasSuffix(row.LastRevision, sha) || row.Health != HealthUnknown {
		t.Fatalf("churn dev row = %+v", row)
	}
	var churnDev *AuditEntry
	for _, a := range c.audit.entries(t)[first:] {
		if a.Model != churn {
			t.Errorf("a one-model change wrote to %s: %+v", a.Model, a)
		}
		if a.Environment == "dev" && strings.Contains(a.Action, "set-alias") {
			churnDev = &a
		}
	}
	if churnDev == nil || churnDev.Actor != "modelsync test <test@modelsync.invalid>" || churnDev.From != "v5" || churnDev.To != "v4" || churnDev.Result != "applied" {
		t.Fatalf("audit of the dev alias move: %+v", churnDev)
	}

	metrics := get(t, c.srv.URL+"/metrics")
	for _, want := range []string{
		`modelsync_reconcile_total{result="applied",target="mlflow"}`,
		`modelsync_model_info{environment="dev",model="customer-churn-predictor",version="v4"} 1`,
		`modelsync_target_requests_total{code="200",operation="POST registered-models/alias",target="mlflow"}`,
		"modelsync_git_fetch_duration_seconds_count",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(metrics, `version="v5",model="customer-churn-predictor",environment="dev"`) ||
		strings.Contains(metrics, `modelsync_model_info{environment="dev",model="customer-churn-predictor",version="v5"}`) {
		t.Error("model_info still exports the old dev version")
	}
	if got := get(t, c.srv.URL+"/readyz"); got != "ok\n" {
		t.Errorf("readyz = %q", got)
	}

	// Retiring a model removes its alias and archives its version, though
	// no environment key remains for the alias.
	const fraud = "fraud-detector-xgb"
	if got := e.alias(fraud, "dev"); got != 2 {
		t.Fatalf("fraud dev alias %d, want 2", got)
	}
	sha = e.commit("retire fraud", func(w *testenv.Workdir) {
		b := w.Run("show", "HEAD:models/"+fraud+"/model.yaml")
		out := strings.Replace(b, "  environments:\n    dev:\n      version: 2\n", "", 1)
		if out == b {
			t.Fatal("fraud model has no dev section to remove")
		}
		w.WriteFile("models/"+fraud+"/model.yaml", out+"\n")
	})
	c.Trigger("test")
	eventually(t, "fraud retired", func() (bool, string) {
		a, err := e.admin.ReadAliases(t.Context(), fraud)
		if err != nil {
			return false, err.Error()
		}
		row, _ := c.row(fraud, "-")
		return len(a) == 0 && row.State == StateSynced && strings.HasSuffix(row.LastRevision, sha), fmt.Sprintf("aliases %v row %+v", a, row)
	})
}

func get(t *testing.T, url string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeClock) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeClock) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = t
}

// A deny window holds a change back; once the clock reaches the next allow
// window, the change is applied.
func TestSyncWindowHoldsThenApplies(t *testing.T) {
	e := newEnv(t)
	clock := &fakeClock{t: mustTime(t, "2026-03-02T18:30:00Z")} // Monday, inside the allow window
	c := e.start("", func(o *Options) {
		o.Now = clock.Now
		o.Windows = []SyncWindow{
			{Kind: WindowAllow, Schedule: "0 18 * * *", Duration: 2 * time.Hour, Environments: []string{"dev"}},
			{Kind: WindowDeny, Schedule: "0 9 * * *", Duration: 8 * time.Hour, Environments: []string{"dev"}},
		}
	})
	c.waitSynced(t, "")
	if got := e.alias(churn, "dev"); got != 5 {
		t.Fatalf("dev alias %d, want 5", got)
	}

	clock.Set(mustTime(t, "2026-03-03T10:00:00Z")) // deny window (and outside allow)
	sha := e.commit("churn dev back to v4", e.setVersion(churn, "dev", 5, 4))
	c.Trigger("test")
	var held StatusRow
	eventually(t, "churn dev held", func() (bool, string) {
		row, _ := c.row(churn, "dev")
		held = row
		return row.State == StateHeld && strings.HasSuffix(row.DesiredRevision, sha), fmt.Sprintf("%+v", row)
	})
	if held.Desired != "v4" || held.Live != "v5" || held.Window.Open || held.Window.NextOpen == nil ||
		!held.Window.NextOpen.Equal(mustTime(t, "2026-03-03T18:00:00Z")) || !strings.Contains(held.Message, "deny window") {
		t.Fatalf("held row = %+v (next open %v)", held, held.Window.NextOpen)
	}
	if got := e.alias(churn, "dev"); got != 5 {
		t.Fatalf("dev alias moved to %d inside a deny window", got)
	}
	// A manual reconcile inside the window is held too.
	if resp := postJSON(t, c.srv.URL+"/api/v1/reconcile", ReconcileRequest{Model: churn, Environment: "dev"}); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("reconcile: %d", resp.StatusCode)
	}
	eventually(t, "manual reconcile evaluated", func() (bool, string) {
		row, _ := c.row(churn, "dev")
		return row.State == StateHeld && row.LastAttempt.Equal(clock.Now()), fmt.Sprintf("%+v", row)
	})
	if got := e.alias(churn, "dev"); got != 5 {
		t.Fatalf("dev alias moved to %d by a manual reconcile in a deny window", got)
	}

	clock.Set(mustTime(t, "2026-03-03T18:05:00Z"))
	if resp := postJSON(t, c.srv.URL+"/api/v1/reconcile", ReconcileRequest{Model: churn}); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("reconcile: %d", resp.StatusCode)
	}
	eventually(t, "dev alias at v4 in the allow window", func() (bool, string) {
		got := e.alias(churn, "dev")
		return got == 4, fmt.Sprint(got)
	})
	c.waitSynced(t, sha)
}

// A suspended model is left alone even when Git changes it.
func TestSuspendedModelIsSkipped(t *testing.T) {
	e := newEnv(t)
	c := e.start("", nil)
	c.waitSynced(t, "")
	sha := e.commit("suspend churn and move dev", func(w *testenv.Workdir) {
		e.setVersion(churn, "dev", 5, 4)(w)
		b := w.Run("show", "HEAD:models/"+churn+"/model.yaml")
		w.WriteFile("models/"+churn+"/model.yaml", strings.Replace(b, "spec:\n", "spec:\n  suspend: true\n", 1)+"\n")
	})
	c.Trigger("test")
	eventually(t, "churn rows suspended", func() (bool, string) {
		st := c.Status()
		if !strings.HasSuffix(st.Revision, sha) {
			return false, st.Revision
		}
		for _, row := range st.Rows {
			if row.Model == churn && row.State != StateSuspended {
				return false, fmt.Sprintf("%+v", row)
			}
		}
		return true, ""
	})
	if got := e.alias(churn, "dev"); got != 5 {
		t.Fatalf("suspended model's dev alias moved to %d", got)
	}
}

// A pin holds an environment at a version through later loops and is
// released once Git asks for the same version.
func TestPinHeldUntilGitAgrees(t *testing.T) {
	e := newEnv(t)
	c := e.start("", nil)
	c.waitSynced(t, "")
	resp := postJSON(t, c.srv.URL+"/api/v1/pins", PinRequest{Model: churn, Environment: "dev", Version: 3, Revision: "rollback"})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("pin: %d", resp.StatusCode)
	}
	eventually(t, "dev alias pinned at v3", func() (bool, string) {
		got := e.alias(churn, "dev")
		return got == 3, fmt.Sprint(got)
	})
	// The next loop, on a new revision touching the model, keeps the pin.
	sha := e.commit("churn card", func(w *testenv.Workdir) {
		b := w.Run("show", "HEAD:models/"+churn+"/model.yaml")
		w.WriteFile("models/"+churn+"/model.yaml", strings.Replace(b, "Predicts the probability", "Estimates the probability", 1)+"\n")
	})
	c.Trigger("test")
	eventually(t, "loop at the new revision", func() (bool, string) {
		row, _ := c.row(churn, "dev")
		return strings.HasSuffix(row.DesiredRevision, sha) && row.State == StateSynced && row.LastRevision == "rollback", fmt.Sprintf("%+v", row)
	})
	if got := e.alias(churn, "dev"); got != 3 {
		t.Fatalf("pin lost: dev alias %d", got)
	}
	row, _ := c.row(churn, "dev")
	if row.Pin == nil || row.Pin.Version != 3 || row.Desired != "v5" || row.Live != "v3" {
		t.Fatalf("pinned row = %+v", row)
	}
	var actor string
	for _, a := range c.audit.entries(t) {
		if a.Model == churn && a.Environment == "dev" && strings.Contains(a.Action, "set-alias") && a.To == "v3" {
			actor = a.Actor
		}
	}
	// The authenticated caller, not a name in the request.
	if actor != "token:alice" {
		t.Fatalf("pin's alias move audited as %q", actor)
	}

	agree := e.commit("churn dev to v3 in Git", e.setVersion(churn, "dev", 5, 3))
	c.Trigger("test")
	eventually(t, "pin released", func() (bool, string) {
		row, _ := c.row(churn, "dev")
		return row.Pin == nil && strings.HasSuffix(row.LastRevision, agree) && len(c.Pins()) == 0, fmt.Sprintf("%+v", row)
	})
	if got := e.alias(churn, "dev"); got != 3 {
		t.Fatalf("dev alias %d after release, want 3", got)
	}
	if !strings.Contains(get(t, c.srv.URL+"/api/v1/pins"), `"pins": []`) {
		t.Fatal("pins API still lists a pin")
	}
}

// MLflow failing for one model's requests backs that model off while the
// others converge; when MLflow recovers, the model converges too.
func TestTargetOutageBacksOffOneModel(t *testing.T) {
	e := newEnv(t)
	proxy, err := testenv.NewFaultProxy(e.mlflow.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	proxy.Inject(testenv.Fault{Status: http.StatusServiceUnavailable, Match: func(r *http.Request) bool {
		return r.URL.Query().Get("name") == churn
	}})
	c := e.start(proxy.URL, nil)
	eventually(t, "others synced while churn fails", func() (bool, string) {
		var bad []string
		for _, row := range c.Status().Rows {
			switch {
			case row.Model == churn && (row.State != StateFailed || !strings.Contains(row.LastError, "503")):
				bad = append(bad, fmt.Sprintf("%s/%s %s %s", row.Model, row.Environment, row.State, row.LastError))
			case row.Model != churn && row.State != StateSynced:
				bad = append(bad, fmt.Sprintf("%s/%s %s %s", row.Model, row.Environment, row.State, row.LastError))
			}
		}
		return len(bad) == 0 && len(c.Status().Rows) > 0, strings.Join(bad, "; ")
	})
	if got := e.alias("llama2-7b-alpaca", "prod"); got != 3 {
		t.Fatalf("llama prod alias %d while churn failed", got)
	}
	if got := e.alias(churn, "prod"); got != 0 {
		t.Fatalf("churn prod alias %d set during the outage", got)
	}
	eventually(t, "churn retried", func() (bool, string) {
		n := 0
		for _, r := range proxy.Requests() {
			if r.Injected {
				n++
			}
		}
		return n >= 6, fmt.Sprint(n, " injected answers")
	})
	proxy.Reset()
	c.waitSynced(t, "")
	if got := e.alias(churn, "prod"); got != 3 {
		t.Fatalf("churn prod alias %d after recovery", got)
	}

	// A write whose reply is lost (the process might as well have crashed
	// after it) is not repeated: the next pass finds it done.
	before := len(proxy.Requests())
	proxy.Inject(testenv.Fault{DropConnection: true, AfterForward: true, Times: 1, Match: func(r *http.Request) bool {
		return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/registered-models/alias")
	}})
	sha := e.commit("churn dev to v4", e.setVersion(churn, "dev", 5, 4))
	c.Trigger("test")
	c.waitSynced(t, sha)
	var aliasPosts, dropped int
	for _, r := range proxy.Requests()[before:] {
		if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/registered-models/alias") {
			aliasPosts++
			if r.Dropped {
				dropped++
			}
		}
	}
	if aliasPosts != 1 || dropped != 1 || e.alias(churn, "dev") != 4 {
		t.Fatalf("alias writes %d (dropped %d), dev alias %d; want one lost write that still took effect", aliasPosts, dropped, e.alias(churn, "dev"))
	}
}

// A resync while Git stands still re-observes MLflow and corrects drift,
// but keeps the desired state it computed before: re-reading every
// manifest would give the same result. Once a ref moves, the desired state
// is computed again.
func TestResyncWithoutGitChangeReusesDesiredState(t *testing.T) {
	e := newEnv(t)
	c := e.start("", nil)
	c.waitSynced(t, "")
	desired := func() *reconciler.DesiredState {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.desired
	}
	first := desired()

	// Someone moves the prod alias by hand.
	if err := e.admin.SetAlias(t.Context(), churn, "prod", 2); err != nil {
		t.Fatal(err)
	}
	c.Resync()
	eventually(t, "drift corrected", func() (bool, string) {
		got := e.alias(churn, "prod")
		return got == 3, fmt.Sprint("prod alias ", got)
	})
	c.waitSynced(t, "")
	if desired() != first {
		t.Error("a resync with Git unchanged recomputed the desired state")
	}
	// MLflow shows v3 as soon as it applied the write; the controller
	// appends the audit entry when the answer reaches it, and the status
	// rows were already synced from the first pass, so look until it is
	// there.
	eventually(t, "an audit entry for moving churn prod back from v2 to v3", func() (bool, string) {
		for _, a := range c.audit.entries(t) {
			if a.Model == churn && a.Environment == "prod" && a.From == "v2" && a.To == "v3" && a.Result == "applied" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", c.audit.entries(t))
	})

	sha := e.commit("churn dev to v4", e.setVersion(churn, "dev", 5, 4))
	c.Resync()
	c.waitSynced(t, sha)
	if d := desired(); d == first || !strings.HasSuffix(d.Revision, sha) {
		t.Errorf("after a push the desired state is still at %s, want %s", d.Revision, sha)
	}
	if got := e.alias(churn, "dev"); got != 4 {
		t.Errorf("churn dev alias %d after the push, want 4", got)
	}
}
