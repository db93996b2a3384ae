package controller

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"strings"

	"github.com/modelsync/modelsync/internal/apiauth"
)

// Handler serves the controller's HTTP API:
//
//	GET    /api/v1/status                  status rows (JSON)                      get status
//	POST   /api/v1/reconcile               {"model": "...", "environment": "..."}  create reconciles
//	GET    /api/v1/pins                    pins                                    list pins
//	POST   /api/v1/pins                    {"model","environment","version","revision"}  create pins
//	DELETE /api/v1/pins/{model}/{env}      release a pin                           delete pins
//	GET    /api/v1/analysis/{model}/{env}  a canary's analysis (canary.Status)      get analysis
//	POST   /webhooks/generic               HMAC-signed push hint -> Trigger
//	GET    /metrics, /healthz, /readyz
//
// Every /api/v1 route goes through the Options.APIAuth providers with the verb and
// resource in the right column: the caller authenticates with a bearer
// token and the audit log names the identity the guard established, never
// a name the caller wrote. Without providers every API call is refused.
func (c *Controller) Handler() http.Handler {
	mux := http.NewServeMux()
	g := apiauth.NewGuard(apiauth.GuardOptions{Providers: c.opts.APIAuth, AnonymousRead: c.opts.APIAnonymousRead, OnDeny: c.auditDenial})
	mux.HandleFunc("GET /api/v1/status", g.Require(apiauth.Attributes{Verb: "get", Resource: "status"}, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, c.Status())
	}))
	mux.HandleFunc("POST /api/v1/reconcile", g.Require(apiauth.Attributes{Verb: "create", Resource: "reconciles"}, c.handleReconcile))
	mux.HandleFunc("GET /api/v1/pins", g.Require(apiauth.Attributes{Verb: "list", Resource: "pins"}, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"pins": c.Pins()})
	}))
	mux.HandleFunc("POST /api/v1/pins", g.Require(apiauth.Attributes{Verb: "create", Resource: "pins"}, c.handlePin))
	mux.HandleFunc("DELETE /api/v1/pins/{model}/{env}", g.Require(apiauth.Attributes{Verb: "delete", Resource: "pins"}, func(w http.ResponseWriter, r *http.Request) {
		removed, err := c.Unpin(r.PathValue("model"), r.PathValue("env"), callerName(r))
		switch {
		case err != nil:
			writeError(w, http.StatusInternalServerError, err.Error())
		case !removed:
			writeError(w, http.StatusNotFound, "no pin for "+r.PathValue("model")+"/"+r.PathValue("env"))
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	mux.HandleFunc("GET /api/v1/analysis/{model}/{env}", g.Require(apiauth.Attributes{Verb: "get", Resource: "analysis"}, c.handleAnalysis))
	mux.HandleFunc("POST /webhooks/generic", c.handleGenericWebhook)
	mux.Handle("GET /metrics", c.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !c.Ready() {
			http.Error(w, "waiting for the first successful fetch", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	return mux
}

// auditDenial records a refused API request in the audit log and the log:
// who (when known), what, from where, and why.
func (c *Controller) auditDenial(d apiauth.Denial) {
	actor := "anonymous"
	if d.Identity != nil {
		actor = d.Identity.Name
	}
	result := "unauthenticated"
	switch d.Code {
	case http.StatusForbidden:
		result = "forbidden"
	case http.StatusServiceUnavailable:
		result = "unavailable"
	}
	c.writeAudit(AuditEntry{Actor: actor, Action: "api " + d.Method + " " + d.Path, Result: result,
		Error: d.Reason + " (from " + d.Remote + ")"})
	c.log.Warn("API request refused", "method", d.Method, "path", d.Path, "remote", d.Remote, "actor", actor, "status", d.Code, "reason", d.Reason)
}

// callerName is the authenticated identity of a guarded request.
func callerName(r *http.Request) string {
	if id, ok := apiauth.FromContext(r.Context()); ok {
		return id.Name
	}
	return "unknown"
}

// ReconcileRequest is the body of POST /api/v1/reconcile.
type ReconcileRequest struct {
	Model       string `json:"model"`
	Environment string `json:"environment,omitempty"`
}

// PinRequest is the body of POST /api/v1/pins.
type PinRequest struct {
	Model       string `json:"model"`
	Environment string `json:"environment"`
	Version     int    `json:"version"`
	Revision    string `json:"revision,omitempty"`
}

const maxAPIBody = 64 << 10

func (c *Controller) handleReconcile(w http.ResponseWriter, r *http.Request) {
	var req ReconcileRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.Model == "" {
		writeError(w, http.StatusBadRequest, "model is required")
		return
	}
	if c.Desired() == nil {
		writeError(w, http.StatusServiceUnavailable, "no desired state yet: waiting for the first successful fetch")
		return
	}
	if !c.Reconcile(req.Model, req.Environment) {
		what := "model " + req.Model
		if req.Environment != "" {
			what += " in environment " + req.Environment
		}
		writeError(w, http.StatusNotFound, what+" is not in the models repository")
		return
	}
	c.writeAudit(AuditEntry{Actor: callerName(r), Model: req.Model, Environment: req.Environment, Action: "reconcile-requested", Result: "queued"})
	writeJSON(w, http.StatusAccepted, map[string]string{"queued": req.Model, "environment": req.Environment})
}

func (c *Controller) handlePin(w http.ResponseWriter, r *http.Request) {
	var req PinRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	p, err := c.Pin(req.Model, req.Environment, req.Version, req.Revision, callerName(r))
	var nf *NotFoundError
	switch {
	case errors.As(err, &nf):
		writeError(w, http.StatusNotFound, err.Error())
	case err != nil && (req.Model == "" || req.Environment == "" || req.Version < 1):
		writeError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		writeJSON(w, http.StatusCreated, p)
	}
}

func (c *Controller) handleAnalysis(w http.ResponseWriter, r *http.Request) {
	st, err := c.Analysis(r.Context(), r.PathValue("model"), r.PathValue("env"))
	var nf *NotFoundError
	switch {
	case errors.As(err, &nf), errors.Is(err, ErrNoAnalysis):
		writeError(w, http.StatusNotFound, err.Error())
	case err != nil && c.Desired() == nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		writeJSON(w, http.StatusOK, st)
	}
}

// handleGenericWebhook accepts a push notification from any Git host that
// can sign its body with HMAC-SHA256. The payload is only a hint: it
// triggers a fetch and is never read for desired state.
func (c *Controller) handleGenericWebhook(w http.ResponseWriter, r *http.Request) {
	if len(c.opts.WebhookSecret) == 0 {
		http.NotFound(w, r)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "body exceeds 3 MiB")
			return
		}
		writeError(w, http.StatusBadRequest, "reading body failed")
		return
	}
	sig, ok := strings.CutPrefix(r.Header.Get("X-Modelsync-Signature"), "sha256=")
	got, err := hex.DecodeString(sig)
	if !ok || err != nil {
		writeError(w, http.StatusUnauthorized, "missing or malformed X-Modelsync-Signature")
		return
	}
	mac := hmac.New(sha256.New, c.opts.WebhookSecret)
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		writeError(w, http.StatusUnauthorized, "signature does not match")
		return
	}
	c.Trigger("webhook")
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "fetch queued"})
}

// Sign returns the X-Modelsync-Signature value for body.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAPIBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errors.New("invalid JSON body: " + err.Error())
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
