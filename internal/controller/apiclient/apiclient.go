// Package apiclient is the one client of the controller's HTTP API
// (internal/controller's Handler): `status`, `reconcile` and
// `rollback --now` use it, and so will any later command that talks to a
// running controller. Request and answer types are the controller's own,
// so client and server cannot drift apart.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/modelsync/modelsync/internal/canary"
	"github.com/modelsync/modelsync/internal/controller"
	"github.com/modelsync/modelsync/internal/gitsource"
)

// DefaultServer is where a controller listens unless told otherwise.
const DefaultServer = "http://127.0.0.1:8080"

// Environment variables the client reads.
const (
	EnvServer = "MODELSYNC_SERVER"
	// EnvToken, when set, is sent as a bearer token: a static API token,
	// or a Kubernetes token when the controller reviews them.
	EnvToken = "MODELSYNC_TOKEN"
	// EnvServerToken is the controller's own static token variable; the
	// client falls back to it so one variable serves both on one machine.
	EnvServerToken = "MODELSYNC_API_TOKEN"
)

// ServerURL picks the controller URL: flag, else $MODELSYNC_SERVER, else
// DefaultServer.
func ServerURL(flag string, getenv func(string) string) string {
	if s := strings.TrimSpace(flag); s != "" {
		return strings.TrimRight(s, "/")
	}
	if s := strings.TrimSpace(getenv(EnvServer)); s != "" {
		return strings.TrimRight(s, "/")
	}
	return DefaultServer
}

// Client talks to one controller.
type Client struct {
	server string
	token  string
	http   *http.Client
}

// New returns a client for the controller at server, with the bearer token
// from $MODELSYNC_TOKEN (else $MODELSYNC_API_TOKEN). A nil hc means http.DefaultClient; callers bound
// each call with its context.
func New(server string, getenv func(string) string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	token := getenv(EnvToken)
	if token == "" {
		token = getenv(EnvServerToken)
	}
	return &Client{server: strings.TrimRight(server, "/"), token: token, http: hc}
}

// Status is GET /api/v1/status.
func (c *Client) Status(ctx context.Context) (controller.Status, error) {
	var st controller.Status
	err := c.do(ctx, http.MethodGet, "/api/v1/status", nil, &st)
	return st, err
}

// Analysis is GET /api/v1/analysis/{model}/{env}: a canary's analysis.
func (c *Client) Analysis(ctx context.Context, model, env string) (canary.Status, error) {
	var st canary.Status
	err := c.do(ctx, http.MethodGet, "/api/v1/analysis/"+url.PathEscape(model)+"/"+url.PathEscape(env), nil, &st)
	return st, err
}

// Reconcile is POST /api/v1/reconcile: queue a model now.
func (c *Client) Reconcile(ctx context.Context, req controller.ReconcileRequest) error {
	return c.do(ctx, http.MethodPost, "/api/v1/reconcile", req, nil)
}

// Pin is POST /api/v1/pins: hold the model in the environment at the
// version until Git names it, so the reconcile loop does not undo an
// applied rollback before its pull request is merged.
func (c *Client) Pin(ctx context.Context, req controller.PinRequest) error {
	return c.do(ctx, http.MethodPost, "/api/v1/pins", req, nil)
}

// Error is a request the controller refused or could not be asked.
// Retryable is true for transport failures and 5xx answers.
type Error struct {
	// Server is the controller URL without credentials.
	Server string
	// Status is the HTTP status; 0 when no answer came.
	Status    int
	Message   string
	Retryable bool
	Err       error
}

func (e *Error) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("controller %s answered HTTP %d %s: %s", e.Server, e.Status, http.StatusText(e.Status), e.Message)
	}
	return fmt.Sprintf("contacting the controller at %s: %v", e.Server, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// IsNotFound reports whether err is the controller's 404.
func IsNotFound(err error) bool {
	var ae *Error
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// do sends one request with body (JSON-encoded when not nil) and decodes a
// JSON answer into out (when not nil).
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	safe := gitsource.SanitizeURL(c.server)
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, rd)
	if err != nil {
		return &Error{Server: safe, Err: errors.New("invalid server URL")}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // *url.Error repeats the URL, which may hold credentials
		}
		return &Error{Server: safe, Retryable: ctx.Err() == nil, Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return &Error{Server: safe, Retryable: true, Err: fmt.Errorf("reading the answer: %w", err)}
	}
	if resp.StatusCode/100 != 2 {
		msg := strings.TrimSpace(string(b))
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if resp.StatusCode == http.StatusUnauthorized && c.token == "" {
			msg += " (set $" + EnvToken + " to an API token or a Kubernetes token)"
		}
		return &Error{Server: safe, Status: resp.StatusCode, Message: msg, Retryable: resp.StatusCode >= 500}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding the answer of controller %s to %s %s: %w", safe, method, path, err)
	}
	return nil
}
