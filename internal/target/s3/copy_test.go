package s3

import (
	"bytes"
	"github.com/modelsync/modelsync/internal/textio"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func TestPartSize(t *testing.T) {
	cases := []struct {
		size, min int64
		wantSize  int64
		wantParts int
	}{
		{6 << 30, 64 << 20, 64 << 20, 96},
		{12<<20 + 3, 5 << 20, 5 << 20, 3},
		{5 << 20, 5 << 20, 5 << 20, 1},
		// 1 TiB at a 64 MiB minimum would be 16,384 parts: the size grows.
		{1 << 40, 64 << 20, (1<<40 + 9999) / 10000, 10000},
	}
	for _, c := range cases {
		size, parts, err := PartSize(c.size, c.min)
		if err != nil || size != c.wantSize || parts != c.wantParts {
			t.Errorf("PartSize(%d, %d) = %d, %d, %v; want %d, %d", c.size, c.min, size, parts, err, c.wantSize, c.wantParts)
		}
		if parts > MaxParts || int64(parts)*size < c.size {
			t.Errorf("PartSize(%d): %d parts of %d do not cover it within the limit", c.size, parts, size)
		}
	}
	if _, _, err := PartSize(10000*MaxPartSize+1, MinPartSize); err == nil {
		t.Error("an object beyond 10,000 maximal parts was accepted")
	}
}

func TestCopySourceEncoding(t *testing.T) {
	got := copySource("bkt", "runs/1/a b+c&d=é.bin", "v1+2")
	want := "bkt/runs/1/a%20b%2Bc%26d%3D%C3%A9.bin?versionId=v1%2B2"
	if got != want {
		t.Errorf("copySource = %q, want %q", got, want)
	}
	tags := []types.Tag{{Key: aws.String("team"), Value: aws.String("ml ops")}, {Key: aws.String("a&b"), Value: aws.String("x=y")}}
	if got := encodeTags(tags); got != "team=ml%20ops&a%26b=x%3Dy" {
		t.Errorf("encodeTags = %q", got)
	}
	kept, had := withoutRestoreTag(append(tags, types.Tag{Key: aws.String(RestoreTagKey), Value: aws.String("Bulk@2026-01-01T00:00:00Z")}))
	if !had || len(kept) != 2 {
		t.Errorf("withoutRestoreTag = %v, %v", kept, had)
	}
}

func TestHeadChecksum(t *testing.T) {
	c, ok := headChecksum(&s3.HeadObjectOutput{ChecksumCRC64NVME: aws.String("abc="), ChecksumType: types.ChecksumTypeFullObject})
	if !ok || c.alg != types.ChecksumAlgorithmCrc64nvme || !c.fullObjectCapable() {
		t.Errorf("CRC64NVME full object: %+v", c)
	}
	c, ok = headChecksum(&s3.HeadObjectOutput{ChecksumSHA256: aws.String("xyz=-3")})
	if !ok || c.full || c.fullObjectCapable() {
		t.Errorf("composite SHA256: %+v", c)
	}
	c, _ = headChecksum(&s3.HeadObjectOutput{ChecksumSHA256: aws.String("xyz="), ChecksumType: types.ChecksumTypeFullObject})
	if c.fullObjectCapable() {
		t.Error("SHA256 cannot be a multipart full-object checksum")
	}
	if _, ok := headChecksum(&s3.HeadObjectOutput{}); ok {
		t.Error("no checksum reported as one")
	}
}

func TestProgressWriters(t *testing.T) {
	ev := ProgressEvent{Model: "llm", Versions: []int{7}, Bucket: "b", Key: "w.bin", From: "STANDARD", To: "GLACIER_IR",
		Multipart: true, BytesTotal: 6 << 30, PartsTotal: 96}
	var bar bytes.Buffer
	pb := NewProgressBar(&bar)
	half := ev
	half.BytesDone, half.PartsDone, half.Rate, half.ETA = 3<<30, 48, 300<<20, 10*time.Second
	pb.Update(half)
	if s := bar.String(); !strings.Contains(s, " 50% 3.0 GiB/6.0 GiB 300.0 MiB/s ETA 10s STANDARD→GLACIER_IR s3://b/w.bin") || strings.HasSuffix(s, "\n") {
		t.Errorf("bar mid-copy = %q", s)
	}
	done := ev
	done.BytesDone, done.PartsDone, done.Done = 6<<30, 96, true
	pb.Update(done)
	if s := bar.String(); !strings.HasSuffix(s, "\n") || !strings.Contains(s, "[==============================] 100%") {
		t.Errorf("bar when done = %q", s)
	}

	var logs bytes.Buffer
	c := &clock{t: time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)}
	pl := NewProgressLog(slog.New(slog.NewTextHandler(&logs, nil)), 10*time.Second, c.Now)
	pl.Update(ev)   // first: logged
	pl.Update(half) // same instant: not logged
	c.Set(c.Now().Add(11 * time.Second))
	pl.Update(half) // interval passed: logged
	pl.Update(done) // done: logged
	small := ProgressEvent{Bucket: "b", Key: "MLmodel", BytesTotal: 700}
	pl.Update(small) // a single copy's start: not logged
	small.BytesDone, small.Done = 700, true
	pl.Update(small) // its end: logged
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 4 || !strings.Contains(lines[1], "percent=50") || !strings.Contains(lines[1], "parts_done=48") ||
		!strings.Contains(lines[2], `msg=copied`) || !strings.Contains(lines[1], "eta=10s") || !strings.Contains(lines[3], "s3://b/MLmodel") {
		t.Errorf("log lines:\n%s", logs.String())
	}
	for _, n := range []struct {
		n    int64
		want string
	}{{512, "512 B"}, {1536, "1.5 KiB"}, {6 << 30, "6.0 GiB"}} {
		if got := textio.FormatBytes(n.n); got != n.want {
			t.Errorf("textio.FormatBytes(%d) = %q", n.n, got)
		}
	}
}

func TestIsRetryable(t *testing.T) {
	if !IsRetryable(&ObjectError{Err: &NotRestoredError{Class: "GLACIER"}}) {
		t.Error("not-restored should be retryable")
	}
	if IsRetryable(&ObjectError{Err: &ChangedError{PlannedETag: "a", ActualETag: "b"}}) {
		t.Error("a changed object is not retryable")
	}
	if IsRetryable(&ObjectError{Err: &VerifyError{Field: "size"}}) {
		t.Error("a failed verification is not retryable")
	}
}
