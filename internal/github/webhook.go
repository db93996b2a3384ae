package github

import (
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	gh "github.com/google/go-github/v60/github"
)

// WebhookPath is where GitHub delivers events.
const WebhookPath = "/webhooks/github"

// MaxWebhookBody is the largest payload accepted. GitHub caps payloads at
// 25 MB, but no event modelsync handles comes near 3 MiB; bigger bodies
// are refused before the signature is even checked.
const MaxWebhookBody = 3 << 20

// Event is one verified webhook delivery.
type Event struct {
	// Name is the X-GitHub-Event header, e.g. "pull_request".
	Name string
	// Delivery is the X-GitHub-Delivery id.
	Delivery string
	// Payload is the parsed payload: *gh.PullRequestEvent,
	// *gh.PullRequestReviewEvent, *gh.PushEvent, *gh.CreateEvent, ...
	Payload any
}

// EventHandler receives verified events. It must return quickly (GitHub
// waits at most 10 seconds for an answer) and queue any real work.
type EventHandler interface {
	HandleEvent(ctx context.Context, ev Event) error
}

// WebhookOptions configure NewWebhookHandler.
type WebhookOptions struct {
	// Secret is the webhook secret; required.
	Secret []byte
	// Handler receives every verified event but ping.
	Handler EventHandler
	Logger  *slog.Logger
	// DedupeSize is how many delivery ids are remembered to drop
	// redeliveries; zero means 4096.
	DedupeSize int
}

// ErrNoWebhookSecret is returned when no secret is configured: accepting
// unsigned deliveries would let anyone trigger evaluations and rollouts.
var ErrNoWebhookSecret = errors.New("github webhook: a webhook secret is required (MODELSYNC_GITHUB_WEBHOOK_SECRET)")

// WebhookHandler verifies and dispatches GitHub webhook deliveries.
type WebhookHandler struct {
	secret  []byte
	handler EventHandler
	log     *slog.Logger
	seen    *lru
}

// NewWebhookHandler returns the handler for POST /webhooks/github.
func NewWebhookHandler(opts WebhookOptions) (*WebhookHandler, error) {
	if len(opts.Secret) == 0 {
		return nil, ErrNoWebhookSecret
	}
	if opts.Handler == nil {
		return nil, errors.New("github webhook: no event handler")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	size := opts.DedupeSize
	if size <= 0 {
		size = 4096
	}
	return &WebhookHandler{secret: append([]byte(nil), opts.Secret...), handler: opts.Handler, log: log, seen: newLRU(size)}, nil
}

// ServeHTTP implements http.Handler.
func (h *WebhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	event := r.Header.Get("X-GitHub-Event")
	delivery := r.Header.Get("X-GitHub-Delivery")
	log := h.log.With("event", event, "delivery", delivery, "remote", r.RemoteAddr)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			log.Warn("webhook refused: body too large", "limit", MaxWebhookBody)
			http.Error(w, "payload too large", http.StatusRequestEntityTooLarge)
			return
		}
		log.Warn("webhook refused: reading body", "err", err)
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if !h.validSignature(r.Header.Get("X-Hub-Signature-256"), body) {
		// Neither the body nor the signature is logged: the body of a
		// forged request is attacker-chosen, and both may be sensitive.
		log.Warn("webhook refused: missing or invalid X-Hub-Signature-256", "bytes", len(body))
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return
	}
	if event == "" || delivery == "" {
		http.Error(w, "missing X-GitHub-Event or X-GitHub-Delivery", http.StatusBadRequest)
		return
	}
	if event == "ping" {
		log.Info("webhook ping")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "pong\n")
		return
	}
	if !h.seen.claim(delivery) {
		log.Info("webhook redelivery ignored")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "duplicate delivery\n")
		return
	}
	payload, err := gh.ParseWebHook(event, body)
	if err != nil {
		h.seen.remove(delivery)
		if strings.Contains(err.Error(), "unknown X-Github-Event") {
			// Events the App is subscribed to but modelsync does not use.
			log.Debug("webhook event ignored")
			w.WriteHeader(http.StatusAccepted)
			return
		}
		log.Warn("webhook refused: payload does not parse", "err", err)
		http.Error(w, "malformed payload", http.StatusBadRequest)
		return
	}
	// Work outlives the request; GitHub only waits for the answer.
	if err := h.handler.HandleEvent(context.WithoutCancel(r.Context()), Event{Name: event, Delivery: delivery, Payload: payload}); err != nil {
		// Forget the delivery, so GitHub's redelivery of it is processed.
		h.seen.remove(delivery)
		log.Error("webhook event not handled", "err", err)
		http.Error(w, "event not handled", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// validSignature checks "sha256=<hex HMAC-SHA256 of body>" in constant
// time. The legacy SHA-1 header is not accepted.
func (h *WebhookHandler) validSignature(header string, body []byte) bool {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, h.secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// Sign returns the X-Hub-Signature-256 value GitHub sends for body.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// lru is a bounded set of recently seen delivery ids.
type lru struct {
	mu    sync.Mutex
	max   int
	order *list.List
	items map[string]*list.Element
}

func newLRU(max int) *lru {
	return &lru{max: max, order: list.New(), items: map[string]*list.Element{}}
}

// claim adds k and reports whether it was new. Check and insert are one
// step, so two concurrent deliveries of one id are not both processed.
func (l *lru) claim(k string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.items[k]; ok {
		l.order.MoveToFront(e)
		return false
	}
	l.items[k] = l.order.PushFront(k)
	for l.order.Len() > l.max {
		old := l.order.Back()
		l.order.Remove(old)
		delete(l.items, old.Value.(string))
	}
	return true
}

func (l *lru) remove(k string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.items[k]; ok {
		l.order.Remove(e)
		delete(l.items, k)
	}
}
