package serve_test

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelsync/modelsync/internal/cmd/serve"
	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/dashboard"
	"github.com/modelsync/modelsync/internal/github/githubtest"
	"github.com/modelsync/modelsync/test/testenv"
)

// The dashboard's rollback in pull-request mode pushes a branch with the
// one-line edit, authored as the signed-in user, and opens the pull
// request through the GitHub API; main is left to the review.
func TestDashboardRollbackOpensPullRequestThroughGitHub(t *testing.T) {
	gitsrv := testenv.NewGitServer(t)
	if _, err := gitsrv.NewBareRepo("models"); err != nil {
		t.Fatal(err)
	}
	gitIn(t, exampleRepo(t), "push", "-q", gitsrv.AuthHTTPURL("models"), "main", "--tags")
	gitDir := filepath.Join(gitsrv.Root, "models.git")
	mainBefore := gitOut(t, gitDir, "rev-parse", "main")

	api := githubtest.New(t, "acme", "models", "ghp_rollback_test")
	env := map[string]string{cmdutil.EnvGitHubToken: api.Token, cmdutil.EnvGitHubAPIURL: api.URL,
		"MODELSYNC_GIT_USERNAME": gitsrv.Username, "MODELSYNC_GIT_PASSWORD": gitsrv.Password, "MODELSYNC_CACHE_DIR": t.TempDir()}
	var logs bytes.Buffer
	opts := &serve.Options{Factory: factory(env, &logs), Repo: cmdutil.RepoFlags{URL: gitsrv.HTTPURL + "models.git", Branch: "main"}, GitHubRepository: "acme/models"}
	rb, err := serve.DashboardRollbacker(opts, serve.RollbackPullRequest)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := rb.Rollback(ctx, dashboard.RollbackRequest{Model: "customer-churn-predictor", Environment: "staging", To: 3, Actor: "token:erin"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Summary != "opened pull request #1 to roll customer-churn-predictor in staging back from v4 to v3" || res.Ref != "pull request #1" ||
		res.URL != api.URL+"/acme/models/pull/1" {
		t.Fatalf("result %+v", res)
	}
	prs := api.PRs()
	if len(prs) != 1 || prs[0].HeadRef != "modelsync/rollback/customer-churn-predictor-staging-v3" || prs[0].BaseRef != "main" ||
		prs[0].Title != "rollback: customer-churn-predictor in staging from v4 to v3" || !strings.Contains(prs[0].Body, "requested in the modelsync dashboard by token:erin") {
		t.Fatalf("pull requests on GitHub: %+v", prs)
	}
	if got := gitOut(t, gitDir, "log", "-1", "--format=%an|%s", prs[0].HeadRef); got != "token:erin (modelsync dashboard)|rollback: customer-churn-predictor in staging from v4 to v3" {
		t.Fatalf("branch %s head: %s", prs[0].HeadRef, got)
	}
	if diff := gitOut(t, gitDir, "diff", "--stat", "main", prs[0].HeadRef); !strings.Contains(diff, "1 file changed, 1 insertion(+), 1 deletion(-)") {
		t.Fatalf("the branch changes more than the version line: %s", diff)
	}
	if got := gitOut(t, gitDir, "rev-parse", "main"); got != mainBefore {
		t.Fatal("main moved: a pull-request rollback must leave main to the review")
	}

	// GitHub refuses the pull request: the error says the branch was pushed.
	api.Fail(githubtest.Fault{Method: "POST", Path: "/repos/acme/models/pulls", Code: 422, Times: -1})
	_, err = rb.Rollback(ctx, dashboard.RollbackRequest{Model: "customer-churn-predictor", Environment: "staging", To: 2, Actor: "token:erin"})
	if err == nil || !strings.Contains(err.Error(), "branch modelsync/rollback/customer-churn-predictor-staging-v2 was pushed but") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(logs.String()+err.Error(), api.Token) || strings.Contains(err.Error(), gitsrv.Password) {
		t.Fatal("a credential reached the error or the log")
	}
}

func gitOut(t *testing.T, gitDir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"--git-dir", gitDir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}
