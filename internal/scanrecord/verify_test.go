package scanrecord

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/modelsync/modelsync/internal/advisory"
	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/internal/scan"
)

// fakeS3 is an in-memory bucket counting reads.
type fakeS3 struct {
	mu    sync.Mutex
	objs  map[string][]byte
	gets  int
	lists int
}

func (f *fakeS3) ListObjectsV2(_ context.Context, in *awss3.ListObjectsV2Input, _ ...func(*awss3.Options)) (*awss3.ListObjectsV2Output, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	out := &awss3.ListObjectsV2Output{IsTruncated: aws.Bool(false)}
	var keys []string
	for k := range f.objs {
		if strings.HasPrefix(k, aws.ToString(in.Prefix)) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		sum := md5.Sum(f.objs[k])
		out.Contents = append(out.Contents, types.Object{Key: aws.String(k), Size: aws.Int64(int64(len(f.objs[k]))), ETag: aws.String(`"` + hex.EncodeToString(sum[:]) + `"`)})
	}
	return out, nil
}

func (f *fakeS3) GetObject(_ context.Context, in *awss3.GetObjectInput, _ ...func(*awss3.Options)) (*awss3.GetObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	b, ok := f.objs[aws.ToString(in.Key)]
	if !ok {
		return nil, errors.New("NoSuchKey")
	}
	return &awss3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(b))}, nil
}

type fakeRegistry struct{ tags map[string]string }

func (r *fakeRegistry) GetModelVersion(_ context.Context, model string, version int) (*mlflowclient.ModelVersion, error) {
	return &mlflowclient.ModelVersion{Name: model, Version: version, Tags: cloneTags(r.tags)}, nil
}

func (r *fakeRegistry) SetModelVersionTag(_ context.Context, _ string, _ int, k, v string) error {
	if len(v) > 5000 {
		return errors.New("tag value too long")
	}
	r.tags[k] = v
	return nil
}

func cloneTags(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

type fixedLocator string

func (l fixedLocator) ArtifactURI(context.Context, string, int) (string, error) {
	return string(l), nil
}

func TestEnsureCachesAndVerifyDetectsReplacement(t *testing.T) {
	ctx := context.Background()
	s3 := &fakeS3{objs: map[string][]byte{
		"art/1/model/model.pkl":        []byte("\x80\x04N."),
		"art/1/model/requirements.txt": []byte("scikit-learn==1.4.2\npandas\n"),
		"art/1/model/MLmodel":          []byte("flavors: {}\n"),
	}}
	reg := &fakeRegistry{tags: map[string]string{}}
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	db := advisory.NewDB([]*advisory.Record{{ID: "PYSEC-X", Affected: []advisory.Affected{{Package: advisory.Package{Ecosystem: "PyPI", Name: "scikit-learn"},
		Ranges: []advisory.Range{{Type: "ECOSYSTEM", Events: []advisory.Event{{Introduced: "0"}, {Fixed: "1.5.0"}}}}}}}})
	v := &Verifier{Registry: reg, Locator: fixedLocator("s3://bucket/art/1"), S3: s3, Now: func() time.Time { return now },
		Checker: &advisory.Checker{DB: db, Now: func() time.Time { return now }}}
	sub := Subject{Model: "churn", Registered: "churn", Version: 1, SpecDependencies: []string{"numpy==1.26.4"}}

	out, err := v.Ensure(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	if out.Reused || out.Report == nil || s3.gets != 3 {
		t.Fatalf("first Ensure: reused %v, gets %d; want a scan reading each of 3 objects once", out.Reused, s3.gets)
	}
	for _, k := range []string{TagResult, TagDigest, TagScanner, TagFindings, TagDependencies, TagListing} {
		if reg.tags[k] == "" {
			t.Errorf("tag %s not set", k)
		}
	}
	d := out.Record.Dependencies
	if d == nil || len(d.Vulnerabilities) != 1 || d.Vulnerabilities[0].ID != "PYSEC-X" || len(d.Unpinned) != 1 || d.Requirements != 3 {
		t.Fatalf("dependencies %+v", d)
	}
	if reg.tags[TagScanner] != scan.ScannerVersion || !strings.HasPrefix(reg.tags[TagDigest], "sha256:") {
		t.Errorf("tags %v", reg.tags)
	}

	// Second time: listing only.
	out, err = v.Ensure(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	if !out.Reused || s3.gets != 3 {
		t.Fatalf("second Ensure: reused %v, gets %d; want the tags reused with no read", out.Reused, s3.gets)
	}

	// A new scanner version rescans.
	reg.tags[TagScanner] = "modelsync-scan/0"
	if out, _ = v.Ensure(ctx, sub); out.Reused || s3.gets != 6 {
		t.Fatalf("old scanner: reused %v gets %d", out.Reused, s3.gets)
	}

	// New advisories: only the dependency file is read again.
	v.Checker.DB = advisory.NewDB(nil)
	if out, _ = v.Ensure(ctx, sub); !out.Reused || out.DependencyFilesRead != 1 || s3.gets != 7 || len(out.Record.Dependencies.Vulnerabilities) != 0 {
		t.Fatalf("new advisories: reused %v, dependency files %d, gets %d, deps %+v", out.Reused, out.DependencyFilesRead, s3.gets, out.Record.Dependencies)
	}

	// First serve records the digest; the same artifacts verify.
	rec, err := v.Verify(ctx, sub, "prod")
	if err != nil || reg.tags[ApprovedTag("prod")] != rec.Digest {
		t.Fatalf("Verify: %v, approved tag %q", err, reg.tags[ApprovedTag("prod")])
	}
	if _, err := v.Verify(ctx, sub, "prod"); err != nil {
		t.Fatal(err)
	}
	approved := rec.Digest
	// Replace the pickle: the listing changes, a rescan finds another
	// digest, and Verify refuses naming both.
	s3.objs["art/1/model/model.pkl"] = []byte("\x80\x04\x95tampered")
	_, err = v.Verify(ctx, sub, "prod")
	var ie *IntegrityError
	if !errors.As(err, &ie) || ie.Approved != approved || ie.Current == approved || ie.Model != "churn" || ie.Environment != "prod" || ie.Version != 1 {
		t.Fatalf("Verify after replacement: %v", err)
	}
	if reg.tags[ApprovedTag("prod")] != approved {
		t.Error("the approved digest was overwritten")
	}
}

func TestTagsFitAndRoundTrip(t *testing.T) {
	f := Findings{Dangerous: 500, Globals: Globals{Dangerous: []string{}, Unknown: []string{}}}
	for i := range 500 {
		f.Globals.Unknown = append(f.Globals.Unknown, strings.Repeat("x", 40)+itoa(int64(i)))
		f.First = append(f.First, strings.Repeat("m", 100))
	}
	r := Record{Result: scan.Dangerous, Digest: "sha256:ab", Scanner: scan.ScannerVersion, Findings: f}
	tags := r.Tags()
	if len(tags[TagFindings]) > maxTagValue {
		t.Fatalf("findings tag %d bytes", len(tags[TagFindings]))
	}
	tags[ApprovedTag("prod")] = "sha256:ab"
	back, ok := FromTags(tags)
	if !ok || back.Findings.Dangerous != 500 || !back.Findings.Truncated || back.Approved["prod"] != "sha256:ab" || back.Result != scan.Dangerous {
		t.Fatalf("round trip %+v", back)
	}
	if _, ok := FromTags(map[string]string{ApprovedTag("dev"): "x"}); ok {
		t.Error("a version without scan tags reads as scanned")
	}
}
