package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/reconciler/reconcilertest"
)

// tamperedVerifier refuses one version as scanrecord.Verifier does when
// its digest differs from the approved one.
type tamperedVerifier struct {
	bad   int
	calls []string
}

func (v *tamperedVerifier) VerifyServing(_ context.Context, m *reconciler.DesiredModel, env string, version int) error {
	v.calls = append(v.calls, fmt.Sprintf("%s/%s/%d", m.Name, env, version))
	if version == v.bad {
		return fmt.Errorf("model %s environment %s version %d: artifacts changed since approval (approved digest sha256:aa, current sha256:bb): refusing to serve it", m.Name, env, version)
	}
	return nil
}

// issue 16, point 4: with security.verifyArtifacts, a version whose
// artifacts changed after approval is not served; the environment keeps
// what it runs and status says why.
func TestReconcilerHoldsTamperedVersion(t *testing.T) {
	tg := reconcilertest.New("mlflow")
	tg.SetLive("churn", "prod", 3)
	ver := &tamperedVerifier{bad: 4}
	u := newUnit(t, Options{Artifacts: ver}, tg)
	cfg := &manifest.RepoConfig{Environments: []manifest.Environment{{Name: "prod"}}, Security: manifest.Security{VerifyArtifacts: true}}
	u.setDesired(reconcilertest.Whole(cfg, reconcilertest.Model("churn", reconcilertest.Env("prod", 4))))
	if _, err := u.reconcile(t, "churn", "prod"); err == nil || !strings.Contains(err.Error(), "artifacts changed since approval") {
		t.Fatalf("err = %v", err)
	}
	if got := appliedIDs(tg); len(got) != 0 {
		t.Fatalf("applied %v to a tampered version", got)
	}
	r := u.row(t, "churn", "prod")
	if r.State != StateFailed || !strings.Contains(r.LastError, "sha256:aa") || !strings.Contains(r.LastError, "sha256:bb") || !strings.Contains(r.LastError, "version 4") {
		t.Fatalf("row = %+v", r)
	}

	// An untouched version is served; without verifyArtifacts nothing is asked.
	ver.bad = 0
	if _, err := u.reconcile(t, "churn", "prod"); err != nil {
		t.Fatal(err)
	}
	if len(appliedIDs(tg)) == 0 {
		t.Fatal("a verified version was not applied")
	}
	ver.calls = nil
	cfg.Security.VerifyArtifacts = false
	if _, err := u.reconcile(t, "churn", "prod"); err != nil || len(ver.calls) != 0 {
		t.Fatalf("err %v, calls %v with verifyArtifacts off", err, ver.calls)
	}
}
