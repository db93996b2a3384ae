package prometheus

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const vectorBody = `{"status":"success","data":{"resultType":"vector","result":[
 {"metric":{"pod":"a","revision_name":"r1"},"value":[1700000000,"12"]},
 {"metric":{"pod":"b","revision_name":"r1"},"value":[1700000000,"30"]}]}}`

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestQueryDecodesVectorAndSendsTimeAndToken(t *testing.T) {
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		got = r
		_, _ = w.Write([]byte(vectorBody))
	}))
	defer srv.Close()
	c, err := New(Config{Address: srv.URL + "/prom/", BearerTokenEnv: "TOK", Getenv: env(map[string]string{"TOK": "s3cret"})})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1700000000, 500e6)
	v, err := c.Query(context.Background(), `x{a="1"}`, at)
	if err != nil {
		t.Fatal(err)
	}
	if got.URL.Path != "/prom/api/v1/query" || got.Form.Get("query") != `x{a="1"}` || got.Form.Get("time") != "1700000000.500" {
		t.Fatalf("request %s %v", got.URL.Path, got.Form)
	}
	if h := got.Header.Get("Authorization"); h != "Bearer s3cret" {
		t.Fatalf("Authorization = %q", h)
	}
	vals := v.Values()
	if len(vals) != 2 || vals[`{pod="a",revision_name="r1"}`] != 12 || vals[`{pod="b",revision_name="r1"}`] != 30 {
		t.Fatalf("values %v", vals)
	}
}

func TestQueryRetriesTemporaryFailuresOnly(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		calls  int32
	}{
		{"503 is retried", http.StatusServiceUnavailable, 3},
		{"429 is retried", http.StatusTooManyRequests, 3},
		{"400 is not", http.StatusBadRequest, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) < 3 || tc.status == http.StatusBadRequest {
					w.WriteHeader(tc.status)
					_, _ = w.Write([]byte(`{"status":"error","errorType":"bad_data","error":"parse error"}`))
					return
				}
				_, _ = w.Write([]byte(vectorBody))
			}))
			defer srv.Close()
			c, err := New(Config{Address: srv.URL, Retries: 3, Backoff: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Query(context.Background(), "up", time.Time{})
			if n.Load() != tc.calls {
				t.Fatalf("calls = %d, want %d (err %v)", n.Load(), tc.calls, err)
			}
			if tc.status == http.StatusBadRequest {
				var qe *Error
				if !errors.As(err, &qe) || qe.Status != 400 || qe.Type != "bad_data" {
					t.Fatalf("err = %v", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestErrorsNameEndpointWithoutCredentials(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	c, err := New(Config{Address: srv.URL, Retries: -1, UsernameEnv: "U", PasswordEnv: "P", Getenv: env(map[string]string{"U": "bob", "P": "hunter2"})})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Query(context.Background(), "up", time.Time{})
	if err == nil || !strings.Contains(err.Error(), srv.URL+"/api/v1/query") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v", err)
	}
	// An address with inline credentials is refused, and not repeated.
	_, err = New(Config{Address: "http://bob:hunter2@prom:9090"})
	if !errors.Is(err, ErrConfig) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v", err)
	}
}

func TestMissingCredentialVariableFailsAtStart(t *testing.T) {
	_, err := New(Config{Address: "http://prom:9090", BearerTokenEnv: "PROM_TOKEN", Getenv: env(nil)})
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "PROM_TOKEN") {
		t.Fatalf("err = %v", err)
	}
}

func TestResponseSizeIsBounded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(vectorBody))
	}))
	defer srv.Close()
	c, err := New(Config{Address: srv.URL, MaxResponseBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Query(context.Background(), "up", time.Time{}); err == nil || !strings.Contains(err.Error(), "larger than 64 bytes") {
		t.Fatalf("err = %v", err)
	}
}

func TestQueryTimeoutAppliesPerAttempt(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer srv.Close()
	c, err := New(Config{Address: srv.URL, QueryTimeout: 50 * time.Millisecond, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.Query(context.Background(), "up", time.Time{})
	if err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("err = %v after %s", err, time.Since(start))
	}
}

func TestScalarAndNonFinite(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"scalar","result":[1700000000,"NaN"]}}`))
	}))
	defer srv.Close()
	c, _ := New(Config{Address: srv.URL})
	v, err := c.Query(context.Background(), "0/0", time.Time{})
	if err != nil || len(v) != 1 || v[0].Value == v[0].Value {
		t.Fatalf("v = %v, err = %v", v, err)
	}
}
