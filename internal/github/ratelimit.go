package github

import (
	"context"
	"fmt"
	"io"
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
	retries        int
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
	// Retries counts requests sent again after a rate limit or a
	// transient failure.
	Retries int
}

// State returns the current state.
func (r *RateLimits) State() RateLimitState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stateLocked()
}

func (r *RateLimits) stateLocked() RateLimitState {
	return RateLimitState{Known: r.known, Limit: r.limit, Remaining: r.remaining, Reset: r.reset,
		Resource: r.resource, SecondaryUntil: r.secondaryUntil, Waits: r.waits, Retries: r.retries}
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

// waitFor returns how long a request must wait before it may be sent, and
// whether a secondary limit is what it waits for.
func (r *RateLimits) waitFor(now time.Time) (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var d time.Duration
	secondary := false
	if r.secondaryUntil.After(now) {
		d, secondary = r.secondaryUntil.Sub(now), true
	}
	if r.known && r.remaining <= 0 && r.reset.After(now) {
		// The reset time has one-second resolution; a request sent at the
		// exact second may still be refused.
		if w := r.reset.Sub(now) + time.Second; w > d {
			d, secondary = w, false
		}
	}
	return d, secondary
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

// rateLimitTransport is the one place GitHub requests are retried. It
// waits out rate limits instead of spending requests that GitHub would
// refuse: before a request while the primary window is exhausted, and
// after a rate-limit answer (403 or 429 with Retry-After, or with no
// requests remaining), as GitHub asks. It also retries transient failures
// (5xx answers, connection errors, timed-out attempts) with exponential
// backoff and jitter, where repeating the request is safe (see
// safeToRepeat). Callers above it do not retry requests again.
type rateLimitTransport struct {
	next    http.RoundTripper
	limits  *RateLimits
	maxWait time.Duration
	retry   RetryPolicy
	// timeout bounds one attempt, so a retry is not cut short by the
	// time an earlier attempt took.
	timeout time.Duration
}

func (t *rateLimitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	for attempt := 1; ; attempt++ {
		if err := t.wait(req); err != nil {
			return nil, err
		}
		resp, err := t.send(req)
		last := attempt >= t.retry.Attempts
		var delay time.Duration
		switch {
		case err != nil:
			if last || req.Context().Err() != nil || !retryableError(req, err) {
				return nil, err
			}
			delay = t.retry.backoff(attempt)
		default:
			now := time.Now()
			t.limits.observe(resp.Header)
			if retryAfter, limited := rateLimited(resp); limited {
				if retryAfter > 0 {
					t.limits.mu.Lock()
					if until := now.Add(retryAfter); until.After(t.limits.secondaryUntil) {
						t.limits.secondaryUntil = until
					}
					t.limits.mu.Unlock()
				}
				// The wait itself happens before the next attempt; a
				// limit hit again is waited out a little longer each time.
				if last || !replayable(req) {
					return resp, nil
				}
				if attempt > 1 {
					delay = t.retry.backoff(attempt - 1)
				}
				break
			}
			if !transientStatus(resp.StatusCode) || last || !safeToRepeat(req) || !replayable(req) {
				return resp, nil
			}
			delay = t.retry.backoff(attempt)
			if ra, ok := retryAfterSeconds(resp); ok && ra > delay {
				if ra > t.maxWait {
					return resp, nil
				}
				delay = ra
			}
		}
		if resp != nil {
			// Drained so the connection can be reused.
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		next, err := rewind(req)
		if err != nil {
			return nil, err
		}
		req = next
		t.limits.mu.Lock()
		t.limits.retries++
		t.limits.mu.Unlock()
		if err := sleep(req.Context(), delay); err != nil {
			return nil, err
		}
	}
}

// send makes one attempt under its own timeout, which ends when the
// response body is closed.
func (t *rateLimitTransport) send(req *http.Request) (*http.Response, error) {
	if t.timeout <= 0 {
		return t.next.RoundTrip(req)
	}
	ctx, cancel := context.WithTimeout(req.Context(), t.timeout)
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

func (t *rateLimitTransport) wait(req *http.Request) error {
	d, secondary := t.limits.waitFor(time.Now())
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

// rateLimited recognises GitHub's rate-limit answers, 403 or 429 with
// Retry-After (a secondary limit) or with no requests remaining (the
// primary limit, whose reset observe has recorded). It returns how long
// Retry-After asks to wait. A 403 with neither is a permission error and
// is left to the caller; a 429 with neither is a secondary limit for
// which GitHub asks to wait at least a minute.
func rateLimited(resp *http.Response) (time.Duration, bool) {
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusTooManyRequests {
		return 0, false
	}
	if d, ok := retryAfterSeconds(resp); ok {
		return d, true
	}
	if resp.Header.Get("X-RateLimit-Remaining") == "0" {
		return 0, true
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		return time.Minute, true
	}
	return 0, false
}

// retryAfterSeconds parses Retry-After in its delay-seconds form, the one
// GitHub sends.
func retryAfterSeconds(resp *http.Response) (time.Duration, bool) {
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
