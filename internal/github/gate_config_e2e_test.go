package github_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	ghub "github.com/modelsync/modelsync/internal/github"
	"github.com/modelsync/modelsync/internal/github/githubtest"
	"github.com/modelsync/modelsync/test/testenv"
)

// editFile replaces old by new in a file of the working copy.
func editFile(tb testing.TB, wd *testenv.Workdir, rel, old, new string) {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(wd.Dir, rel))
	if err != nil {
		tb.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		tb.Fatalf("%s lacks %q", rel, old)
	}
	wd.WriteFile(rel, strings.Replace(string(b), old, new, 1))
}

// The webhook gate judges modelsync.yaml as the check command does: a pull
// request moving prod to a branch changes no version yet rewires every model
// in prod, so it fails modelsync/policy and modelsync/policy/prod until the
// owners of those models approve; a broken manifest fails it outright
// (issue 13).
func TestGateJudgesConfiguration(t *testing.T) {
	m := newModelsRepo(t)
	h := newHarness(t, m.URL)
	api := h.API
	const prod = ghub.StatusContext + "/prod"

	sha, files := m.branch(t, "prod-on-main", func(wd *testenv.Workdir) {
		editFile(t, wd, "modelsync.yaml", "    source: releases\n", "    source: main\n")
	})
	api.PutPR(githubtest.PR{Number: 3, State: "open", Author: "mallory", BaseRef: "main", HeadRef: "prod-on-main", HeadSHA: sha, Files: files})
	h.deliver(t, "pull_request", api.PullRequestEvent("opened", 3))
	wantLatest(t, api, sha, ghub.StatusContext, "failure", "2 policy violations", "approvals.config_too_few", "approvals.config_owner_missing")
	wantLatest(t, api, sha, prod, "failure", "approvals.config_too_few")
	cs := planComments(t, api, 3)
	if len(cs) != 1 {
		t.Fatalf("%d plan comments, want 1", len(cs))
	}
	for _, want := range []string{"No model changes in any environment.", "| prod | `source` | releases | main | modelsync.yaml:15 |", "denied"} {
		if !strings.Contains(cs[0].Body, want) {
			t.Fatalf("plan comment lacks %q:\n%s", want, cs[0].Body)
		}
	}

	// Two approvals covering an owner of each model in prod.
	api.AddReview(3, githubtest.Review{User: "alice-ml", State: "APPROVED", CommitID: sha})
	api.AddReview(3, githubtest.Review{User: "carol-llm", State: "APPROVED", CommitID: sha})
	h.deliver(t, "pull_request_review", api.ReviewEvent("submitted", 3, "carol-llm", "approved", sha))
	wantLatest(t, api, sha, ghub.StatusContext, "success", "Policy passed: 1 change, 0 warnings")
	wantLatest(t, api, sha, prod, "success")

	// A broken model is a deny with its file and line, not "no changes".
	sha2, files2 := m.branch(t, "broken-model", func(wd *testenv.Workdir) { setProd(t, wd, "3", "three") })
	api.PutPR(githubtest.PR{Number: 4, State: "open", Author: "mallory", BaseRef: "main", HeadRef: "broken-model", HeadSHA: sha2, Files: files2})
	h.deliver(t, "pull_request", api.PullRequestEvent("opened", 4))
	wantLatest(t, api, sha2, ghub.StatusContext, "failure", "1 policy violation:", "gate.manifest_invalid")
	if cs := planComments(t, api, 4); len(cs) != 1 || !strings.Contains(cs[0].Body, "models/customer-churn-predictor/model.yaml:15") {
		t.Fatalf("plan comment for the broken model: %+v", cs)
	}
}
