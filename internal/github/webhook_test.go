package github_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	gh "github.com/google/go-github/v60/github"

	ghub "github.com/modelsync/modelsync/internal/github"
	"github.com/modelsync/modelsync/internal/github/githubtest"
)

type recorder struct {
	mu     sync.Mutex
	events []ghub.Event
	err    error
}

func (r *recorder) HandleEvent(_ context.Context, ev ghub.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	return r.err
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

func TestSignMatchesGitHubTestVector(t *testing.T) {
	// The vector from go-github's tests of GitHub's signature scheme.
	const want = "sha256=b1f8020f5b4cd42042f807dd939015c4a418bc1ff7f604dd55b0a19b5d953d9b"
	if got := ghub.Sign([]byte("0123456789abcdef"), []byte(`{"yo":true}`)); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	if got := githubtest.Sign([]byte("0123456789abcdef"), []byte(`{"yo":true}`)); got != want {
		t.Fatalf("githubtest.Sign = %s, want %s", got, want)
	}
}

func TestWebhookRefusesToStartWithoutSecret(t *testing.T) {
	_, err := ghub.NewWebhookHandler(ghub.WebhookOptions{Handler: &recorder{}})
	if !errors.Is(err, ghub.ErrNoWebhookSecret) {
		t.Fatalf("err = %v, want ErrNoWebhookSecret", err)
	}
}

func newWebhook(t *testing.T, secret string) (*recorder, *httptest.Server, *bytes.Buffer) {
	t.Helper()
	rec := &recorder{}
	var logs bytes.Buffer
	h, err := ghub.NewWebhookHandler(ghub.WebhookOptions{Secret: []byte(secret), Handler: rec,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(ghub.WebhookPath, h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return rec, srv, &logs
}

func TestWebhookSignatureAndLimits(t *testing.T) {
	secret := []byte("s3cr3t-webhook")
	rec, srv, logs := newWebhook(t, string(secret))
	api := githubtest.New(t, "acme", "models", "tok")
	api.PutPR(githubtest.PR{Number: 7, State: "open", Author: "carol", BaseRef: "main", HeadRef: "x", HeadSHA: strings.Repeat("a", 40)})
	url := srv.URL + ghub.WebhookPath
	payload := api.PullRequestEvent("opened", 7)
	payload["marker"] = "BODY-MUST-NOT-BE-LOGGED"

	cases := []struct {
		name string
		d    githubtest.Delivery
		want int
	}{
		{"unsigned", githubtest.Delivery{Event: "pull_request", ID: "d-1", Payload: payload}, http.StatusUnauthorized},
		{"wrong secret", githubtest.Delivery{Event: "pull_request", ID: "d-2", Payload: payload, Secret: []byte("other")}, http.StatusUnauthorized},
		{"malformed signature", githubtest.Delivery{Event: "pull_request", ID: "d-3", Payload: payload, Signature: "sha256=zz"}, http.StatusUnauthorized},
		{"sha1 only", githubtest.Delivery{Event: "pull_request", ID: "d-4", Payload: payload, Signature: "sha1=0123"}, http.StatusUnauthorized},
	}
	for _, c := range cases {
		if got := githubtest.Deliver(t, url, c.d); got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
	}
	if n := rec.count(); n != 0 {
		t.Fatalf("handler saw %d events from unauthenticated deliveries", n)
	}
	if strings.Contains(logs.String(), "BODY-MUST-NOT-BE-LOGGED") {
		t.Fatalf("a refused body was logged:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "invalid X-Hub-Signature-256") {
		t.Fatalf("refusals were not logged:\n%s", logs.String())
	}

	if got := githubtest.Deliver(t, url, githubtest.Delivery{Event: "pull_request", ID: "d-5", Payload: payload, Secret: secret}); got != http.StatusAccepted {
		t.Fatalf("signed delivery: status %d, want 202", got)
	}
	if got := githubtest.Deliver(t, url, githubtest.Delivery{Event: "pull_request", ID: "d-5", Payload: payload, Secret: secret}); got != http.StatusOK {
		t.Fatalf("redelivery: status %d, want 200", got)
	}
	if n := rec.count(); n != 1 {
		t.Fatalf("handler saw %d events, want 1 (redelivery deduplicated)", n)
	}
	ev := rec.events[0]
	pr, ok := ev.Payload.(*gh.PullRequestEvent)
	if !ok || ev.Name != "pull_request" || ev.Delivery != "d-5" || pr.GetNumber() != 7 || pr.GetAction() != "opened" {
		t.Fatalf("event = %+v", ev)
	}

	if got := githubtest.Deliver(t, url, githubtest.Delivery{Event: "ping", ID: "d-6", Payload: githubtest.PingEvent(), Secret: secret}); got != http.StatusOK {
		t.Fatalf("ping: status %d", got)
	}
	if got := githubtest.Deliver(t, url, githubtest.Delivery{Event: "not_an_event_github_sends", ID: "d-7", Payload: map[string]any{"action": "started"}, Secret: secret}); got != http.StatusAccepted {
		t.Fatalf("unhandled event type: status %d, want 202", got)
	}
	if n := rec.count(); n != 1 {
		t.Fatalf("ping or unknown event reached the handler (%d events)", n)
	}

	big := map[string]any{"pad": strings.Repeat("x", ghub.MaxWebhookBody)}
	if got := githubtest.Deliver(t, url, githubtest.Delivery{Event: "pull_request", ID: "d-8", Payload: big, Secret: secret}); got != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: status %d, want 413", got)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: status %d, want 405", resp.StatusCode)
	}
}

func TestWebhookHandlerErrorAllowsRedelivery(t *testing.T) {
	secret := []byte("k")
	rec, srv, _ := newWebhook(t, string(secret))
	rec.err = errors.New("queue full")
	api := githubtest.New(t, "acme", "models", "tok")
	d := githubtest.Delivery{Event: "create", ID: "d-1", Payload: api.CreateEvent("m/v1.0.0", "tag", "main"), Secret: secret}
	if got := githubtest.Deliver(t, srv.URL+ghub.WebhookPath, d); got != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", got)
	}
	rec.mu.Lock()
	rec.err = nil
	rec.mu.Unlock()
	if got := githubtest.Deliver(t, srv.URL+ghub.WebhookPath, d); got != http.StatusAccepted {
		t.Fatalf("redelivery after failure: status %d, want 202", got)
	}
	if rec.count() != 2 {
		t.Fatalf("handler saw %d events, want 2", rec.count())
	}
}
