package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/modelsync/modelsync/internal/apiauth"
)

// The dashboard's own authorization attributes, in the API's terms: the
// pages read the status, the actions create reconciles and rollbacks.
var (
	attrRead                = apiauth.Attributes{Verb: "get", Resource: "status"}
	actReconcile            = apiauth.Attributes{Verb: "create", Resource: "reconciles"}
	actRollback             = apiauth.Attributes{Verb: "create", Resource: "rollbacks"}
	sessionCookie           = "modelsync_session"
	maxLoginBody      int64 = 16 << 10
	anonymousIdentity       = apiauth.Identity{Name: "anonymous", Provider: "anonymous"}
)

// session is one signed-in browser. The token it signed in with is not
// kept: authorization asks the provider about the identity.
type session struct {
	id       string
	identity apiauth.Identity
	provider apiauth.Provider
	csrf     string
	expires  time.Time
	created  time.Time

	// decisions caches the provider's answers for a short while: a page
	// view asks three questions, and with Kubernetes each is a
	// SubjectAccessReview; live updates re-render pages.
	mu        sync.Mutex
	decisions map[apiauth.Attributes]cachedDecision
}

type cachedDecision struct {
	allowed bool
	at      time.Time
}

// decisionTTL is how long an authorization answer is reused within a
// session; a revoked grant takes effect after at most this long.
const decisionTTL = 30 * time.Second

// sessionStore is a bounded table of sessions.
type sessionStore struct {
	mu   sync.Mutex
	byID map[string]*session
	ttl  time.Duration
	max  int
	now  func() time.Time
}

func newSessionStore(ttl time.Duration, max int, now func() time.Time) *sessionStore {
	return &sessionStore{byID: map[string]*session{}, ttl: ttl, max: max, now: now}
}

func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *sessionStore) create(id apiauth.Identity, p apiauth.Provider) *session {
	now := s.now()
	ss := &session{id: randomString(), identity: id, provider: p, csrf: randomString(), created: now, expires: now.Add(s.ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.byID {
		if now.After(v.expires) {
			delete(s.byID, k)
		}
	}
	// Still full: drop the oldest, so memory stays bounded whatever
	// number of sign-ins arrives.
	for len(s.byID) >= s.max {
		var oldest *session
		for _, v := range s.byID {
			if oldest == nil || v.created.Before(oldest.created) {
				oldest = v
			}
		}
		delete(s.byID, oldest.id)
	}
	s.byID[ss.id] = ss
	return ss
}

func (s *sessionStore) get(id string) (*session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.byID[id]
	if !ok {
		return nil, false
	}
	if s.now().After(ss.expires) {
		delete(s.byID, id)
		return nil, false
	}
	return ss, true
}

func (s *sessionStore) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, id)
}

// viewer is who looks at a page and what they may do there.
type viewer struct {
	Identity     apiauth.Identity
	SignedIn     bool
	CSRF         string
	CanReconcile bool
	CanRollback  bool
}

// ReadOnly reports whether the viewer has no action at all.
func (v viewer) ReadOnly() bool { return !v.CanReconcile && !v.CanRollback }

type ctxKey struct{}

func viewerOf(r *http.Request) viewer {
	v, _ := r.Context().Value(ctxKey{}).(viewer)
	return v
}

// authenticate finds the caller: a session cookie, else a bearer token (for
// scripts and curl), else nobody. The first provider that knows a token
// wins, as in the API guard; a provider error stops the search.
func (d *Dashboard) authenticate(r *http.Request) (*session, error) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if s, ok := d.sessions.get(c.Value); ok {
			return s, nil
		}
	}
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(tok) != "" {
			id, p, err := d.lookupToken(r.Context(), strings.TrimSpace(tok))
			if err != nil || p == nil {
				return nil, err
			}
			// A bearer caller has no cookie to protect: no CSRF token.
			return &session{identity: id, provider: p}, nil
		}
	}
	return nil, nil
}

func (d *Dashboard) lookupToken(ctx context.Context, token string) (apiauth.Identity, apiauth.Provider, error) {
	for _, p := range d.opts.Providers {
		id, ok, err := p.Authenticate(ctx, token)
		if err != nil {
			return apiauth.Identity{}, nil, fmt.Errorf("%s: %w", p.Name(), err)
		}
		if ok {
			id.Provider = p.Name()
			return id, p, nil
		}
	}
	return apiauth.Identity{}, nil, nil
}

func (d *Dashboard) allowed(ctx context.Context, s *session, a apiauth.Attributes) (bool, error) {
	if s == nil || s.provider == nil {
		return false, nil
	}
	now := d.opts.Now()
	if s.id != "" {
		s.mu.Lock()
		c, ok := s.decisions[a]
		s.mu.Unlock()
		if ok && now.Sub(c.at) < decisionTTL {
			return c.allowed, nil
		}
	}
	dec, err := s.provider.Authorize(ctx, s.identity, a)
	if err != nil {
		return false, err
	}
	if s.id != "" {
		s.mu.Lock()
		if s.decisions == nil {
			s.decisions = map[apiauth.Attributes]cachedDecision{}
		}
		s.decisions[a] = cachedDecision{allowed: dec.Allowed, at: now}
		s.mu.Unlock()
	}
	return dec.Allowed, nil
}

// read guards a read-only page: a signed-in caller allowed to get the
// status, or anyone when anonymous reading is on. Others get the login
// page with 401 (a browser has nothing else to show).
func (d *Dashboard) read(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := d.authenticate(r)
		if err != nil {
			d.deny(w, r, nil, http.StatusServiceUnavailable, "could not authenticate: "+err.Error())
			return
		}
		if s == nil {
			if d.opts.AnonymousRead {
				h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, viewer{Identity: anonymousIdentity})))
				return
			}
			d.deny(w, r, nil, http.StatusUnauthorized, "sign in to see the dashboard")
			return
		}
		if !d.authorize(w, r, s, attrRead) {
			return
		}
		v := viewer{Identity: s.identity, SignedIn: s.id != "", CSRF: s.csrf}
		// What the viewer may do decides which buttons the pages show; the
		// action routes check again.
		v.CanReconcile, _ = d.allowed(r.Context(), s, actReconcile)
		if d.opts.Rollback != nil {
			v.CanRollback, _ = d.allowed(r.Context(), s, actRollback)
		}
		h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, v)))
	}
}

// authorize reports whether s may do a; when not, it has answered with
// the refusal (503 when the authorizer could not be asked, 403 otherwise).
func (d *Dashboard) authorize(w http.ResponseWriter, r *http.Request, s *session, a apiauth.Attributes) bool {
	ok, err := d.allowed(r.Context(), s, a)
	switch {
	case err != nil:
		d.deny(w, r, &s.identity, http.StatusServiceUnavailable, "could not authorize: "+err.Error())
		return false
	case !ok:
		d.deny(w, r, &s.identity, http.StatusForbidden, s.identity.Name+" may not "+a.String())
		return false
	}
	return true
}

// act guards an action route: a signed-in caller allowed a, and for POST
// a same-origin request carrying the session's CSRF token.
func (d *Dashboard) act(a apiauth.Attributes, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := d.authenticate(r)
		if err != nil {
			d.deny(w, r, nil, http.StatusServiceUnavailable, "could not authenticate: "+err.Error())
			return
		}
		if s == nil {
			d.deny(w, r, nil, http.StatusUnauthorized, "sign in to act")
			return
		}
		if r.Method == http.MethodPost && s.id != "" {
			if !sameOrigin(r) {
				d.deny(w, r, &s.identity, http.StatusForbidden, "cross-origin request refused")
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
			if err := r.ParseForm(); err != nil || subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(s.csrf)) != 1 {
				d.deny(w, r, &s.identity, http.StatusForbidden, "missing or wrong CSRF token; reload the page and try again")
				return
			}
		}
		if !d.authorize(w, r, s, a) {
			return
		}
		v := viewer{Identity: s.identity, SignedIn: s.id != "", CSRF: s.csrf, CanReconcile: a == actReconcile, CanRollback: a == actRollback}
		h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, v)))
	}
}

// sameOrigin checks Origin (or, without it, Referer) against the Host the
// request was sent to: a form posted from another site is refused even if
// a browser sent the cookie.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		o = r.Header.Get("Referer")
	}
	if o == "" {
		return false
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// deny answers a refused request: the login page for 401, an error page
// otherwise, and an audit entry for everything but a plain "not signed in"
// page view (those are every first visit).
func (d *Dashboard) deny(w http.ResponseWriter, r *http.Request, id *apiauth.Identity, code int, reason string) {
	if code != http.StatusUnauthorized || r.Method != http.MethodGet {
		actor := "anonymous"
		if id != nil {
			actor = id.Name
		}
		result := map[int]string{http.StatusUnauthorized: "unauthenticated", http.StatusForbidden: "forbidden"}[code]
		if result == "" {
			result = "unavailable"
		}
		d.opts.Controller.RecordAudit(auditEntry(actor, "dashboard "+r.Method+" "+r.URL.Path, result, reason+" (from "+remoteHost(r)+")"))
	}
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="modelsync"`)
		d.render(w, r, code, "login.html", page{Title: "Sign in", Data: loginData{Next: safeNext(r.URL.RequestURI()), Message: reason}})
		return
	}
	d.render(w, r, code, "error.html", page{Title: http.StatusText(code), Data: reason})
}

type loginData struct {
	Next, Message string
}

func (d *Dashboard) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	d.render(w, r, http.StatusOK, "login.html", page{Title: "Sign in", Data: loginData{Next: safeNext(r.URL.Query().Get("next"))}})
}

// handleLogin checks a token with the providers and starts a session. The
// cookie is HttpOnly (no script reads it), SameSite=Strict (no other site's
// form or link carries it) and Secure except on plain HTTP to a loopback
// address, where browsers would drop a Secure cookie.
func (d *Dashboard) handleLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		d.render(w, r, http.StatusBadRequest, "login.html", page{Title: "Sign in", Data: loginData{Message: "malformed form"}})
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	if !sameOrigin(r) {
		d.deny(w, r, nil, http.StatusForbidden, "cross-origin sign-in refused")
		return
	}
	token := strings.TrimSpace(r.PostForm.Get("token"))
	id, p, err := d.lookupToken(r.Context(), token)
	if err != nil {
		d.render(w, r, http.StatusServiceUnavailable, "login.html", page{Title: "Sign in", Data: loginData{Next: next, Message: "could not check the token: " + err.Error()}})
		return
	}
	if token == "" || p == nil {
		d.opts.Controller.RecordAudit(auditEntry("anonymous", "dashboard sign-in", "unauthenticated", "the token is not valid (from "+remoteHost(r)+")"))
		d.render(w, r, http.StatusUnauthorized, "login.html", page{Title: "Sign in", Data: loginData{Next: next, Message: "That token is not valid."}})
		return
	}
	s := d.sessions.create(id, p)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: s.id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: !plainLoopback(r), Expires: s.expires})
	d.opts.Controller.RecordAudit(auditEntry(id.Name, "dashboard sign-in", "ok", ""))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (d *Dashboard) handleLogout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if s, ok := d.sessions.get(c.Value); ok {
			r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
			if err := r.ParseForm(); err != nil || !sameOrigin(r) || subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(s.csrf)) != 1 {
				d.deny(w, r, &s.identity, http.StatusForbidden, "missing or wrong CSRF token")
				return
			}
			d.sessions.delete(s.id)
		}
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: !plainLoopback(r)})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// safeNext keeps a post-login redirect on this site.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") ||
		strings.HasPrefix(next, "/login") || strings.HasPrefix(next, "/events") {
		return "/"
	}
	return next
}

func plainLoopback(r *http.Request) bool {
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		return false
	}
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
