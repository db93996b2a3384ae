package controller

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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

func newUnstarted(t *testing.T, secret string) *Controller {
	t.Helper()
	c, err := New(Options{Git: newGit(t, t.TempDir()), WebhookSecret: []byte(secret), StateDir: t.TempDir()})
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
		if rec := do(t, h, tc.method, tc.path, []byte(tc.body), nil); rec.Code != tc.want {
			t.Errorf("%s %s %s: %d %s, want %d", tc.method, tc.path, tc.body, rec.Code, rec.Body, tc.want)
		}
	}
}
