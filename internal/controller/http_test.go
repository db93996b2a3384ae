package controller

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelsync/modelsync/internal/apiauth"
	"github.com/modelsync/modelsync/internal/repo"
)

// newGit opens the repository at url with a fresh cache, closed at cleanup.
func newGit(tb testing.TB, url string) *repo.Repository {
	tb.Helper()
	g, err := repo.New(context.Background(), repo.Options{URL: url, CacheDir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { g.Close() })
	return g
}

// testToken authenticates as "token:alice" to controllers built by the
// tests.
const testToken = "alice-0123456789abcdef"

func testTokens(tb testing.TB) *apiauth.StaticTokens {
	tb.Helper()
	st := apiauth.NewStaticTokens()
	if err := st.Add(testToken, "alice"); err != nil {
		tb.Fatal(err)
	}
	return st
}

func newUnstarted(t *testing.T, secret string) *Controller {
	t.Helper()
	c, err := New(Options{Git: newGit(t, t.TempDir()), WebhookSecret: []byte(secret), StateDir: t.TempDir(), APIAuth: []apiauth.Provider{testTokens(t)}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func do(t *testing.T, h http.Handler, method, path string, body []byte, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestGenericWebhookVerifiesSignatureAndSize(t *testing.T) {
	c := newUnstarted(t, "s3cret")
	h := c.Handler()
	body := []byte(`{"after":"abc"}`)
	for _, tc := range []struct {
		name string
		sig  string
		body []byte
		want int
	}{
		{"no signature", "", body, http.StatusUnauthorized},
		{"not hex", "sha256=zz", body, http.StatusUnauthorized},
		{"other scheme", "sha1=" + strings.TrimPrefix(Sign([]byte("s3cret"), body), "sha256="), body, http.StatusUnauthorized},
		{"wrong secret", Sign([]byte("other"), body), body, http.StatusUnauthorized},
		{"too large", Sign([]byte("s3cret"), make([]byte, MaxWebhookBody+1)), make([]byte, MaxWebhookBody+1), http.StatusRequestEntityTooLarge},
		{"valid", Sign([]byte("s3cret"), body), body, http.StatusAccepted},
	} {
		rec := do(t, h, http.MethodPost, "/webhooks/generic", tc.body, map[string]string{"X-Modelsync-Signature": tc.sig})
		if rec.Code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, rec.Code, rec.Body, tc.want)
		}
		if strings.Contains(rec.Body.String(), "s3cret") {
			t.Errorf("%s: answer reveals the secret", tc.name)
		}
	}
	select {
	case <-c.trigger:
	default:
		t.Fatal("a valid webhook did not trigger a fetch")
	}
	if rec := do(t, newUnstarted(t, "").Handler(), http.MethodPost, "/webhooks/generic", body, map[string]string{"X-Modelsync-Signature": Sign(nil, body)}); rec.Code != http.StatusNotFound {
		t.Fatalf("webhook without a configured secret: %d", rec.Code)
	}
}

func TestAPIRejectsBadRequestsBeforeFirstFetch(t *testing.T) {
	h := newUnstarted(t, "").Handler()
	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{http.MethodPost, "/api/v1/reconcile", `{"model":"churn"}`, http.StatusServiceUnavailable},
		{http.MethodPost, "/api/v1/reconcile", `{}`, http.StatusBadRequest},
		{http.MethodPost, "/api/v1/reconcile", `{"model":"churn","extra":1}`, http.StatusBadRequest},
		{http.MethodPost, "/api/v1/pins", `{"model":"churn","environment":"prod"}`, http.StatusBadRequest},
		{http.MethodDelete, "/api/v1/pins/churn/prod", ``, http.StatusNotFound},
		{http.MethodGet, "/readyz", ``, http.StatusServiceUnavailable},
		{http.MethodGet, "/healthz", ``, http.StatusOK},
		{http.MethodGet, "/api/v1/status", ``, http.StatusOK},
	} {
		if rec := do(t, h, tc.method, tc.path, []byte(tc.body), map[string]string{"Authorization": "Bearer " + testToken}); rec.Code != tc.want {
			t.Errorf("%s %s %s: %d %s, want %d", tc.method, tc.path, tc.body, rec.Code, rec.Body, tc.want)
		}
	}
}

// denyAll authenticates one token and allows nothing: a caller Kubernetes
// knows but RBAC does not let pin.
type denyAll struct{}

func (denyAll) Name() string { return "deny-all" }
func (denyAll) Authenticate(_ context.Context, token string) (apiauth.Identity, bool, error) {
	return apiauth.Identity{Name: "system:serviceaccount:ci:bot"}, token == "bot-token", nil
}
func (denyAll) Authorize(context.Context, apiauth.Identity, apiauth.Attributes) (apiauth.Decision, error) {
	return apiauth.Decision{Reason: "no RoleBinding"}, nil
}

// Every API route refuses callers without a valid token (401) and callers
// not allowed the route (403), audits each refusal, and records the
// authenticated caller — never a name from the request — on what it does.
func TestAPIRequiresAuthenticatedAuthorizedCaller(t *testing.T) {
	audit := &syncBuffer{}
	newCtl := func(anonRead bool, providers ...apiauth.Provider) http.Handler {
		c, err := New(Options{Git: newGit(t, t.TempDir()), StateDir: t.TempDir(), Audit: audit, APIAuth: providers, APIAnonymousRead: anonRead})
		if err != nil {
			t.Fatal(err)
		}
		return c.Handler()
	}
	h := newCtl(false, testTokens(t), denyAll{})
	routes := []struct{ method, path, body string }{
		{http.MethodGet, "/api/v1/status", ""},
		{http.MethodGet, "/api/v1/pins", ""},
		{http.MethodPost, "/api/v1/pins", `{"model":"churn","environment":"prod","version":1}`},
		{http.MethodDelete, "/api/v1/pins/churn/prod", ""},
		{http.MethodPost, "/api/v1/reconcile", `{"model":"churn"}`},
	}
	for _, r := range routes {
		for _, tc := range []struct {
			name, auth string
			want       int
		}{
			{"no token", "", http.StatusUnauthorized},
			{"basic auth", "Basic YWxpY2U6cHc=", http.StatusUnauthorized},
			{"wrong token", "Bearer " + testToken + "x", http.StatusUnauthorized},
			{"token prefix", "Bearer " + testToken[:len(testToken)-1], http.StatusUnauthorized},
			{"authenticated, not allowed", "Bearer bot-token", http.StatusForbidden},
		} {
			hdr := map[string]string{}
			if tc.auth != "" {
				hdr["Authorization"] = tc.auth
			}
			rec := do(t, h, r.method, r.path, []byte(r.body), hdr)
			if rec.Code != tc.want {
				t.Errorf("%s %s, %s: %d %s, want %d", r.method, r.path, tc.name, rec.Code, rec.Body, tc.want)
			}
			if tc.want == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s, %s: 401 without WWW-Authenticate", r.method, r.path, tc.name)
			}
		}
	}
	// Each refusal is in the audit log, naming the caller when known.
	var unauth, forbidden int
	for _, e := range audit.entries(t) {
		switch {
		case e.Result == "unauthenticated" && e.Actor == "anonymous" && strings.HasPrefix(e.Action, "api "):
			unauth++
		case e.Result == "forbidden" && e.Actor == "system:serviceaccount:ci:bot" && strings.Contains(e.Error, "no RoleBinding"):
			forbidden++
		default:
			t.Errorf("unexpected audit entry %+v", e)
		}
	}
	if unauth != 4*len(routes) || forbidden != len(routes) {
		t.Fatalf("audited %d unauthenticated and %d forbidden requests, want %d and %d", unauth, forbidden, 4*len(routes), len(routes))
	}

	// A caller cannot name itself: an actor field is refused, and the
	// audit names the token's holder.
	before := len(audit.entries(t))
	bearer := map[string]string{"Authorization": "Bearer " + testToken}
	if rec := do(t, h, http.MethodPost, "/api/v1/pins", []byte(`{"model":"churn","environment":"prod","version":2,"actor":"someone-else"}`), bearer); rec.Code != http.StatusBadRequest {
		t.Fatalf("pin with an actor field: %d %s", rec.Code, rec.Body)
	}
	if rec := do(t, h, http.MethodPost, "/api/v1/pins", []byte(`{"model":"churn","environment":"prod","version":2}`), bearer); rec.Code != http.StatusCreated {
		t.Fatalf("pin: %d %s", rec.Code, rec.Body)
	}
	if rec := do(t, h, http.MethodDelete, "/api/v1/pins/churn/prod", nil, map[string]string{"Authorization": "Bearer " + testToken, "X-Modelsync-Actor": "mallory"}); rec.Code != http.StatusNoContent {
		t.Fatalf("unpin: %d %s", rec.Code, rec.Body)
	}
	after := audit.entries(t)[before:]
	if len(after) != 2 || after[0].Action != "pin" || after[1].Action != "unpin" || after[0].Actor != "token:alice" || after[1].Actor != "token:alice" {
		t.Fatalf("audit after pin and unpin: %+v", after)
	}

	// No provider: nothing is open, even with a token.
	closed := newCtl(false)
	if rec := do(t, closed, http.MethodGet, "/api/v1/status", nil, bearer); rec.Code != http.StatusUnauthorized {
		t.Fatalf("API without providers: %d", rec.Code)
	}
	// Anonymous read opens reads only.
	open := newCtl(true, testTokens(t))
	if rec := do(t, open, http.MethodGet, "/api/v1/status", nil, nil); rec.Code != http.StatusOK {
		t.Fatalf("anonymous status read: %d", rec.Code)
	}
	if rec := do(t, open, http.MethodGet, "/api/v1/pins", nil, nil); rec.Code != http.StatusOK {
		t.Fatalf("anonymous pins read: %d", rec.Code)
	}
	if rec := do(t, open, http.MethodPost, "/api/v1/pins", []byte(`{"model":"churn","environment":"prod","version":2}`), nil); rec.Code != http.StatusUnauthorized {
		t.Fatalf("anonymous pin: %d", rec.Code)
	}
}
