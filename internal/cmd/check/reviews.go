package check

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/modelsync/modelsync/internal/cmdutil"
	ghub "github.com/modelsync/modelsync/internal/github"
	"github.com/modelsync/modelsync/internal/github/prcheck"
)

// GitHub Actions' environment (documented variables of every workflow run).
const (
	envGitHubEventPath  = "GITHUB_EVENT_PATH"
	envGitHubRepository = "GITHUB_REPOSITORY"
	envGitHubAPIURL     = "GITHUB_API_URL"
	// githubDotComAPI is GITHUB_API_URL on github.com, where the client
	// needs no base URL (it would add /api/v3, GitHub Enterprise's path).
	githubDotComAPI = "https://api.github.com"
	// maxEventJSON bounds the event payload read; GitHub caps webhook
	// payloads at 25 MB.
	maxEventJSON = 25 << 20
)

// ciPullRequest is the pull request a CI run is for.
type ciPullRequest struct {
	Repo    ghub.RepoRef
	Number  int
	HeadSHA string
}

// githubActionsPR reads the pull request from GitHub Actions' event
// payload; nil when the run is not for a pull request (a push, another CI).
func githubActionsPR(getenv func(string) string) (*ciPullRequest, error) {
	path := getenv(envGitHubEventPath)
	if path == "" {
		return nil, nil
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("GitHub Actions event (%s): %w", envGitHubEventPath, err)
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxEventJSON+1))
	if err != nil {
		return nil, fmt.Errorf("GitHub Actions event %s: %w", path, err)
	}
	if len(b) > maxEventJSON {
		return nil, fmt.Errorf("GitHub Actions event %s: larger than %d bytes", path, maxEventJSON)
	}
	var ev struct {
		PullRequest *struct {
			Number int `json:"number"`
			Head   struct {
				SHA string `json:"sha"`
			} `json:"head"`
		} `json:"pull_request"`
	}
	if err := json.Unmarshal(b, &ev); err != nil {
		return nil, fmt.Errorf("GitHub Actions event %s: %w", path, err)
	}
	if ev.PullRequest == nil || ev.PullRequest.Number == 0 {
		return nil, nil
	}
	repo, err := ghub.ParseRepoRef(getenv(envGitHubRepository))
	if err != nil {
		return nil, fmt.Errorf("GitHub Actions pull request #%d: $%s: %w", ev.PullRequest.Number, envGitHubRepository, err)
	}
	return &ciPullRequest{Repo: repo, Number: ev.PullRequest.Number, HeadSHA: ev.PullRequest.Head.SHA}, nil
}

// addReviews puts the pull request's reviews (and, from GitHub, its
// number, author and labels) into req: from --reviews, else from the
// GitHub API when a GitHub Actions pull request run has a token. It
// returns the pull request's head commit when GitHub names it.
func addReviews(ctx context.Context, opts *Options, req *prcheck.Request) (string, error) {
	f := opts.Factory
	pr, err := githubActionsPR(f.Getenv)
	if err != nil {
		return "", err
	}
	var prHead string
	if pr != nil {
		req.PR.Number, prHead = pr.Number, pr.HeadSHA
	}
	if opts.ReviewsFile != "" {
		fh, err := os.Open(opts.ReviewsFile)
		if err != nil {
			return "", fmt.Errorf("--reviews: %w", err)
		}
		defer fh.Close()
		if req.Reviews, err = ghub.DecodeReviews(fh); err != nil {
			return "", fmt.Errorf("--reviews %s: %w", opts.ReviewsFile, err)
		}
		fmt.Fprintf(f.IO.ErrOut, "check: %d review(s) from %s\n", len(req.Reviews), opts.ReviewsFile)
		return prHead, nil
	}
	if pr == nil || f.Getenv(cmdutil.EnvGitHubToken) == "" {
		fmt.Fprintf(f.IO.ErrOut, "check: no reviews given (--reviews FILE, or $%s in a GitHub Actions pull_request run): approval rules count none\n", cmdutil.EnvGitHubToken)
		return "", nil
	}
	if f.GitHubFlags.APIURL == "" && f.Getenv(cmdutil.EnvGitHubAPIURL) == "" {
		if u := strings.TrimSuffix(f.Getenv(envGitHubAPIURL), "/"); u != githubDotComAPI {
			f.GitHubFlags.APIURL = u
		}
	}
	c, err := f.GitHub()
	if err != nil {
		return "", fmt.Errorf("reviews of %s#%d: %w", pr.Repo, pr.Number, err)
	}
	p, err := c.GetPullRequest(ctx, pr.Repo, pr.Number)
	if err != nil {
		return "", err
	}
	if req.Reviews, err = c.ListReviews(ctx, pr.Repo, pr.Number); err != nil {
		return "", err
	}
	req.PR.Author, req.PR.Labels = p.Author, p.Labels
	fmt.Fprintf(f.IO.ErrOut, "check: %d review(s) of %s#%d by %s from GitHub\n", len(req.Reviews), pr.Repo, pr.Number, p.Author)
	return p.HeadSHA, nil
}
