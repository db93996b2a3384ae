package github

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	gh "github.com/google/go-github/v60/github"

	"github.com/modelsync/modelsync/policy"
)

// MaxStatusDescription is GitHub's limit on a commit status description;
// a longer one is refused with 422.
const MaxStatusDescription = 140

// MaxPRFiles is the most files the pull request files API lists. A pull
// request at the cap may have more, so the gate fails closed on it.
const MaxPRFiles = 3000

// PullRequest is what the gate reads about a pull request.
type PullRequest struct {
	Number  int
	State   string
	Draft   bool
	Author  string
	BaseRef string
	HeadRef string
	HeadSHA string
	Labels  []string
}

// Status is a commit status.
type Status struct {
	Context     string
	State       string // pending, success, failure, error
	Description string
	TargetURL   string
}

// Comment is an issue comment.
type Comment struct {
	ID   int64
	Body string
}

// RepoRef names a repository on GitHub.
type RepoRef struct {
	Owner, Name string
}

// ParseRepoRef parses "owner/name".
func ParseRepoRef(s string) (RepoRef, error) {
	owner, name, ok := strings.Cut(s, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return RepoRef{}, fmt.Errorf("github repository %q: want owner/name", s)
	}
	return RepoRef{Owner: owner, Name: name}, nil
}

func (r RepoRef) String() string { return r.Owner + "/" + r.Name }

// GetPullRequest reads a pull request.
func (c *Client) GetPullRequest(ctx context.Context, r RepoRef, number int) (PullRequest, error) {
	p, _, err := c.gh.PullRequests.Get(ctx, r.Owner, r.Name, number)
	if err != nil {
		return PullRequest{}, fmt.Errorf("github: pull request %s#%d: %w", r, number, classify(err))
	}
	out := PullRequest{Number: p.GetNumber(), State: p.GetState(), Draft: p.GetDraft(), Author: p.GetUser().GetLogin(),
		BaseRef: p.GetBase().GetRef(), HeadRef: p.GetHead().GetRef(), HeadSHA: p.GetHead().GetSHA()}
	for _, l := range p.Labels {
		out.Labels = append(out.Labels, l.GetName())
	}
	if out.HeadSHA == "" || out.BaseRef == "" {
		return PullRequest{}, fmt.Errorf("github: pull request %s#%d: response lacks head sha or base ref", r, number)
	}
	return out, nil
}

// ListOpenPullRequests lists the numbers of open pull requests into base.
func (c *Client) ListOpenPullRequests(ctx context.Context, r RepoRef, base string) ([]int, error) {
	var out []int
	opts := &gh.PullRequestListOptions{State: "open", Base: base, ListOptions: gh.ListOptions{PerPage: 100}}
	for {
		ps, resp, err := c.gh.PullRequests.List(ctx, r.Owner, r.Name, opts)
		if err != nil {
			return nil, fmt.Errorf("github: open pull requests of %s into %s: %w", r, base, classify(err))
		}
		for _, p := range ps {
			out = append(out, p.GetNumber())
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// ListReviews lists every review of a pull request, oldest first.
func (c *Client) ListReviews(ctx context.Context, r RepoRef, number int) ([]policy.Review, error) {
	var out []policy.Review
	opts := &gh.ListOptions{PerPage: 100}
	for {
		rs, resp, err := c.gh.PullRequests.ListReviews(ctx, r.Owner, r.Name, number, opts)
		if err != nil {
			return nil, fmt.Errorf("github: reviews of %s#%d: %w", r, number, classify(err))
		}
		for _, rv := range rs {
			out = append(out, reviewOf(rv))
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// reviewOf is the policy's view of one review. Every review is kept, in
// GitHub's order: which of a reviewer's reviews counts (the latest
// decisive one) is the policy's business, so the webhook gate and
// `check --reviews` cannot disagree about it.
func reviewOf(rv *gh.PullRequestReview) policy.Review {
	return policy.Review{User: rv.GetUser().GetLogin(), State: rv.GetState(),
		SubmittedAt: rv.GetSubmittedAt().Time, CommitID: rv.GetCommitID()}
}

// MaxReviewsJSON bounds a reviews document DecodeReviews reads. GitHub
// lists a review in about 2 KiB; this is room for thousands.
const MaxReviewsJSON = 16 << 20

// DecodeReviews reads a pull request's reviews in the JSON GitHub's "list
// reviews for a pull request" endpoint returns (an array of objects with
// user.login, state, submitted_at and commit_id; other fields are
// ignored), e.g. saved by `gh api repos/OWNER/REPO/pulls/N/reviews
// --paginate --slurp` or written by a CI job. The result is what
// ListReviews returns for the same reviews.
func DecodeReviews(r io.Reader) ([]policy.Review, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxReviewsJSON+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxReviewsJSON {
		return nil, fmt.Errorf("reviews JSON is larger than %d bytes", MaxReviewsJSON)
	}
	// gh api --paginate --slurp wraps each page in an outer array.
	var pages [][]*gh.PullRequestReview
	if err := json.Unmarshal(b, &pages); err != nil {
		var flat []*gh.PullRequestReview
		if err := json.Unmarshal(b, &flat); err != nil {
			return nil, fmt.Errorf("reviews JSON: want an array of reviews as GitHub lists them: %w", err)
		}
		pages = [][]*gh.PullRequestReview{flat}
	}
	out := []policy.Review{}
	for _, page := range pages {
		for _, rv := range page {
			if rv == nil || rv.GetUser().GetLogin() == "" || rv.GetState() == "" {
				return nil, fmt.Errorf("reviews JSON: review %d lacks user.login or state", len(out)+1)
			}
			out = append(out, reviewOf(rv))
		}
	}
	return out, nil
}

// ListFiles lists the paths a pull request changes (renames give both
// paths). It fails when GitHub's cap is reached, since the list may then
// be incomplete.
func (c *Client) ListFiles(ctx context.Context, r RepoRef, number int) ([]string, error) {
	var out []string
	opts := &gh.ListOptions{PerPage: 100}
	for {
		fs, resp, err := c.gh.PullRequests.ListFiles(ctx, r.Owner, r.Name, number, opts)
		if err != nil {
			return nil, fmt.Errorf("github: files of %s#%d: %w", r, number, classify(err))
		}
		for _, f := range fs {
			out = append(out, f.GetFilename())
			if p := f.GetPreviousFilename(); p != "" {
				out = append(out, p)
			}
		}
		if len(out) >= MaxPRFiles {
			return nil, fmt.Errorf("github: %s#%d changes %d or more files, GitHub's listing limit; the change cannot be judged completely", r, number, MaxPRFiles)
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// LatestStatuses returns the newest status per context (lower-cased, as
// GitHub compares contexts case-insensitively) on a commit.
func (c *Client) LatestStatuses(ctx context.Context, r RepoRef, sha string) (map[string]Status, error) {
	// GitHub lists statuses newest first; the first page holds the latest
	// state of every context modelsync writes.
	ss, _, err := c.gh.Repositories.ListStatuses(ctx, r.Owner, r.Name, sha, &gh.ListOptions{PerPage: 100})
	if err != nil {
		return nil, fmt.Errorf("github: statuses of %s@%s: %w", r, sha, classify(err))
	}
	out := map[string]Status{}
	for _, s := range ss {
		k := strings.ToLower(s.GetContext())
		if _, seen := out[k]; seen {
			continue
		}
		out[k] = Status{Context: s.GetContext(), State: s.GetState(), Description: s.GetDescription(), TargetURL: s.GetTargetURL()}
	}
	return out, nil
}

// CreateStatus writes a commit status. The description is cut to GitHub's
// limit.
func (c *Client) CreateStatus(ctx context.Context, r RepoRef, sha string, s Status) error {
	st := &gh.RepoStatus{Context: gh.String(s.Context), State: gh.String(s.State), Description: gh.String(Truncate(s.Description, MaxStatusDescription))}
	if s.TargetURL != "" {
		st.TargetURL = gh.String(s.TargetURL)
	}
	// Posting a status twice leaves what posting it once does, so the
	// transport may repeat it after a transient failure.
	if _, _, err := c.gh.Repositories.CreateStatus(repeatable(ctx), r.Owner, r.Name, sha, st); err != nil {
		return fmt.Errorf("github: status %s=%s on %s@%s: %w", s.Context, s.State, r, sha, classify(err))
	}
	return nil
}

// ListComments lists every comment of an issue or pull request.
func (c *Client) ListComments(ctx context.Context, r RepoRef, number int) ([]Comment, error) {
	var out []Comment
	opts := &gh.IssueListCommentsOptions{ListOptions: gh.ListOptions{PerPage: 100}}
	for {
		cs, resp, err := c.gh.Issues.ListComments(ctx, r.Owner, r.Name, number, opts)
		if err != nil {
			return nil, fmt.Errorf("github: comments of %s#%d: %w", r, number, classify(err))
		}
		for _, cm := range cs {
			out = append(out, Comment{ID: cm.GetID(), Body: cm.GetBody()})
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// CreateComment adds a comment to an issue or pull request. It is not
// repeated after a transient failure, which may follow a comment GitHub
// did create; OutcomeUnknown tells such errors.
func (c *Client) CreateComment(ctx context.Context, r RepoRef, number int, body string) (int64, error) {
	cm, _, err := c.gh.Issues.CreateComment(ctx, r.Owner, r.Name, number, &gh.IssueComment{Body: gh.String(body)})
	if err != nil {
		return 0, fmt.Errorf("github: comment on %s#%d: %w", r, number, classify(err))
	}
	return cm.GetID(), nil
}

// EditComment replaces a comment's body.
func (c *Client) EditComment(ctx context.Context, r RepoRef, id int64, body string) error {
	// Setting the same body twice is setting it once.
	if _, _, err := c.gh.Issues.EditComment(repeatable(ctx), r.Owner, r.Name, id, &gh.IssueComment{Body: gh.String(body)}); err != nil {
		return fmt.Errorf("github: edit comment %d on %s: %w", id, r, classify(err))
	}
	return nil
}

// DeleteComment removes a comment. A comment already gone counts as
// removed: a delete repeated after a transient failure finds it so.
func (c *Client) DeleteComment(ctx context.Context, r RepoRef, id int64) error {
	if resp, err := c.gh.Issues.DeleteComment(ctx, r.Owner, r.Name, id); err != nil {
		if resp != nil && resp.StatusCode == http.StatusNotFound {
			return nil
		}
		return fmt.Errorf("github: delete comment %d on %s: %w", id, r, classify(err))
	}
	return nil
}

// OutcomeUnknown reports whether err left unknown whether a write took
// effect: GitHub answered 5xx, or the connection broke or the attempt
// timed out after the request was sent. Failures to connect and refusals
// are known not to have; the caller's own context ending is no failure of
// GitHub's (go-github then returns the context's error, not a *url.Error).
func OutcomeUnknown(err error) bool {
	var er *gh.ErrorResponse
	if errors.As(err, &er) {
		return er.Response != nil && transientStatus(er.Response.StatusCode)
	}
	var rl *RateLimitedError
	if errors.As(err, &rl) {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return false
	}
	var ue *url.Error
	return errors.As(err, &ue)
}

// Truncate cuts s to at most n characters, ending with an ellipsis when
// cut.
func Truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	rs := []rune(s)
	return string(rs[:n-1]) + "…"
}

// classify turns go-github's rate limit errors into *RateLimitedError, so
// callers see one retryable type whether the limit was hit by this request
// or known in advance.
func classify(err error) error {
	var rl *gh.RateLimitError
	if errors.As(err, &rl) {
		m, p := requestOf(rl.Response)
		return &RateLimitedError{Method: m, Path: p, Until: rl.Rate.Reset.Time, cause: err}
	}
	var ab *gh.AbuseRateLimitError
	if errors.As(err, &ab) {
		until := time.Now()
		if ab.RetryAfter != nil {
			until = until.Add(*ab.RetryAfter)
		}
		m, p := requestOf(ab.Response)
		return &RateLimitedError{Method: m, Path: p, Until: until, Secondary: true, cause: err}
	}
	return err
}

func requestOf(resp *http.Response) (string, string) {
	if resp == nil || resp.Request == nil || resp.Request.URL == nil {
		return "", ""
	}
	return resp.Request.Method, resp.Request.URL.Path
}
