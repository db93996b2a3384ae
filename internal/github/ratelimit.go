package github

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// RateLimits is the rate-limit state GitHub last reported to one client.
// It is safe for concurrent use; Remaining suits a Prometheus GaugeFunc.
type RateLimits struct {
	mu        sync.Mutex
	known     bool
	limit     int
	remaining int
	reset     time.Time
	resource  string
	// secondaryUntil is when a secondary (abuse) limit asked us to wait
	// until, from Retry-After.
	secondaryUntil time.Time
	waits          int
	onChange       func(RateLimitState)
}

// RateLimitState is a copy of the state at one moment.
type RateLimitState struct {
	Known          bool
	Limit          int
	Remaining      int
	Reset          time.Time
	Resource       string
	SecondaryUntil time.Time
	// Waits counts requests that were delayed by a limit.
	Waits int
}

// State returns the current state.
func (r *RateLimits) State() RateLimitState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stateLocked()
}

func (r *RateLimits) stateLocked() RateLimitState {
	return RateLimitState{Known: r.known, Limit: r.limit, Remaining: r.remaining, Reset: r.reset,
		Resource: r.resource, SecondaryUntil: r.secondaryUntil, Waits: r.waits}
}

// Remaining is the number of requests left in the current window, or -1
// before GitHub has reported one.
func (r *RateLimits) Remaining() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.known {
		return -1
	}
	return float64(r.remaining)
}

func (r *RateLimits) observe(h http.Header) {
	rem, err1 := strconv.Atoi(h.Get("X-RateLimit-Remaining"))
	reset, err2 := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
	if err1 != nil || err2 != nil {
		return
	}
	r.mu.Lock()
	defer func() {
		st := r.stateLocked()
		r.mu.Unlock()
		if r.onChange != nil {
			r.onChange(st)
		}
	}()
	r.known = true
	r.remaining = rem
	r.reset = time.Unix(reset, 0)
	if l, err := strconv.Atoi(h.Get("X-RateLimit-Limit")); err == nil {
		r.limit = l
	}
	r.resource = h.Get("X-RateLimit-Resource")
}

// waitFor returns how long a request must wait before it may be sent.
func (r *RateLimits) waitFor(now time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var d time.Duration
	if r.secondaryUntil.After(now) {
		d = r.secondaryUntil.Sub(now)
	}
	if r.known && r.remaining <= 0 && r.reset.After(now) {
		// The reset time has one-second resolution; a request sent at the
		// exact second may still be refused.
		if w := r.reset.Sub(now) + time.Second; w > d {
			d = w
		}
	}
	return d
}

// RateLimitedError means GitHub's rate limit would make the request wait
// longer than allowed. The caller should retry after Until.
type RateLimitedError struct {
	Method, Path string
	Until        time.Time
	Secondary    bool
	cause        error
}

func (e *RateLimitedError) Unwrap() error { return e.cause }

func (e *RateLimitedError) Error() string {
	kind := "primary"
	if e.Secondary {
		kind = "secondary"
	}
	return fmt.Sprintf("github %s %s: %s rate limit until %s", e.Method, e.Path, kind, e.Until.UTC().Format(time.RFC3339))
}

// Retryable is always true: the limit resets.
func (e *RateLimitedError) Retryable() bool { return true }

// rateLimitTransport waits out rate limits instead of spending requests
// that GitHub would refuse: before a request while the primary window is
// exhausted, and after a secondary-limit answer (403 or 429 with
// Retry-After), which it retries once when the body can be replayed.
type rateLimitTransport struct {
	next    http.RoundTripper
	limits  *RateLimits
	maxWait time.Duration
}

func (t *rateLimitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		if err := t.wait(req, false); err != nil {
			return nil, err
		}
		resp, err := t.next.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		now := time.Now()
		t.limits.observe(resp.Header)
		retryAfter, secondary := secondaryLimit(resp)
		if !secondary {
			return resp, nil
		}
		t.limits.mu.Lock()
		if until := now.Add(retryAfter); until.After(t.limits.secondaryUntil) {
			t.limits.secondaryUntil = until
		}
		t.limits.mu.Unlock()
		if attempt > 0 || (req.Body != nil && req.GetBody == nil) {
			return resp, nil
		}
		if req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return resp, nil
			}
			clone := req.Clone(req.Context())
			clone.Body = body
			req = clone
		}
		resp.Body.Close()
		if err := t.wait(req, true); err != nil {
			return nil, err
		}
	}
}

func (t *rateLimitTransport) wait(req *http.Request, secondary bool) error {
	d := t.limits.waitFor(time.Now())
	if d <= 0 {
		return nil
	}
	if d > t.maxWait {
		return &RateLimitedError{Method: req.Method, Path: req.URL.Path, Until: time.Now().Add(d), Secondary: secondary}
	}
	t.limits.mu.Lock()
	t.limits.waits++
	t.limits.mu.Unlock()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-req.Context().Done():
		return req.Context().Err()
	case <-timer.C:
		return nil
	}
}

// secondaryLimit recognises GitHub's secondary rate limit answer: 403 or
// 429 with Retry-After. A 403 without it is a permission error and is left
// to the caller.
func secondaryLimit(resp *http.Response) (time.Duration, bool) {
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusTooManyRequests {
		return 0, false
	}
	s := resp.Header.Get("Retry-After")
	if s == "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}
