package mlflowclient

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Capabilities are what this client learnt about its server's API.
type Capabilities struct {
	// ServerVersion is what GET /version answered, e.g. "2.22.5"; empty
	// when the server (or a proxy in front of it) does not serve /version.
	ServerVersion string
	// MultiModelVersionSearch is whether model-versions/search accepts
	// `name IN (...)`. MLflow 2.x accepts IN only for run_id and answers
	// 400; a server whose version is unknown is assumed to accept it until
	// it refuses once (NoteNoMultiModelVersionSearch).
	MultiModelVersionSearch bool
}

// capsCache holds the capabilities of the client's one server, learnt on
// first use and kept for the client's life.
type capsCache struct {
	mu    sync.Mutex
	known bool
	caps  Capabilities
}

// Capabilities returns the server's capabilities, asking the server only
// the first time (GET /version) and remembering the answer for the
// client's life, so a process that plans many times probes once, and no
// request is sent only to be refused. The probe is bounded by the connect
// timeout: it is usually the first request a command makes, and a server
// that does not answer it promptly is reported as unreachable rather than
// waited on for the full request timeout. A failed probe is not
// remembered.
func (c *Client) Capabilities(ctx context.Context) (Capabilities, error) {
	c.caps.mu.Lock()
	defer c.caps.mu.Unlock()
	if c.caps.known {
		return c.caps.caps, nil
	}
	var out rawText
	err := c.callWithin(ctx, http.MethodGet, "/version", nil, &out, min(c.timeout, c.connect))
	caps := Capabilities{MultiModelVersionSearch: true}
	switch {
	case err == nil:
		caps.ServerVersion = strings.TrimSpace(out.s)
		if major, ok := majorVersion(caps.ServerVersion); ok && major < 3 {
			caps.MultiModelVersionSearch = false
		}
	case IsEndpointNotFound(err):
		// No /version route: learn by trying instead.
	default:
		var te *transportError
		if errors.As(err, &te) {
			te.text = "server unreachable: " + te.text
		}
		return Capabilities{}, err
	}
	c.caps.known, c.caps.caps = true, caps
	return caps, nil
}

// NoteNoMultiModelVersionSearch records that the server refused a
// multi-model version search, so no user of this client sends one again.
func (c *Client) NoteNoMultiModelVersionSearch() {
	c.caps.mu.Lock()
	defer c.caps.mu.Unlock()
	c.caps.known = true
	c.caps.caps.MultiModelVersionSearch = false
}

// majorVersion parses the major number of "2.22.5" or "3.1.0rc0".
func majorVersion(v string) (int, bool) {
	head, _, _ := strings.Cut(v, ".")
	n, err := strconv.Atoi(head)
	return n, err == nil && n > 0
}
