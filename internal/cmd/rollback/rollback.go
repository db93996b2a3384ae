// Package rollback implements `modelsync rollback`: move one model in one
// environment back to an earlier version through Git (a pull request, or a
// direct commit on request), optionally applying it at once and pinning it
// on the running controller.
package rollback

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/controller"
	"github.com/modelsync/modelsync/internal/controller/apiclient"
	"github.com/modelsync/modelsync/internal/gitsource"
	"github.com/modelsync/modelsync/internal/rollback"
	"github.com/modelsync/modelsync/internal/wiring"
	"github.com/modelsync/modelsync/reconciler"
)

// Options are the inputs of rollback.
type Options struct {
	Factory *wiring.Factory
	Model   string
	Env     string
	// To is the version to roll back to; 0 means the previous one.
	To     int
	Reason string
	// Now also applies the change to the targets at once.
	Now bool
	// Direct commits to the branch instead of opening a pull request.
	Direct bool
	// Server is the controller's API, for pinning with Now.
	Server string
	Repo   cmdutil.RepoFlags
	// RepoExplicit is true when --repo was given: that repository is the
	// one written to. Otherwise (--repo ".") the checkout's origin is.
	RepoExplicit bool
	GitHubURL    string
	GitHubRepo   string
	// HTTPClient talks to the controller and GitHub (default: 30s timeout).
	HTTPClient *http.Client
	// Clock stamps commits and tags (default time.Now).
	Clock func() time.Time
}

// NewCmdRollback builds the command; runF replaces the work in tests of flags.
func NewCmdRollback(f *wiring.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f, Clock: time.Now}
	cmd := &cobra.Command{
		Use:   "rollback MODEL --env ENV [--to VERSION] [--now] [--direct] [--server URL]",
		Short: "Roll a model in one environment back to an earlier version, through Git",
		Long: `Rollback changes spec.environments.<env>.version of models/<model>/model.yaml
back to an earlier MLflow version and records the change in Git, so the pull
request gate and the audit trail see it and the reconciler keeps it.

Without --to the target is the version the environment ran before the current
one: for an environment that follows a branch, the newest earlier state of the
manifest on that branch naming another version; for a "releases" environment,
the newest earlier release tag whose manifest names another version.

The edit is one number in place; comments and formatting are kept. The commit
goes to a new branch modelsync/rollback/<model>-<env>-v<version>, and a pull
request is opened on GitHub (token from $GITHUB_TOKEN; --github-url for GitHub
Enterprise Server). --direct commits to the branch itself instead; branch
protection normally forbids that, so use it only where direct pushes are the
agreed emergency path. Git credentials come from MODELSYNC_GIT_* as for every
command. An explicit --repo is the repository written to; a local work tree
with the branch checked out has branch and files moved together when it is
clean, and is refused when it has uncommitted changes. Without --repo the
rollback goes to the origin of the checkout you are in (or to that checkout
when it has no origin).

A "releases" environment (usually prod) runs release tags, not the branch: with
--direct the next patch release tag is created on the new commit and pushed;
with a pull request, run "modelsync release <model>" after the merge.

--now also applies the rollback at once to the configured targets (as apply
does, for this model only) and pins it on the running controller given by
--server, so the reconcile loop does not undo it before Git catches up. Without
--server the change is applied but not pinned: a running loop may revert it
until the pull request is merged.`,
		Example: `  # propose going back to the version prod ran before, with a reason
  modelsync rollback customer-churn-predictor --env prod --reason "AUC dropped 8% after v3"

  # go back to version 4 in staging, apply it now and pin it on the controller
  MLFLOW_TRACKING_URI=http://mlflow:5000 modelsync rollback fraud-detector-xgb --env staging \
    --to 4 --now --server http://modelsync.modelsync-system:8080 --reason "latency regression"

  # emergency path where direct pushes are allowed: commit to main, tag the release
  modelsync rollback customer-churn-predictor --env prod --direct --reason "incident 4711"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Model = args[0]
			if opts.Env == "" {
				return errors.New("--env is required: the environment to roll back")
			}
			if opts.To < 0 {
				return fmt.Errorf("--to %d: versions start at 1", opts.To)
			}
			opts.RepoExplicit = cmd.Flags().Changed("repo")
			if opts.Server != "" && !opts.Now {
				return errors.New("--server pins an applied rollback; it needs --now")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return Run(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Env, "env", "e", "", "environment to roll back (required)")
	cmd.Flags().IntVar(&opts.To, "to", 0, "MLflow version to roll back to (default: the version the environment ran before)")
	cmd.Flags().StringVar(&opts.Reason, "reason", "", "why, recorded in the commit and the pull request")
	cmd.Flags().BoolVar(&opts.Now, "now", false, "also apply the rollback to the targets at once")
	cmd.Flags().BoolVar(&opts.Direct, "direct", false, "commit to the branch itself instead of opening a pull request (branch protection normally forbids it)")
	cmd.Flags().StringVar(&opts.Server, "server", "", "controller API URL to pin the applied rollback at, e.g. http://modelsync:8080 (with --now; default $"+apiclient.EnvServer+")")
	cmd.Flags().StringVar(&opts.GitHubURL, "github-url", "", "GitHub Enterprise Server API URL, e.g. https://ghe.example.com/api/v3 (default: github.com)")
	cmd.Flags().StringVar(&opts.GitHubRepo, "github-repo", "", "GitHub repository OWNER/NAME (default: from the remote URL)")
	cmdutil.AddRepoFlags(cmd, &opts.Repo)
	cmdutil.AddTargetFlags(cmd, &f.Flags)
	return cmd
}

// Run performs the rollback.
func Run(ctx context.Context, opts *Options) error {
	f := opts.Factory
	out, errOut := f.IO.Out, f.IO.ErrOut
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	remote, into, err := writeTarget(opts.Repo.URL, opts.RepoExplicit)
	if err != nil {
		return err
	}
	author, err := authorFrom(f.Getenv)
	if err != nil {
		return err
	}
	author.When = opts.Clock()

	// Fail before any push when the pull request could not be opened.
	var owner, name string
	if !opts.Direct {
		if f.Getenv(cmdutil.EnvGitHubToken) == "" {
			return fmt.Errorf("opening the rollback pull request needs a GitHub token in $%s (or --direct, where direct pushes are allowed)", cmdutil.EnvGitHubToken)
		}
		if owner, name, err = githubRepo(opts.GitHubRepo, remote); err != nil {
			return err
		}
	}

	tmp, err := os.MkdirTemp("", "modelsync-rollback-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	co, err := rollback.Clone(ctx, rollback.CloneOptions{URL: remote, Branch: opts.Repo.Branch, Auth: gitsource.AuthFromEnv(f.Getenv), Dir: filepath.Join(tmp, "repo"), Into: into})
	if err != nil {
		return err
	}
	ch, err := co.Resolve(opts.Model, opts.Env, opts.To)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Rolling back %s in %s: v%d -> v%d\n", ch.Model, ch.Environment, ch.From, ch.To)
	fmt.Fprintf(out, "  now:     v%d from %s\n", ch.From, ch.FromRevision)
	if ch.ToRevision != "" {
		fmt.Fprintf(out, "  back to: v%d, last run from %s\n", ch.To, ch.ToRevision)
	} else {
		fmt.Fprintf(errOut, "warning: version %d has not run in %s according to Git history\n", ch.To, ch.Environment)
	}

	w, err := co.Write(ctx, ch, rollback.WriteOptions{Direct: opts.Direct, Reason: opts.Reason, Author: author})
	if err != nil {
		return err
	}
	if w.Changed {
		fmt.Fprintf(out, "Committed %s on %s (%s:%d: %q -> %q)\n", short(w.Commit), w.Branch, "models/"+ch.Model+"/model.yaml", w.Line,
			strings.TrimSpace(w.Before), strings.TrimSpace(w.After))
		fmt.Fprintf(out, "Pushed %s to %s\n", w.Branch, co.URL())
	} else {
		fmt.Fprintf(out, "Branch %s already names v%d for %s; no commit needed\n", w.Branch, ch.To, ch.Environment)
	}

	revision := reconciler.Revision(w.Branch, w.Commit)
	releaseCmd := ""
	var unreleased []string
	if ch.Releases {
		releaseCmd = "modelsync release " + ch.Model + " --push"
		if unreleased, err = co.Unreleased(ch, w.Commit); err != nil {
			return err
		}
		if len(unreleased) > 0 {
			fmt.Fprintf(errOut, "warning: the release that brings this rollback to %s also ships what changed since %s:\n", ch.Environment, ch.CurrentRelease)
			for _, u := range unreleased {
				fmt.Fprintf(errOut, "  %s\n", u)
			}
		}
		if opts.Direct {
			tag, err := co.TagNextPatch(ctx, ch.Model, fmt.Sprintf("Release %s: roll back %s to version %d", ch.Model, ch.Environment, ch.To), author)
			if err != nil {
				return fmt.Errorf("rollback of model %s in %s to version %d was pushed to %s, but the release tag failed (run %q): %w",
					ch.Model, ch.Environment, ch.To, w.Branch, releaseCmd, err)
			}
			revision = reconciler.Revision(tag, w.Commit)
			fmt.Fprintf(out, "Tagged and pushed release %s; %s runs it at the next reconcile\n", tag, ch.Environment)
		}
	}

	prRef := ""
	switch {
	case !opts.Direct && w.Changed:
		f.GitHubFlags.APIURL, f.GitHubFlags.Transport = opts.GitHubURL, hc.Transport
		client, err := f.GitHub()
		if err != nil {
			return err
		}
		pr, err := rollback.OpenPullRequest(ctx, client.REST(), owner, name, w.Branch, ch.Branch, ch.Title(), ch.PRBody(opts.Reason, releaseCmd, unreleased))
		if err != nil {
			return fmt.Errorf("branch %s was pushed but %w", w.Branch, err)
		}
		prRef = fmt.Sprintf("pull request #%d", pr.Number)
		fmt.Fprintf(out, "Opened pull request #%d: %s\n", pr.Number, pr.URL)
		if releaseCmd != "" {
			fmt.Fprintf(out, "%s follows release tags: after merging, run\n  %s\n", ch.Environment, releaseCmd)
		}
	case !opts.Direct && releaseCmd != "":
		prRef = "the release"
		fmt.Fprintf(out, "%s follows release tags: release the branch to roll back:\n  %s\n", ch.Environment, releaseCmd)
	}

	if !opts.Now {
		return nil
	}
	return applyNow(ctx, opts, remote, ch, w, revision, author, prRef, hc)
}

func applyNow(ctx context.Context, opts *Options, remote string, ch *rollback.Change, w *rollback.Written, revision string, author rollback.Signature, prRef string, hc *http.Client) error {
	f := opts.Factory
	repoFlags := opts.Repo
	repoFlags.URL = remote
	d, _, err := f.Desired(ctx, repoFlags)
	if err != nil {
		return fmt.Errorf("rollback of model %s in %s is in Git, but applying it now failed: %w", ch.Model, ch.Environment, err)
	}
	commit := reconciler.Commit{Hash: w.Commit, AuthorName: author.Name, AuthorEmail: author.Email, When: author.When}
	od, err := rollback.Override(d, ch.Model, ch.Environment, ch.To, revision, commit)
	if err != nil {
		return err
	}
	targets, err := f.Targets(ctx)
	if err != nil {
		return err
	}
	defer wiring.CloseTargets(targets)
	p, res, err := rollback.ApplyNow(ctx, od, targets, ch.Model, ch.Environment, ch.To)
	if p != nil {
		_ = reconciler.WritePlanText(f.IO.Out, p)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(f.IO.Out, "Applied %d action(s) now\n", len(res.Applied))
	server := opts.Server
	if server == "" {
		// As status and reconcile: the flag, else $MODELSYNC_SERVER. With
		// neither, no controller is assumed (the default address would
		// make a rollback without one fail after applying).
		server = strings.TrimRight(strings.TrimSpace(f.Getenv(apiclient.EnvServer)), "/")
	}
	if server == "" {
		until := "Git catches up"
		if prRef != "" {
			until = prRef + " is merged"
		}
		fmt.Fprintf(f.IO.ErrOut, "warning: no --server or $"+apiclient.EnvServer+" given, the rollback is not pinned: a running reconcile loop may undo it until %s\n", until)
		return nil
	}
	pinRev := ch.ToRevision
	if pinRev == "" {
		pinRev = revision
	}
	req := controller.PinRequest{Model: ch.Model, Environment: ch.Environment, Version: ch.To, Revision: pinRev}
	if err := apiclient.New(server, f.Getenv, hc).Pin(ctx, req); err != nil {
		return fmt.Errorf("rollback of model %s in %s to version %d is applied but not pinned, so the loop may undo it: %w", ch.Model, ch.Environment, ch.To, err)
	}
	fmt.Fprintf(f.IO.Out, "Pinned %s in %s at v%d on %s\n", ch.Model, ch.Environment, ch.To, gitsource.SanitizeURL(server))
	return nil
}

// writeTarget decides which repository the rollback is written to. An
// explicit --repo is that repository, whatever it is; a local non-bare one
// is also returned opened, so a push to its checked-out branch can update
// its work tree (git refuses a plain push there). The default "." means
// the shared repository of the checkout you are in: its origin. Bare
// repositories and URLs are used as they are.
func writeTarget(repo string, explicit bool) (string, *gitsource.Workspace, error) {
	if strings.Contains(repo, "://") {
		return repo, nil, nil
	}
	st, err := os.Stat(repo)
	if err != nil || !st.IsDir() {
		return repo, nil, nil
	}
	ws, err := gitsource.OpenWorkspace(repo)
	if err != nil || ws.IsBare() {
		return repo, nil, nil
	}
	if explicit {
		return repo, ws, nil
	}
	u, err := ws.RemoteURL("origin")
	if errors.Is(err, gitsource.ErrNotFound) {
		// A repository without origin (say, `make example-repo`) is the
		// shared repository itself.
		return repo, ws, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("--repo defaults to the origin of the checkout in %s: %w; pass --repo with the repository to write to", repo, err)
	}
	return u, nil, nil
}

func githubRepo(flag, remote string) (string, string, error) {
	if flag != "" {
		owner, name, ok := strings.Cut(flag, "/")
		if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
			return "", "", fmt.Errorf("--github-repo %q: want OWNER/NAME", flag)
		}
		return owner, name, nil
	}
	return rollback.RepoFromRemote(gitsource.SanitizeURL(remote))
}

// authorFrom takes the commit author as git does: GIT_AUTHOR_*, then
// GIT_COMMITTER_*, then the user's global Git configuration.
func authorFrom(getenv func(string) string) (rollback.Signature, error) {
	s := rollback.Signature{Name: getenv("GIT_AUTHOR_NAME"), Email: getenv("GIT_AUTHOR_EMAIL")}
	if s.Name == "" {
		s.Name = getenv("GIT_COMMITTER_NAME")
	}
	if s.Email == "" {
		s.Email = getenv("GIT_COMMITTER_EMAIL")
	}
	if s.Name == "" || s.Email == "" {
		name, email := gitsource.GlobalIdentity()
		if s.Name == "" {
			s.Name = name
		}
		if s.Email == "" {
			s.Email = email
		}
	}
	if s.Name == "" || s.Email == "" {
		return s, errors.New("who is rolling back? set GIT_AUTHOR_NAME and GIT_AUTHOR_EMAIL, or user.name and user.email in your Git configuration")
	}
	return s, nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
