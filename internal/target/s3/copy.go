package s3

import (
	"context"
	"errors"
	"fmt"
	"github.com/modelsync/modelsync/internal/storageclass"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"
)

// source is an object about to be copied onto itself, as HeadObject saw it.
type source struct {
	bucket, key string
	head        *s3.HeadObjectOutput
	size        int64
	etag        string
	class       string
	// versionID pins the copy in a versioned bucket; "" otherwise.
	versionID string
}

func newSource(bucket, key string, h *s3.HeadObjectOutput) *source {
	s := &source{
		bucket: bucket, key: key, head: h,
		size:  aws.ToInt64(h.ContentLength),
		etag:  aws.ToString(h.ETag),
		class: storageclass.Normalize(string(h.StorageClass)),
	}
	if v := aws.ToString(h.VersionId); v != "null" {
		s.versionID = v
	}
	return s
}

func (s *source) copySource() string { return copySource(s.bucket, s.key, s.versionID) }

func (t *Target) headObject(ctx context.Context, bucket, key string) (*s3.HeadObjectOutput, error) {
	return t.cfg.Client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket:       aws.String(bucket),
		Key:          aws.String(key),
		ChecksumMode: types.ChecksumModeEnabled,
	})
}

// copySource builds x-amz-copy-source: bucket/key URL-encoded, with the
// version when the bucket keeps versions.
func copySource(bucket, key, versionID string) string {
	s := bucket + "/" + escape(key, true)
	if versionID != "" {
		s += "?versionId=" + escape(versionID, false)
	}
	return s
}

// escape percent-encodes everything but RFC 3986 unreserved characters (and
// '/' when keepSlash). Narrower encoders leave '+' or '&' alone, which S3
// then decodes differently from what was meant.
func escape(s string, keepSlash bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~', keepSlash && c == '/':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// encodeTags renders a tag set for x-amz-tagging.
func encodeTags(tags []types.Tag) string {
	parts := make([]string, 0, len(tags))
	for _, t := range tags {
		parts = append(parts, escape(aws.ToString(t.Key), false)+"="+escape(aws.ToString(t.Value), false))
	}
	return strings.Join(parts, "&")
}

// withoutRestoreTag drops modelsync's restore record, which means nothing
// once the object has left its archive class.
func withoutRestoreTag(tags []types.Tag) ([]types.Tag, bool) {
	kept := make([]types.Tag, 0, len(tags))
	for _, t := range tags {
		if aws.ToString(t.Key) != RestoreTagKey {
			kept = append(kept, t)
		}
	}
	return kept, len(kept) != len(tags)
}

// sse is the server-side encryption a copy must ask for again: without it
// the new object gets the bucket default.
type sse struct {
	alg       types.ServerSideEncryption
	kmsKeyID  *string
	bucketKey *bool
}

func sseOf(h *s3.HeadObjectOutput) (sse, error) {
	if h.SSECustomerAlgorithm != nil {
		return sse{}, &UnsupportedError{Reason: "object is encrypted with a customer-provided key (SSE-C), which modelsync does not hold"}
	}
	s := sse{alg: h.ServerSideEncryption}
	if strings.HasPrefix(string(s.alg), "aws:kms") {
		s.kmsKeyID, s.bucketKey = h.SSEKMSKeyId, h.BucketKeyEnabled
	}
	return s, nil
}

// kms reports whether the object's ETag is not an MD5 of its content.
func (s sse) kms() bool { return strings.HasPrefix(string(s.alg), "aws:kms") }

// checksum is an object's stored checksum.
type checksum struct {
	alg   types.ChecksumAlgorithm
	value string
	// full is a checksum of the whole content (not of part checksums), the
	// only kind that survives a change of part layout.
	full bool
}

func headChecksum(h *s3.HeadObjectOutput) (checksum, bool) {
	for _, c := range []struct {
		alg types.ChecksumAlgorithm
		v   *string
	}{
		{types.ChecksumAlgorithmCrc64nvme, h.ChecksumCRC64NVME},
		{types.ChecksumAlgorithmCrc32c, h.ChecksumCRC32C},
		{types.ChecksumAlgorithmCrc32, h.ChecksumCRC32},
		{types.ChecksumAlgorithmSha256, h.ChecksumSHA256},
		{types.ChecksumAlgorithmSha1, h.ChecksumSHA1},
	} {
		if v := aws.ToString(c.v); v != "" {
			full := h.ChecksumType == types.ChecksumTypeFullObject || (h.ChecksumType == "" && !strings.Contains(v, "-"))
			return checksum{alg: c.alg, value: v, full: full}, true
		}
	}
	return checksum{}, false
}

// fullObjectCapable reports whether a multipart upload can carry the
// checksum as a full-object checksum (only the CRCs combine across parts).
func (c checksum) fullObjectCapable() bool {
	switch c.alg {
	case types.ChecksumAlgorithmCrc64nvme, types.ChecksumAlgorithmCrc32, types.ChecksumAlgorithmCrc32c:
		return c.full
	}
	return false
}

// PartSize returns the part size and count of a multipart copy of size
// bytes: max(ceil(size/10000), minPart), so there are never more than
// 10,000 parts.
func PartSize(size, minPart int64) (partSize int64, parts int, err error) {
	if size <= 0 {
		return 0, 0, fmt.Errorf("multipart copy of %d bytes: nothing to copy", size)
	}
	partSize = max((size+MaxParts-1)/MaxParts, minPart)
	if partSize > MaxPartSize {
		return 0, 0, fmt.Errorf("object of %d bytes needs parts of %d bytes, above the %d-byte part limit", size, partSize, MaxPartSize)
	}
	return partSize, int((size + partSize - 1) / partSize), nil
}

// copyInPlace changes the class with one CopyObject, keeping metadata and
// (unless tags must change) tags, and asking for the source's encryption
// again.
func (t *Target) copyInPlace(ctx context.Context, src *source, to string, enc sse, tags []types.Tag, replaceTags bool) error {
	h := src.head
	in := &s3.CopyObjectInput{
		Bucket:                    aws.String(src.bucket),
		Key:                       aws.String(src.key),
		CopySource:                aws.String(src.copySource()),
		CopySourceIfMatch:         aws.String(src.etag),
		StorageClass:              types.StorageClass(to),
		MetadataDirective:         types.MetadataDirectiveCopy,
		WebsiteRedirectLocation:   h.WebsiteRedirectLocation,
		ServerSideEncryption:      enc.alg,
		SSEKMSKeyId:               enc.kmsKeyID,
		BucketKeyEnabled:          enc.bucketKey,
		ObjectLockMode:            h.ObjectLockMode,
		ObjectLockRetainUntilDate: h.ObjectLockRetainUntilDate,
		ObjectLockLegalHoldStatus: h.ObjectLockLegalHoldStatus,
	}
	if replaceTags {
		in.TaggingDirective = types.TaggingDirectiveReplace
		in.Tagging = aws.String(encodeTags(tags))
	}
	if _, err := t.cfg.Client.CopyObject(ctx, in); err != nil {
		return fmt.Errorf("CopyObject: %w", notRestored(err, src.class))
	}
	return nil
}

// copyMultipart changes the class of an object above the copy threshold.
// The new object takes nothing from the source by itself, so metadata,
// content headers, tags, encryption, checksum algorithm and lock settings
// are passed to CreateMultipartUpload. Any failure aborts the upload.
func (t *Target) copyMultipart(ctx context.Context, src *source, to string, enc sse, tags []types.Tag, partDone func(bytes int64)) (err error) {
	partSize, n, err := PartSize(src.size, t.cfg.MinPartSize)
	if err != nil {
		return err
	}
	if err := t.abortStale(ctx, src.bucket, src.key); err != nil {
		return err
	}
	h := src.head
	create := &s3.CreateMultipartUploadInput{
		Bucket:                    aws.String(src.bucket),
		Key:                       aws.String(src.key),
		StorageClass:              types.StorageClass(to),
		CacheControl:              h.CacheControl,
		ContentDisposition:        h.ContentDisposition,
		ContentEncoding:           h.ContentEncoding,
		ContentLanguage:           h.ContentLanguage,
		ContentType:               h.ContentType,
		Expires:                   h.Expires,
		Metadata:                  h.Metadata,
		WebsiteRedirectLocation:   h.WebsiteRedirectLocation,
		ServerSideEncryption:      enc.alg,
		SSEKMSKeyId:               enc.kmsKeyID,
		BucketKeyEnabled:          enc.bucketKey,
		ObjectLockMode:            h.ObjectLockMode,
		ObjectLockRetainUntilDate: h.ObjectLockRetainUntilDate,
		ObjectLockLegalHoldStatus: h.ObjectLockLegalHoldStatus,
	}
	if len(tags) > 0 {
		create.Tagging = aws.String(encodeTags(tags))
	}
	sum, hasSum := headChecksum(h)
	hasSum = hasSum && t.cfg.MultipartChecksum == ChecksumPreserve
	if hasSum {
		create.ChecksumAlgorithm = sum.alg
		if sum.fullObjectCapable() {
			create.ChecksumType = types.ChecksumTypeFullObject
		}
	}
	up, err := t.cfg.Client.CreateMultipartUpload(ctx, create)
	if err != nil {
		return fmt.Errorf("CreateMultipartUpload: %w", err)
	}
	uploadID := aws.ToString(up.UploadId)
	defer func() {
		if err == nil {
			return
		}
		// Abort even when ctx is what failed: unfinished parts are billed.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if aerr := t.abortUpload(actx, src.bucket, src.key, uploadID); aerr != nil {
			err = errors.Join(err, fmt.Errorf("aborting the upload failed too, the next attempt aborts it: %w", aerr))
		}
	}()

	parts := make([]types.CompletedPart, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(t.cfg.Concurrency)
	for i := range n {
		first := int64(i) * partSize
		last := min(first+partSize, src.size) - 1
		num := int32(i + 1)
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			out, err := t.cfg.Client.UploadPartCopy(gctx, &s3.UploadPartCopyInput{
				Bucket:            aws.String(src.bucket),
				Key:               aws.String(src.key),
				UploadId:          aws.String(uploadID),
				PartNumber:        aws.Int32(num),
				CopySource:        aws.String(src.copySource()),
				CopySourceIfMatch: aws.String(src.etag),
				CopySourceRange:   aws.String(fmt.Sprintf("bytes=%d-%d", first, last)),
			})
			if err != nil {
				err = fmt.Errorf("UploadPartCopy part %d of %d (bytes %d-%d): %w", num, n, first, last, notRestored(err, src.class))
				if hasSum && apiCode(err) == "InvalidArgument" {
					err = fmt.Errorf("%w (the upload carries a %s checksum; if this store cannot checksum copied parts, set MultipartChecksum to %q)", err, sum.alg, ChecksumNone)
				}
				return err
			}
			parts[i] = completedPart(num, out.CopyPartResult)
			partDone(last - first + 1)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	complete := &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(src.bucket),
		Key:             aws.String(src.key),
		UploadId:        aws.String(uploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}
	if hasSum && sum.fullObjectCapable() {
		// The server checks the combined part CRCs against the source's
		// checksum, which verifies the copy end to end.
		complete.ChecksumType = types.ChecksumTypeFullObject
		switch sum.alg {
		case types.ChecksumAlgorithmCrc64nvme:
			complete.ChecksumCRC64NVME = aws.String(sum.value)
		case types.ChecksumAlgorithmCrc32:
			complete.ChecksumCRC32 = aws.String(sum.value)
		case types.ChecksumAlgorithmCrc32c:
			complete.ChecksumCRC32C = aws.String(sum.value)
		}
	}
	if _, err := t.cfg.Client.CompleteMultipartUpload(ctx, complete); err != nil {
		return fmt.Errorf("CompleteMultipartUpload: %w", err)
	}
	return nil
}

func completedPart(num int32, r *types.CopyPartResult) types.CompletedPart {
	p := types.CompletedPart{PartNumber: aws.Int32(num)}
	if r != nil {
		p.ETag = r.ETag
		p.ChecksumCRC32, p.ChecksumCRC32C, p.ChecksumCRC64NVME = r.ChecksumCRC32, r.ChecksumCRC32C, r.ChecksumCRC64NVME
		p.ChecksumSHA1, p.ChecksumSHA256 = r.ChecksumSHA1, r.ChecksumSHA256
	}
	return p
}

func (t *Target) abortUpload(ctx context.Context, bucket, key, uploadID string) error {
	_, err := t.cfg.Client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(bucket), Key: aws.String(key), UploadId: aws.String(uploadID),
	})
	if apiCode(err) == "NoSuchUpload" {
		return nil
	}
	return err
}

// abortStale aborts incomplete multipart uploads on key left by an earlier
// attempt whose own abort failed (see the package documentation for why
// they are not resumed).
func (t *Target) abortStale(ctx context.Context, bucket, key string) error {
	pages := s3.NewListMultipartUploadsPaginator(t.cfg.Client, &s3.ListMultipartUploadsInput{
		Bucket: aws.String(bucket), Prefix: aws.String(key),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing incomplete multipart uploads: %w", err)
		}
		for _, u := range page.Uploads {
			if aws.ToString(u.Key) != key {
				continue
			}
			if err := t.abortUpload(ctx, bucket, key, aws.ToString(u.UploadId)); err != nil {
				return fmt.Errorf("aborting an incomplete multipart upload from %s: %w", aws.ToTime(u.Initiated).UTC().Format(time.RFC3339), err)
			}
			t.cfg.Logger.InfoContext(ctx, "aborted incomplete multipart upload", "object", "s3://"+bucket+"/"+key,
				"initiated", aws.ToTime(u.Initiated).UTC())
		}
	}
	return nil
}

// verify reads the object back after a copy: class and size must match,
// and so must the ETag after a single-part copy of an object whose ETag is
// an MD5, and a full-object checksum when both sides have one.
func (t *Target) verify(ctx context.Context, src *source, to string, enc sse, single bool) (*s3.HeadObjectOutput, error) {
	h, err := t.headObject(ctx, src.bucket, src.key)
	if err != nil {
		return nil, fmt.Errorf("HeadObject after copy: %w", err)
	}
	if got := storageclass.Normalize(string(h.StorageClass)); got != to {
		return nil, &VerifyError{Field: "storage class", Want: to, Got: got}
	}
	if got := aws.ToInt64(h.ContentLength); got != src.size {
		return nil, &VerifyError{Field: "size", Want: fmt.Sprint(src.size), Got: fmt.Sprint(got)}
	}
	if single && !enc.kms() && !strings.Contains(src.etag, "-") {
		if got := aws.ToString(h.ETag); !sameETag(got, src.etag) {
			return nil, &VerifyError{Field: "ETag", Want: src.etag, Got: got}
		}
	}
	if want, ok := headChecksum(src.head); ok && want.full {
		if got, ok := headChecksum(h); ok && got.alg == want.alg && got.full && got.value != want.value {
			return nil, &VerifyError{Field: "checksum " + string(want.alg), Want: want.value, Got: got.value}
		}
	}
	return h, nil
}

func sameETag(a, b string) bool { return strings.Trim(a, `"`) == strings.Trim(b, `"`) }
