package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/analysis"
	"github.com/modelsync/modelsync/internal/apiauth"
	"github.com/modelsync/modelsync/internal/canary"
	"github.com/modelsync/modelsync/internal/controller"
	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/reconciler"
)

// fakeController serves a fixed status of n models × 3 environments.
type fakeController struct {
	mu         sync.Mutex
	status     controller.Status
	desired    *reconciler.DesiredState
	reconciled []string
	audit      *AuditLog
}

var testEnvs = []string{"dev", "staging", "prod"}

func newFakeController(n int, audit *AuditLog) *fakeController {
	cfg := &manifest.RepoConfig{}
	for _, e := range testEnvs {
		cfg.Environments = append(cfg.Environments, manifest.Environment{Name: e})
	}
	rev := "main@sha1:0123456789abcdef0123456789abcdef01234567"
	ds := &reconciler.DesiredState{Revision: rev, Config: cfg}
	st := controller.Status{Revision: rev, Ready: true, Leader: true, Identity: "standalone", Rows: []controller.StatusRow{}}
	for i := range n {
		name := fmt.Sprintf("model-%04d", i)
		m := &manifest.Model{}
		m.Spec.Team = []string{"fraud", "growth", "search"}[i%3]
		m.Spec.ModelCard.Description = "Predicts things for " + name
		ds.Models = append(ds.Models, reconciler.DesiredModel{Name: name, RegisteredModel: name, Owners: []string{"alice"}, Manifest: m})
		for j, e := range testEnvs {
			v := 3 - j + i%2
			r := controller.StatusRow{Model: name, Environment: e, Desired: fmt.Sprintf("v%d", v), DesiredVersion: v, DesiredRevision: rev,
				Live: fmt.Sprintf("v%d", v), LiveVersion: v, State: controller.StateSynced, Health: "healthy", LastRevision: rev,
				Window: controller.WindowStatus{Open: true}, LastApplied: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)}
			if e == "prod" && i%10 == 0 {
				r.Desired = fmt.Sprintf("v%d (canary v%d at 20%%)", v, v+1)
				r.Canary = &controller.CanaryStatus{Version: v + 1, Weight: 20, Step: 2, Steps: []int{5, 20, 50}}
			}
			if e == "staging" && i%25 == 0 {
				r.State, r.LastError = controller.StateFailed, "alias update failed: 503 from registry"
			}
			st.Rows = append(st.Rows, r)
		}
	}
	return &fakeController{status: st, desired: ds, audit: audit}
}

func (f *fakeController) Status() controller.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.status
	st.Rows = append([]controller.StatusRow(nil), f.status.Rows...)
	return st
}

func (f *fakeController) Desired() *reconciler.DesiredState { return f.desired }

func (f *fakeController) Reconcile(model, env string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.desired.Model(model); !ok {
		return false
	}
	f.reconciled = append(f.reconciled, model+"/"+env)
	return true
}

// RecordAudit writes the entry the way the controller does: a JSON line
// into the audit writers, of which the dashboard's log is one.
func (f *fakeController) RecordAudit(e controller.AuditEntry) {
	e.Time = time.Now().UTC()
	b, _ := jsonLine(e)
	_, _ = f.audit.Write(b)
}

func (f *fakeController) setLive(model, env, live string, version int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, r := range f.status.Rows {
		if r.Model == model && r.Environment == env {
			f.status.Rows[i].Live, f.status.Rows[i].LiveVersion = live, version
		}
	}
}

// roleProvider knows tokens of its own and allows the verbs each grants.
type roleProvider struct {
	tokens map[string]string          // token -> name
	grants map[string]map[string]bool // name -> "verb resource" -> allowed

	mu         sync.Mutex
	authorizes int
}

func (p *roleProvider) Name() string { return "test-roles" }

func (p *roleProvider) Authenticate(_ context.Context, token string) (apiauth.Identity, bool, error) {
	n, ok := p.tokens[token]
	if !ok {
		return apiauth.Identity{}, false, nil
	}
	return apiauth.Identity{Name: n}, true, nil
}

func (p *roleProvider) Authorize(_ context.Context, id apiauth.Identity, a apiauth.Attributes) (apiauth.Decision, error) {
	p.mu.Lock()
	p.authorizes++
	p.mu.Unlock()
	return apiauth.Decision{Allowed: p.grants[id.Name][a.Verb+" "+a.Resource]}, nil
}

const (
	adminToken  = "admin-token-0123456789"
	viewerToken = "viewer-token-0123456789"
)

func testProviders() []apiauth.Provider {
	return []apiauth.Provider{&roleProvider{
		tokens: map[string]string{adminToken: "alice", viewerToken: "victor"},
		grants: map[string]map[string]bool{
			"alice":  {"get status": true, "create reconciles": true, "create rollbacks": true},
			"victor": {"get status": true},
		},
	}}
}

func jsonLine(e controller.AuditEntry) ([]byte, error) {
	b, err := json.Marshal(e)
	return append(b, '\n'), err
}

// fakeRollback records requests.
type fakeRollback struct {
	mu   sync.Mutex
	reqs []RollbackRequest
}

func (f *fakeRollback) Rollback(_ context.Context, req RollbackRequest) (RollbackResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, req)
	return RollbackResult{Summary: "committed abc1234 on main", Ref: "main@sha1:abc1234"}, nil
}

// canaryFixture runs the real analyzer over looks: perStep looks in each
// of the given steps, with the canary as good as stable.
type canaryFixture struct {
	status canary.Status
	looks  []analysis.Decision
}

func (c *canaryFixture) CanaryStatus(model, env string) (canary.Status, bool) {
	if env != "prod" {
		return canary.Status{}, false
	}
	s := c.status
	s.Model, s.Environment = model, env
	return s, true
}

func (c *canaryFixture) CanaryLooks(string, string) []analysis.Decision { return c.looks }

func newCanaryFixture(t testing.TB, perStep int, steps ...int) *canaryFixture {
	t.Helper()
	a, err := analysis.New(analysis.Config{Steps: []int{5, 20, 50}, StepDuration: time.Minute, MinSamples: 10,
		Metrics: []analysis.Metric{{Name: "errors", Margin: 1.2}}})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	st := a.Start(t0)
	fx := &canaryFixture{}
	at := t0
	var last analysis.Decision
	for s := range steps {
		if s > 0 {
			if st, err = a.Advance(st, at); err != nil {
				t.Fatal(err)
			}
		}
		w := int64(st.Windows[st.Step].Weight)
		for k := 1; k <= perStep; k++ {
			at = at.Add(30 * time.Second)
			n := int64(k) * 400
			c, sb := n*w/100, n*(100-w)/100
			l := analysis.Look{At: at, Metrics: map[string]analysis.Arms{"errors": {
				Canary: analysis.Counts{Bad: c / 100, Total: c}, Stable: analysis.Counts{Bad: sb / 100, Total: sb}}}}
			st, last, err = a.Look(st, l)
			if err != nil {
				t.Fatal(err)
			}
			fx.looks = append(fx.looks, last)
		}
	}
	fx.status = canary.Status{StableVersion: 3, CandidateVersion: 4, Weight: st.Windows[st.Step].Weight, State: st, Decision: &last, Next: "look again in 30s"}
	return fx
}
