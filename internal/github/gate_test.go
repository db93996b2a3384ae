package github_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	gh "github.com/google/go-github/v60/github"

	ghub "github.com/modelsync/modelsync/internal/github"
	"github.com/modelsync/modelsync/internal/github/githubtest"
	"github.com/modelsync/modelsync/internal/github/prcheck"
)

// newOfflineGate is a gate whose repository cannot be fetched, for tests of
// event routing and of the error path.
func newOfflineGate(t *testing.T) (*githubtest.Server, *ghub.Gate) {
	t.Helper()
	api := githubtest.New(t, "acme", "models", "tok")
	c, err := ghub.NewClient(ghub.ClientOptions{Token: "tok", BaseURL: api.URL})
	if err != nil {
		t.Fatal(err)
	}
	g, err := ghub.NewGate(ghub.GateOptions{Client: c, Repository: acme,
		Sync: func(context.Context) (prcheck.Repository, error) {
			return nil, errors.New("git daemon at 127.0.0.1:1 refused the connection")
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return api, g
}

// evaluations counts evaluations of a head: each starts by reading the
// commit's statuses once.
func evaluations(api *githubtest.Server, sha string) int {
	k := 0
	for _, c := range api.Calls() {
		if c.Method == "GET" && c.Path == "/repos/acme/models/commits/"+sha+"/statuses" {
			k++
		}
	}
	return k
}

func TestGateRoutesPullRequestActions(t *testing.T) {
	api, g := newOfflineGate(t)
	sha := strings.Repeat("e", 40)
	api.PutPR(githubtest.PR{Number: 5, State: "open", Author: "carol", BaseRef: "main", HeadRef: "f", HeadSHA: sha})
	handle := func(event string, payload map[string]any) {
		t.Helper()
		body, err := jsonRoundTrip(event, payload)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.HandleEvent(context.Background(), ghub.Event{Name: event, Delivery: "x", Payload: body}); err != nil {
			t.Fatal(err)
		}
		g.Wait()
	}
	for _, action := range []string{"labeled", "closed", "assigned"} {
		handle("pull_request", api.PullRequestEvent(action, 5))
	}
	edited := api.PullRequestEvent("edited", 5)
	handle("pull_request", edited)
	if n := evaluations(api, sha); n != 0 {
		t.Fatalf("%d evaluations for actions that do not change the verdict", n)
	}
	edited["changes"] = map[string]any{"base": map[string]any{"ref": map[string]any{"from": "develop"}, "sha": map[string]any{"from": sha}}}
	handle("pull_request", edited)
	handle("pull_request", api.PullRequestEvent("ready_for_review", 5))
	if n := evaluations(api, sha); n != 2 {
		t.Fatalf("%d evaluations, want one per retarget and ready_for_review", n)
	}
	// The repository could not be read: the required check says so
	// instead of staying pending or passing.
	st, ok := api.Latest(sha, ghub.StatusContext)
	if !ok || st.State != "error" || !strings.Contains(st.Description, "could not evaluate") {
		t.Fatalf("status = %+v, want error", st)
	}

	api.PutPR(githubtest.PR{Number: 6, State: "closed", Author: "carol", BaseRef: "main", HeadRef: "g", HeadSHA: strings.Repeat("1", 40)})
	handle("pull_request", api.PullRequestEvent("reopened", 6))
	if sts := api.Statuses(strings.Repeat("1", 40)); len(sts) != 0 {
		t.Fatalf("statuses posted for a closed pull request: %+v", sts)
	}
}

// jsonRoundTrip parses a payload as the webhook handler would.
func jsonRoundTrip(event string, payload map[string]any) (any, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return nil, err
	}
	return gh.ParseWebHook(event, b)
}
