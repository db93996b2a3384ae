// Package prometheus is a small client for Prometheus instant queries
// (/api/v1/query), the only call canary analysis needs. It bounds what it
// reads, retries the failures that are worth retrying, reads credentials
// from the environment by name and keeps them out of every error.
package prometheus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/modelsync/modelsync/internal/redact"
)

// Defaults for Config's zero values.
const (
	// DefaultConnectTimeout matches the other targets' connect timeout.
	DefaultConnectTimeout = 10 * time.Second
	DefaultQueryTimeout   = 30 * time.Second
	DefaultRetries        = 3
	DefaultBackoff        = 500 * time.Millisecond
	// DefaultMaxResponseBytes bounds a response: a canary's counters are
	// a few series per arm, so 8 MiB is generous and still bounded.
	DefaultMaxResponseBytes = 8 << 20
)

// ErrConfig is wrapped by configuration errors (a missing variable, an
// unreadable CA file, a bad address).
var ErrConfig = errors.New("prometheus: invalid configuration")

// Config says how to reach one Prometheus.
type Config struct {
	// Address is the base URL, e.g. http://prometheus.monitoring:9090.
	Address string
	// BearerTokenEnv names an environment variable holding a bearer token.
	BearerTokenEnv string
	// UsernameEnv and PasswordEnv name the variables of basic auth.
	UsernameEnv, PasswordEnv string
	// CAFile is a PEM bundle trusted besides the system roots.
	CAFile             string
	InsecureSkipVerify bool
	// ConnectTimeout bounds dialing and the TLS handshake.
	ConnectTimeout time.Duration
	// QueryTimeout bounds one attempt of a query, and is passed to
	// Prometheus as its own evaluation timeout.
	QueryTimeout time.Duration
	// Retries is how many times a query is retried after a network error,
	// 429 or 5xx; negative means none.
	Retries int
	// Backoff is the first retry's delay, doubled each time.
	Backoff          time.Duration
	MaxResponseBytes int64
	// Getenv reads the credential variables; nil means os.Getenv. Tests
	// set it so they need not change the process environment.
	Getenv func(string) string
}

// Querier is what canary analysis needs from a metrics provider: the
// counter series an instant query returns at a given time.
type Querier interface {
	Query(ctx context.Context, promql string, at time.Time) (Vector, error)
}

// Sample is one series of an instant vector.
type Sample struct {
	// Metric is the series' label set.
	Metric map[string]string `json:"metric"`
	Value  float64           `json:"value"`
}

// Key is the series' label set in a stable text form ("{a="1",b="2"}"),
// the key analysis.Counter tracks series by.
func (s Sample) Key() string {
	names := make([]string, 0, len(s.Metric))
	for n := range s.Metric {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(s.Metric[n]))
	}
	b.WriteByte('}')
	return b.String()
}

// Vector is an instant query's result.
type Vector []Sample

// Values maps each series' Key to its value.
func (v Vector) Values() map[string]float64 {
	m := make(map[string]float64, len(v))
	for _, s := range v {
		m[s.Key()] += s.Value
	}
	return m
}

// Error is a failed query. Its text names the endpoint without
// credentials and never holds a token.
type Error struct {
	// Endpoint is the redacted query URL (no query string).
	Endpoint string
	Query    string
	// Status is the HTTP status, 0 for a network error.
	Status int
	// Type and Message are Prometheus's errorType and error.
	Type, Message string
	Err           error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "prometheus %s: query %q", e.Endpoint, e.Query)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
	}
	if e.Type != "" || e.Message != "" {
		fmt.Fprintf(&b, ": %s: %s", e.Type, e.Message)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether retrying may help: a network error, 429 or 5xx.
func (e *Error) Temporary() bool {
	return e.Status == 0 && e.Err != nil || e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// Client queries one Prometheus. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	endpoint string // redacted, for errors
	http     *http.Client
	cfg      Config
	auth     func(*http.Request)
}

// New checks cfg and builds a Client. Credentials are read from the
// environment once, here, so a missing variable fails at start-up and
// names the variable (never its value).
func New(cfg Config) (*Client, error) {
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = DefaultQueryTimeout
	}
	if cfg.Retries == 0 {
		cfg.Retries = DefaultRetries
	} else if cfg.Retries < 0 {
		cfg.Retries = 0
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	safe := redact.URL(cfg.Address)
	u, err := url.Parse(cfg.Address)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: address %q is not an http(s) URL", ErrConfig, safe)
	}
	if u.User != nil || u.RawQuery != "" {
		// Credentials belong in environment variables, where they stay out of
		// Git and of every message that names the address.
		return nil, fmt.Errorf("%w: address %q must not carry credentials or a query; use bearerTokenEnv or basicAuth", ErrConfig, safe)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	c := &Client{base: u, endpoint: safe, cfg: cfg}
	switch {
	case cfg.BearerTokenEnv != "" && (cfg.UsernameEnv != "" || cfg.PasswordEnv != ""):
		return nil, fmt.Errorf("%w: both a bearer token and basic auth for %s", ErrConfig, safe)
	case cfg.BearerTokenEnv != "":
		tok := getenv(cfg.BearerTokenEnv)
		if tok == "" {
			return nil, fmt.Errorf("%w: environment variable %s (bearer token for %s) is empty or unset", ErrConfig, cfg.BearerTokenEnv, safe)
		}
		c.auth = func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	case cfg.UsernameEnv != "" || cfg.PasswordEnv != "":
		user, pass := getenv(cfg.UsernameEnv), getenv(cfg.PasswordEnv)
		if cfg.UsernameEnv == "" || cfg.PasswordEnv == "" || user == "" || pass == "" {
			return nil, fmt.Errorf("%w: basic auth for %s needs both %q and %q set", ErrConfig, safe, cfg.UsernameEnv, cfg.PasswordEnv)
		}
		c.auth = func(r *http.Request) { r.SetBasicAuth(user, pass) }
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipVerify} //nolint:gosec // an explicit, documented opt-in
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: CA file for %s: %v", ErrConfig, safe, err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: CA file %s for %s holds no PEM certificate", ErrConfig, cfg.CAFile, safe)
		}
		tlsCfg.RootCAs = pool
	}
	dialer := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
	c.http = &http.Client{
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         dialer.DialContext,
			TLSClientConfig:     tlsCfg,
			TLSHandshakeTimeout: cfg.ConnectTimeout,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     90 * time.Second,
		},
		// A redirect could carry the Authorization header to another host.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

// Endpoint is the redacted base address, for logs and status.
func (c *Client) Endpoint() string { return c.endpoint }

// Query evaluates promql at time at (zero: now) and returns its instant
// vector. A scalar result comes back as one sample without labels; other
// result types are errors, since a counter query returns a vector.
func (c *Client) Query(ctx context.Context, promql string, at time.Time) (Vector, error) {
	var lastErr error
	for attempt := 0; ; attempt++ {
		v, err := c.once(ctx, promql, at)
		if err == nil {
			return v, nil
		}
		lastErr = err
		var qe *Error
		if !errors.As(err, &qe) || !qe.Temporary() || attempt >= c.cfg.Retries || ctx.Err() != nil {
			return nil, lastErr
		}
		delay := c.cfg.Backoff << attempt
		select {
		case <-ctx.Done():
			return nil, lastErr
		case <-time.After(delay):
		}
	}
}

func (c *Client) once(ctx context.Context, promql string, at time.Time) (Vector, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.QueryTimeout)
	defer cancel()
	form := url.Values{"query": {promql}, "timeout": {c.cfg.QueryTimeout.String()}}
	if !at.IsZero() {
		form.Set("time", strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64))
	}
	u := *c.base
	u.Path += "/api/v1/query"
	fail := func(status int, typ, msg string, err error) error {
		return &Error{Endpoint: c.endpoint + "/api/v1/query", Query: promql, Status: status, Type: typ, Message: msg, Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fail(0, "", "", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if c.auth != nil {
		c.auth(req)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// url.Error repeats the URL; ours has no credentials, but strip
		// the wrapper so the message is not doubled.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fail(0, "", "", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseBytes+1))
	if err != nil {
		return nil, fail(0, "", "", fmt.Errorf("read response: %w", err))
	}
	if int64(len(data)) > c.cfg.MaxResponseBytes {
		return nil, fail(resp.StatusCode, "", "", fmt.Errorf("response larger than %d bytes", c.cfg.MaxResponseBytes))
	}
	var body struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if jerr := json.Unmarshal(data, &body); jerr != nil || body.Status == "" {
		if resp.StatusCode/100 != 2 {
			return nil, fail(resp.StatusCode, "", snippet(data), nil)
		}
		return nil, fail(resp.StatusCode, "", "", fmt.Errorf("malformed response: %s", snippet(data)))
	}
	if body.Status != "success" || resp.StatusCode/100 != 2 {
		return nil, fail(resp.StatusCode, body.ErrorType, body.Error, nil)
	}
	switch body.Data.ResultType {
	case "vector":
		var raw []struct {
			Metric map[string]string  `json:"metric"`
			Value  [2]json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(body.Data.Result, &raw); err != nil {
			return nil, fail(resp.StatusCode, "", "", fmt.Errorf("malformed vector: %w", err))
		}
		v := make(Vector, 0, len(raw))
		for _, r := range raw {
			x, err := sampleValue(r.Value[1])
			if err != nil {
				return nil, fail(resp.StatusCode, "", "", err)
			}
			v = append(v, Sample{Metric: r.Metric, Value: x})
		}
		return v, nil
	case "scalar":
		var raw [2]json.RawMessage
		if err := json.Unmarshal(body.Data.Result, &raw); err != nil {
			return nil, fail(resp.StatusCode, "", "", fmt.Errorf("malformed scalar: %w", err))
		}
		x, err := sampleValue(raw[1])
		if err != nil {
			return nil, fail(resp.StatusCode, "", "", err)
		}
		return Vector{{Metric: map[string]string{}, Value: x}}, nil
	default:
		return nil, fail(resp.StatusCode, "", "", fmt.Errorf("result type %q, want a vector of counters", body.Data.ResultType))
	}
}

func sampleValue(raw json.RawMessage) (float64, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, fmt.Errorf("malformed sample value %s", snippet(raw))
	}
	switch s {
	case "NaN":
		return math.NaN(), nil
	case "+Inf":
		return math.Inf(1), nil
	case "-Inf":
		return math.Inf(-1), nil
	}
	return strconv.ParseFloat(s, 64)
}

// snippet keeps error text short and printable.
func snippet(b []byte) string {
	const limit = 200
	s := strings.ToValidUTF8(string(b), "?")
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	return strings.TrimSpace(s)
}
