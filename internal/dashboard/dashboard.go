// Package dashboard serves modelsync's web dashboard on the API listener of
// `modelsync serve`: which version runs where and why, canaries as charts,
// the audit trail, and two actions (reconcile now, roll back) for callers
// allowed to take them.
//
// Pages are rendered on the server from html/template with the static
// files embedded in the binary, so they work without JavaScript; a small
// script only swaps in the fresh page when the one Server-Sent Events
// stream of the page says the controller's state changed.
//
// Authentication is the API's: the same apiauth providers decide who a
// caller is and what it may do. A browser signs in once with a token on the
// login page and gets an HttpOnly, SameSite=Strict session cookie; the
// token itself is never stored.
package dashboard

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/modelsync/modelsync/internal/analysis"
	"github.com/modelsync/modelsync/internal/apiauth"
	"github.com/modelsync/modelsync/internal/canary"
	"github.com/modelsync/modelsync/internal/controller"
	"github.com/modelsync/modelsync/internal/lineage"
	"github.com/modelsync/modelsync/internal/storagecost"
	"github.com/modelsync/modelsync/reconciler"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Controller is what the dashboard reads from and asks of the controller.
type Controller interface {
	Status() controller.Status
	Desired() *reconciler.DesiredState
	// Reconcile queues a model (every environment when env is "").
	Reconcile(model, env string) bool
	// RecordAudit writes an entry to the controller's audit log.
	RecordAudit(e controller.AuditEntry)
}

// Canaries reports the canary analysis of one environment (issue 15's
// controller step keeps it).
type Canaries interface {
	CanaryStatus(model, env string) (canary.Status, bool)
}

// CanaryLooks is optionally implemented by a Canaries source that keeps
// the decision of every look (bounded): the chart then has one point per
// look. analysis.State itself keeps counts per step window only, so
// without it the chart has one point per step.
type CanaryLooks interface {
	CanaryLooks(model, env string) []analysis.Decision
}

// RollbackRequest asks for a rollback through Git.
type RollbackRequest struct {
	Model, Environment string
	To                 int
	// Actor is the authenticated identity that asked.
	Actor string
}

// RollbackResult says what the rollback wrote.
type RollbackResult struct {
	// Summary is one line for the page and the audit entry, e.g.
	// "committed 1a2b3c4 on main" or "opened pull request #12".
	Summary string
	// Ref names the commit or pull request.
	Ref string
	URL string
}

// Rollbacker writes a rollback to Git (modelsync rollback's write-back
// path): Git stays the source of truth and the controller applies it.
type Rollbacker interface {
	Rollback(ctx context.Context, req RollbackRequest) (RollbackResult, error)
}

// Options configure a dashboard.
type Options struct {
	Controller Controller
	// Audit is the in-memory tail of the audit log the pages show; the
	// controller's audit writer must include it.
	Audit *AuditLog
	// Canaries is optional; without it canary pages say so.
	Canaries Canaries
	// Rollback is optional; without it no rollback button is offered.
	Rollback Rollbacker
	// Providers authenticate and authorize, as for the API.
	Providers []apiauth.Provider
	// AnonymousRead opens the read-only pages to callers without a token.
	AnonymousRead bool
	// RepoURL is the models repository, for commit links on known hosts.
	RepoURL string
	Logger  *slog.Logger
	Now     func() time.Time
	// PollInterval is how often the event hub compares the controller's
	// state while a page listens (default 1s).
	PollInterval time.Duration
	// SessionTTL is how long a sign-in lasts (default 8h).
	SessionTTL time.Duration
	// MaxSessions bounds the session table (default 10000): the oldest
	// sessions are dropped first.
	MaxSessions int

	// Lineage is optional; without it the model page says lineage is
	// unavailable. Reads are cached per version and bounded in time.
	Lineage LineageFunc
	// Storage is optional; without it the model page shows no storage
	// cost. Reads are cached per model and bounded in time.
	Storage StorageFunc
	// Prices prices Storage's report (default: storagecost's built-in
	// table, as `modelsync cost` without --prices).
	Prices *storagecost.PriceTable
	// Verdicts is optional: the PR gate's last verdicts per model.
	Verdicts Verdicts
	// PageWait is how long the model page waits for the lineage and
	// storage reads it starts before it shows them as loading (default
	// 1.5s); the page refreshes live when they finish.
	PageWait time.Duration
}

// Dashboard is the web UI's handler.
type Dashboard struct {
	opts     Options
	tmpl     *template.Template
	static   http.Handler
	sessions *sessionStore
	hub      *hub
	log      *slog.Logger
	lineages *lookup[versionKey, *lineage.Lineage]
	storage  *lookup[string, reconciler.ArtifactUsage]
	prices   storagecost.PriceTable
}

// ErrNoController is returned by New without a controller.
var ErrNoController = errors.New("dashboard: a controller is required")

// New parses the templates and returns the dashboard.
func New(opts Options) (*Dashboard, error) {
	if opts.Controller == nil {
		return nil, ErrNoController
	}
	if opts.Audit == nil {
		opts.Audit = NewAuditLog(0)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 8 * time.Hour
	}
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = 10000
	}
	t, err := template.New("").Funcs(funcs()).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	if opts.PageWait <= 0 {
		opts.PageWait = defaultPageWait
	}
	d := &Dashboard{opts: opts, tmpl: t, static: http.StripPrefix("/static/", http.FileServerFS(sub)),
		sessions: newSessionStore(opts.SessionTTL, opts.MaxSessions, opts.Now), log: opts.Logger, prices: storagecost.DefaultPriceTable()}
	if opts.Prices != nil {
		d.prices = *opts.Prices
	}
	if f := opts.Lineage; f != nil {
		d.lineages = newLookup(func(ctx context.Context, k versionKey) (*lineage.Lineage, error) { return f(ctx, k.Model, k.Version) },
			lookupTimeout, lineageTTL, failedTTL, maxLineages, lookupParallel, opts.Now)
	}
	if f := opts.Storage; f != nil {
		d.storage = newLookup(func(ctx context.Context, model string) (reconciler.ArtifactUsage, error) { return f(ctx, model) },
			lookupTimeout, storageTTL, failedTTL, maxStorage, lookupParallel, opts.Now)
	}
	d.hub = newHub(opts.PollInterval, d.fingerprint)
	return d, nil
}

// Handler serves every dashboard route. Mount it at "/" of the API
// listener: the API's own routes are more specific and win.
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /static/", d.static)
	mux.HandleFunc("GET /login", d.handleLoginPage)
	mux.HandleFunc("POST /login", d.handleLogin)
	mux.HandleFunc("POST /logout", d.handleLogout)
	mux.HandleFunc("GET /{$}", d.read(d.handleOverview))
	mux.HandleFunc("GET /models/{name}", d.read(d.handleModel))
	mux.HandleFunc("GET /audit", d.read(d.handleAudit))
	mux.HandleFunc("GET /audit/{id}", d.read(d.handleAuditEntry))
	mux.HandleFunc("GET /events", d.read(d.handleEvents))
	mux.HandleFunc("GET /models/{name}/reconcile", d.act(actReconcile, d.handleReconcileConfirm))
	mux.HandleFunc("POST /models/{name}/reconcile", d.act(actReconcile, d.handleReconcile))
	mux.HandleFunc("GET /models/{name}/rollback", d.act(actRollback, d.handleRollbackConfirm))
	mux.HandleFunc("POST /models/{name}/rollback", d.act(actRollback, d.handleRollback))
	return securityHeaders(mux)
}

// securityHeaders sets the headers every dashboard response carries: no
// inline script or style may run, nothing may frame the pages, and
// responses are not cached by shared caches.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cache-Control", "no-store")
		if r.TLS != nil {
			hd.Set("Strict-Transport-Security", "max-age=31536000")
		}
		h.ServeHTTP(w, r)
	})
}
