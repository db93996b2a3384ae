package s3

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/storageclass"
	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/test/testenv"
)

// MinIO knows STANDARD and REDUCED_REDUNDANCY, so the lifecycle archives to
// REDUCED_REDUNDANCY there.
const rrs = "REDUCED_REDUNDANCY"

func minioLifecycle() manifest.Lifecycle {
	return lifecycle(func(l *manifest.Lifecycle) { l.ArchivedClass = rrs })
}

func TestMinIOLifecycleTransitionsAndRollback(t *testing.T) {
	srv := testenv.NewMinIO(t)
	c := srv.Client(t.Context())
	if err := srv.MakeBucket(t.Context(), "artifacts", false); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	reg := newRegistry()
	files := map[string][]byte{}
	for v, p := range map[int]string{1: "mlruns/1/aaa/artifacts/model", 2: "mlruns/1/bbb/artifacts/model"} {
		reg.add("churn-registered", reconciler.RegistryVersion{Version: v, Created: now.Add(-time.Duration(60/v) * day)}, "s3://artifacts/"+p)
		for i, name := range []string{"MLmodel", "conda.yaml", "model.pkl"} {
			key := p + "/" + name
			files[key] = randomBytes(1000*(i+1)*(i+1), uint64(v*10+i))
			putObject(t, c, "artifacts", key, files[key], func(in *s3.PutObjectInput) {
				in.ContentType = aws.String("application/x-model-" + name)
				in.Metadata = map[string]string{"mlflow-run": "run" + p[10:13]}
			})
		}
	}
	tg, err := New(Config{Client: c, Locator: reg, Versions: reg, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}

	// v1 is 60 days old and unreferenced; v2 (30 days) is in prod.
	d := desiredState(model("churn", minioLifecycle(), env("prod", 2)))
	p := buildPlan(t, tg, d)
	if got, want := kinds(p), []string{KindTransition + " s3://artifacts/mlruns/1/aaa/artifacts/model STANDARD→" + rrs}; !reflect.DeepEqual(got, want) {
		t.Fatalf("plan = %v, want %v", got, want)
	}
	applyAll(t, tg, p)
	for key, body := range files {
		want := storageclass.Standard
		if strings.Contains(key, "/aaa/") {
			want = rrs
		}
		if got := classOf(t, c, "artifacts", key); got != want {
			t.Errorf("%s: class %s, want %s", key, got, want)
		}
		if !bytes.Equal(getBody(t, c, "artifacts", key), body) {
			t.Errorf("%s: content changed", key)
		}
		h := head(t, c, "artifacts", key)
		if !strings.HasPrefix(aws.ToString(h.ContentType), "application/x-model-") || h.Metadata["mlflow-run"] == "" {
			t.Errorf("%s: content type %q, metadata %v lost", key, aws.ToString(h.ContentType), h.Metadata)
		}
	}
	if p := buildPlan(t, tg, d); p.HasChanges() {
		t.Fatalf("not converged: %v", kinds(p))
	}

	// Roll prod back to v1: its files come back to STANDARD. v2 stops being
	// used now and stays hot inside the rollback window.
	reg.add("churn-registered", reconciler.RegistryVersion{Version: 2, Created: now.Add(-30 * day), LastUsed: now}, "s3://artifacts/mlruns/1/bbb/artifacts/model")
	d = desiredState(model("churn", minioLifecycle(), env("prod", 1)))
	p = buildPlan(t, tg, d)
	if got, want := kinds(p), []string{KindTransition + " s3://artifacts/mlruns/1/aaa/artifacts/model " + rrs + "→STANDARD"}; !reflect.DeepEqual(got, want) || len(p.Waits()) != 0 {
		t.Fatalf("rollback plan = %v, waits %v", got, p.Waits())
	}
	applyAll(t, tg, p)
	for key, body := range files {
		if got := classOf(t, c, "artifacts", key); got != storageclass.Standard {
			t.Errorf("%s: class %s after rollback", key, got)
		}
		if !bytes.Equal(getBody(t, c, "artifacts", key), body) {
			t.Errorf("%s: content changed", key)
		}
	}
}

func TestMinIOMultipartCopyKeepsAttributes(t *testing.T) {
	srv := testenv.NewMinIO(t)
	// A client from the standard credential chain, with the SDK's default
	// checksums, so objects carry a CRC as they do on AWS.
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	c, err := NewClient(t.Context(), ClientOptions{Region: srv.Region, Endpoint: srv.Endpoint, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.MakeBucket(t.Context(), "models", false); err != nil {
		t.Fatal(err)
	}
	const prefix = "mlruns/3/models/m-0123/artifacts"
	big := randomBytes(12<<20+3, 1)
	putObject(t, c, "models", prefix+"/model.safetensors", big, func(in *s3.PutObjectInput) {
		in.ContentType = aws.String("application/vnd.safetensors")
		in.CacheControl = aws.String("max-age=60")
		in.ContentDisposition = aws.String(`attachment; filename="model.safetensors"`)
		in.Metadata = map[string]string{"framework": "pytorch", "stage": "trained"}
		in.Tagging = aws.String("team=ml%20ops&pii=no")
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc64nvme
	})
	small := randomBytes(700, 2)
	putObject(t, c, "models", prefix+"/MLmodel", small, func(in *s3.PutObjectInput) {
		in.ContentType = aws.String("text/yaml")
		in.Tagging = aws.String("team=ml%20ops")
	})
	before := head(t, c, "models", prefix+"/model.safetensors")

	reg := newRegistry()
	now := time.Now().UTC()
	reg.add("llm-registered", reconciler.RegistryVersion{Version: 4, Created: now.Add(-90 * day)}, "s3://models/"+prefix)
	d := desiredState(model("llm", minioLifecycle()))

	// MinIO cannot checksum a copied part, so an upload that carries the
	// source's CRC64NVME fails; the error says what to configure, and the
	// failed upload is aborted.
	preserving, err := New(Config{Client: c, Locator: reg, Versions: reg, CopyThreshold: 1 << 20, MinPartSize: MinPartSize})
	if err != nil {
		t.Fatal(err)
	}
	p := buildPlan(t, preserving, d)
	if len(p.Actions()) != 1 {
		t.Fatalf("plan = %v", kinds(p))
	}
	err = preserving.Apply(t.Context(), p.Actions()[0])
	if err == nil || !strings.Contains(err.Error(), `set MultipartChecksum to "none"`) || IsRetryable(err) {
		t.Fatalf("Apply with preserved checksums on MinIO: %v", err)
	}
	if ups := incompleteUploads(t, c, "models"); len(ups) != 0 {
		t.Errorf("incomplete uploads left after the refused copy: %d", len(ups))
	}

	var mu sync.Mutex
	var events []ProgressEvent
	tg, err := New(Config{
		Client: c, Locator: reg, Versions: reg, Now: time.Now,
		CopyThreshold: 1 << 20, MinPartSize: MinPartSize, Concurrency: 2,
		MultipartChecksum: ChecksumNone,
		Progress:          func(ev ProgressEvent) { mu.Lock(); events = append(events, ev); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	applyAll(t, tg, buildPlan(t, tg, d))

	after := head(t, c, "models", prefix+"/model.safetensors")
	if storageclass.Normalize(string(after.StorageClass)) != rrs || aws.ToInt64(after.ContentLength) != int64(len(big)) {
		t.Errorf("class %s size %d", after.StorageClass, aws.ToInt64(after.ContentLength))
	}
	if !strings.HasSuffix(strings.Trim(aws.ToString(after.ETag), `"`), "-3") {
		t.Errorf("ETag %s: want a 3-part multipart ETag", aws.ToString(after.ETag))
	}
	for name, pair := range map[string][2]*string{
		"content type":        {before.ContentType, after.ContentType},
		"cache control":       {before.CacheControl, after.CacheControl},
		"content disposition": {before.ContentDisposition, after.ContentDisposition},
	} {
		if aws.ToString(pair[0]) != aws.ToString(pair[1]) {
			t.Errorf("%s: %q became %q", name, aws.ToString(pair[0]), aws.ToString(pair[1]))
		}
	}
	if !reflect.DeepEqual(before.Metadata, after.Metadata) {
		t.Errorf("metadata %v became %v", before.Metadata, after.Metadata)
	}
	if got := tagsOf(t, c, "models", prefix+"/model.safetensors"); !reflect.DeepEqual(got, map[string]string{"team": "ml ops", "pii": "no"}) {
		t.Errorf("tags = %v", got)
	}
	if sha256.Sum256(getBody(t, c, "models", prefix+"/model.safetensors")) != sha256.Sum256(big) {
		t.Error("content changed")
	}
	if storageclass.Normalize(string(head(t, c, "models", prefix+"/MLmodel").StorageClass)) != rrs ||
		!reflect.DeepEqual(tagsOf(t, c, "models", prefix+"/MLmodel"), map[string]string{"team": "ml ops"}) ||
		!bytes.Equal(getBody(t, c, "models", prefix+"/MLmodel"), small) {
		t.Error("the small file's single copy lost class, tags or content")
	}
	if ups := incompleteUploads(t, c, "models"); len(ups) != 0 {
		t.Errorf("incomplete uploads left: %d", len(ups))
	}

	mu.Lock()
	defer mu.Unlock()
	var bigEvents []ProgressEvent
	for _, ev := range events {
		if strings.HasSuffix(ev.Key, "safetensors") {
			bigEvents = append(bigEvents, ev)
		}
	}
	if len(bigEvents) != 5 { // start, three parts, done
		t.Fatalf("progress events for the big object: %+v", bigEvents)
	}
	last := bigEvents[len(bigEvents)-1]
	if !last.Done || !last.Multipart || last.BytesDone != int64(len(big)) || last.PartsDone != 3 || last.PartsTotal != 3 {
		t.Errorf("last event = %+v", last)
	}
	for i := 1; i < len(bigEvents); i++ {
		if bigEvents[i].BytesDone < bigEvents[i-1].BytesDone {
			t.Errorf("progress went backwards: %+v", bigEvents)
		}
	}
}

func TestMinIOBrokenMultipartCopyLeavesNothingAndConverges(t *testing.T) {
	srv := testenv.NewMinIO(t)
	if err := srv.MakeBucket(t.Context(), "models", false); err != nil {
		t.Fatal(err)
	}
	direct := srv.Client(t.Context())
	proxy, err := testenv.NewFaultProxy(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	viaProxy := srv.ClientVia(t.Context(), proxy.URL)

	const key = "runs/9/artifacts/model/weights.bin"
	body := randomBytes(20<<20, 3)
	putObject(t, direct, "models", key, body)
	// An upload an earlier, killed run left behind on the same key.
	stale, err := direct.CreateMultipartUpload(t.Context(), &s3.CreateMultipartUploadInput{Bucket: aws.String("models"), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}

	reg := newRegistry()
	reg.add("big-registered", reconciler.RegistryVersion{Version: 1, Created: time.Now().Add(-90 * day)}, "s3://models/runs/9/artifacts/model")
	tg, err := New(Config{Client: viaProxy, Locator: reg, Versions: reg,
		CopyThreshold: 1 << 20, MinPartSize: MinPartSize, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	d := desiredState(model("big", minioLifecycle()))
	p := buildPlan(t, tg, d)
	if len(p.Actions()) != 1 {
		t.Fatalf("plan = %v", kinds(p))
	}

	// Part 3 of 4 never gets through: every attempt, the SDK's retries
	// included, loses its connection.
	isPart3 := func(r *http.Request) bool {
		return r.Method == http.MethodPut && r.URL.Query().Get("partNumber") == "3" && r.Header.Get("X-Amz-Copy-Source") != ""
	}
	proxy.Inject(testenv.Fault{DropConnection: true, Match: isPart3})
	err = tg.Apply(t.Context(), p.Actions()[0])
	var oe *ObjectError
	if !errors.As(err, &oe) || oe.Model != "big" || !reflect.DeepEqual(oe.Versions, []int{1}) || oe.Key != key {
		t.Fatalf("Apply error = %v", err)
	}
	if !IsRetryable(err) {
		t.Errorf("a dropped connection should be retryable: %v", err)
	}
	if !strings.Contains(err.Error(), "UploadPartCopy part 3 of 4") {
		t.Errorf("error does not name the part: %v", err)
	}
	if ups := incompleteUploads(t, direct, "models"); len(ups) != 0 {
		t.Errorf("incomplete uploads after the failure: %d (the stale one %s should be gone too)", len(ups), aws.ToString(stale.UploadId))
	}
	if got := classOf(t, direct, "models", key); got != storageclass.Standard {
		t.Errorf("class after failed copy = %s", got)
	}
	dropped := 0
	for _, r := range proxy.Requests() {
		if r.Dropped {
			dropped++
		}
	}
	if dropped < 2 {
		t.Errorf("the proxy dropped %d connections; the SDK should have retried", dropped)
	}

	proxy.Reset()
	p = buildPlan(t, tg, d)
	applyAll(t, tg, p)
	if got := classOf(t, direct, "models", key); got != rrs {
		t.Errorf("class after the next run = %s", got)
	}
	if !bytes.Equal(getBody(t, direct, "models", key), body) {
		t.Error("content changed")
	}
	if ups := incompleteUploads(t, direct, "models"); len(ups) != 0 {
		t.Errorf("incomplete uploads after convergence: %d", len(ups))
	}
	if p := buildPlan(t, tg, d); p.HasChanges() {
		t.Errorf("not converged: %v", kinds(p))
	}
}

func TestMinIOSharedPrefixKeepsHotterClass(t *testing.T) {
	srv := testenv.NewMinIO(t)
	c := srv.Client(t.Context())
	if err := srv.MakeBucket(t.Context(), "artifacts", false); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	reg := newRegistry()
	// Versions 1 and 2 were registered from the same run: one prefix.
	for _, v := range []int{1, 2} {
		reg.add("churn-registered", reconciler.RegistryVersion{Version: v, Created: now.Add(-100 * day)}, "s3://artifacts/runs/shared/model")
	}
	reg.add("churn-registered", reconciler.RegistryVersion{Version: 3, Created: now.Add(-100 * day)}, "s3://artifacts/runs/three/model")
	for _, k := range []string{"runs/shared/model/MLmodel", "runs/shared/model/model.pkl", "runs/three/model/model.pkl"} {
		putObject(t, c, "artifacts", k, randomBytes(2048, 9))
	}
	tg, err := New(Config{Client: c, Locator: reg, Versions: reg, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	// Only v2 is referenced; v1 is old and idle, but shares v2's prefix.
	d := desiredState(model("churn", minioLifecycle(), env("staging", 2)))
	p := buildPlan(t, tg, d)
	if got := kinds(p); !reflect.DeepEqual(got, []string{KindTransition + " s3://artifacts/runs/three/model STANDARD→" + rrs}) {
		t.Fatalf("plan = %v", got)
	}
	applyAll(t, tg, p)
	for _, k := range []string{"runs/shared/model/MLmodel", "runs/shared/model/model.pkl"} {
		if got := classOf(t, c, "artifacts", k); got != storageclass.Standard {
			t.Errorf("%s: %s, want STANDARD (v2 still uses it)", k, got)
		}
	}
	// Once neither uses it, the shared prefix is archived in one action.
	d = desiredState(model("churn", minioLifecycle(), env("staging", 3)))
	p = buildPlan(t, tg, d)
	acts := p.Actions()
	if len(acts) != 2 {
		t.Fatalf("plan = %v", kinds(p))
	}
	var shared Payload
	for _, a := range acts {
		if a.Resource == "s3://artifacts/runs/shared/model" {
			shared = payloadOf(t, a)
		}
	}
	if !reflect.DeepEqual(shared.Versions, []int{1, 2}) || shared.To != rrs || len(shared.Objects) != 2 {
		t.Errorf("shared payload = %+v", shared)
	}
}

func TestMinIOVersionedBucketNoncurrentPolicy(t *testing.T) {
	srv := testenv.NewMinIO(t)
	c := srv.Client(t.Context())
	for _, policy := range []string{NoncurrentDelete, NoncurrentReport} {
		t.Run(policy, func(t *testing.T) {
			bucket := "versioned-" + policy
			if err := srv.MakeBucket(t.Context(), bucket, true); err != nil {
				t.Fatal(err)
			}
			const key = "runs/1/model/model.pkl"
			body := randomBytes(4096, 4)
			putObject(t, c, bucket, key, body)
			reg := newRegistry()
			reg.add("m-registered", reconciler.RegistryVersion{Version: 1, Created: time.Now().Add(-90 * day)}, "s3://"+bucket+"/runs/1/model")
			var logs bytes.Buffer
			tg, err := New(Config{Client: c, Locator: reg, Versions: reg, NoncurrentPolicy: policy, Logger: slogTo(&logs)})
			if err != nil {
				t.Fatal(err)
			}
			applyAll(t, tg, buildPlan(t, tg, desiredState(model("m", minioLifecycle()))))
			out, err := c.ListObjectVersions(t.Context(), &s3.ListObjectVersionsInput{Bucket: aws.String(bucket)})
			if err != nil {
				t.Fatal(err)
			}
			var classes []string
			for _, v := range out.Versions {
				classes = append(classes, storageclass.Normalize(string(v.StorageClass)))
			}
			want := []string{rrs}
			if policy == NoncurrentReport {
				want = []string{rrs, storageclass.Standard}
				if !strings.Contains(logs.String(), "noncurrent version retained") {
					t.Errorf("the retained version was not reported: %s", logs.String())
				}
			}
			if !reflect.DeepEqual(classes, want) {
				t.Errorf("versions = %v, want %v", classes, want)
			}
			if !bytes.Equal(getBody(t, c, bucket, key), body) {
				t.Error("content changed")
			}
		})
	}
}
