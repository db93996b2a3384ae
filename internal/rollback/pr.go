package rollback

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	gh "github.com/google/go-github/v60/github"
)

// RepoFromRemote derives GitHub's owner and repository name from a Git
// remote URL: https://host/owner/name(.git), ssh://git@host/owner/name.git
// or git@host:owner/name.git.
func RepoFromRemote(remote string) (owner, name string, err error) {
	p := remote
	if strings.Contains(remote, "://") {
		u, perr := url.Parse(remote)
		if perr != nil {
			return "", "", fmt.Errorf("remote URL is not parseable; pass --github-repo OWNER/NAME")
		}
		p = u.Path
	} else if at := strings.Index(remote, "@"); at >= 0 {
		if _, after, ok := strings.Cut(remote[at:], ":"); ok {
			p = after
		}
	}
	parts := strings.Split(strings.Trim(strings.TrimSuffix(strings.Trim(p, "/"), ".git"), "/"), "/")
	if len(parts) < 2 || parts[len(parts)-2] == "" || parts[len(parts)-1] == "" {
		return "", "", fmt.Errorf("cannot tell the GitHub repository from remote %s; pass --github-repo OWNER/NAME", remote)
	}
	return parts[len(parts)-2], parts[len(parts)-1], nil
}

// PullRequest is an opened pull request.
type PullRequest struct {
	Number int
	URL    string
}

// PRBody is the pull request description of a change. releaseCmd, when not
// empty, is the command that must run after the merge for the rollback to
// reach a releases environment; unreleased lists what that release would
// ship besides the rollback (see Unreleased).
func (ch *Change) PRBody(reason, releaseCmd string, unreleased []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Rolls back model `%s` in environment `%s` from version %d to version %d.\n\n", ch.Model, ch.Environment, ch.From, ch.To)
	if reason != "" {
		fmt.Fprintf(&b, "**Reason:** %s\n\n", reason)
	}
	fmt.Fprintf(&b, "| | version | revision |\n|---|---|---|\n| now | %d | `%s` |\n", ch.From, ch.FromRevision)
	if ch.ToRevision != "" {
		fmt.Fprintf(&b, "| back to | %d | `%s` (last ran there) |\n", ch.To, ch.ToRevision)
	} else {
		fmt.Fprintf(&b, "| back to | %d | (has not run in %s before) |\n", ch.To, ch.Environment)
	}
	if releaseCmd != "" {
		fmt.Fprintf(&b, "\n`%s` follows release tags: **merging is not enough.** After the merge, tag the release it will run:\n\n```\n%s\n```\n",
			ch.Environment, releaseCmd)
		if len(unreleased) > 0 {
			fmt.Fprintf(&b, "\n**That release also ships changes made since `%s`:**\n\n", ch.CurrentRelease)
			for _, u := range unreleased {
				fmt.Fprintf(&b, "- `%s`\n", u)
			}
		}
	}
	b.WriteString("\nOpened by `modelsync rollback`.\n")
	return b.String()
}

// OpenPullRequest opens a pull request from head into base.
func OpenPullRequest(ctx context.Context, client *gh.Client, owner, name, head, base, title, body string) (PullRequest, error) {
	pr, _, err := client.PullRequests.Create(ctx, owner, name, &gh.NewPullRequest{
		Title: gh.String(title),
		Head:  gh.String(head),
		Base:  gh.String(base),
		Body:  gh.String(body),
	})
	if err != nil {
		return PullRequest{}, fmt.Errorf("opening a pull request %s -> %s on %s/%s: %w", head, base, owner, name, err)
	}
	return PullRequest{Number: pr.GetNumber(), URL: pr.GetHTMLURL()}, nil
}
