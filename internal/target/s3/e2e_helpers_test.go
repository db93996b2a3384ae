package s3

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/modelsync/modelsync/internal/storageclass"
	"github.com/modelsync/modelsync/reconciler"
)

// randomBytes is reproducible test content.
func randomBytes(n int, seed uint64) []byte {
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	b := make([]byte, n)
	_, _ = r.Read(b)
	return b
}

func putObject(t *testing.T, c *s3.Client, bucket, key string, body []byte, mod ...func(*s3.PutObjectInput)) {
	t.Helper()
	in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}
	for _, f := range mod {
		f(in)
	}
	if _, err := c.PutObject(t.Context(), in); err != nil {
		t.Fatalf("put s3://%s/%s: %v", bucket, key, err)
	}
}

func head(t *testing.T, c *s3.Client, bucket, key string) *s3.HeadObjectOutput {
	t.Helper()
	h, err := c.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("head s3://%s/%s: %v", bucket, key, err)
	}
	return h
}

func classOf(t *testing.T, c *s3.Client, bucket, key string) string {
	t.Helper()
	return storageclass.Normalize(string(head(t, c, bucket, key).StorageClass))
}

func getBody(t *testing.T, c *s3.Client, bucket, key string) []byte {
	t.Helper()
	out, err := c.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get s3://%s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("read s3://%s/%s: %v", bucket, key, err)
	}
	return b
}

func tagsOf(t *testing.T, c *s3.Client, bucket, key string) map[string]string {
	t.Helper()
	out, err := c.GetObjectTagging(t.Context(), &s3.GetObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("tags of s3://%s/%s: %v", bucket, key, err)
	}
	m := map[string]string{}
	for _, tag := range out.TagSet {
		m[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
	}
	return m
}

func incompleteUploads(t *testing.T, c *s3.Client, bucket string) []types.MultipartUpload {
	t.Helper()
	out, err := c.ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("list multipart uploads of %s: %v", bucket, err)
	}
	return out.Uploads
}

func buildPlan(t *testing.T, tg *Target, d *reconciler.DesiredState) *reconciler.Plan {
	t.Helper()
	p, err := reconciler.BuildPlan(t.Context(), d, []reconciler.Target{reconciler.Typed(tg)})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Errors()) > 0 {
		t.Fatalf("plan errors: %+v", p.Errors())
	}
	return p
}

// applyAll validates every action first, as the reconciler does, then
// applies them in order.
func applyAll(t *testing.T, tg *Target, p *reconciler.Plan) {
	t.Helper()
	for _, a := range p.Actions() {
		if err := tg.ValidateAction(a); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range p.Actions() {
		if err := tg.Apply(t.Context(), a); err != nil {
			t.Fatalf("apply %s: %v", a.ID(), err)
		}
	}
}

func kinds(p *reconciler.Plan) []string {
	var ks []string
	for _, a := range p.Actions() {
		ks = append(ks, a.Kind+" "+a.Resource+" "+a.From+"→"+a.To)
	}
	return ks
}

// eventually polls cond until it holds; the deadline only keeps a broken
// server from hanging the test, nothing is asserted about timing.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting for %s", what)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
