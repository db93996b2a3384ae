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
)

// Handler serves the controller's HTTP API:
//
//	GET    /api/v1/status                  status rows (JSON)
//	POST   /api/v1/reconcile               {"model": "...", "environment": "..."} -> queued now
//	GET    /api/v1/pins                    pins
//	POST   /api/v1/pins                    {"model","environment","version","revision","actor"}
//	DELETE /api/v1/pins/{model}/{env}      release a pin
//	POST   /webhooks/generic               HMAC-signed push hint -> Trigger
//	GET    /metrics, /healthz, /readyz
//
// The API has no authentication of its own; serve it on a port only
// trusted clients reach, or put it behind the serve command's auth.
func (c *Controller) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, c.Status())
	})
	mux.HandleFunc("POST /api/v1/reconcile", c.handleReconcile)
	mux.HandleFunc("GET /api/v1/pins", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"pins": c.Pins()})
	})
	mux.HandleFunc("POST /api/v1/pins", c.handlePin)
	mux.HandleFunc("DELETE /api/v1/pins/{model}/{env}", func(w http.ResponseWriter, r *http.Request) {
		removed, err := c.Unpin(r.PathValue("model"), r.PathValue("env"), r.Header.Get("X-Modelsync-Actor"))
		switch {
		case err != nil:
			writeError(w, http.StatusInternalServerError, err.Error())
		case !removed:
			writeError(w, http.StatusNotFound, "no pin for "+r.PathValue("model")+"/"+r.PathValue("env"))
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
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
	Actor       string `json:"actor,omitempty"`
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
	writeJSON(w, http.StatusAccepted, map[string]string{"queued": req.Model, "environment": req.Environment})
}

func (c *Controller) handlePin(w http.ResponseWriter, r *http.Request) {
	var req PinRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	p, err := c.Pin(req.Model, req.Environment, req.Version, req.Revision, req.Actor)
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
