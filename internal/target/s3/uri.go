package s3

import (
	"fmt"
	"strings"
)

// Location is where one version's artifacts live: a bucket and a key prefix
// without a trailing slash.
type Location struct {
	Bucket string `json:"bucket"`
	Prefix string `json:"prefix"`
}

// ParseURI parses s3://bucket/prefix. A location must name a prefix below
// the bucket root: planning class changes for a whole bucket because a
// registry answered with a bare bucket would touch unrelated data.
func ParseURI(uri string) (Location, error) {
	rest, ok := strings.CutPrefix(uri, "s3://")
	if !ok {
		scheme, _, found := strings.Cut(uri, "://")
		if !found {
			scheme = "(none)"
		}
		return Location{}, fmt.Errorf("artifact URI scheme %q: only s3:// locations are managed", scheme)
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	prefix = strings.Trim(prefix, "/")
	if bucket == "" {
		return Location{}, fmt.Errorf("artifact URI s3://%s has no bucket", rest)
	}
	if prefix == "" {
		return Location{}, fmt.Errorf("artifact URI s3://%s/ is a whole bucket, not a version prefix", bucket)
	}
	return Location{Bucket: bucket, Prefix: prefix}, nil
}

func (l Location) String() string { return "s3://" + l.Bucket + "/" + l.Prefix }

// contains reports whether key lies under the location's prefix.
func (l Location) contains(bucket, key string) bool {
	return bucket == l.Bucket && strings.HasPrefix(key, l.Prefix+"/")
}

// within reports whether l equals or is nested below o.
func (l Location) within(o Location) bool {
	return l.Bucket == o.Bucket && (l.Prefix == o.Prefix || strings.HasPrefix(l.Prefix, o.Prefix+"/"))
}
