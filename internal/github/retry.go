package github

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"
)

// RetryPolicy bounds how often and how patiently a request that met a
// transient failure (a 5xx answer, a connection error, a timed-out
// attempt, a rate limit) is sent again.
type RetryPolicy struct {
	// Attempts is the most times one request is sent, the first
	// included; zero means 4, one disables retries.
	Attempts int
	// BaseDelay is the backoff before the first retry; it doubles for
	// each further one. Zero means 500ms.
	BaseDelay time.Duration
	// MaxDelay caps one backoff; zero means 8 seconds.
	MaxDelay time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Attempts <= 0 {
		p.Attempts = 4
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 500 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 8 * time.Second
	}
	if p.MaxDelay < p.BaseDelay {
		p.MaxDelay = p.BaseDelay
	}
	return p
}

// backoff is the delay before retry n (1 for the first): exponential,
// capped, with half of it random so that many clients failing together do
// not come back together.
func (p RetryPolicy) backoff(n int) time.Duration {
	d := p.MaxDelay
	if n < 31 {
		if e := p.BaseDelay << (n - 1); e > 0 && e < d {
			d = e
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// transientStatus reports answers that say GitHub failed, not the request.
func transientStatus(code int) bool {
	switch code {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// repeatableKey marks a request context whose request may be sent twice
// with the same effect as once, e.g. a commit status: GitHub keeps the
// latest per context.
type repeatableKey struct{}

func repeatable(ctx context.Context) context.Context {
	return context.WithValue(ctx, repeatableKey{}, true)
}

// safeToRepeat reports whether a request whose outcome is unknown (an
// error answer or a broken connection after it was sent) may be sent
// again: reads, idempotent methods, writes marked repeatable, and App
// token exchanges (a second token costs nothing). Creating a comment is
// none of these: a 502 may follow a comment GitHub did create.
func safeToRepeat(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	if v, _ := req.Context().Value(repeatableKey{}).(bool); v {
		return true
	}
	return req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/access_tokens")
}

// retryableError reports whether a failed attempt may be repeated: a
// connection that was never made (nothing was sent) always; a broken
// connection or a timed-out attempt when the request is safe to repeat.
func retryableError(req *http.Request, err error) bool {
	if !replayable(req) {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return safeToRepeat(req)
}

// replayable reports whether the request's body can be sent again.
func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// rewind returns the request to send again, with a fresh body.
func rewind(req *http.Request) (*http.Request, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, nil
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	next := req.Clone(req.Context())
	next.Body = body
	return next, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
