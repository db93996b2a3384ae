package github_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gh "github.com/google/go-github/v60/github"

	ghub "github.com/modelsync/modelsync/internal/github"
	"github.com/modelsync/modelsync/internal/github/githubtest"
	"github.com/modelsync/modelsync/internal/github/prcheck"
)

// post sends a raw body with a content type, signed (over the raw body)
// with secret.
func post(t *testing.T, target, event, id, contentType string, body, secret []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", id)
	req.Header.Set("X-Hub-Signature-256", githubtest.Sign(secret, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestWebhookFormEncodedDeliveries(t *testing.T) {
	secret := []byte("form-secret")
	rec, srv, _ := newWebhook(t, string(secret))
	api := githubtest.New(t, "acme", "models", "tok")
	api.PutPR(githubtest.PR{Number: 7, State: "open", Author: "carol", BaseRef: "main", HeadRef: "x", HeadSHA: strings.Repeat("a", 40)})
	target := srv.URL + ghub.WebhookPath

	for i, event := range []struct {
		name    string
		payload any
	}{
		{"ping", githubtest.PingEvent()},
		{"pull_request", api.PullRequestEvent("synchronize", 7)},
		{"pull_request_review", api.ReviewEvent("submitted", 7, "dave", "approved", strings.Repeat("a", 40))},
		{"push", api.PushEvent("refs/heads/main", strings.Repeat("1", 40), strings.Repeat("2", 40), "main", false, false)},
		{"create", api.CreateEvent("m/v1.0.0", "tag", "main")},
	} {
		want := http.StatusAccepted
		if event.name == "ping" {
			want = http.StatusOK
		}
		d := githubtest.Delivery{Event: event.name, ID: "form-" + event.name, Payload: event.payload, Secret: secret, Form: true}
		if got := githubtest.Deliver(t, target, d); got != want {
			t.Fatalf("form-encoded %s: status %d, want %d", event.name, got, want)
		}
		if n := rec.count(); n != i {
			t.Fatalf("after form-encoded %s: handler saw %d events, want %d", event.name, n, i)
		}
	}
	rec.mu.Lock()
	pr, ok := rec.events[0].Payload.(*gh.PullRequestEvent)
	repo := rec.events[0].Repository
	rec.mu.Unlock()
	if !ok || pr.GetNumber() != 7 || pr.GetAction() != "synchronize" || repo != "acme/models" {
		t.Fatalf("form-encoded pull_request parsed as %+v (repository %q)", rec.events[0], repo)
	}

	// The signature covers the body as sent: one computed over the JSON
	// inside the form does not verify.
	js := []byte(`{"action":"opened","number":7}`)
	form := []byte(url.Values{"payload": {string(js)}}.Encode())
	req, _ := http.NewRequest(http.MethodPost, target, bytes.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-GitHub-Event", "pull_request")
	req.Header.Set("X-GitHub-Delivery", "form-inner-signed")
	req.Header.Set("X-Hub-Signature-256", githubtest.Sign(secret, js))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("form signed over its payload instead of its body: status %d, want 401", resp.StatusCode)
	}
	if got := post(t, target, "pull_request", "form-no-payload", "application/x-www-form-urlencoded", []byte("other=1"), secret); got != http.StatusBadRequest {
		t.Fatalf("form without payload field: status %d, want 400", got)
	}
	if got := post(t, target, "pull_request", "xml", "application/xml", js, secret); got != http.StatusUnsupportedMediaType {
		t.Fatalf("unsupported content type: status %d, want 415", got)
	}
	if got := post(t, target, "pull_request", "json-charset", "application/json; charset=utf-8", js, secret); got != http.StatusAccepted {
		t.Fatalf("JSON with a charset parameter: status %d, want 202", got)
	}
	// The payload is held to the JSON limit after decoding too.
	big := []byte(url.Values{"payload": {`{"pad":"` + strings.Repeat("x", ghub.MaxWebhookBody) + `"}`}}.Encode())
	if got := post(t, target, "pull_request", "form-big", "application/x-www-form-urlencoded", big, secret); got != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized form payload: status %d, want 413", got)
	}
}

// detacher holds the work of each delivery until the test ends it.
type detacher struct {
	mu      sync.Mutex
	calls   int
	pending []func(error)
}

func (d *detacher) HandleEvent(_ context.Context, ev ghub.Event) error {
	finish := ev.Detach()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	d.pending = append(d.pending, finish)
	return nil
}

func (d *detacher) state() (int, []func(error)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.pending
	d.pending = nil
	return d.calls, p
}

// A delivery is done only when its work completed: duplicates are dropped
// while it is in flight and once it completed, but not after it failed.
func TestWebhookDeliveryDoneOnlyWhenWorkCompleted(t *testing.T) {
	secret := []byte("k")
	d := &detacher{}
	h, err := ghub.NewWebhookHandler(ghub.WebhookOptions{Secret: secret, Handler: d, DedupeSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	api := githubtest.New(t, "acme", "models", "tok")
	api.PutPR(githubtest.PR{Number: 1, State: "open", Author: "carol", BaseRef: "main", HeadRef: "x", HeadSHA: strings.Repeat("a", 40)})
	send := func(id string, payload any) int {
		return githubtest.Deliver(t, srv.URL, githubtest.Delivery{Event: "pull_request", ID: id, Payload: payload, Secret: secret})
	}
	ev := api.PullRequestEvent("synchronize", 1)

	if got := send("g1", ev); got != http.StatusAccepted {
		t.Fatalf("first delivery: %d", got)
	}
	if got := send("g1", ev); got != http.StatusOK {
		t.Fatalf("duplicate while in flight: %d, want 200", got)
	}
	calls, pending := d.state()
	if calls != 1 || len(pending) != 1 {
		t.Fatalf("handler called %d times, want 1", calls)
	}
	pending[0](errors.New("GitHub answered 502"))
	if got := send("g1", ev); got != http.StatusAccepted {
		t.Fatalf("redelivery after the work failed: %d, want 202", got)
	}
	calls, pending = d.state()
	if calls != 2 {
		t.Fatalf("handler called %d times, want 2", calls)
	}
	pending[0](nil)
	pending[0](errors.New("a second call does not count"))
	if got := send("g1", ev); got != http.StatusOK {
		t.Fatalf("redelivery after the work completed: %d, want 200", got)
	}

	// The same delivery id about another repository is another delivery.
	other := api.PullRequestEvent("synchronize", 1)
	other["repository"].(map[string]any)["full_name"] = "someone/else"
	if got := send("g1", other); got != http.StatusAccepted {
		t.Fatalf("same id, other repository: %d, want 202", got)
	}
	// In-flight deliveries are bounded (DedupeSize 2).
	if got := send("g2", ev); got != http.StatusAccepted {
		t.Fatalf("second in flight: %d", got)
	}
	if got := send("g3", ev); got != http.StatusServiceUnavailable {
		t.Fatalf("third in flight with room for two: %d, want 503", got)
	}
	_, pending = d.state()
	for _, f := range pending {
		f(nil)
	}
	if got := send("g3", ev); got != http.StatusAccepted {
		t.Fatalf("after the backlog drained: %d, want 202", got)
	}
}

// newTagGate is a gate that records rollouts and needs no repository.
func newTagGate(t *testing.T) (*ghub.Gate, *githubtest.Server, func() []string) {
	t.Helper()
	api := githubtest.New(t, "acme", "models", "tok")
	c, err := ghub.NewClient(ghub.ClientOptions{Token: "tok", BaseURL: api.URL})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var rollouts []string
	g, err := ghub.NewGate(ghub.GateOptions{Client: c, Repository: acme,
		Sync: func(context.Context) (prcheck.Repository, error) { return nil, errors.New("offline") },
		Hooks: ghub.Hooks{Rollout: func(_ context.Context, model, tag string) {
			mu.Lock()
			defer mu.Unlock()
			rollouts = append(rollouts, tag)
		}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g, api, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), rollouts...)
	}
}

// The release-tag dedup is per repository: deleting a tag of the same name
// in another repository does not make ours roll out again.
func TestGateTagDedupPerRepository(t *testing.T) {
	g, api, rollouts := newTagGate(t)
	handle := func(event string, payload map[string]any) {
		t.Helper()
		p, err := jsonRoundTrip(event, payload)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.HandleEvent(context.Background(), ghub.Event{Name: event, Delivery: "x", Payload: p}); err != nil {
			t.Fatal(err)
		}
		g.Wait()
	}
	const tag = "customer-churn-predictor/v1.2.0"
	zero, sha := strings.Repeat("0", 40), strings.Repeat("1", 40)
	handle("push", api.PushEvent("refs/tags/"+tag, zero, sha, "main", true, false))
	handle("create", api.CreateEvent(tag, "tag", "main"))
	if got := rollouts(); len(got) != 1 {
		t.Fatalf("rollouts = %v, want one for a push and a create of one tag", got)
	}
	elsewhere := api.PushEvent("refs/tags/"+tag, sha, zero, "main", false, true)
	elsewhere["repository"].(map[string]any)["full_name"] = "someone/else"
	handle("push", elsewhere)
	handle("create", api.CreateEvent(tag, "tag", "main"))
	if got := rollouts(); len(got) != 1 {
		t.Fatalf("rollouts = %v: a tag deleted in another repository cleared ours from the dedup cache", got)
	}
	// Deleted and pushed again in our repository, it is a new release.
	handle("push", api.PushEvent("refs/tags/"+tag, sha, zero, "main", false, true))
	handle("create", api.CreateEvent(tag, "tag", "main"))
	if got := rollouts(); len(got) != 2 {
		t.Fatalf("rollouts = %v, want a second after our tag was deleted and re-created", got)
	}
}

func newRetryClient(t *testing.T, url string, rt http.RoundTripper) *ghub.Client {
	t.Helper()
	c, err := ghub.NewClient(ghub.ClientOptions{Token: "tok", BaseURL: url, Transport: rt,
		Retry: ghub.RetryPolicy{Attempts: 3, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClientRetriesTransientFailures(t *testing.T) {
	api := githubtest.New(t, "acme", "models", "tok")
	api.PutPR(githubtest.PR{Number: 3, State: "open", Author: "carol", BaseRef: "main", HeadRef: "f", HeadSHA: strings.Repeat("b", 40)})
	c := newRetryClient(t, api.URL, nil)
	ctx := context.Background()
	sha := strings.Repeat("c", 40)

	// Reads are retried: a 502 then a 503 with Retry-After: 0, then served.
	api.Fail(githubtest.Fault{Method: "GET", Path: "/repos/acme/models/pulls/3", Code: http.StatusBadGateway, Times: 1})
	api.Fail(githubtest.Fault{Method: "GET", Path: "/repos/acme/models/pulls/3", Code: http.StatusServiceUnavailable, Times: 1, RetryAfter: "0"})
	if _, err := c.GetPullRequest(ctx, acme, 3); err != nil {
		t.Fatalf("GetPullRequest after two transient failures: %v", err)
	}
	if n := calls(api, "GET", "/repos/acme/models/pulls/3"); n != 3 {
		t.Fatalf("%d requests, want 3", n)
	}
	if st := c.RateLimits().State(); st.Retries != 2 {
		t.Fatalf("Retries = %d, want 2", st.Retries)
	}
	// Bounded: a failure that persists ends after the policy's attempts.
	api.Fail(githubtest.Fault{Method: "GET", Path: "/repos/acme/models/pulls/3/reviews", Code: http.StatusBadGateway, Times: -1})
	if _, err := c.ListReviews(ctx, acme, 3); err == nil || !strings.Contains(err.Error(), "502") {
		t.Fatalf("ListReviews against a persistent 502: err = %v", err)
	}
	if n := calls(api, "GET", "/repos/acme/models/pulls/3/reviews"); n != 3 {
		t.Fatalf("%d requests, want 3 attempts", n)
	}
	// A status is safe to post twice, so it is retried.
	api.Fail(githubtest.Fault{Method: "POST", Path: "/repos/acme/models/statuses/" + sha, Code: http.StatusBadGateway, Times: 1, Applied: true})
	if err := c.CreateStatus(ctx, acme, sha, ghub.Status{Context: "modelsync/policy", State: "success", Description: "ok"}); err != nil {
		t.Fatalf("CreateStatus after a 502: %v", err)
	}
	if n := calls(api, "POST", "/repos/acme/models/statuses/"+sha); n != 2 {
		t.Fatalf("%d status posts, want 2", n)
	}
	// A comment is not: GitHub may have created it.
	api.Fail(githubtest.Fault{Method: "POST", Path: "/repos/acme/models/issues/3/comments", Code: http.StatusBadGateway, Times: 1, Applied: true})
	_, err := c.CreateComment(ctx, acme, 3, "hello")
	if err == nil || !ghub.OutcomeUnknown(err) {
		t.Fatalf("CreateComment answered 502: err = %v, want an unknown outcome", err)
	}
	if n := calls(api, "POST", "/repos/acme/models/issues/3/comments"); n != 1 {
		t.Fatalf("%d comment posts, want 1", n)
	}
	// A 404 is GitHub's answer, not a transient failure.
	if _, err := c.GetPullRequest(ctx, acme, 404); err == nil || ghub.OutcomeUnknown(err) {
		t.Fatalf("missing pull request: err = %v", err)
	}
	if n := calls(api, "GET", "/repos/acme/models/pulls/404"); n != 1 {
		t.Fatalf("%d requests for a 404, want 1", n)
	}
}

// refuseFirst fails its first round trip as a refused connection does.
type refuseFirst struct{ n atomic.Int32 }

func (r *refuseFirst) RoundTrip(req *http.Request) (*http.Response, error) {
	if r.n.Add(1) == 1 {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	}
	return http.DefaultTransport.RoundTrip(req)
}

func TestClientRetriesRefusedConnection(t *testing.T) {
	api := githubtest.New(t, "acme", "models", "tok")
	rt := &refuseFirst{}
	c := newRetryClient(t, api.URL, rt)
	// Even a comment is retried when the connection was never made.
	if _, err := c.CreateComment(context.Background(), acme, 3, "hello"); err != nil {
		t.Fatalf("CreateComment after a refused connection: %v", err)
	}
	if n := rt.n.Load(); n != 2 {
		t.Fatalf("%d round trips, want 2", n)
	}
	if cs := api.Comments(3); len(cs) != 1 {
		t.Fatalf("%d comments, want 1", len(cs))
	}
}

// Each attempt has its own timeout: a request that hangs once is sent
// again rather than failing the evaluation.
func TestClientRetriesTimedOutAttempt(t *testing.T) {
	api := githubtest.New(t, "acme", "models", "tok")
	api.PutPR(githubtest.PR{Number: 3, State: "open", Author: "carol", BaseRef: "main", HeadRef: "f", HeadSHA: strings.Repeat("b", 40)})
	var n atomic.Int32
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	api.SetHook(func(r *http.Request) {
		if n.Add(1) == 1 {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}
	})
	c, err := ghub.NewClient(ghub.ClientOptions{Token: "tok", BaseURL: api.URL, Timeout: 200 * time.Millisecond,
		Retry: ghub.RetryPolicy{Attempts: 2, BaseDelay: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetPullRequest(context.Background(), acme, 3); err != nil {
		t.Fatalf("GetPullRequest after a hung attempt: %v", err)
	}
	if got := n.Load(); got != 2 {
		t.Fatalf("%d requests, want 2", got)
	}
}
