package s3

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// ClientOptions configures NewClient. Credentials always come from the
// standard chain (environment, shared files, SSO, web identity, IMDS).
type ClientOptions struct {
	// Region overrides the chain's region.
	Region string
	// Profile selects a shared-config profile.
	Profile string
	// Endpoint points the client at an S3-compatible store, e.g.
	// http://127.0.0.1:9000.
	Endpoint string
	// PathStyle addresses buckets as endpoint/bucket rather than as a host
	// name, which most S3-compatible stores need.
	PathStyle bool
	// ConnectTimeout bounds opening a connection (dial and TLS handshake);
	// 0 means 10 seconds, where the SDK would wait 30 for the dial alone.
	ConnectTimeout time.Duration
}

// NewClient builds an S3 client from the standard AWS configuration chain.
func NewClient(ctx context.Context, o ClientOptions) (*s3.Client, error) {
	var opts []func(*config.LoadOptions) error
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(o.Profile))
	}
	connect := o.ConnectTimeout
	if connect <= 0 {
		connect = 10 * time.Second
	}
	opts = append(opts, config.WithHTTPClient(awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = connect }).
		WithTransportOptions(func(t *http.Transport) { t.TLSHandshakeTimeout = connect })))
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3: loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		if o.Endpoint == "" {
			return nil, fmt.Errorf("s3: no AWS region configured (set AWS_REGION or the profile's region)")
		}
		// S3-compatible stores sign with a region but rarely care which.
		cfg.Region = "us-east-1"
	}
	return s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.PathStyle
	}), nil
}
