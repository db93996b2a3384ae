package mlflowclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/modelsync/modelsync/internal/redact"
)

const (
	apiPrefix = "/api/2.0/mlflow/"
	// maxResponseBytes guards against a misrouted request streaming an
	// artifact or a huge page into memory.
	maxResponseBytes = 256 << 20
	// maxRetryAfter caps a server's Retry-After hint when the caller's
	// context has no deadline.
	maxRetryAfter = 5 * time.Minute
	userAgent     = "modelsync-mlflow"
)

// Client talks to one MLflow tracking server. It is safe for concurrent use.
type Client struct {
	base        *url.URL // no userinfo, no trailing slash
	safeURI     string
	authHeader  string
	secrets     []string
	hc          *http.Client
	timeout     time.Duration
	connect     time.Duration
	maxRetries  int
	backoffBase time.Duration
	backoffMax  time.Duration
	observe     func(method, endpoint string, status int, dur time.Duration)
	caps        capsCache

	reads, writes, retries, failures atomic.Int64
}

// Stats counts HTTP attempts made by a Client since New.
type Stats struct {
	// Reads and Writes count attempts by method: GET is a read, every other
	// method a write. Retries are included.
	Reads  int64
	Writes int64
	// Retries counts attempts that repeated an earlier failed attempt.
	Retries int64
	// Failures counts attempts that got no 2xx reply.
	Failures int64
}

// Stats returns a snapshot of the request counters.
func (c *Client) Stats() Stats {
	return Stats{Reads: c.reads.Load(), Writes: c.writes.Load(), Retries: c.retries.Load(), Failures: c.failures.Load()}
}

// TrackingURI returns the server URL without userinfo.
func (c *Client) TrackingURI() string { return c.safeURI }

// String keeps credentials out of %v.
func (c *Client) String() string { return "mlflow.Client(" + c.safeURI + ")" }

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.envErr != nil {
		return nil, cfg.envErr
	}
	raw := strings.TrimSpace(cfg.TrackingURI)
	if raw == "" {
		return nil, fmt.Errorf("%w: tracking URI is empty (set MLFLOW_TRACKING_URI)", ErrInvalidArgument)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: tracking URI %s does not parse", ErrInvalidArgument, redactURL(raw))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w: tracking URI %s: only http and https servers are supported", ErrInvalidArgument, redactURL(raw))
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%w: tracking URI %s has no host", ErrInvalidArgument, redactURL(raw))
	}
	if u.User != nil {
		if cfg.Username == "" && cfg.Password == "" {
			cfg.Username = u.User.Username()
			cfg.Password, _ = u.User.Password()
		}
		u.User = nil
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	u.RawQuery, u.Fragment = "", ""

	c := &Client{
		base:        u,
		safeURI:     u.String(),
		timeout:     cfg.Timeout,
		connect:     cfg.ConnectTimeout,
		maxRetries:  cfg.MaxRetries,
		backoffBase: cfg.BackoffBase,
		backoffMax:  cfg.BackoffMax,
		observe:     cfg.Observe,
	}
	switch {
	case cfg.Username != "" && cfg.Password != "":
		cred := base64.StdEncoding.EncodeToString([]byte(cfg.Username + ":" + cfg.Password))
		c.authHeader = "Basic " + cred
		c.secrets = append(c.secrets, cfg.Password, cred)
	case cfg.Token != "":
		c.authHeader = "Bearer " + cfg.Token
		c.secrets = append(c.secrets, cfg.Token)
	}
	if c.timeout < 0 {
		return nil, fmt.Errorf("%w: negative timeout %s", ErrInvalidArgument, c.timeout)
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.connect < 0 {
		return nil, fmt.Errorf("%w: negative connect timeout %s", ErrInvalidArgument, c.connect)
	}
	if c.connect == 0 {
		c.connect = DefaultConnectTimeout
	}
	switch {
	case c.maxRetries == 0:
		c.maxRetries = DefaultMaxRetries
	case c.maxRetries < 0:
		c.maxRetries = 0
	case c.maxRetries > MaxRetriesCap:
		c.maxRetries = MaxRetriesCap
	}
	if c.backoffBase <= 0 {
		c.backoffBase = DefaultBackoffBase
	}
	if c.backoffMax <= 0 {
		c.backoffMax = DefaultBackoffMax
	}
	if c.backoffMax < c.backoffBase {
		c.backoffMax = c.backoffBase
	}
	if cfg.HTTPClient != nil {
		if cfg.InsecureTLS {
			return nil, fmt.Errorf("%w: InsecureTLS cannot be applied to a caller-supplied HTTPClient; configure its transport instead", ErrInvalidArgument)
		}
		c.hc = cfg.HTTPClient
	} else {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 16
		// The default transport waits 30 s for a TCP connection; a server
		// that cannot be reached should say so within the connect timeout.
		tr.DialContext = (&net.Dialer{Timeout: c.connect, KeepAlive: 30 * time.Second}).DialContext
		tr.TLSHandshakeTimeout = c.connect
		if cfg.InsecureTLS {
			tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // explicit opt-in, as MLFLOW_TRACKING_INSECURE_TLS
		}
		c.hc = &http.Client{Transport: tr}
	}
	return c, nil
}

// redactURL drops credentials, query and fragment from a URL for messages
// (see redact.URL).
func redactURL(raw string) string { return redact.URL(strings.TrimSpace(raw)) }

// scrub removes credentials from text that came from the server or the
// transport before it becomes part of an error string.
func (c *Client) scrub(s string) string {
	for _, sec := range c.secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "<redacted>")
		}
	}
	return s
}

// ---- request parameters ----

type param struct {
	key string
	val any // string, []string, bool, int, or any JSON value (body only)
}

// params keeps insertion order so query strings and bodies are stable.
type params []param

func (p params) str(k, v string) params {
	if v == "" {
		return p
	}
	return append(p, param{k, v})
}

func (p params) must(k, v string) params { return append(p, param{k, v}) }

func (p params) version(k string, v int) params { return append(p, param{k, strconv.Itoa(v)}) }

func (p params) num(k string, v int64) params {
	if v == 0 {
		return p
	}
	return append(p, param{k, v})
}

func (p params) strs(k string, v []string) params {
	if len(v) == 0 {
		return p
	}
	return append(p, param{k, v})
}

func (p params) boolean(k string, v bool) params { return append(p, param{k, v}) }

func (p params) json(k string, v any) params { return append(p, param{k, v}) }

func (p params) query() url.Values {
	q := url.Values{}
	for _, kv := range p {
		switch v := kv.val.(type) {
		case string:
			q.Set(kv.key, v)
		case []string:
			for _, s := range v {
				q.Add(kv.key, s)
			}
		case bool:
			q.Set(kv.key, strconv.FormatBool(v))
		case int:
			q.Set(kv.key, strconv.Itoa(v))
		case int64:
			q.Set(kv.key, strconv.FormatInt(v, 10))
		}
	}
	return q
}

func (p params) body() ([]byte, error) {
	m := make(map[string]any, len(p))
	for _, kv := range p {
		m[kv.key] = kv.val
	}
	return json.Marshal(m)
}

// ---- transport and retries ----

// call performs one logical API call with retries. out may be nil.
func (c *Client) call(ctx context.Context, method, endpoint string, p params, out any) error {
	return c.callWithin(ctx, method, endpoint, p, out, c.timeout)
}

// callWithin is call with its own per-attempt timeout. Requests that never
// reach the server (refused, unresolvable, dial or handshake timeout) are
// resent only while the connect timeout since the first attempt allows:
// backing off for a minute on a server that is not there only delays the
// error a person or a controller needs to see.
func (c *Client) callWithin(ctx context.Context, method, endpoint string, p params, out any, attemptTimeout time.Duration) error {
	first := time.Now()
	// GET and DELETE are idempotent in effect (MLflow's deletes succeed or
	// 404 when repeated); POST and PATCH are not treated as such.
	idempotent := method == http.MethodGet || method == http.MethodDelete
	var body []byte
	if method != http.MethodGet {
		b, err := p.body()
		if err != nil {
			return fmt.Errorf("mlflow %s %s at %s: encode request: %w", method, endpoint, c.safeURI, err)
		}
		body = b
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			c.retries.Add(1)
		}
		err := c.once(ctx, method, endpoint, p, body, out, attemptTimeout)
		if err == nil {
			return nil
		}
		var te *transportError
		unreached := errors.As(err, &te) && te.unreached()
		if ctx.Err() != nil {
			return err
		}
		if attempt >= c.maxRetries || !IsRetryable(err) || (!idempotent && !surelyNotApplied(err)) {
			return err
		}
		wait := c.backoff(attempt)
		var ae *APIError
		if errors.As(err, &ae) && ae.RetryAfter > 0 {
			wait = min(ae.RetryAfter, maxRetryAfter)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
			// Sleeping would only end in the deadline; report the real failure.
			return err
		}
		if unreached && time.Since(first)+wait > c.connect {
			te.text += fmt.Sprintf(" (gave up after %d attempts in %s; connect timeout %s)",
				attempt+1, time.Since(first).Round(100*time.Millisecond), c.connect)
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// backoff is "full jitter": uniform in [0, min(max, base*2^attempt)).
func (c *Client) backoff(attempt int) time.Duration {
	ceil := c.backoffMax
	if attempt < 30 {
		if d := c.backoffBase << attempt; d > 0 && d < ceil {
			ceil = d
		}
	}
	return rand.N(ceil) + time.Millisecond
}

func (c *Client) once(ctx context.Context, method, endpoint string, p params, body []byte, out any, attemptTimeout time.Duration) error {
	actx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()

	u := *c.base
	if strings.HasPrefix(endpoint, "/") {
		u.Path = c.base.Path + endpoint
	} else {
		u.Path = c.base.Path + apiPrefix + endpoint
	}
	if method == http.MethodGet || method == http.MethodDelete {
		// DELETE repeats its parameters in the query for the basic-auth plugin.
		u.RawQuery = p.query().Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("mlflow %s %s at %s: build request: %w", method, endpoint, c.safeURI, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if c.authHeader != "" {
		req.Header.Set("Authorization", c.authHeader)
	}

	if method == http.MethodGet {
		c.reads.Add(1)
	} else {
		c.writes.Add(1)
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	status := 0
	var data []byte
	if err == nil {
		status = resp.StatusCode
		data, err = io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
		resp.Body.Close()
		if err == nil && len(data) > maxResponseBytes {
			err = fmt.Errorf("response larger than %d bytes", maxResponseBytes)
		}
	}
	if c.observe != nil {
		c.observe(method, endpoint, status, time.Since(start))
	}
	if err != nil || status/100 != 2 {
		c.failures.Add(1)
	}
	if err != nil {
		return &transportError{
			Method: method, Endpoint: endpoint, TrackingURI: c.safeURI,
			notSent:   neverSent(err),
			permanent: certificateError(err),
			text:      c.scrub(describeTransport(err, ctx)),
			err:       err,
		}
	}
	if status/100 != 2 {
		return c.apiError(method, endpoint, resp, data)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		data = []byte("{}")
	}
	if rt, ok := out.(*rawText); ok {
		rt.s = string(data)
		return nil
	}
	if out == nil {
		if !json.Valid(data) {
			return c.malformed(method, endpoint, status, data)
		}
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return c.malformed(method, endpoint, status, data)
	}
	return nil
}

func (c *Client) malformed(method, endpoint string, status int, data []byte) error {
	return &APIError{
		StatusCode: status, Code: CodeMalformedResponse, Method: method, Endpoint: endpoint,
		TrackingURI: c.safeURI, Message: "reply is not the expected JSON: " + c.scrub(shortText(data)),
	}
}

// describeTransport turns a transport failure into text. The url.Error
// wrapper is dropped because it repeats the full request URL.
func describeTransport(err error, parent context.Context) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) && parent.Err() == nil {
		return "attempt timed out: " + err.Error()
	}
	return err.Error()
}

// neverSent reports failures that happen before any byte of the request can
// reach the server: DNS lookup, connect (refused, unreachable, dial timeout)
// and proxy connect.
func neverSent(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) && (op.Op == "dial" || op.Op == "proxyconnect") {
		return true
	}
	return false
}

func (c *Client) apiError(method, endpoint string, resp *http.Response, data []byte) *APIError {
	ae := &APIError{
		StatusCode: resp.StatusCode, Method: method, Endpoint: endpoint, TrackingURI: c.safeURI,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After")),
	}
	var body struct {
		ErrorCode string          `json:"error_code"`
		Message   string          `json:"message"`
		Detail    json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(data, &body) == nil && (body.ErrorCode != "" || body.Message != "") {
		ae.Code = body.ErrorCode
		ae.Message = c.scrub(body.Message)
	} else {
		ae.Message = c.scrub(shortText(data))
		if json.Unmarshal(data, &body) == nil && len(body.Detail) > 0 {
			var s string
			if json.Unmarshal(body.Detail, &s) == nil {
				ae.Message = c.scrub(shortText([]byte(s)))
			}
		}
	}
	if ae.Code == "" {
		ae.Code = codeForStatus(resp.StatusCode)
	}
	return ae
}

// codeForStatus names replies that carry no MLflow error_code: basic-auth
// 401/403 text, HTML 404 for unknown routes, proxy pages.
func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return CodeBadRequest
	case http.StatusUnauthorized:
		return CodeUnauthenticated
	case http.StatusForbidden:
		return CodePermissionDenied
	case http.StatusNotFound:
		return CodeEndpointNotFound
	case http.StatusRequestTimeout:
		return CodeRequestTimeout
	case http.StatusConflict:
		return "RESOURCE_CONFLICT"
	case http.StatusTooManyRequests:
		return CodeRequestLimitExceeded
	case http.StatusInternalServerError:
		return CodeInternalError
	case http.StatusNotImplemented:
		return "NOT_IMPLEMENTED"
	case http.StatusBadGateway:
		return CodeBadGateway
	case http.StatusServiceUnavailable:
		return CodeTemporarilyUnavail
	case http.StatusGatewayTimeout:
		return CodeDeadlineExceeded
	}
	return "HTTP_" + strconv.Itoa(status)
}

// shortText reduces a non-JSON body to one short line; HTML pages are not
// quoted at all.
func shortText(data []byte) string {
	s := strings.TrimSpace(string(data))
	if s == "" {
		return ""
	}
	if strings.HasPrefix(s, "<") {
		return "non-JSON HTML reply"
	}
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	const limit = 200
	if len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

func parseRetryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// certificateError reports TLS verification failures, which repeating the
// request cannot fix.
func certificateError(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci)
}
