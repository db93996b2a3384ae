package s3

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/modelsync/modelsync/internal/storageclass"
	"github.com/modelsync/modelsync/reconciler"
)

// ValidateAction implements reconciler.ActionValidator: it checks a payload
// before any action of the plan runs.
func (t *Target) ValidateAction(a reconciler.Action) error {
	if a.Target != Name {
		return fmt.Errorf("s3: action %s is for target %q", a.ID(), a.Target)
	}
	p, err := DecodePayload(a)
	if err != nil {
		return err
	}
	var problems []string
	if p.Bucket == "" || p.Prefix == "" {
		problems = append(problems, "bucket and prefix are required")
	}
	if len(p.Objects) == 0 {
		problems = append(problems, "no objects")
	}
	for _, o := range p.Objects {
		if !strings.HasPrefix(o.Key, p.Prefix+"/") {
			problems = append(problems, fmt.Sprintf("key %q is outside prefix %q", o.Key, p.Prefix))
		}
		if o.ETag == "" {
			problems = append(problems, fmt.Sprintf("key %q has no ETag to pin", o.Key))
		}
	}
	switch a.Kind {
	case KindTransition:
		if p.To == "" {
			problems = append(problems, "no target class")
		}
		for _, o := range p.Objects {
			if storageclass.Normalize(o.From) == storageclass.Normalize(p.To) {
				problems = append(problems, fmt.Sprintf("key %q is already %s", o.Key, p.To))
			}
		}
	case KindRestore:
		switch p.Tier {
		case TierExpedited, TierStandard, TierBulk:
		default:
			problems = append(problems, fmt.Sprintf("restore tier %q", p.Tier))
		}
		if p.Days <= 0 {
			problems = append(problems, fmt.Sprintf("restore days %d", p.Days))
		}
	case KindDelete:
		if a.Op != reconciler.OpDelete {
			problems = append(problems, fmt.Sprintf("op %q, want %q", a.Op, reconciler.OpDelete))
		}
	default:
		problems = append(problems, fmt.Sprintf("unknown kind %q", a.Kind))
	}
	if len(problems) > 0 {
		return fmt.Errorf("s3: model %s %s: invalid action %s: %s", a.Model, versionsLabel(p.Versions), a.ID(), strings.Join(problems, "; "))
	}
	return nil
}

// Apply implements reconciler.Target. Objects are handled one by one; an
// object already in its planned state is skipped, so repeating an action
// converges. The first failure stops the action.
func (t *Target) Apply(ctx context.Context, a reconciler.Action) error {
	if err := t.ValidateAction(a); err != nil {
		return err
	}
	p, _ := DecodePayload(a)
	for _, o := range p.Objects {
		var err error
		var op string
		switch a.Kind {
		case KindTransition:
			op = fmt.Sprintf("transition %s→%s", o.From, p.To)
			err = t.transition(ctx, a.Model, p, o)
		case KindRestore:
			op = fmt.Sprintf("restore %s (%s tier, %dd)", o.From, p.Tier, p.Days)
			err = t.restore(ctx, p, o)
		case KindDelete:
			op = "delete"
			err = t.delete(ctx, p, o)
		}
		if err != nil {
			return &ObjectError{Model: a.Model, Versions: p.Versions, Bucket: p.Bucket, Key: o.Key, Op: op, Err: err}
		}
	}
	return nil
}

func (t *Target) transition(ctx context.Context, model string, p Payload, o PayloadObject) error {
	to := storageclass.Normalize(p.To)
	h, err := t.headObject(ctx, p.Bucket, o.Key)
	if isNotFound(err) {
		return &ChangedError{PlannedETag: o.ETag}
	}
	if err != nil {
		return fmt.Errorf("HeadObject: %w", err)
	}
	src := newSource(p.Bucket, o.Key, h)
	if src.class == to {
		return nil
	}
	if !sameETag(src.etag, o.ETag) {
		return &ChangedError{PlannedETag: o.ETag, ActualETag: src.etag}
	}
	archived := storageclass.NeedsRestore(src.class) || h.ArchiveStatus != ""
	if archived {
		rs, err := ParseRestore(aws.ToString(h.Restore))
		if err != nil {
			return err
		}
		if !rs.Readable() {
			return &NotRestoredError{Class: src.class}
		}
	}
	enc, err := sseOf(h)
	if err != nil {
		return err
	}
	multipart := src.size > t.cfg.CopyThreshold
	var tags []types.Tag
	replaceTags := false
	// A single copy keeps tags by itself; only a restored object may carry
	// the restore record that must go.
	if multipart || archived {
		out, err := t.cfg.Client.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(p.Bucket), Key: aws.String(o.Key)})
		if err != nil {
			return fmt.Errorf("GetObjectTagging: %w", err)
		}
		tags, replaceTags = withoutRestoreTag(out.TagSet)
	}
	tr := t.newTracker(ProgressEvent{Model: model, Versions: p.Versions, Bucket: p.Bucket, Key: o.Key,
		From: src.class, To: to, Multipart: multipart, BytesTotal: src.size})
	if multipart {
		_, n, err := PartSize(src.size, t.cfg.MinPartSize)
		if err != nil {
			return err
		}
		tr.base.PartsTotal = n
		tr.add(0, false)
		if err := t.copyMultipart(ctx, src, to, enc, tags, func(n int64) { tr.add(n, true) }); err != nil {
			return err
		}
	} else {
		tr.add(0, false)
		if err := t.copyInPlace(ctx, src, to, enc, tags, replaceTags); err != nil {
			return err
		}
	}
	after, err := t.verify(ctx, src, to, enc, !multipart)
	if err != nil {
		return err
	}
	tr.finish()
	t.forgetRestore(p.Bucket, o.Key)
	return t.handleNoncurrent(ctx, src, after)
}

// handleNoncurrent deals with the version a copy in a versioned bucket left
// behind: it is noncurrent but still billed at its old class.
func (t *Target) handleNoncurrent(ctx context.Context, src *source, after *s3.HeadObjectOutput) error {
	if src.versionID == "" || aws.ToString(after.VersionId) == src.versionID {
		return nil
	}
	object := "s3://" + src.bucket + "/" + src.key
	if t.cfg.NoncurrentPolicy != NoncurrentDelete {
		t.cfg.Logger.WarnContext(ctx, "noncurrent version retained; it stays billed at its old class until deleted or expired by a bucket rule",
			"object", object, "version_id", src.versionID, "class", src.class, "bytes", src.size)
		return nil
	}
	_, err := t.cfg.Client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(src.bucket), Key: aws.String(src.key), VersionId: aws.String(src.versionID),
	})
	if err != nil {
		return fmt.Errorf("deleting noncurrent version %s after the copy: %w", src.versionID, err)
	}
	t.cfg.Logger.InfoContext(ctx, "deleted noncurrent version", "object", object, "version_id", src.versionID, "class", src.class, "bytes", src.size)
	return nil
}

func (t *Target) restore(ctx context.Context, p Payload, o PayloadObject) error {
	h, err := t.headObject(ctx, p.Bucket, o.Key)
	if isNotFound(err) {
		return &ChangedError{PlannedETag: o.ETag}
	}
	if err != nil {
		return fmt.Errorf("HeadObject: %w", err)
	}
	class := storageclass.Normalize(string(h.StorageClass))
	if !storageclass.NeedsRestore(class) && h.ArchiveStatus == "" {
		return nil // already moved out of the archive
	}
	if got := aws.ToString(h.ETag); !sameETag(got, o.ETag) {
		return &ChangedError{PlannedETag: o.ETag, ActualETag: got}
	}
	rs, err := ParseRestore(aws.ToString(h.Restore))
	if err != nil {
		return err
	}
	if rs.Requested {
		return nil // running or done: requesting again would only move the expiry
	}
	tier := p.Tier
	if class == storageclass.DeepArchive && tier == TierExpedited {
		tier = TierStandard
	}
	req := &types.RestoreRequest{GlacierJobParameters: &types.GlacierJobParameters{Tier: types.Tier(tier)}}
	if h.ArchiveStatus == "" {
		// Intelligent-Tiering restores take no Days: the object returns to
		// its frequent tier for good.
		req.Days = aws.Int32(p.Days)
	}
	in := &s3.RestoreObjectInput{Bucket: aws.String(p.Bucket), Key: aws.String(o.Key), RestoreRequest: req}
	_, err = t.cfg.Client.RestoreObject(ctx, in)
	if apiCode(err) == "GlacierExpeditedRetrievalNotAvailable" {
		tier = TierStandard
		req.GlacierJobParameters.Tier = types.TierStandard
		_, err = t.cfg.Client.RestoreObject(ctx, in)
	}
	switch {
	case apiCode(err) == "RestoreAlreadyInProgress":
	case err != nil:
		return fmt.Errorf("RestoreObject: %w", err)
	}
	t.recordRestore(ctx, p.Bucket, o.Key, RestoreRequest{Tier: tier, At: t.cfg.Now().UTC()})
	return nil
}

// recordRestore tags the object with when and how its restore was asked
// for, and remembers it in case the store refuses the tag. Failing to tag
// is logged, not returned: the restore itself is running.
func (t *Target) recordRestore(ctx context.Context, bucket, key string, rr RestoreRequest) {
	t.rememberRestore(bucket, key, rr)
	object := "s3://" + bucket + "/" + key
	out, err := t.cfg.Client.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.cfg.Logger.WarnContext(ctx, "restore requested; its start is known to this process only", "object", object, "error", err)
		return
	}
	tags, _ := withoutRestoreTag(out.TagSet)
	tags = append(tags, types.Tag{Key: aws.String(RestoreTagKey), Value: aws.String(rr.tagValue())})
	_, err = t.cfg.Client.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Tagging: &types.Tagging{TagSet: tags},
	})
	if err != nil {
		t.cfg.Logger.WarnContext(ctx, "restore requested; its start is known to this process only", "object", object, "error", err)
	}
}

func (t *Target) delete(ctx context.Context, p Payload, o PayloadObject) error {
	h, err := t.headObject(ctx, p.Bucket, o.Key)
	if isNotFound(err) {
		return nil // deleted by an earlier attempt
	}
	if err != nil {
		return fmt.Errorf("HeadObject: %w", err)
	}
	if got := aws.ToString(h.ETag); !sameETag(got, o.ETag) {
		return &ChangedError{PlannedETag: o.ETag, ActualETag: got}
	}
	src := newSource(p.Bucket, o.Key, h)
	in := &s3.DeleteObjectInput{Bucket: aws.String(p.Bucket), Key: aws.String(o.Key)}
	if src.versionID != "" {
		// Deleting the version itself; a plain delete would only add a
		// delete marker and leave the data billed.
		in.VersionId = aws.String(src.versionID)
	}
	if _, err := t.cfg.Client.DeleteObject(ctx, in); err != nil {
		return fmt.Errorf("DeleteObject: %w", err)
	}
	if src.versionID == "" {
		return nil
	}
	return t.deleteOlderVersions(ctx, p.Bucket, o.Key)
}

// deleteOlderVersions removes (policy delete) or reports (policy report)
// the noncurrent versions of a deleted key.
func (t *Target) deleteOlderVersions(ctx context.Context, bucket, key string) error {
	pages := s3.NewListObjectVersionsPaginator(t.cfg.Client, &s3.ListObjectVersionsInput{Bucket: aws.String(bucket), Prefix: aws.String(key)})
	var errs []error
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing older versions: %w", err)
		}
		type version struct {
			id    string
			bytes int64
			class string
		}
		var vs []version
		for _, v := range page.Versions {
			if aws.ToString(v.Key) == key {
				vs = append(vs, version{aws.ToString(v.VersionId), aws.ToInt64(v.Size), storageclass.Normalize(string(v.StorageClass))})
			}
		}
		for _, m := range page.DeleteMarkers {
			if aws.ToString(m.Key) == key {
				vs = append(vs, version{id: aws.ToString(m.VersionId), class: "delete marker"})
			}
		}
		for _, v := range vs {
			if t.cfg.NoncurrentPolicy != NoncurrentDelete {
				t.cfg.Logger.WarnContext(ctx, "noncurrent version retained after deletion", "object", "s3://"+bucket+"/"+key,
					"version_id", v.id, "class", v.class, "bytes", v.bytes)
				continue
			}
			_, err := t.cfg.Client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), VersionId: aws.String(v.id)})
			if err != nil {
				errs = append(errs, fmt.Errorf("deleting noncurrent version %s: %w", v.id, err))
			}
		}
	}
	return errors.Join(errs...)
}
