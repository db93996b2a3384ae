package github_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	ghub "github.com/modelsync/modelsync/internal/github"
	"github.com/modelsync/modelsync/internal/github/githubtest"
	"github.com/modelsync/modelsync/test/testenv"
)

// The churn promotion judged without approvals: what every test below
// expects once an evaluation has completed.
func wantVerdict(t *testing.T, api *githubtest.Server, pr int, sha string) {
	t.Helper()
	wantLatest(t, api, sha, ghub.StatusContext, "failure", "approvals.too_few")
	wantLatest(t, api, sha, ghub.StatusContext+"/prod", "failure", "approvals.too_few")
	cs := planComments(t, api, pr)
	if len(cs) != 1 {
		t.Fatalf("PR #%d: %d plan comments, want 1: %+v", pr, len(cs), cs)
	}
	for _, want := range []string{"approvals.too_few", "| customer-churn-predictor | prod | v3 | v4 |", "denied"} {
		if !strings.Contains(cs[0].Body, want) {
			t.Fatalf("PR #%d: plan comment lacks %q:\n%s", pr, want, cs[0].Body)
		}
	}
}

// A webhook configured with GitHub's form content type delivers
// payload=<JSON>, signed over that form body; it is judged exactly as the
// JSON delivery of the same change.
func TestGateFormEncodedDelivery(t *testing.T) {
	m := newModelsRepo(t)
	h := newHarness(t, m.URL)
	api := h.API
	promote := func(wd *testenv.Workdir) { setProd(t, wd, "3", "4") }
	shaJSON, files := m.branch(t, "promote-json", promote)
	shaForm, filesForm := m.branch(t, "promote-form", func(wd *testenv.Workdir) {
		promote(wd)
		wd.WriteFile("models/customer-churn-predictor/NOTES.md", "Promoted after the Q1 review.\n")
	})
	api.PutPR(githubtest.PR{Number: 1, State: "open", Author: "carol", BaseRef: "main", HeadRef: "promote-json", HeadSHA: shaJSON, Files: files})
	api.PutPR(githubtest.PR{Number: 2, State: "open", Author: "carol", BaseRef: "main", HeadRef: "promote-form", HeadSHA: shaForm, Files: filesForm})

	if code := h.sendAs(t, "json-1", false, "pull_request", api.PullRequestEvent("synchronize", 1)); code != http.StatusAccepted {
		t.Fatalf("JSON delivery: status %d, want 202", code)
	}
	if code := h.sendAs(t, "form-1", true, "pull_request", api.PullRequestEvent("synchronize", 2)); code != http.StatusAccepted {
		t.Fatalf("form-encoded synchronize delivery: status %d, want 202", code)
	}
	h.Gate.Wait()
	wantVerdict(t, api, 1, shaJSON)
	wantVerdict(t, api, 2, shaForm)
	j, _ := api.Latest(shaJSON, ghub.StatusContext)
	f, _ := api.Latest(shaForm, ghub.StatusContext)
	if j.Description != f.Description {
		t.Fatalf("form-encoded delivery judged differently: %q, JSON %q", f.Description, j.Description)
	}
}

// A 502 from GitHub in the middle of an evaluation is retried inside it:
// the pull request gets its verdict, not an error.
func TestGateRetriesTransientGitHubFailure(t *testing.T) {
	m := newModelsRepo(t)
	h := newHarness(t, m.URL)
	api := h.API
	sha, files := m.branch(t, "promote-churn", func(wd *testenv.Workdir) { setProd(t, wd, "3", "4") })
	api.PutPR(githubtest.PR{Number: 1, State: "open", Author: "carol", BaseRef: "main", HeadRef: "promote-churn", HeadSHA: sha, Files: files})
	const filesPath = "/repos/acme/models/pulls/1/files"
	api.Fail(githubtest.Fault{Method: "GET", Path: filesPath, Code: http.StatusBadGateway, Times: 1})
	h.deliver(t, "pull_request", api.PullRequestEvent("synchronize", 1))
	wantVerdict(t, api, 1, sha)
	if n := calls(api, "GET", filesPath); n != 2 {
		t.Fatalf("%d files requests, want 2 (a 502, then the retry)", n)
	}
	for _, st := range api.Statuses(sha) {
		if st.State == "error" {
			t.Fatalf("an error status was posted before the retry succeeded: %+v", st)
		}
	}
}

// A failure that outlasts the retries ends with an error status and the
// delivery is not recorded as done: GitHub's redelivery of it (same
// X-GitHub-Delivery) is processed and gives the verdict.
func TestGateRedeliveryAfterPersistentFailure(t *testing.T) {
	m := newModelsRepo(t)
	h := newHarness(t, m.URL)
	api := h.API
	sha, files := m.branch(t, "promote-churn", func(wd *testenv.Workdir) { setProd(t, wd, "3", "4") })
	api.PutPR(githubtest.PR{Number: 1, State: "open", Author: "carol", BaseRef: "main", HeadRef: "promote-churn", HeadSHA: sha, Files: files})
	const filesPath = "/repos/acme/models/pulls/1/files"
	api.Fail(githubtest.Fault{Method: "GET", Path: filesPath, Code: http.StatusBadGateway, Times: -1})
	payload := api.PullRequestEvent("synchronize", 1)
	if code := h.sendAs(t, "guid-1", false, "pull_request", payload); code != http.StatusAccepted {
		t.Fatalf("delivery: status %d, want 202", code)
	}
	h.Gate.Wait()
	wantLatest(t, api, sha, ghub.StatusContext, "error", "could not evaluate", "files of acme/models#1")
	if n := calls(api, "GET", filesPath); n != 4 {
		t.Fatalf("%d files requests, want 4 (the retry policy's attempts)", n)
	}

	// GitHub has recovered; the operator redelivers from GitHub's UI.
	api.ClearFaults()
	if code := h.sendAs(t, "guid-1", false, "pull_request", payload); code != http.StatusAccepted {
		t.Fatalf("redelivery of a failed delivery: status %d, want 202 (processed, not dropped)", code)
	}
	h.Gate.Wait()
	wantVerdict(t, api, 1, sha)

	// Now that it completed, a further redelivery is a duplicate.
	evals := evaluations(api, sha)
	if code := h.sendAs(t, "guid-1", false, "pull_request", payload); code != http.StatusOK {
		t.Fatalf("redelivery of a completed delivery: status %d, want 200", code)
	}
	h.Gate.Wait()
	if n := evaluations(api, sha); n != evals {
		t.Fatalf("a completed delivery was processed again (%d evaluations, was %d)", n, evals)
	}
}

// A 502 to creating the plan comment is recovered inside the evaluation.
// GitHub may or may not have created the comment: the client does not
// post it again blindly, the gate syncs the comments again, and either way
// the pull request ends with one plan comment.
func TestGatePlanCommentAfter502(t *testing.T) {
	m := newModelsRepo(t)
	h := newHarness(t, m.URL)
	api := h.API
	sha, files := m.branch(t, "promote-churn", func(wd *testenv.Workdir) { setProd(t, wd, "3", "4") })
	for _, c := range []struct {
		pr      int
		applied bool
	}{{1, false}, {2, true}} {
		api.PutPR(githubtest.PR{Number: c.pr, State: "open", Author: "carol", BaseRef: "main", HeadRef: "promote-churn", HeadSHA: sha, Files: files})
		commentsPath := fmt.Sprintf("/repos/acme/models/issues/%d/comments", c.pr)
		api.Fail(githubtest.Fault{Method: "POST", Path: commentsPath, Code: http.StatusBadGateway, Times: 1, Applied: c.applied})
		id := fmt.Sprintf("guid-c%d", c.pr)
		if code := h.sendAs(t, id, false, "pull_request", api.PullRequestEvent("opened", c.pr)); code != http.StatusAccepted {
			t.Fatalf("delivery: status %d", code)
		}
		h.Gate.Wait()
		wantVerdict(t, api, c.pr, sha)
		want := 2
		if c.applied {
			// Found by the second sync, so not posted again.
			want = 1
		}
		if n := calls(api, "POST", commentsPath); n != want {
			t.Fatalf("GitHub created the comment: %v; %d comment creations, want %d", c.applied, n, want)
		}
		// The delivery completed, so it is done.
		if code := h.sendAs(t, id, false, "pull_request", api.PullRequestEvent("opened", c.pr)); code != http.StatusOK {
			t.Fatalf("redelivery: status %d, want 200", code)
		}
	}
}

func calls(api *githubtest.Server, method, path string) int {
	n := 0
	for _, c := range api.Calls() {
		if c.Method == method && c.Path == path {
			n++
		}
	}
	return n
}
