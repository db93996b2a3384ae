package kserve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"

	"github.com/modelsync/modelsync/internal/redact"
)

// DefaultConnectTimeout bounds reaching the API server before the first
// informer starts (Config.ConnectTimeout).
const DefaultConnectTimeout = 10 * time.Second

// UnreachableError says that the Kubernetes API server could not be
// reached or refused modelsync's credentials, naming the server (without
// credentials) and the cause.
type UnreachableError struct {
	Server string // redact.URL of the rest.Config host
	Cause  string // "connection refused", "no answer within 10s", ...
	Err    error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("kubernetes API server %s: %s", e.Server, e.Cause)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// prober checks once that the API server answers before informers are
// started: an informer retries an unreachable server forever and reports
// nothing to the waiter (a blackholed server yields no error at all), so
// without this a plan waited for the cache-sync timeout and said neither
// where nor why.
type prober struct {
	rc      rest.Interface
	server  string
	timeout time.Duration
}

func newProber(rc *rest.Config, timeout time.Duration) (*prober, error) {
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	pc := rest.CopyConfig(rc)
	pc.Timeout = timeout
	// A discovery client carries the serializer and transport settings
	// the informers use; the probe only borrows its REST client.
	d, err := discovery.NewDiscoveryClientForConfig(pc)
	if err != nil {
		return nil, fmt.Errorf("kserve: API server probe client: %w", err)
	}
	return &prober{rc: d.RESTClient(), server: redact.URL(rc.Host), timeout: timeout}, nil
}

// probe asks the server for /version, which every authenticated (and, by
// default, anonymous) client may read. Any HTTP answer but 401 means the
// server is there: 403 and 404 are left to the requests that need access.
func (p *prober) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	err := p.rc.Get().AbsPath("/version").Do(ctx).Error()
	if err == nil {
		return nil
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) && !apierrors.IsUnauthorized(err) {
		return nil
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err() // the caller gave up; nothing is known about the server
	}
	return &UnreachableError{Server: p.server, Cause: describeUnreachable(err, p.timeout), Err: err}
}

// describeUnreachable names the cause in the words a person would search
// for; the transport's own text follows for the detail.
func describeUnreachable(err error, timeout time.Duration) string {
	detail := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		detail = ue.Err.Error() // the URL is already in the message
	}
	var ne net.Error
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var dns *net.DNSError
	var rh tls.RecordHeaderError
	switch {
	case apierrors.IsUnauthorized(err):
		return "401 Unauthorized: the server rejected the kubeconfig's credentials"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused: " + detail
	case errors.As(err, &dns):
		return "host name does not resolve: " + detail
	case errors.As(err, &cv), errors.As(err, &ua), errors.As(err, &hn), errors.As(err, &rh):
		return "TLS: " + detail
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("no answer within %s (connect timeout): %s", timeout, detail)
	}
	return detail
}
