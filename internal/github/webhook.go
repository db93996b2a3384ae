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
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	gh "github.com/google/go-github/v60/github"
)

// WebhookPath is where GitHub delivers events.
const WebhookPath = "/webhooks/github"

// MaxWebhookBody is the largest payload accepted. GitHub caps payloads at
// 25 MB, but no event modelsync handles comes near 3 MiB; bigger bodies
// are refused before the signature is even checked. A form-encoded body
// may be three times as large, since percent-encoding triples some bytes;
// the JSON it carries is held to this limit.
const MaxWebhookBody = 3 << 20

// Event is one verified webhook delivery.
type Event struct {
	// Name is the X-GitHub-Event header, e.g. "pull_request".
	Name string
	// Delivery is the X-GitHub-Delivery id.
	Delivery string
	// Repository is the full name of the repository the payload is about,
	// empty for events about no repository.
	Repository string
	// Payload is the parsed payload: *gh.PullRequestEvent,
	// *gh.PullRequestReviewEvent, *gh.PushEvent, *gh.CreateEvent, ...
	Payload any

	// tracker is nil for events not made by a WebhookHandler.
	tracker *tracker
}

// Detach tells the webhook handler that the work for ev goes on after
// HandleEvent returns. Until the returned function is called, the delivery
// is in flight and duplicates of it are dropped; called with nil, the
// delivery is done and later redeliveries are dropped too; called with an
// error, the delivery is forgotten, so GitHub's redelivery of it is
// processed. Only the first call of the function counts. An event that
// was not detached is done when HandleEvent returns nil.
func (ev Event) Detach() (finish func(error)) {
	if ev.tracker == nil {
		return func(error) {}
	}
	ev.tracker.mu.Lock()
	ev.tracker.detached = true
	ev.tracker.mu.Unlock()
	return ev.tracker.finish
}

// tracker ends one delivery exactly once.
type tracker struct {
	mu       sync.Mutex
	detached bool
	ended    bool
	end      func(error)
}

func (t *tracker) finish(err error) {
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		return
	}
	t.ended = true
	t.mu.Unlock()
	t.end(err)
}

// returned ends the delivery when HandleEvent has returned err, unless the
// handler detached it and it has not failed.
func (t *tracker) returned(err error) {
	t.mu.Lock()
	detached := t.detached
	t.mu.Unlock()
	if err != nil || !detached {
		t.finish(err)
	}
}

// EventHandler receives verified events. It must return quickly (GitHub
// waits at most 10 seconds for an answer) and queue any real work; a
// handler whose work outlives the call says so with Event.Detach.
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
	// DedupeSize is how many completed deliveries are remembered to drop
	// redeliveries, and how many may be in flight at once; zero means 4096.
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
	max     int

	// mu guards done and inflight, so a delivery is checked against both
	// and claimed in one step.
	mu sync.Mutex
	// done holds deliveries whose work completed; inflight those whose
	// work has not ended yet. A delivery whose work failed is in neither,
	// so its redelivery is processed.
	done     *lru
	inflight map[string]struct{}
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
	return &WebhookHandler{secret: append([]byte(nil), opts.Secret...), handler: opts.Handler, log: log, max: size,
		done: newLRU(size), inflight: map[string]struct{}{}}, nil
}

// Content types GitHub delivers with: the JSON payload as the body, or a
// form whose "payload" field holds it.
const (
	contentJSON = "application/json"
	contentForm = "application/x-www-form-urlencoded"
)

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
	contentType := contentJSON
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != contentJSON && mt != contentForm) {
			log.Warn("webhook refused: unsupported content type", "content_type", Truncate(ct, 100))
			http.Error(w, "unsupported content type: configure the webhook with application/json", http.StatusUnsupportedMediaType)
			return
		}
		contentType = mt
	}
	// Percent-encoding can triple a form body's size; the payload it
	// carries is held to MaxWebhookBody after decoding.
	limit := int64(MaxWebhookBody)
	if contentType == contentForm {
		limit *= 3
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			log.Warn("webhook refused: body too large", "limit", limit)
			http.Error(w, "payload too large", http.StatusRequestEntityTooLarge)
			return
		}
		log.Warn("webhook refused: reading body", "err", err)
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	// GitHub signs the body as sent, form encoding included.
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
	payload := body
	if contentType == contentForm {
		form, err := url.ParseQuery(string(body))
		if err != nil || !form.Has("payload") {
			log.Warn("webhook refused: form body without a payload field")
			http.Error(w, "malformed payload: a form-encoded delivery needs a payload field", http.StatusBadRequest)
			return
		}
		payload = []byte(form.Get("payload"))
		if len(payload) > MaxWebhookBody {
			log.Warn("webhook refused: payload too large", "limit", MaxWebhookBody)
			http.Error(w, "payload too large", http.StatusRequestEntityTooLarge)
			return
		}
	}
	if event == "ping" {
		log.Info("webhook ping", "content_type", contentType)
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "pong\n")
		return
	}
	parsed, err := gh.ParseWebHook(event, payload)
	if err != nil {
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
	repo := repositoryOf(parsed)
	key := deliveryKey(repo, installationOf(parsed), delivery)
	switch h.claim(key) {
	case claimDone:
		log.Info("webhook redelivery ignored: already processed")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "duplicate delivery\n")
		return
	case claimInFlight:
		log.Info("webhook redelivery ignored: the delivery is being processed")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "duplicate delivery in progress\n")
		return
	case claimFull:
		// Memory stays bounded; GitHub shows the failure and the
		// delivery can be redelivered once the backlog has drained.
		log.Warn("webhook refused: too many deliveries in flight", "limit", h.max)
		http.Error(w, "too many deliveries in flight", http.StatusServiceUnavailable)
		return
	}
	t := &tracker{end: func(err error) { h.end(log, key, err) }}
	// Work outlives the request; GitHub only waits for the answer.
	err = h.handler.HandleEvent(context.WithoutCancel(r.Context()), Event{Name: event, Delivery: delivery, Repository: repo, Payload: parsed, tracker: t})
	t.returned(err)
	if err != nil {
		log.Error("webhook event not handled", "err", err)
		http.Error(w, "event not handled", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

type claimResult int

const (
	claimed claimResult = iota
	claimDone
	claimInFlight
	claimFull
)

// claim marks a delivery in flight unless it is done or in flight already.
func (h *WebhookHandler) claim(key string) claimResult {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.done.contains(key):
		return claimDone
	case hasKey(h.inflight, key):
		return claimInFlight
	case len(h.inflight) >= h.max:
		return claimFull
	}
	h.inflight[key] = struct{}{}
	return claimed
}

// end records the outcome of a delivery's work: done when it completed,
// forgotten when it failed, so a redelivery runs it again.
func (h *WebhookHandler) end(log *slog.Logger, key string, err error) {
	h.mu.Lock()
	delete(h.inflight, key)
	if err == nil {
		h.done.add(key)
	}
	h.mu.Unlock()
	if err != nil {
		log.Warn("webhook delivery failed; a redelivery of it will be processed", "err", err)
	}
}

func hasKey(m map[string]struct{}, k string) bool {
	_, ok := m[k]
	return ok
}

// deliveryKey names a delivery per repository (and App installation):
// the dedup caches of one repository are never touched by events of
// another.
func deliveryKey(repo string, installation int64, delivery string) string {
	return strings.ToLower(repo) + "\x00" + strconv.FormatInt(installation, 10) + "\x00" + delivery
}

// repositoryOf returns the full name of the repository a payload is
// about, or "".
func repositoryOf(payload any) string {
	if p, ok := payload.(interface{ GetRepo() *gh.Repository }); ok {
		return p.GetRepo().GetFullName()
	}
	return ""
}

// installationOf returns the App installation a payload came through, or 0.
func installationOf(payload any) int64 {
	if p, ok := payload.(interface{ GetInstallation() *gh.Installation }); ok {
		return p.GetInstallation().GetID()
	}
	return 0
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

// lru is a bounded set of recently used keys. It is not safe for
// concurrent use: its owner guards it.
type lru struct {
	max   int
	order *list.List
	items map[string]*list.Element
}

func newLRU(max int) *lru {
	return &lru{max: max, order: list.New(), items: map[string]*list.Element{}}
}

// contains reports whether k is in the set, marking it recently used.
func (l *lru) contains(k string) bool {
	e, ok := l.items[k]
	if ok {
		l.order.MoveToFront(e)
	}
	return ok
}

// add inserts k, evicting the least recently used keys beyond the bound.
func (l *lru) add(k string) {
	if l.contains(k) {
		return
	}
	l.items[k] = l.order.PushFront(k)
	for l.order.Len() > l.max {
		old := l.order.Back()
		l.order.Remove(old)
		delete(l.items, old.Value.(string))
	}
}

func (l *lru) remove(k string) {
	if e, ok := l.items[k]; ok {
		l.order.Remove(e)
		delete(l.items, k)
	}
}
