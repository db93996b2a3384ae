// Package github connects modelsync to GitHub: a REST client (token or
// GitHub App installation), a webhook receiver, and the pull-request gate
// that posts commit statuses and a plan comment for each pull request.
package github

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	gh "github.com/google/go-github/v60/github"
)

// ClientOptions configure NewClient. Exactly one of Token or the App
// fields (AppID, InstallationID, PrivateKey) must be set.
type ClientOptions struct {
	Token string

	AppID          int64
	InstallationID int64
	// PrivateKey is the App's PEM private key.
	PrivateKey []byte

	// BaseURL is the REST API root of GitHub Enterprise Server, e.g.
	// https://ghe.example.com/api/v3/. Empty means github.com.
	BaseURL string
	// Transport is the innermost round tripper; nil means
	// http.DefaultTransport.
	Transport http.RoundTripper
	// MaxRateLimitWait bounds how long a request waits for a primary or
	// secondary rate limit to reset before failing with *RateLimitedError.
	// Zero means one minute.
	MaxRateLimitWait time.Duration
	// Timeout bounds one attempt of an HTTP request, so retries get their
	// own time; zero means 30 seconds.
	Timeout time.Duration
	// Retry bounds the retries of transient failures; the zero value
	// means the defaults of RetryPolicy.
	Retry RetryPolicy
	// OnRateLimit, when set, is called with the new state after every
	// response that carries rate-limit headers, e.g. to set a Prometheus
	// gauge. It must be quick and safe for concurrent use.
	OnRateLimit func(RateLimitState)
}

// Client is a GitHub REST client with rate limits tracked and respected.
type Client struct {
	gh     *gh.Client
	limits *RateLimits
	retry  RetryPolicy
}

// NewClient builds a client for a token or a GitHub App installation.
func NewClient(opts ClientOptions) (*Client, error) {
	app := opts.AppID != 0 || opts.InstallationID != 0 || len(opts.PrivateKey) > 0
	switch {
	case opts.Token != "" && app:
		return nil, errors.New("github: configure either a token or a GitHub App, not both")
	case opts.Token == "" && !app:
		return nil, errors.New("github: no credentials: set a token or a GitHub App id, installation id and private key")
	case app && (opts.AppID == 0 || opts.InstallationID == 0 || len(opts.PrivateKey) == 0):
		return nil, errors.New("github: a GitHub App needs an app id, an installation id and a private key")
	}
	base := opts.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	maxWait := opts.MaxRateLimitWait
	if maxWait == 0 {
		maxWait = time.Minute
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	limits := &RateLimits{onChange: opts.OnRateLimit}
	retry := opts.Retry.withDefaults()
	rt := http.RoundTripper(&rateLimitTransport{next: base, limits: limits, maxWait: maxWait, retry: retry, timeout: timeout})
	apiBase := strings.TrimSuffix(opts.BaseURL, "/")
	if apiBase != "" && !strings.HasSuffix(apiBase, "/api/v3") {
		// GitHub Enterprise Server serves the REST API under /api/v3, as
		// go-github assumes; the App token endpoint must agree.
		apiBase += "/api/v3"
	}
	if app {
		itr, err := ghinstallation.New(rt, opts.AppID, opts.InstallationID, opts.PrivateKey)
		if err != nil {
			// The error may quote the key's parse failure, never the key.
			return nil, fmt.Errorf("github: app %d installation %d: private key: %w", opts.AppID, opts.InstallationID, err)
		}
		if apiBase != "" {
			itr.BaseURL = apiBase
		}
		rt = itr
	}
	// No client-wide timeout: it would cover every attempt and wait of
	// one request; the transport bounds each attempt instead.
	c := gh.NewClient(&http.Client{Transport: rt})
	if opts.Token != "" {
		c = c.WithAuthToken(opts.Token)
	}
	if apiBase != "" {
		var err error
		if c, err = c.WithEnterpriseURLs(apiBase+"/", apiBase+"/"); err != nil {
			return nil, fmt.Errorf("github: enterprise base URL: %w", err)
		}
	}
	return &Client{gh: c, limits: limits, retry: retry}, nil
}

// RateLimits returns the live rate-limit state of this client.
func (c *Client) RateLimits() *RateLimits { return c.limits }

// REST returns the underlying go-github client.
func (c *Client) REST() *gh.Client { return c.gh }
