package check_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/cmd/check"
	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/github/githubtest"
	"github.com/modelsync/modelsync/internal/github/prcheck"
	"github.com/modelsync/modelsync/internal/wiring"
	"github.com/modelsync/modelsync/policy"
	"github.com/modelsync/modelsync/test/fixture"
)

// goodFacts are registry facts under which churn v4 passes the
// performance, promotion and security rules (a clean scan recorded in its
// tags), so only the approval rules remain.
type goodFacts struct{}

func (goodFacts) Facts(context.Context, *prcheck.Comparison, time.Time) (map[string]policy.RegistryModel, error) {
	metrics := map[string]float64{"accuracy": 0.91, "precision": 0.88, "recall": 0.90, "f1": 0.89}
	soak := 72.0
	return map[string]policy.RegistryModel{"customer-churn-predictor": {ProdVersion: 3, Versions: map[string]policy.RegistryVersion{
		"3": {RunMetrics: metrics, StagingHours: &soak},
		"4": {RunMetrics: metrics, StagingHours: &soak, Tags: map[string]string{
			"modelsync.scan.result": "safe", "modelsync.scan.digest": "sha256:04", "modelsync.scan.scanner": "modelsync-scan/1"}},
	}}}, nil
}

// runCheckEnv runs check with env as the environment and, when facts is
// set, those registry facts. It returns the exit code.
func runCheckEnv(t *testing.T, env map[string]string, facts prcheck.RegistryFacts, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	cache := t.TempDir()
	f := wiring.New(cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, func(k string) string {
		if k == "MODELSYNC_CACHE_DIR" {
			return cache
		}
		return env[k]
	}, "")
	cmd := check.NewCmdCheck(f, func(ctx context.Context, o *check.Options) error {
		o.Registry = facts
		return check.Run(ctx, o)
	})
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	var ee *cmdutil.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.Err == nil) {
		errOut.WriteString("Error: " + err.Error())
	}
	return cmdutil.ExitCode(err), out.String(), errOut.String()
}

func writeJSON(t *testing.T, v any) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "doc.json")
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// review is one review in the JSON of GitHub's list-reviews API.
func review(login, state, commit, at string) map[string]any {
	return map[string]any{"id": 1, "user": map[string]any{"login": login, "type": "User"}, "body": "", "state": state,
		"commit_id": commit, "submitted_at": at, "author_association": "MEMBER", "html_url": "https://github.invalid/x"}
}

// promoteCI is the example repository with a pull request promoting churn
// v4 to prod, checked out as GitHub Actions checks out a pull_request run:
// the merge, detached, in a clone. It returns the clone and the pull
// request's head commit.
func promoteCI(t *testing.T) (ci, prHead string) {
	dir := exampleRepo(t)
	promoteBranch(t, dir, "promote")
	ci, _ = fixture.CIClone(t, dir, "promote", false)
	return ci, git(t, dir, "rev-parse", "promote")
}

// issue 14, point 2: reviews reach check from a file in the shape of
// GitHub's list-reviews API; the latest decisive review per user counts,
// as in the webhook gate (the policy decides, from the same input).
func TestCheckReviewsFileTurnsProdDenyIntoPass(t *testing.T) {
	ci, prHead := promoteCI(t)
	event := writeJSON(t, map[string]any{"action": "synchronize", "number": 7,
		"pull_request": map[string]any{"number": 7, "head": map[string]any{"sha": prHead, "ref": "promote"}}})
	env := map[string]string{"GITHUB_EVENT_PATH": event, "GITHUB_REPOSITORY": "acme/models"}
	args := []string{"--repo", ci, "--base", "origin/main", "--head", "HEAD", "--author", "carol"}

	code, out, stderr := runCheckEnv(t, env, goodFacts{}, args...)
	if code != 1 || !strings.Contains(out, "[approvals.too_few]") || !strings.Contains(out, "[approvals.owner_missing]") {
		t.Fatalf("without reviews: exit %d, want 1 with approvals.too_few and owner_missing\n%s\n%s", code, out, stderr)
	}
	if !strings.Contains(stderr, "no reviews given") {
		t.Errorf("no hint that no reviews were given:\n%s", stderr)
	}

	// bob-data (an owner) approved, then erin approved, then erin asked
	// for changes: only bob's approval stands. The author's own approval
	// never counts.
	reviews := []any{
		review("bob-data", "APPROVED", prHead, "2026-03-02T10:00:00Z"),
		review("erin", "APPROVED", prHead, "2026-03-02T10:05:00Z"),
		review("carol", "APPROVED", prHead, "2026-03-02T10:06:00Z"),
		review("erin", "CHANGES_REQUESTED", prHead, "2026-03-02T11:00:00Z"),
		review("bob-data", "COMMENTED", prHead, "2026-03-02T12:00:00Z"),
	}
	code, out, stderr = runCheckEnv(t, env, goodFacts{}, append(args, "--reviews", writeJSON(t, reviews))...)
	if code != 1 || !strings.Contains(out, "needs 2 approving reviews, the pull request has 1") || strings.Contains(out, "[approvals.owner_missing]") {
		t.Fatalf("one standing approval: exit %d\n%s\n%s", code, out, stderr)
	}

	// frank approves too: two approvals, one from an owner. The pages of
	// `gh api --paginate --slurp` are accepted as they come.
	reviews = append(reviews, review("frank", "APPROVED", prHead, "2026-03-02T13:00:00Z"))
	code, out, stderr = runCheckEnv(t, env, goodFacts{}, append(args, "--reviews", writeJSON(t, []any{reviews[:3], reviews[3:]}))...)
	if code != 0 || !strings.Contains(out, "Result: passed") || !strings.Contains(stderr, "6 review(s) from") {
		t.Fatalf("two approvals with an owner: exit %d, want 0\n%s\n%s", code, out, stderr)
	}

	// Approvals of an older head are stale (require_current_head), and a
	// head that is not the pull request's (nor its merge) is not judged
	// by the pull request's reviews.
	for i := range reviews {
		reviews[i].(map[string]any)["commit_id"] = strings.Repeat("e", 40)
	}
	code, out, _ = runCheckEnv(t, env, goodFacts{}, append(args, "--reviews", writeJSON(t, reviews))...)
	if code != 1 || !strings.Contains(out, "the pull request has 0") {
		t.Fatalf("stale approvals: exit %d\n%s", code, out)
	}
}

// In a GitHub Actions pull_request run with a token, check reads the
// reviews and the author from the GitHub API.
func TestCheckReviewsFromGitHubAPI(t *testing.T) {
	ci, prHead := promoteCI(t)
	gh := githubtest.New(t, "acme", "models", "ghs_test")
	gh.PutPR(githubtest.PR{Number: 7, State: "open", Author: "alice-ml", BaseRef: "main", HeadRef: "promote", HeadSHA: prHead})
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	// The author's own approval does not count: one approval, no owner.
	gh.AddReview(7, githubtest.Review{ID: 1, User: "alice-ml", State: "APPROVED", CommitID: prHead, SubmittedAt: at})
	gh.AddReview(7, githubtest.Review{ID: 2, User: "erin", State: "APPROVED", CommitID: prHead, SubmittedAt: at.Add(time.Minute)})
	event := writeJSON(t, map[string]any{"pull_request": map[string]any{"number": 7, "head": map[string]any{"sha": prHead}}})
	env := map[string]string{"GITHUB_EVENT_PATH": event, "GITHUB_REPOSITORY": "acme/models", "GITHUB_API_URL": gh.URL, "GITHUB_TOKEN": "ghs_test"}
	args := []string{"--repo", ci, "--base", "origin/main", "--head", "HEAD"}

	code, out, stderr := runCheckEnv(t, env, goodFacts{}, args...)
	if code != 1 || !strings.Contains(out, "the pull request has 1") || !strings.Contains(out, "[approvals.owner_missing]") {
		t.Fatalf("author's own approval: exit %d\n%s\n%s", code, out, stderr)
	}
	if !strings.Contains(stderr, "2 review(s) of acme/models#7 by alice-ml from GitHub") {
		t.Errorf("stderr does not say where the reviews came from:\n%s", stderr)
	}
	gh.AddReview(7, githubtest.Review{ID: 3, User: "bob-data", State: "APPROVED", CommitID: prHead, SubmittedAt: at.Add(2 * time.Minute)})
	code, out, stderr = runCheckEnv(t, env, goodFacts{}, args...)
	if code != 0 || !strings.Contains(out, "Result: passed") {
		t.Fatalf("owner approved: exit %d, want 0\n%s\n%s", code, out, stderr)
	}
	if strings.Contains(stderr+out, "ghs_test") {
		t.Error("the token reached the output")
	}

	// A GitHub that cannot be asked is "could not judge", not a deny.
	env["GITHUB_TOKEN"] = "wrong"
	code, _, stderr = runCheckEnv(t, env, goodFacts{}, args...)
	if code != 2 || strings.Contains(stderr, "wrong") {
		t.Fatalf("bad token: exit %d, want 2\n%s", code, stderr)
	}
}
