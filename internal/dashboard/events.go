package dashboard

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// maxStreams bounds concurrent event streams, so open tabs cannot exhaust
// the server; a page over the limit still works, without live updates.
const maxStreams = 256

// hub tells listening pages when the controller's state changed. One
// goroutine compares a fingerprint of the state every interval while at
// least one page listens, and sends an event only when it differs: pages
// never poll, and an idle page costs its one open stream.
type hub struct {
	interval    time.Duration
	fingerprint func() string

	mu      sync.Mutex
	subs    map[chan string]struct{}
	running bool
	last    string
}

func newHub(interval time.Duration, fp func() string) *hub {
	return &hub{interval: interval, fingerprint: fp, subs: map[chan string]struct{}{}}
}

func (h *hub) subscribe() (chan string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) >= maxStreams {
		return nil, false
	}
	ch := make(chan string, 1)
	h.subs[ch] = struct{}{}
	if !h.running {
		h.running = true
		h.last = h.fingerprint()
		go h.loop()
	}
	return ch, true
}

func (h *hub) unsubscribe(ch chan string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, ch)
}

// loop runs while anyone listens; the last unsubscriber stops it.
func (h *hub) loop() {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for range t.C {
		fp := h.fingerprint()
		h.mu.Lock()
		if len(h.subs) == 0 {
			h.running = false
			h.mu.Unlock()
			return
		}
		if fp != h.last {
			h.last = fp
			for ch := range h.subs {
				select {
				case ch <- fp:
				default: // a slow page already has an event pending
				}
			}
		}
		h.mu.Unlock()
	}
}

// fingerprint digests everything the pages show that can change: the
// status rows, the audit log's length, the canaries, and the model
// page's reads and verdicts.
func (d *Dashboard) fingerprint() string {
	st := d.opts.Controller.Status()
	st.LastFetch = time.Time{} // a fetch that changed nothing is no news
	hash := sha256.New()
	_ = json.NewEncoder(hash).Encode(st)
	fmt.Fprint(hash, d.opts.Audit.Seq())
	// Finished lineage and storage reads and new PR verdicts change the
	// model page.
	if d.lineages != nil {
		fmt.Fprint(hash, " l", d.lineages.seq.Load())
	}
	if d.storage != nil {
		fmt.Fprint(hash, " s", d.storage.seq.Load())
	}
	if d.opts.Verdicts != nil {
		fmt.Fprint(hash, " v", d.opts.Verdicts.Seq())
	}
	if d.opts.Canaries != nil {
		for _, r := range st.Rows {
			if cs, ok := d.opts.Canaries.CanaryStatus(r.Model, r.Environment); ok {
				_ = json.NewEncoder(hash).Encode(cs)
			}
		}
	}
	return hex.EncodeToString(hash.Sum(nil)[:12])
}

// handleEvents is the page's event stream: an event "change" whenever the
// state changed, and a comment every 25s so proxies keep it open.
func (d *Dashboard) handleEvents(w http.ResponseWriter, r *http.Request) {
	ch, ok := d.hub.subscribe()
	if !ok {
		http.Error(w, "too many event streams", http.StatusServiceUnavailable)
		return
	}
	defer d.hub.unsubscribe(ch)
	rc := http.NewResponseController(w)
	// The server's write timeout is for ordinary responses; a stream lives
	// as long as its page.
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// retry: a dropped stream comes back after 5s, not 3s storms.
	fmt.Fprint(w, "retry: 5000\n\n")
	if rc.Flush() != nil {
		return
	}
	keepAlive := time.NewTicker(25 * time.Second)
	defer keepAlive.Stop()
	n := 0
	for {
		select {
		case <-r.Context().Done():
			return
		case fp := <-ch:
			n++
			fmt.Fprintf(w, "id: %s\nevent: change\ndata: %s\n\n", strconv.Itoa(n), fp)
		case <-keepAlive.C:
			fmt.Fprint(w, ": keep-alive\n\n")
		}
		if rc.Flush() != nil {
			return
		}
	}
}
