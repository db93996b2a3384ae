package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// S3 is a running S3-compatible server: MinIO (STANDARD and
// REDUCED_REDUNDANCY only) or moto (all AWS classes, archive and restore).
type S3 struct {
	Endpoint  string // http://127.0.0.1:<port>
	AccessKey string
	SecretKey string
	Region    string
	Kind      string // "minio" or "moto"
	ReadyIn   time.Duration

	proc    *proc
	dataDir string
}

// Client returns an S3 client for this server: path-style addressing,
// static credentials, checksums only where the API requires them.
func (s *S3) Client(ctx context.Context) *s3.Client {
	return s.ClientVia(ctx, s.Endpoint)
}

// ClientVia is Client with another endpoint, e.g. a FaultProxy's URL in
// front of this server.
func (s *S3) ClientVia(_ context.Context, endpoint string) *s3.Client {
	return s3.New(s3.Options{
		Region:                     s.Region,
		BaseEndpoint:               aws.String(endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// MakeBucket creates a bucket, with versioning enabled when asked.
func (s *S3) MakeBucket(ctx context.Context, name string, versioned bool) error {
	c := s.Client(ctx)
	in := &s3.CreateBucketInput{Bucket: aws.String(name)}
	if s.Region != "" && s.Region != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(s.Region),
		}
	}
	if _, err := c.CreateBucket(ctx, in); err != nil {
		return fmt.Errorf("testenv: %s: create bucket %s: %w", s.Kind, name, err)
	}
	if versioned {
		_, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
			Bucket:                  aws.String(name),
			VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled},
		})
		if err != nil {
			return fmt.Errorf("testenv: %s: enable versioning on %s: %w", s.Kind, name, err)
		}
	}
	return nil
}

// Close stops the server and deletes its data.
func (s *S3) Close() error {
	var errs []error
	if s.proc != nil {
		errs = append(errs, s.proc.Close())
	}
	if s.dataDir != "" {
		errs = append(errs, os.RemoveAll(s.dataDir))
	}
	return errors.Join(errs...)
}

func (s *S3) logPaths() []string {
	if s.proc == nil {
		return nil
	}
	return []string{s.proc.LogPath}
}

// NewMinIO starts MinIO for one test.
func NewMinIO(tb testing.TB) *S3 {
	tb.Helper()
	RequireE2E(tb)
	s, err := StartMinIO(tbContext(tb), tbLogDir(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tbCleanup(tb, s.Close, s.logPaths)
	return s
}

// NewMoto starts moto for one test.
func NewMoto(tb testing.TB, opts MotoOptions) *S3 {
	tb.Helper()
	RequireE2E(tb)
	s, err := StartMoto(tbContext(tb), tbLogDir(tb), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tbCleanup(tb, s.Close, s.logPaths)
	return s
}
