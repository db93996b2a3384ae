package scanrecord

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3API is the part of the S3 client a scan uses; tests count its calls.
type S3API interface {
	ListObjectsV2(ctx context.Context, in *awss3.ListObjectsV2Input, opts ...func(*awss3.Options)) (*awss3.ListObjectsV2Output, error)
	GetObject(ctx context.Context, in *awss3.GetObjectInput, opts ...func(*awss3.Options)) (*awss3.GetObjectOutput, error)
}

// Location is a version's artifacts: a bucket and a key prefix.
type Location struct {
	Bucket, Prefix string
}

func (l Location) String() string { return "s3://" + l.Bucket + "/" + l.Prefix }

// ParseLocation parses s3://bucket/prefix as the S3 target does: a bare
// bucket is no version's location.
func ParseLocation(uri string) (Location, error) {
	rest, ok := strings.CutPrefix(uri, "s3://")
	if !ok {
		scheme, _, _ := strings.Cut(uri, "://")
		return Location{}, fmt.Errorf("artifact URI scheme %q: only s3:// (and mlflow-artifacts:/ mapped onto an s3:// destination) can be scanned", scheme)
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	prefix = strings.Trim(prefix, "/")
	if bucket == "" || prefix == "" {
		return Location{}, fmt.Errorf("artifact URI %s names no version prefix", uri)
	}
	return Location{Bucket: bucket, Prefix: prefix}, nil
}

// Object is one listed artifact.
type Object struct {
	Key  string
	Path string // relative to the location, slash-separated
	Size int64
	ETag string
}

// List lists every object below the location, in key order.
func List(ctx context.Context, api S3API, loc Location) ([]Object, error) {
	var out []Object
	in := &awss3.ListObjectsV2Input{Bucket: aws.String(loc.Bucket), Prefix: aws.String(loc.Prefix + "/")}
	for {
		page, err := api.ListObjectsV2(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", loc, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if strings.HasSuffix(key, "/") {
				continue // a folder marker
			}
			out = append(out, Object{Key: key, Path: strings.TrimPrefix(key, loc.Prefix+"/"), Size: aws.ToInt64(o.Size), ETag: aws.ToString(o.ETag)})
		}
		if !aws.ToBool(page.IsTruncated) || page.NextContinuationToken == nil {
			break
		}
		in.ContinuationToken = page.NextContinuationToken
	}
	slices.SortFunc(out, func(a, b Object) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// Fingerprint hashes a listing (path, size, ETag): any replaced, added or
// removed object changes it, which is what lets a cached scan stand
// without reading the objects again.
func Fingerprint(objs []Object) string {
	h := sha256.New()
	for _, o := range objs {
		fmt.Fprintf(h, "%s\x00%d\x00%s\n", o.Path, o.Size, o.ETag)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// S3Source streams a listed version's objects to the scanner, each once.
type S3Source struct {
	API      S3API
	Location Location
	Objects  []Object
}

// Walk implements scan.Source.
func (s *S3Source) Walk(ctx context.Context, fn func(path string, size int64, open func() (io.ReadCloser, error)) error) error {
	for _, o := range s.Objects {
		o := o
		open := func() (io.ReadCloser, error) {
			out, err := s.API.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(s.Location.Bucket), Key: aws.String(o.Key)})
			if err != nil {
				return nil, fmt.Errorf("reading s3://%s/%s: %w", s.Location.Bucket, o.Key, err)
			}
			return out.Body, nil
		}
		if err := fn(o.Path, o.Size, open); err != nil {
			return err
		}
	}
	return nil
}
