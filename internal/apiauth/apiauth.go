// Package apiauth authenticates and authorizes callers of the controller's
// HTTP API. Every request to a guarded route carries a bearer token; one of
// the configured providers must recognise it (authentication, else 401)
// and allow the route's verb on its resource (authorization, else 403).
// The identity a provider establishes is the only name the audit log
// records for the request: callers cannot write their own.
package apiauth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
)

// Identity is who made a request, as a provider established it.
type Identity struct {
	// Name is what the audit log records: "token:<name>" for static
	// tokens, the Kubernetes user name (e.g. system:serviceaccount:ns:sa)
	// for tokens Kubernetes reviewed.
	Name   string
	UID    string
	Groups []string
	Extra  map[string][]string
	// Provider names the provider that authenticated the caller.
	Provider string
}

// Attributes are what a route does, in the terms authorization checks:
// a verb on a resource of the modelsync.io API group.
type Attributes struct {
	Verb     string // get, list, create, delete
	Resource string // status, pins, reconciles
}

func (a Attributes) String() string { return a.Verb + " " + Group + "/" + a.Resource }

// Group is the API group authorization is asked about (Kubernetes RBAC
// rules name it in apiGroups).
const Group = "modelsync.io"

// Decision is an authorization answer.
type Decision struct {
	Allowed bool
	// Reason explains a denial (or an allowance) in words.
	Reason string
}

// Provider recognises tokens and decides what their holders may do.
type Provider interface {
	// Name identifies the provider in errors and audit entries.
	Name() string
	// Authenticate returns ok=false when the token is not one this
	// provider knows (another provider may), and an error when it could
	// not tell (the request then fails with 503, never passes).
	Authenticate(ctx context.Context, token string) (id Identity, ok bool, err error)
	// Authorize decides whether id, which this provider authenticated,
	// may do attrs.
	Authorize(ctx context.Context, id Identity, attrs Attributes) (Decision, error)
}

// Denial describes a refused request, for the audit log.
type Denial struct {
	Method, Path, Remote string
	// Identity is set when the caller authenticated but was not allowed.
	Identity *Identity
	// Code is the HTTP status sent: 401, 403 or 503.
	Code   int
	Reason string
}

// Guard wraps handlers with authentication and authorization.
type Guard struct {
	providers []Provider
	// anonymousRead lets unauthenticated callers use read-only routes.
	anonymousRead bool
	onDeny        func(Denial)
}

// GuardOptions configure a Guard.
type GuardOptions struct {
	Providers []Provider
	// AnonymousRead opens routes whose verb is get or list to callers
	// without a token (a read-only status page on a trusted network).
	AnonymousRead bool
	// OnDeny is called for every refused request (the audit log).
	OnDeny func(Denial)
}

// NewGuard returns a guard. With no providers every guarded write is
// refused: the API never falls open because nothing was configured.
func NewGuard(o GuardOptions) *Guard {
	return &Guard{providers: o.Providers, anonymousRead: o.AnonymousRead, onDeny: o.OnDeny}
}

type identityKey struct{}

// FromContext returns the identity the guard established for a request.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// anonymous is the identity of an unauthenticated caller of an open
// read-only route.
var anonymous = Identity{Name: "anonymous", Provider: "anonymous"}

// Require guards h: the caller must authenticate and be allowed attrs.
func (g *Guard) Require(attrs Attributes, h http.HandlerFunc) http.HandlerFunc {
	readOnly := attrs.Verb == "get" || attrs.Verb == "list"
	return func(w http.ResponseWriter, r *http.Request) {
		token, hasToken := bearerToken(r)
		if !hasToken && g.anonymousRead && readOnly {
			h(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, anonymous)))
			return
		}
		if !hasToken {
			g.deny(w, r, nil, http.StatusUnauthorized, "a bearer token is required (Authorization: Bearer …)")
			return
		}
		id, p, err := g.authenticate(r.Context(), token)
		switch {
		case err != nil:
			g.deny(w, r, nil, http.StatusServiceUnavailable, "could not authenticate: "+err.Error())
			return
		case p == nil:
			g.deny(w, r, nil, http.StatusUnauthorized, "the bearer token is not valid")
			return
		}
		d, err := p.Authorize(r.Context(), id, attrs)
		if err != nil {
			g.deny(w, r, &id, http.StatusServiceUnavailable, "could not authorize: "+err.Error())
			return
		}
		if !d.Allowed {
			reason := fmt.Sprintf("%s may not %s", id.Name, attrs)
			if d.Reason != "" {
				reason += ": " + d.Reason
			}
			g.deny(w, r, &id, http.StatusForbidden, reason)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
	}
}

// authenticate asks each provider in turn; the first that knows the token
// wins. A provider that fails stops the search: the token might have been
// its, and trying the next could authenticate it as someone else.
func (g *Guard) authenticate(ctx context.Context, token string) (Identity, Provider, error) {
	for _, p := range g.providers {
		id, ok, err := p.Authenticate(ctx, token)
		if err != nil {
			return Identity{}, nil, fmt.Errorf("%s: %w", p.Name(), err)
		}
		if ok {
			id.Provider = p.Name()
			return id, p, nil
		}
	}
	return Identity{}, nil, nil
}

func (g *Guard) deny(w http.ResponseWriter, r *http.Request, id *Identity, code int, reason string) {
	if g.onDeny != nil {
		g.onDeny(Denial{Method: r.Method, Path: r.URL.Path, Remote: remoteHost(r), Identity: id, Code: code, Reason: reason})
	}
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="modelsync"`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	// The reason is ours, never the token: safe to return.
	fmt.Fprintf(w, "{\n  \"error\": %q\n}\n", reason)
}

// bearerToken reads "Authorization: Bearer <token>" (scheme case-insensitive).
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// ErrNoToken is returned by NewStaticTokens for an empty token.
var ErrNoToken = errors.New("empty API token")
