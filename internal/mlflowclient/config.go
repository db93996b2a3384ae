package mlflowclient

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Defaults mirror MLflow's Python client where that is sensible for a
// long-running reconciler.
const (
	// DefaultTimeout bounds one HTTP attempt (MLFLOW_HTTP_REQUEST_TIMEOUT's default).
	DefaultTimeout = 120 * time.Second
	// DefaultConnectTimeout bounds how long the client keeps trying to reach
	// a server it has no connection to: dialing, the TLS handshake, resends
	// of requests that never reached it, and the first exchange (the
	// capability probe). An unreachable endpoint fails within it instead of
	// after every retry's backoff.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultMaxRetries is MLFLOW_HTTP_REQUEST_MAX_RETRIES' default.
	DefaultMaxRetries = 7
	// MaxRetriesCap is MLflow's hard cap on retries.
	MaxRetriesCap = 10
	// DefaultBackoffBase and DefaultBackoffMax shape the full-jitter backoff:
	// the n-th retry sleeps a uniform random time in [0, min(max, base*2^n)).
	DefaultBackoffBase = time.Second
	DefaultBackoffMax  = 60 * time.Second
)

// Config configures a Client.
//
// Authentication: when both Username and Password are set the client sends
// HTTP Basic; otherwise, when Token is set, it sends "Authorization: Bearer".
// This is the order MLflow's Python client applies in code (rest_utils), which
// differs from the docstring of MLFLOW_TRACKING_TOKEN. A TrackingURI with
// userinfo (http://user:pass@host) supplies Username/Password when those are
// empty; the userinfo is always removed from the URL the client uses and
// reports in errors.
type Config struct {
	// TrackingURI is http(s)://host[:port][/prefix].
	TrackingURI string
	Username    string
	Password    string
	Token       string
	// InsecureTLS skips server certificate verification. It applies to the
	// transport New builds, so it cannot be combined with HTTPClient.
	InsecureTLS bool
	// Timeout bounds each HTTP attempt; 0 means DefaultTimeout.
	Timeout time.Duration
	// ConnectTimeout bounds reaching the server (see DefaultConnectTimeout);
	// 0 means DefaultConnectTimeout. Dial and TLS handshake limits apply to
	// the transport New builds only.
	ConnectTimeout time.Duration
	// MaxRetries is the number of resends after the first attempt; 0 means
	// DefaultMaxRetries, a negative value disables retries, values above
	// MaxRetriesCap are capped.
	MaxRetries int
	// BackoffBase and BackoffMax shape the retry sleeps (0 = defaults).
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// HTTPClient replaces the client New would build. Its Timeout, if any,
	// still applies on top of Timeout.
	HTTPClient *http.Client
	// Observe, when set, is called after every HTTP attempt (retries
	// included) with the method, the endpoint below /api/2.0/mlflow, the HTTP
	// status (0 when no reply arrived) and the attempt's duration. It must be
	// safe for concurrent use.
	Observe func(method, endpoint string, status int, dur time.Duration)

	// envErr records an unparsable environment variable seen by
	// ConfigFromEnv; New reports it.
	envErr error
}

// String redacts credentials so a Config can be logged.
func (c Config) String() string {
	return fmt.Sprintf("mlflow.Config{TrackingURI: %s, Username: %q, Password: %s, Token: %s, InsecureTLS: %t, Timeout: %s, ConnectTimeout: %s, MaxRetries: %d}",
		redactURL(c.TrackingURI), c.Username, mask(c.Password), mask(c.Token), c.InsecureTLS, c.Timeout, c.ConnectTimeout, c.MaxRetries)
}

// GoString keeps %#v from printing secrets.
func (c Config) GoString() string { return c.String() }

func mask(s string) string {
	if s == "" {
		return `""`
	}
	return "<redacted>"
}

// ConfigFromEnv reads the variables MLflow's client reads:
//
//	MLFLOW_TRACKING_URI
//	MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD   HTTP Basic (wins when both are set)
//	MLFLOW_TRACKING_TOKEN                                 Bearer (used otherwise)
//	MLFLOW_TRACKING_INSECURE_TLS                          "true"/"1" skips TLS verification
//	MLFLOW_HTTP_REQUEST_MAX_RETRIES                       retries (default 7, cap 10)
//	MLFLOW_HTTP_REQUEST_TIMEOUT                           seconds per attempt (default 120)
//
// ~/.mlflow/credentials is not read. An unparsable value is reported by New.
func ConfigFromEnv(getenv func(string) string) Config {
	c := Config{
		TrackingURI: strings.TrimSpace(getenv("MLFLOW_TRACKING_URI")),
		Username:    getenv("MLFLOW_TRACKING_USERNAME"),
		Password:    getenv("MLFLOW_TRACKING_PASSWORD"),
		Token:       getenv("MLFLOW_TRACKING_TOKEN"),
	}
	var errs []string
	if v := strings.TrimSpace(getenv("MLFLOW_TRACKING_INSECURE_TLS")); v != "" {
		switch strings.ToLower(v) {
		case "true", "1":
			c.InsecureTLS = true
		case "false", "0":
		default:
			errs = append(errs, fmt.Sprintf("MLFLOW_TRACKING_INSECURE_TLS=%q is not a boolean", v))
		}
	}
	if v := strings.TrimSpace(getenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES")); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil || n < 0:
			errs = append(errs, fmt.Sprintf("MLFLOW_HTTP_REQUEST_MAX_RETRIES=%q is not a non-negative integer", v))
		case n == 0:
			c.MaxRetries = -1
		default:
			c.MaxRetries = n
		}
	}
	if v := strings.TrimSpace(getenv("MLFLOW_HTTP_REQUEST_TIMEOUT")); v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Sprintf("MLFLOW_HTTP_REQUEST_TIMEOUT=%q is not a positive number of seconds", v))
		} else {
			c.Timeout = time.Duration(n * float64(time.Second))
		}
	}
	if len(errs) > 0 {
		c.envErr = fmt.Errorf("%w: %s", ErrInvalidArgument, strings.Join(errs, "; "))
	}
	return c
}
