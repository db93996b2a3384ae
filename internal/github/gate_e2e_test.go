package github_test

import (
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	ghub "github.com/modelsync/modelsync/internal/github"
	"github.com/modelsync/modelsync/internal/github/githubtest"
	"github.com/modelsync/modelsync/internal/prverdict"
	"github.com/modelsync/modelsync/test/testenv"
)

// blockReviews makes the next reviews request of PR 1 wait: entered is
// closed when it arrives, and it proceeds when release is closed.
func blockReviews(api *githubtest.Server) (entered, release chan struct{}) {
	var armed atomic.Bool
	armed.Store(true)
	entered, release = make(chan struct{}), make(chan struct{})
	api.SetHook(func(r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/pulls/1/reviews") && armed.CompareAndSwap(true, false) {
			close(entered)
			<-release
		}
	})
	return entered, release
}

func finals(sts []githubtest.Status, context string) []githubtest.Status {
	var out []githubtest.Status
	for _, s := range sts {
		if strings.EqualFold(s.Context, context) && s.State != "pending" {
			out = append(out, s)
		}
	}
	return out
}

func count(sts []githubtest.Status, context string) int {
	n := 0
	for _, s := range sts {
		if strings.EqualFold(s.Context, context) {
			n++
		}
	}
	return n
}

func planComments(t *testing.T, api *githubtest.Server, pr int) []githubtest.Comment {
	t.Helper()
	var out []githubtest.Comment
	for _, c := range api.Comments(pr) {
		if strings.Contains(c.Body, ghub.CommentMarker) {
			out = append(out, c)
		}
	}
	return out
}

func wantLatest(t *testing.T, api *githubtest.Server, sha, context, state string, contains ...string) githubtest.Status {
	t.Helper()
	st, ok := api.Latest(sha, context)
	if !ok || st.State != state {
		t.Fatalf("%s on %.12s = %+v, want %s", context, sha, st, state)
	}
	for _, c := range contains {
		if !strings.Contains(st.Description, c) {
			t.Fatalf("%s on %.12s: description %q lacks %q", context, sha, st.Description, c)
		}
	}
	return st
}

func TestGateEndToEnd(t *testing.T) {
	m := newModelsRepo(t)
	h := newHarness(t, m.URL)
	api := h.API
	const prod = ghub.StatusContext + "/prod"

	// 1. A pull request promoting churn v4 to prod, without approvals.
	sha1, files := m.branch(t, "promote-churn", func(wd *testenv.Workdir) { setProd(t, wd, "3", "4") })
	api.PutPR(githubtest.PR{Number: 1, State: "open", Author: "carol", BaseRef: "main", HeadRef: "promote-churn", HeadSHA: sha1, Files: files})
	h.deliver(t, "pull_request", api.PullRequestEvent("opened", 1))

	sts := api.Statuses(sha1)
	if len(sts) == 0 || sts[0].Context != ghub.StatusContext || sts[0].State != "pending" {
		t.Fatalf("first status on the head = %+v, want modelsync/policy pending", sts)
	}
	wantLatest(t, api, sha1, ghub.StatusContext, "failure", "approvals.too_few")
	wantLatest(t, api, sha1, prod, "failure", "approvals.too_few")
	if _, ok := api.Latest(sha1, ghub.StatusContext+"/staging"); ok {
		t.Fatal("a status was posted for staging, which the pull request does not change")
	}
	cs := planComments(t, api, 1)
	if len(cs) != 1 {
		t.Fatalf("%d plan comments, want 1", len(cs))
	}
	for _, want := range []string{"approvals.too_few", "| customer-churn-predictor | prod | v3 | v4 |", "denied"} {
		if !strings.Contains(cs[0].Body, want) {
			t.Fatalf("plan comment lacks %q:\n%s", want, cs[0].Body)
		}
	}
	commentID := cs[0].ID
	// The verdict is kept under the model the pull request changes, for
	// the dashboard: the rule that denied and its message.
	vs := h.Verdicts.ForModel(churn)
	if len(vs) != 1 || vs[0].PR != 1 || vs[0].HeadSHA != sha1 || vs[0].State != "failure" || !strings.Contains(vs[0].Description, "approvals.too_few") ||
		!slices.ContainsFunc(vs[0].Denies, func(d prverdict.Denial) bool {
			return d.Rule == "approvals.too_few" && d.Environment == "prod" && strings.Contains(d.Message, "needs 2 approving reviews")
		}) {
		t.Fatalf("verdicts of %s after the denial = %+v", churn, vs)
	}
	if other := h.Verdicts.ForModel("llama2-7b-alpaca"); len(other) != 0 {
		t.Fatalf("a verdict was kept for a model the pull request does not touch: %+v", other)
	}

	// 2. Two approvals of the head, one by an owner of the model.
	api.AddReview(1, githubtest.Review{User: "alice-ml", State: "APPROVED", CommitID: sha1})
	api.AddReview(1, githubtest.Review{User: "dave-ops", State: "APPROVED", CommitID: sha1})
	h.deliver(t, "pull_request_review", api.ReviewEvent("submitted", 1, "dave-ops", "approved", sha1))
	wantLatest(t, api, sha1, ghub.StatusContext, "success")
	wantLatest(t, api, sha1, prod, "success")
	// The same head judged again replaces its verdict.
	if vs = h.Verdicts.ForModel(churn); len(vs) != 1 || vs[0].State != "success" || len(vs[0].Denies) != 0 {
		t.Fatalf("verdicts of %s after the approvals = %+v", churn, vs)
	}
	cs = planComments(t, api, 1)
	if len(cs) != 1 || cs[0].ID != commentID || cs[0].Edited != 1 || !strings.Contains(cs[0].Body, "passed") {
		t.Fatalf("plan comment not updated in place: %+v", cs)
	}

	// 3. The same state judged again writes nothing new but pending for
	// the required check: unchanged statuses and comments are not rewritten.
	prodWrites := count(api.Statuses(sha1), prod)
	h.deliver(t, "pull_request_review", api.ReviewEvent("submitted", 1, "alice-ml", "approved", sha1))
	if n := count(api.Statuses(sha1), prod); n != prodWrites {
		t.Fatalf("unchanged %s written again (%d writes, was %d)", prod, n, prodWrites)
	}
	if cs = planComments(t, api, 1); cs[0].Edited != 1 {
		t.Fatalf("unchanged comment edited again (%d edits)", cs[0].Edited)
	}

	// 4a. The head moves while an evaluation is in flight and no event
	// says so yet: the re-read of the head before posting drops the result.
	finalsBefore := len(finals(api.Statuses(sha1), ghub.StatusContext))
	entered, release := blockReviews(api)
	if code := h.send(t, "pull_request_review", api.ReviewEvent("dismissed", 1, "dave-ops", "dismissed", sha1)); code != 202 {
		t.Fatalf("review delivery: %d", code)
	}
	<-entered
	api.SetHead(1, strings.Repeat("f", 40), files)
	close(release)
	h.Gate.Wait()
	if got := finals(api.Statuses(sha1), ghub.StatusContext); len(got) != finalsBefore {
		t.Fatalf("a result was posted for a commit that is no longer the head: %+v", got[finalsBefore:])
	}
	api.SetHead(1, sha1, files)

	// 4b. Force-push while an evaluation of the old head is in flight: the
	// synchronize event cancels it, and the old head's result is never
	// posted.
	entered, release = blockReviews(api)
	if code := h.send(t, "pull_request_review", api.ReviewEvent("dismissed", 1, "dave-ops", "dismissed", sha1)); code != 202 {
		t.Fatalf("review delivery: %d", code)
	}
	<-entered
	m.WD.Run("reset", "--quiet", "--hard", "origin/main")
	setProd(t, m.WD, "3", "4")
	m.WD.WriteFile("models/customer-churn-predictor/NOTES.md", "Promoted after the Q1 review.\n")
	sha2 := m.WD.Commit("promote churn v4 (rewritten)")
	m.WD.Push("--force", "HEAD:refs/heads/promote-churn")
	api.SetHead(1, sha2, m.files(t, "promote-churn"))
	callsBefore := len(api.Calls())
	if code := h.send(t, "pull_request", api.PullRequestEvent("synchronize", 1)); code != 202 {
		t.Fatalf("synchronize delivery: %d", code)
	}
	close(release)
	h.Gate.Wait()
	api.SetHook(nil)
	// The canceled run stops where it was: only the new run reads the pull
	// request (once to start, once to confirm the head before posting).
	reads := 0
	for _, c := range api.Calls()[callsBefore:] {
		if c.Method == "GET" && c.Path == "/repos/acme/models/pulls/1" {
			reads++
		}
	}
	if reads != 2 {
		t.Fatalf("%d reads of the pull request after the force-push, want 2: the old evaluation was not canceled", reads)
	}
	if got := finals(api.Statuses(sha1), ghub.StatusContext); len(got) != finalsBefore {
		t.Fatalf("a result was posted on the old head after the force-push: %+v", got[finalsBefore:])
	}
	// The approvals were given to the old head, so they do not count.
	wantLatest(t, api, sha2, ghub.StatusContext, "failure", "approvals.too_few")

	// 5. A pull request that deletes the approval rule is still judged by
	// the base branch's rules, and the comment asks for policy review.
	sha3, files3 := m.branch(t, "weaken-gate", func(wd *testenv.Workdir) {
		wd.Remove("policy/rules/approvals.rego")
		setProd(t, wd, "3", "4")
	})
	api.PutPR(githubtest.PR{Number: 2, State: "open", Author: "mallory", BaseRef: "main", HeadRef: "weaken-gate", HeadSHA: sha3, Files: files3})
	h.deliver(t, "pull_request", api.PullRequestEvent("opened", 2))
	wantLatest(t, api, sha3, ghub.StatusContext, "failure", "approvals.too_few")
	cs = planComments(t, api, 2)
	if len(cs) != 1 || !strings.Contains(cs[0].Body, "Policy owners must review") || !strings.Contains(cs[0].Body, "policy/") {
		t.Fatalf("policy-change comment = %+v", cs)
	}

	// 6. A delivery with a bad signature is refused and causes no API call.
	calls := len(api.Calls())
	code := githubtest.Deliver(t, h.URL, githubtest.Delivery{Event: "pull_request", ID: "forged", Payload: api.PullRequestEvent("synchronize", 2), Secret: []byte("guess")})
	h.Gate.Wait()
	if code != http.StatusUnauthorized || len(api.Calls()) != calls {
		t.Fatalf("forged delivery: status %d, %d new API calls", code, len(api.Calls())-calls)
	}

	// 7. A push to main triggers a reconcile and re-checks open PRs; a
	// release tag triggers one rollout even when both push and create
	// events arrive.
	mainSHA := strings.Fields(m.WD.Run("ls-remote", "origin", "refs/heads/main"))[0]
	calls = len(api.Calls())
	h.deliver(t, "push", api.PushEvent("refs/heads/main", sha1, mainSHA, "main", false, false))
	listed := false
	for _, c := range api.Calls()[calls:] {
		if c.Method == "GET" && c.Path == "/repos/acme/models/pulls" {
			listed = true
		}
	}
	if !listed || len(h.reconcile) != 1 || h.reconcile[0] != "main@"+mainSHA {
		t.Fatalf("base push: listed open PRs %v, reconcile hook %v", listed, h.reconcile)
	}
	tag := churn + "/v1.2.0"
	h.deliver(t, "push", api.PushEvent("refs/tags/"+tag, strings.Repeat("0", 40), sha1, "main", true, false))
	h.deliver(t, "create", api.CreateEvent(tag, "tag", "main"))
	h.deliver(t, "create", api.CreateEvent("nightly", "tag", "main"))
	if len(h.rollouts) != 1 || h.rollouts[0] != churn+" "+tag {
		t.Fatalf("rollout hook calls = %v, want one for %s", h.rollouts, tag)
	}

	// 8. Events about another repository are ignored.
	calls = len(api.Calls())
	other := api.PullRequestEvent("opened", 1)
	other["repository"].(map[string]any)["full_name"] = "someone/else"
	h.deliver(t, "pull_request", other)
	if n := len(api.Calls()) - calls; n != 0 {
		t.Fatalf("an event of another repository caused %d API calls", n)
	}
}

// A pull request from a fork has its head on no branch of the models
// repository; GitHub keeps it at refs/pull/<n>/head, which the gate fetches.
func TestGateForkPullRequest(t *testing.T) {
	m := newModelsRepo(t)
	h := newHarness(t, m.URL)
	m.WD.Run("checkout", "--quiet", "-B", "fork-main", "origin/main")
	setProd(t, m.WD, "3", "4")
	sha := m.WD.Commit("promote churn from a fork")
	m.WD.Push("HEAD:refs/pull/7/head")
	files := strings.Fields(m.WD.Run("diff", "--name-only", "origin/main", "HEAD"))

	h.API.PutPR(githubtest.PR{Number: 7, State: "open", Author: "outside-contributor", BaseRef: "main", HeadRef: "main", HeadSHA: sha, Files: files})
	h.deliver(t, "pull_request", h.API.PullRequestEvent("opened", 7))
	// Judged like any other pull request (not an error status): the
	// promotion lacks approvals.
	wantLatest(t, h.API, sha, ghub.StatusContext, "failure", "approvals.too_few")
	wantLatest(t, h.API, sha, ghub.StatusContext+"/prod", "failure", "approvals.too_few")
	if cs := planComments(t, h.API, 7); len(cs) != 1 || !strings.Contains(cs[0].Body, "| customer-churn-predictor | prod | v3 | v4 |") {
		t.Fatalf("plan comment for the fork pull request: %+v", cs)
	}

	// A head that is nowhere, not even under refs/pull, fails closed with
	// an error status that says what was tried.
	missing := strings.Repeat("e", 40)
	h.API.PutPR(githubtest.PR{Number: 8, State: "open", Author: "outside-contributor", BaseRef: "main", HeadRef: "main", HeadSHA: missing, Files: files})
	h.deliver(t, "pull_request", h.API.PullRequestEvent("opened", 8))
	wantLatest(t, h.API, missing, ghub.StatusContext, "error", "refs/pull/8/head")
}
