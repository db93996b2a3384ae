package mlflowclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// MLflow error codes the helpers below recognise. Servers may send others;
// APIError.Code keeps whatever the server sent.
const (
	CodeInvalidParameterValue = "INVALID_PARAMETER_VALUE"
	CodeBadRequest            = "BAD_REQUEST"
	CodeResourceAlreadyExists = "RESOURCE_ALREADY_EXISTS"
	CodeAlreadyExists         = "ALREADY_EXISTS"
	CodeResourceDoesNotExist  = "RESOURCE_DOES_NOT_EXIST"
	CodeNotFound              = "NOT_FOUND"
	CodeEndpointNotFound      = "ENDPOINT_NOT_FOUND"
	CodeUnauthenticated       = "UNAUTHENTICATED"
	CodePermissionDenied      = "PERMISSION_DENIED"
	CodeRequestLimitExceeded  = "REQUEST_LIMIT_EXCEEDED"
	CodeInternalError         = "INTERNAL_ERROR"
	CodeTemporarilyUnavail    = "TEMPORARILY_UNAVAILABLE"
	CodeDeadlineExceeded      = "DEADLINE_EXCEEDED"
	CodeRequestTimeout        = "REQUEST_TIMEOUT"
	CodeBadGateway            = "BAD_GATEWAY"
	CodeMalformedResponse     = "MALFORMED_RESPONSE"
)

// ErrInvalidArgument marks requests this client refuses to send because the
// server would reject them, or worse, fail them with a retryable 500 (for
// example archive_existing_versions with a target stage other than Staging or
// Production). IsInvalidParameter reports true for it.
var ErrInvalidArgument = errors.New("mlflow: invalid argument")

// APIError is a non-2xx reply from an MLflow server (or a 2xx reply that could
// not be decoded, with Code MALFORMED_RESPONSE).
type APIError struct {
	StatusCode int
	// Code is MLflow's error_code, e.g. RESOURCE_DOES_NOT_EXIST. Replies that
	// are not MLflow JSON (basic-auth 401/403 text, HTML 404 pages, proxies)
	// get a code derived from the status: UNAUTHENTICATED, PERMISSION_DENIED,
	// ENDPOINT_NOT_FOUND, ...
	Code    string
	Message string
	Method  string
	// Endpoint is the path below /api/2.0/mlflow, e.g. "registered-models/alias".
	Endpoint string
	// TrackingURI is the server base URL without userinfo.
	TrackingURI string
	// RetryAfter is the server's Retry-After hint, zero when absent.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("mlflow %s %s at %s: HTTP %d %s: %s",
		e.Method, e.Endpoint, e.TrackingURI, e.StatusCode, e.Code, msg)
}

// transportError is a request that got no HTTP reply. notSent is true when the
// request surely never reached the server (the connection could not be
// opened), which is what makes a write safe to resend.
// permanent marks failures a resend cannot fix (TLS verification). text is
// the scrubbed description used in Error().
type transportError struct {
	Method, Endpoint, TrackingURI string
	notSent, permanent            bool
	text                          string
	err                           error
}

func (e *transportError) Error() string {
	return fmt.Sprintf("mlflow %s %s at %s: %s", e.Method, e.Endpoint, e.TrackingURI, e.text)
}

func (e *transportError) Unwrap() error { return e.err }

// unreached reports a failure to reach the server at all: the connection
// could not be opened, or the TLS handshake did not complete. A resend can
// help only once the server is back, so such resends are bounded by the
// connect timeout rather than the retry budget.
func (e *transportError) unreached() bool {
	return e.notSent || strings.Contains(e.text, "TLS handshake timeout")
}

func apiCode(err error) (int, string, bool) {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.StatusCode, ae.Code, true
	}
	return 0, "", false
}

// IsNotFound reports whether the model, version, run or experiment does not
// exist. An unknown endpoint (ENDPOINT_NOT_FOUND) is not "not found": see
// IsEndpointNotFound.
func IsNotFound(err error) bool {
	_, code, ok := apiCode(err)
	return ok && (code == CodeResourceDoesNotExist || code == CodeNotFound)
}

// IsEndpointNotFound reports whether the server does not know the route (an
// HTML 404), e.g. a feature missing from an older MLflow.
func IsEndpointNotFound(err error) bool {
	_, code, ok := apiCode(err)
	return ok && code == CodeEndpointNotFound
}

// IsAlreadyExists reports whether a create failed because the object exists.
// MLflow sends RESOURCE_ALREADY_EXISTS with HTTP 400, not 409.
func IsAlreadyExists(err error) bool {
	_, code, ok := apiCode(err)
	return ok && (code == CodeResourceAlreadyExists || code == CodeAlreadyExists)
}

// IsInvalidParameter reports whether the request was rejected as malformed,
// by the server (INVALID_PARAMETER_VALUE, BAD_REQUEST) or by this client
// before sending (ErrInvalidArgument). Note that get-by-alias for an alias
// that is not set is reported this way by MLflow; use ReadAliases to decide
// whether an alias is set.
func IsInvalidParameter(err error) bool {
	if errors.Is(err, ErrInvalidArgument) {
		return true
	}
	_, code, ok := apiCode(err)
	return ok && (code == CodeInvalidParameterValue || code == CodeBadRequest)
}

// IsUnauthenticated reports a 401 (bad or missing credentials).
func IsUnauthenticated(err error) bool {
	status, code, ok := apiCode(err)
	return ok && (status == http.StatusUnauthorized || code == CodeUnauthenticated)
}

// IsPermissionDenied reports a 403.
func IsPermissionDenied(err error) bool {
	status, code, ok := apiCode(err)
	return ok && (status == http.StatusForbidden || code == CodePermissionDenied)
}

// IsRetryable reports whether repeating the same call later may succeed:
// HTTP 408, 429, 500, 502, 503, 504 and failures to get any reply. Context
// cancellation and deadline expiry of the caller's context are not retryable.
// For writes, a retryable error does not say whether the write took effect;
// re-read before writing again (the Ensure* helpers do).
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if status, _, ok := apiCode(err); ok {
		return retryableStatus(status)
	}
	var te *transportError
	if errors.As(err, &te) {
		return !te.permanent
	}
	var ne net.Error
	return errors.As(err, &ne)
}

func retryableStatus(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// surelyNotApplied reports whether a failed write certainly had no effect on
// the server: the connection was never opened, or the server (or a proxy in
// front of it) answered 429 or 503, which MLflow and common proxies send
// before dispatching to a handler.
func surelyNotApplied(err error) bool {
	var te *transportError
	if errors.As(err, &te) {
		return te.notSent
	}
	status, _, ok := apiCode(err)
	return ok && (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable)
}

// definitelyFailed reports whether a failed write certainly did not take
// effect because the server rejected it (4xx other than 408/429): rereading
// would only confirm the rejection.
func definitelyFailed(err error) bool {
	status, _, ok := apiCode(err)
	return ok && status >= 400 && status < 500 && !retryableStatus(status)
}
