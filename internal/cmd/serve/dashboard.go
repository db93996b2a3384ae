package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	gh "github.com/google/go-github/v60/github"

	"github.com/modelsync/modelsync/internal/apiauth"
	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/controller"
	"github.com/modelsync/modelsync/internal/dashboard"
	"github.com/modelsync/modelsync/internal/gitsource"
	"github.com/modelsync/modelsync/internal/lineage"
	"github.com/modelsync/modelsync/internal/prverdict"
	"github.com/modelsync/modelsync/internal/rollback"
	"github.com/modelsync/modelsync/reconciler"
)

// Dashboard rollback modes (--dashboard-rollback).
const (
	// RollbackAuto opens pull requests when a GitHub token is set and
	// offers no rollback button otherwise.
	RollbackAuto        = "auto"
	RollbackPullRequest = "pull-request"
	RollbackDirect      = "direct"
	RollbackOff         = "off"
)

// dashboardSources are what the model page reads besides the controller.
type dashboardSources struct {
	// Storage is the artifact storage target, nil without --s3.
	Storage reconciler.StorageReporter
	// Verdicts is the PR gate's record, nil when the gate runs elsewhere.
	Verdicts *prverdict.Log
}

// buildDashboard mounts the web dashboard on the API listener with the
// controller's authentication providers.
func buildDashboard(opts *Options, c *controller.Controller, auditLog *dashboard.AuditLog, providers []apiauth.Provider, log *slog.Logger, src dashboardSources) (http.Handler, error) {
	dopts := dashboard.Options{Controller: c, Audit: auditLog, Providers: providers, AnonymousRead: opts.DashboardAnonymousRead,
		RepoURL: opts.Repo.URL, Logger: log}
	if src.Verdicts != nil {
		dopts.Verdicts = src.Verdicts
	}
	if f := opts.Factory; f.HasMLflow() {
		// The lineage `modelsync lineage` prints, through the controller's
		// MLflow client (one per process).
		mc, err := f.MLflow()
		if err != nil {
			return nil, fmt.Errorf("dashboard lineage: %w", err)
		}
		loc, err := f.Locator()
		if err != nil {
			return nil, fmt.Errorf("dashboard lineage: %w", err)
		}
		dopts.Lineage = func(ctx context.Context, model string, version int) (*lineage.Lineage, error) {
			return lineage.Read(ctx, mc, loc, model, version)
		}
	}
	if r := src.Storage; r != nil {
		// What `modelsync cost` prices, narrowed to the one model.
		dopts.Storage = func(ctx context.Context, model string) (reconciler.ArtifactUsage, error) {
			ds := c.Desired()
			if ds == nil {
				return reconciler.ArtifactUsage{}, errors.New("the models repository has not been read yet")
			}
			usage, errs, err := r.StorageUsage(ctx, ds.Subset(model))
			if err != nil {
				return reconciler.ArtifactUsage{}, fmt.Errorf("observing the artifacts of model %s at %s: %w", model, ds.Revision, err)
			}
			for _, e := range errs {
				if e.Model == model {
					return reconciler.ArtifactUsage{}, fmt.Errorf("model %s: %s", model, e.Message)
				}
			}
			for _, u := range usage {
				if u.Model == model {
					return u, nil
				}
			}
			return reconciler.ArtifactUsage{Model: model}, nil
		}
	}
	if cs, ok := any(c).(dashboard.Canaries); ok {
		dopts.Canaries = cs
	}
	if opts.DashboardCanaries != nil {
		dopts.Canaries = opts.DashboardCanaries
	}
	mode := opts.DashboardRollback
	if mode == RollbackAuto || mode == "" {
		mode = RollbackOff
		if opts.Factory.Getenv(cmdutil.EnvGitHubToken) != "" {
			mode = RollbackPullRequest
		}
	}
	switch mode {
	case RollbackOff:
	case RollbackDirect, RollbackPullRequest:
		rb, err := newGitRollback(opts, mode)
		switch {
		case err != nil && opts.DashboardRollback == RollbackPullRequest || err != nil && opts.DashboardRollback == RollbackDirect:
			return nil, err
		case err != nil:
			// auto: a token for the webhooks does not make the models
			// repository a GitHub one; no rollback button then.
			log.Warn("the dashboard offers no rollback", "reason", err.Error())
		default:
			dopts.Rollback = rb
		}
	default:
		return nil, fmt.Errorf("--dashboard-rollback %q: want %s, %s, %s or %s", opts.DashboardRollback, RollbackAuto, RollbackPullRequest, RollbackDirect, RollbackOff)
	}
	d, err := dashboard.New(dopts)
	if err != nil {
		return nil, err
	}
	return d.Handler(), nil
}

// gitRollback is the dashboard's rollback: the write-back path of
// `modelsync rollback` (clone, edit the one version scalar, commit, push;
// a pull request unless direct), so Git stays the source of truth and the
// controller applies the change from there.
type gitRollback struct {
	// mu runs one rollback at a time: each holds a full clone.
	mu       sync.Mutex
	url      string
	branch   string
	getenv   func(string) string
	direct   bool
	author   rollback.Signature
	owner    string
	name     string
	newGH    func() (*gh.Client, error)
	tempRoot string
}

func newGitRollback(opts *Options, mode string) (*gitRollback, error) {
	f := opts.Factory
	g := &gitRollback{url: opts.Repo.URL, branch: opts.Repo.Branch, getenv: f.Getenv, direct: mode == RollbackDirect}
	if g.branch == "" {
		g.branch = "main"
	}
	// The commit names the person who asked; the address is the
	// server's, since the dashboard knows identities, not mailboxes.
	g.author = rollback.Signature{Email: firstNonEmpty(f.Getenv("GIT_AUTHOR_EMAIL"), f.Getenv("GIT_COMMITTER_EMAIL"), "modelsync-dashboard@localhost")}
	if !g.direct {
		if f.Getenv(cmdutil.EnvGitHubToken) == "" {
			return nil, fmt.Errorf("--dashboard-rollback %s opens pull requests and needs a GitHub token in $%s (or --dashboard-rollback %s or %s)",
				RollbackPullRequest, cmdutil.EnvGitHubToken, RollbackDirect, RollbackOff)
		}
		owner, name, err := githubRepoOf(opts)
		if err != nil {
			return nil, fmt.Errorf("--dashboard-rollback %s: %w", RollbackPullRequest, err)
		}
		g.owner, g.name = owner, name
		// The GitHub client is the webhooks component's when it runs (the
		// flags are set before either is built); otherwise these flags.
		if f.GitHubFlags.APIURL == "" && f.GitHubFlags.Transport == nil {
			f.GitHubFlags = cmdutil.GitHubFlags{APIURL: opts.GitHubAPIURL, AppID: opts.AppID, InstallationID: opts.InstallationID,
				AppKeyFile: opts.AppKeyFile, Transport: opts.Transport}
		}
		g.newGH = func() (*gh.Client, error) {
			c, err := f.GitHub()
			if err != nil {
				return nil, err
			}
			return c.REST(), nil
		}
	}
	return g, nil
}

// Rollback performs one rollback for req.Actor.
func (g *gitRollback) Rollback(ctx context.Context, req dashboard.RollbackRequest) (dashboard.RollbackResult, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	tmp, err := os.MkdirTemp(g.tempRoot, "modelsync-dashboard-rollback-")
	if err != nil {
		return dashboard.RollbackResult{}, err
	}
	defer os.RemoveAll(tmp)
	co, err := rollback.Clone(ctx, rollback.CloneOptions{URL: g.url, Branch: g.branch, Auth: gitsource.AuthFromEnv(g.getenv), Dir: filepath.Join(tmp, "repo")})
	if err != nil {
		return dashboard.RollbackResult{}, fmt.Errorf("rollback of model %s in %s to version %d: %w", req.Model, req.Environment, req.To, err)
	}
	ch, err := co.Resolve(req.Model, req.Environment, req.To)
	if err != nil {
		return dashboard.RollbackResult{}, err
	}
	author := g.author
	author.Name = req.Actor + " (modelsync dashboard)"
	author.When = time.Now()
	reason := "requested in the modelsync dashboard by " + req.Actor
	w, err := co.Write(ctx, ch, rollback.WriteOptions{Direct: g.direct, Reason: reason, Author: author})
	if err != nil {
		return dashboard.RollbackResult{}, err
	}
	res := dashboard.RollbackResult{Ref: reconciler.Revision(w.Branch, w.Commit)}
	short := w.Commit
	if len(short) > 12 {
		short = short[:12]
	}
	switch {
	case !w.Changed:
		res.Summary = fmt.Sprintf("branch %s already names v%d for %s; nothing to commit", w.Branch, ch.To, ch.Environment)
	case g.direct:
		res.Summary = fmt.Sprintf("committed %s on %s: %s in %s v%d → v%d; the controller applies it at the next fetch", short, w.Branch, ch.Model, ch.Environment, ch.From, ch.To)
	default:
		gh, err := g.newGH()
		if err != nil {
			return res, err
		}
		releaseCmd := ""
		if ch.Releases {
			releaseCmd = "modelsync release " + ch.Model + " --push"
		}
		pr, err := rollback.OpenPullRequest(ctx, gh, g.owner, g.name, w.Branch, ch.Branch, ch.Title(), ch.PRBody(reason, releaseCmd, nil))
		if err != nil {
			return res, fmt.Errorf("branch %s was pushed but %w", w.Branch, err)
		}
		res.Summary = fmt.Sprintf("opened pull request #%d to roll %s in %s back from v%d to v%d", pr.Number, ch.Model, ch.Environment, ch.From, ch.To)
		res.Ref, res.URL = fmt.Sprintf("pull request #%d", pr.Number), pr.URL
	}
	return res, nil
}

// errNoGitHubRepo is returned when the pull request's repository is unknown.
var errNoGitHubRepo = errors.New("the GitHub repository is unknown: set --github-repository or $" + EnvRepository + ", or use a github.com remote")

func githubRepoOf(opts *Options) (string, string, error) {
	if r := firstNonEmpty(opts.GitHubRepository, opts.Factory.Getenv(EnvRepository)); r != "" {
		owner, name, ok := strings.Cut(r, "/")
		if !ok || owner == "" || name == "" {
			return "", "", fmt.Errorf("repository %q: want OWNER/NAME", r)
		}
		return owner, name, nil
	}
	owner, name, err := rollback.RepoFromRemote(gitsource.SanitizeURL(opts.Repo.URL))
	if err != nil {
		return "", "", errors.Join(errNoGitHubRepo, err)
	}
	return owner, name, nil
}
