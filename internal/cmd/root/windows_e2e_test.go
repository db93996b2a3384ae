package root

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/test/fixture"
	"github.com/modelsync/modelsync/test/testenv"
)

// A deny window on prod that is always active binds plan and apply as it
// binds the controller: plan lists prod's changes as held, apply makes
// every other change and exits 2, and only --override-window writes prod,
// after recording who overrode which window.
func TestSyncWindowsBindPlanAndApply(t *testing.T) {
	srv := testenv.NewMLflow(t, testenv.MLflowOptions{Major: 3})
	admin, err := mlflowclient.New(mlflowclient.Config{TrackingURI: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	fixture.RegisterExample(t, admin, fixture.RegisterOptions{})
	dir := exampleRepo(t)
	cfg := filepath.Join(dir, "modelsync.yaml")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Starts every minute and lasts an hour: active whenever the test runs.
	b = append(b, []byte("syncWindows:\n  - {kind: deny, schedule: \"* * * * *\", duration: 1h, environments: [prod]}\n")...)
	if err := os.WriteFile(cfg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "commit", "-qam", "freeze prod")
	env := map[string]string{"MODELSYNC_CACHE_DIR": t.TempDir(), "MLFLOW_TRACKING_URI": srv.URL, "USER": "erin"}
	const window = `deny window "* * * * *" (1h0m0s) is active`

	code, out, errOut := run(t, env, "plan", "--repo", dir)
	if code != 2 {
		t.Fatalf("plan exit %d\n%s%s", code, out, errOut)
	}
	flat := strings.Join(strings.Fields(out), " ")
	// llama's version tags say where versions run across environments:
	// they wait with its held prod canary, as in the controller.
	for _, want := range []string{"Held by sync windows", "prod: " + window, "mlflow/customer-churn-predictor prod set-alias",
		"mlflow/llama2-7b-alpaca (model-wide) tag-version"} {
		if !strings.Contains(flat, strings.Join(strings.Fields(want), " ")) {
			t.Errorf("plan does not show %q:\n%s", want, out)
		}
	}

	code, out, errOut = run(t, env, "apply", "--repo", dir)
	if code != 2 || !strings.Contains(errOut, "held by sync windows were not applied") {
		t.Fatalf("apply in a deny window: exit %d, want 2\n%s%s", code, out, errOut)
	}
	ctx := context.Background()
	a, err := admin.ReadAliases(ctx, "customer-churn-predictor")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a["prod"]; ok || a["staging"] == 0 {
		t.Fatalf("after apply in a prod deny window, churn aliases = %v: want staging set and prod untouched", a)
	}

	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	code, out, errOut = run(t, env, "apply", "--repo", dir, "--override-window", "--audit-log", audit)
	if code != 0 {
		t.Fatalf("apply --override-window: exit %d\n%s%s", code, out, errOut)
	}
	if a, err := admin.ReadAliases(ctx, "customer-churn-predictor"); err != nil || a["prod"] != 3 {
		t.Fatalf("after the override churn aliases = %v %v, want prod at 3", a, err)
	}
	raw, err := os.ReadFile(audit)
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Actor, Action, Environment, Window, Revision string
		Models                                       []string
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatalf("audit log %q: %v", raw, err)
	}
	if rec.Actor != "cli:erin" || rec.Action != "window-override" || rec.Environment != "prod" || rec.Window != window ||
		!strings.HasPrefix(rec.Revision, "main@sha1:") || !strings.Contains(strings.Join(rec.Models, ","), "customer-churn-predictor") {
		t.Errorf("audit record = %+v", rec)
	}
	if !strings.Contains(errOut, `"action":"window-override"`) {
		t.Errorf("the override is not recorded on stderr:\n%s", errOut)
	}
	if code, out, _ = run(t, env, "plan", "--repo", dir); code != 0 {
		t.Errorf("plan after the override: exit %d\n%s", code, out)
	}
}
