package testenv

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

func apiErrorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestMinIOStorageClasses(t *testing.T) {
	m := NewMinIO(t)
	t.Logf("minio ready in %s", m.ReadyIn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bucket := UniqueName("models")
	if err := m.MakeBucket(ctx, bucket, true); err != nil {
		t.Fatal(err)
	}
	c := m.Client(ctx)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("churn/model.pkl"), Body: strings.NewReader("weights"),
	}); err != nil {
		t.Fatal(err)
	}
	// In-place copy that changes the class, as modelsync's lifecycle does.
	if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("churn/model.pkl"),
		CopySource:        aws.String(bucket + "/churn/model.pkl"),
		StorageClass:      types.StorageClassReducedRedundancy,
		MetadataDirective: types.MetadataDirectiveCopy,
	}); err != nil {
		t.Fatal(err)
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("churn/model.pkl")})
	if err != nil {
		t.Fatal(err)
	}
	if head.StorageClass != types.StorageClassReducedRedundancy {
		t.Fatalf("storage class after in-place copy = %q, want REDUCED_REDUNDANCY", head.StorageClass)
	}
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Contents) != 1 || list.Contents[0].StorageClass != types.ObjectStorageClassReducedRedundancy {
		t.Fatalf("listing = %+v, want one REDUCED_REDUNDANCY object", list.Contents)
	}
	get, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("churn/model.pkl")})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(get.Body)
	get.Body.Close()
	if string(b) != "weights" {
		t.Fatalf("content after copy = %q", b)
	}

	t.Run("through a fault proxy", func(t *testing.T) {
		fp, err := NewFaultProxy(m.Endpoint)
		if err != nil {
			t.Fatal(err)
		}
		defer fp.Close()
		// One 503 on the PUT: the SDK retries and the signed retry still
		// verifies because the proxy keeps the Host header.
		fp.Inject(Fault{Status: 503, Times: 1, Match: func(r *http.Request) bool { return r.Method == http.MethodPut }})
		pc := m.ClientVia(ctx, fp.URL)
		if _, err := pc.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String("via-proxy"), Body: strings.NewReader("x"),
		}); err != nil {
			t.Fatal(err)
		}
		var statuses []int
		for _, r := range fp.Requests() {
			statuses = append(statuses, r.Status)
		}
		if len(statuses) != 2 || statuses[0] != 503 || statuses[1] != 200 {
			t.Fatalf("statuses seen by the proxy = %v, want [503 200]", statuses)
		}
	})

	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("churn/model.pkl"),
		CopySource:   aws.String(bucket + "/churn/model.pkl"),
		StorageClass: types.StorageClassGlacier,
	})
	if code := apiErrorCode(err); code != "InvalidStorageClass" {
		t.Fatalf("copy to GLACIER: err = %v (code %q), want InvalidStorageClass", err, code)
	}
	_, err = c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("x"), Body: strings.NewReader("x"),
		StorageClass: types.StorageClassGlacier,
	})
	if code := apiErrorCode(err); code != "InvalidStorageClass" {
		t.Fatalf("put GLACIER: err = %v (code %q), want InvalidStorageClass", err, code)
	}
}

func TestMotoGlacierRestore(t *testing.T) {
	const delay = 1500 * time.Millisecond
	m := NewMoto(t, MotoOptions{RestoreDelay: delay})
	t.Logf("moto ready in %s", m.ReadyIn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bucket := UniqueName("archive")
	if err := m.MakeBucket(ctx, bucket, false); err != nil {
		t.Fatal(err)
	}
	c := m.Client(ctx)
	key := aws.String("churn/v1/model.pkl")
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: key, Body: strings.NewReader("weights"),
		StorageClass: types.StorageClassGlacier,
	}); err != nil {
		t.Fatal(err)
	}
	_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: key})
	if code := apiErrorCode(err); code != "InvalidObjectState" {
		t.Fatalf("GET unrestored GLACIER object: err = %v (code %q), want InvalidObjectState", err, code)
	}

	requested := time.Now()
	if _, err := c.RestoreObject(ctx, &s3.RestoreObjectInput{
		Bucket: aws.String(bucket), Key: key,
		RestoreRequest: &types.RestoreRequest{Days: aws.Int32(1), GlacierJobParameters: &types.GlacierJobParameters{Tier: types.TierExpedited}},
	}); err != nil {
		t.Fatal(err)
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	// Only meaningful while the delay has not passed; the machine may be slow.
	if time.Since(requested) < delay {
		if head.Restore == nil || !strings.Contains(*head.Restore, `ongoing-request="true"`) {
			t.Fatalf("x-amz-restore right after RestoreObject = %v, want ongoing-request=\"true\"", aws.ToString(head.Restore))
		}
		_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: key})
		if code := apiErrorCode(err); code != "InvalidObjectState" && time.Since(requested) < delay {
			t.Fatalf("GET during restore: err = %v (code %q), want InvalidObjectState", err, code)
		}
	}

	// Poll (no fixed sleep) until moto reports the restore done.
	for {
		head, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: key})
		if err != nil {
			t.Fatal(err)
		}
		if head.Restore != nil && strings.Contains(*head.Restore, `ongoing-request="false"`) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("restore never completed; x-amz-restore = %v", aws.ToString(head.Restore))
		case <-time.After(100 * time.Millisecond):
		}
	}
	if time.Since(requested) < delay {
		t.Fatalf("restore completed after %s, before the configured %s", time.Since(requested), delay)
	}
	if head.StorageClass != types.StorageClassGlacier {
		t.Fatalf("restored object class = %q, want GLACIER kept", head.StorageClass)
	}
	get, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: key})
	if err != nil {
		t.Fatalf("GET after restore: %v", err)
	}
	b, _ := io.ReadAll(get.Body)
	get.Body.Close()
	if string(b) != "weights" {
		t.Fatalf("restored content = %q", b)
	}
}
