package apiclient

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelsync/modelsync/internal/controller"
)

func TestPinSendsTheServersRequestType(t *testing.T) {
	var got controller.PinRequest
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		if r.Method != http.MethodPost || r.URL.Path != "/api/v1/pins" {
			http.NotFound(w, r)
			return
		}
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields() // as the controller decodes it
		if err := dec.Decode(&got); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	c := New(srv.URL+"/", func(k string) string { return map[string]string{EnvToken: "tok"}[k] }, nil)
	want := controller.PinRequest{Model: "churn", Environment: "prod", Version: 2, Revision: "main@sha1:abc"}
	if err := c.Pin(t.Context(), want); err != nil {
		t.Fatal(err)
	}
	if got != want || auth != "Bearer tok" {
		t.Fatalf("server got %+v with %q", got, auth)
	}
}

func TestErrorsSayWhatHappenedWithoutCredentials(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/reconcile":
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"model x is not in the models repository"}`))
		default:
			http.Error(w, "boom", http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	withCreds := strings.Replace(srv.URL, "http://", "http://user:secret@", 1)
	c := New(withCreds, func(string) string { return "" }, nil)

	err := c.Reconcile(t.Context(), controller.ReconcileRequest{Model: "x"})
	var ae *Error
	if !IsNotFound(err) || !errors.As(err, &ae) || ae.Retryable || !strings.Contains(err.Error(), "model x is not in the models repository") {
		t.Fatalf("reconcile: %v", err)
	}
	_, err = c.Status(t.Context())
	if !errors.As(err, &ae) || !ae.Retryable || ae.Status != http.StatusBadGateway {
		t.Fatalf("status: %v", err)
	}
	down := New("http://user:secret@127.0.0.1:1", func(string) string { return "" }, nil)
	err = down.Pin(t.Context(), controller.PinRequest{Model: "m", Environment: "e", Version: 1})
	if !errors.As(err, &ae) || !ae.Retryable || ae.Status != 0 || strings.Contains(err.Error(), "secret") {
		t.Fatalf("pin to a stopped server: %v", err)
	}
}

func TestServerURL(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == EnvServer {
				return v
			}
			return ""
		}
	}
	for _, c := range []struct{ flag, env, want string }{
		{"", "", DefaultServer},
		{"", "http://c:8080/", "http://c:8080"},
		{"http://f:1/", "http://c:8080", "http://f:1"},
	} {
		if got := ServerURL(c.flag, env(c.env)); got != c.want {
			t.Errorf("ServerURL(%q, %q) = %q, want %q", c.flag, c.env, got, c.want)
		}
	}
}
