package github_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	ghub "github.com/modelsync/modelsync/internal/github"
	"github.com/modelsync/modelsync/internal/github/githubtest"
)

var acme = ghub.RepoRef{Owner: "acme", Name: "models"}

func TestNewClientCredentials(t *testing.T) {
	for name, o := range map[string]ghub.ClientOptions{
		"none":         {},
		"both":         {Token: "t", AppID: 1, InstallationID: 2, PrivateKey: []byte("k")},
		"app, no key":  {AppID: 1, InstallationID: 2},
		"app, bad key": {AppID: 1, InstallationID: 2, PrivateKey: []byte("not a pem")},
	} {
		if _, err := ghub.NewClient(o); err == nil {
			t.Errorf("%s: NewClient succeeded", name)
		} else if strings.Contains(err.Error(), "not a pem") {
			t.Errorf("%s: error quotes the key: %v", name, err)
		}
	}
}

func TestClientGitHubAppOnEnterprise(t *testing.T) {
	api := githubtest.New(t, "acme", "models", "")
	api.PutPR(githubtest.PR{Number: 3, State: "open", Author: "carol", BaseRef: "main", HeadRef: "f", HeadSHA: strings.Repeat("b", 40)})
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	var gauge atomic.Int64
	gauge.Store(-1)
	c, err := ghub.NewClient(ghub.ClientOptions{AppID: 11, InstallationID: 42, PrivateKey: pemKey, BaseURL: api.URL,
		OnRateLimit: func(s ghub.RateLimitState) { gauge.Store(int64(s.Remaining)) }})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := c.GetPullRequest(context.Background(), acme, 3)
	if err != nil {
		t.Fatal(err)
	}
	if pr.HeadSHA != strings.Repeat("b", 40) || pr.Author != "carol" || pr.BaseRef != "main" {
		t.Fatalf("pr = %+v", pr)
	}
	calls := api.Calls()
	if len(calls) != 2 || calls[0].Path != "/app/installations/42/access_tokens" || calls[1].Path != "/repos/acme/models/pulls/3" {
		t.Fatalf("calls = %+v, want token exchange then the pull request", calls)
	}
	if st := c.RateLimits().State(); !st.Known || st.Limit != 5000 || st.Resource != "core" || gauge.Load() != int64(st.Remaining) || c.RateLimits().Remaining() != float64(st.Remaining) {
		t.Fatalf("rate limits not tracked: %+v (callback saw %d)", st, gauge.Load())
	}
}

func TestClientStatusDescriptionIsCut(t *testing.T) {
	api := githubtest.New(t, "acme", "models", "tok")
	c, err := ghub.NewClient(ghub.ClientOptions{Token: "tok", BaseURL: api.URL})
	if err != nil {
		t.Fatal(err)
	}
	sha := strings.Repeat("c", 40)
	long := strings.Repeat("é", 300)
	if err := c.CreateStatus(context.Background(), acme, sha, ghub.Status{Context: "modelsync/policy", State: "failure", Description: long}); err != nil {
		t.Fatal(err)
	}
	st, ok := api.Latest(sha, "modelsync/policy")
	if !ok || utf8.RuneCountInString(st.Description) != 140 || !strings.HasSuffix(st.Description, "…") {
		t.Fatalf("status = %+v", st)
	}
}

func TestClientWaitsOutSecondaryRateLimit(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":1,"state":"success","context":"modelsync/policy","description":"ok"}`))
	}))
	t.Cleanup(srv.Close)
	c, err := ghub.NewClient(ghub.ClientOptions{Token: "tok", BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	err = c.CreateStatus(context.Background(), acme, strings.Repeat("d", 40), ghub.Status{Context: "modelsync/policy", State: "success", Description: "ok"})
	if err != nil {
		t.Fatalf("CreateStatus after a secondary limit: %v", err)
	}
	if got := n.Load(); got != 2 {
		t.Fatalf("%d requests, want 2 (one refused, one retried)", got)
	}
	if st := c.RateLimits().State(); st.Waits != 1 || st.SecondaryUntil.IsZero() {
		t.Fatalf("state = %+v, want one wait and a secondary limit recorded", st)
	}
}

func TestClientStopsAtExhaustedPrimaryLimit(t *testing.T) {
	var n atomic.Int32
	reset := time.Now().Add(time.Hour).Unix()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("X-RateLimit-Limit", "5000")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(reset, 10))
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`[]`))
	}))
	t.Cleanup(srv.Close)
	c, err := ghub.NewClient(ghub.ClientOptions{Token: "tok", BaseURL: srv.URL, MaxRateLimitWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if c.RateLimits().Remaining() != -1 {
		t.Fatalf("Remaining before any response = %v, want -1", c.RateLimits().Remaining())
	}
	if _, err := c.ListReviews(context.Background(), acme, 1); err != nil {
		t.Fatal(err)
	}
	if c.RateLimits().Remaining() != 0 {
		t.Fatalf("Remaining = %v, want 0", c.RateLimits().Remaining())
	}
	_, err = c.ListReviews(context.Background(), acme, 1)
	var rl *ghub.RateLimitedError
	if !errors.As(err, &rl) || !rl.Retryable() || rl.Until.Unix() < reset {
		t.Fatalf("err = %v, want *RateLimitedError until the reset", err)
	}
	if got := n.Load(); got != 1 {
		t.Fatalf("%d requests reached GitHub, want 1: the exhausted window must not be spent", got)
	}
	if strings.Contains(err.Error(), "tok") {
		t.Fatalf("error leaks the token: %v", err)
	}
}

func TestSplitComment(t *testing.T) {
	if parts := ghub.SplitComment("short"); len(parts) != 1 || !strings.HasPrefix(parts[0], ghub.CommentMarker) {
		t.Fatalf("parts = %q", parts)
	}
	line := strings.Repeat("x", 99) + "\n"
	body := strings.Repeat(line, 1500) // 150,000 characters
	parts := ghub.SplitComment(body)
	if len(parts) != 3 {
		t.Fatalf("%d parts, want 3", len(parts))
	}
	var joined strings.Builder
	for i, p := range parts {
		if utf8.RuneCountInString(p) > ghub.MaxCommentLength {
			t.Fatalf("part %d has %d characters", i, utf8.RuneCountInString(p))
		}
		if !strings.HasPrefix(p, ghub.CommentMarker) {
			t.Fatalf("part %d lacks the marker", i)
		}
		_, rest, _ := strings.Cut(p, "_\n\n")
		joined.WriteString(rest)
	}
	if joined.String() != body {
		t.Fatal("parts do not reassemble the body")
	}
}

// A reviews document saved from the list-reviews API decodes to exactly
// what ListReviews reads from the API, so `check --reviews` and the gate
// feed the policy the same input.
func TestDecodeReviewsMatchesListReviews(t *testing.T) {
	srv := githubtest.New(t, "acme", "models", "tok")
	srv.PutPR(githubtest.PR{Number: 3, State: "open", Author: "carol", BaseRef: "main", HeadRef: "x", HeadSHA: strings.Repeat("a", 40)})
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	for i, st := range []string{"APPROVED", "COMMENTED", "CHANGES_REQUESTED", "DISMISSED"} {
		srv.AddReview(3, githubtest.Review{ID: int64(i + 1), User: "u" + strconv.Itoa(i%2), State: st, CommitID: strings.Repeat("a", 40), SubmittedAt: at.Add(time.Duration(i) * time.Minute)})
	}
	c, err := ghub.NewClient(ghub.ClientOptions{Token: "tok", BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	listed, err := c.ListReviews(context.Background(), acme, 3)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v3/repos/acme/models/pulls/3/reviews", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	decoded, err := ghub.DecodeReviews(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 4 || fmt.Sprint(decoded) != fmt.Sprint(listed) {
		t.Fatalf("decoded %v\nlisted  %v", decoded, listed)
	}
	for _, bad := range []string{`{"user": {"login": "x"}}`, `[{"state": "APPROVED"}]`, `[{"user": {"login": "x"}}]`, strings.Repeat(" ", ghub.MaxReviewsJSON+1)} {
		if _, err := ghub.DecodeReviews(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %.40q", bad)
		}
	}
}
