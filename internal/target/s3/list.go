package s3

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/modelsync/modelsync/internal/storageclass"
)

// listing is one LIST walk: the outermost version prefixes of a model in one
// bucket, read together from their longest common directory.
type listing struct {
	bucket string
	// dir is the targets' common directory ("" for the bucket root).
	dir string
	// targets are indexes into ModelState.Prefixes, in the byte order of
	// their keys (prefix + "/").
	targets []int
}

// listObjects lists each bucket's outermost prefixes of the model in one
// walk and hands each object to the most specific prefix that contains it.
// A model's versions usually sit side by side (s3://b/models/m/1,
// s3://b/models/m/2): one LIST of their common directory reads them all,
// where a LIST per version cost one request per version on every pass.
func (t *Target) listObjects(ctx context.Context, ms *ModelState) error {
	for _, l := range listings(ms.Prefixes) {
		err := t.walk(ctx, ms, l)
		if err != nil && len(l.targets) > 1 && ctx.Err() == nil {
			// A bucket policy may allow listing each version's prefix
			// but not their directory (an s3:prefix condition): list
			// them one by one, as before, from scratch.
			for i := range ms.Prefixes {
				if ms.Prefixes[i].Bucket == l.bucket {
					ms.Prefixes[i].Objects = nil
				}
			}
			err = nil
			for _, i := range l.targets {
				if err = t.walk(ctx, ms, listing{bucket: l.bucket, targets: []int{i}}); err != nil {
					l.targets = []int{i}
					break
				}
			}
		}
		if err != nil {
			var vs []int
			for _, i := range l.targets {
				vs = append(vs, ms.Prefixes[i].Versions...)
			}
			slices.Sort(vs)
			where := "s3://" + l.bucket + "/" + l.dir
			if len(l.targets) == 1 {
				where = ms.Prefixes[l.targets[0]].Location.String()
			}
			return fmt.Errorf("%s: listing %s: %w", versionsLabel(vs), where, err)
		}
	}
	return nil
}

// listings groups the outermost prefixes (those nested in no other) by
// bucket.
func listings(ps []PrefixState) []listing {
	var ls []listing
	for i := range ps {
		nested := false
		for j := range ps {
			if j != i && ps[i].Location.within(ps[j].Location) {
				nested = true
			}
		}
		if nested {
			continue
		}
		k := slices.IndexFunc(ls, func(l listing) bool { return l.bucket == ps[i].Bucket })
		if k < 0 {
			ls = append(ls, listing{bucket: ps[i].Bucket})
			k = len(ls) - 1
		}
		ls[k].targets = append(ls[k].targets, i)
	}
	for k := range ls {
		l := &ls[k]
		slices.SortFunc(l.targets, func(a, b int) int { return strings.Compare(ps[a].Prefix+"/", ps[b].Prefix+"/") })
		first, last := ps[l.targets[0]].Prefix+"/", ps[l.targets[len(l.targets)-1]].Prefix+"/"
		n := 0
		for n < len(first) && n < len(last) && first[n] == last[n] {
			n++
		}
		l.dir = first[:strings.LastIndex(first[:n], "/")+1]
	}
	return ls
}

// walk reads the objects of l's targets. One target is listed by its own
// prefix, as before. Several are listed from their common directory,
// starting just before the first target, and a page that ends among
// objects of no target (other runs or models sharing the directory) jumps
// to the next target instead of reading what lies between: the walk never
// costs more than one request per target beyond the pages of the targets'
// own objects.
func (t *Target) walk(ctx context.Context, ms *ModelState, l listing) error {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(l.bucket)}
	if t.listPageSize > 0 {
		in.MaxKeys = aws.Int32(t.listPageSize)
	}
	if len(l.targets) == 1 {
		in.Prefix = aws.String(ms.Prefixes[l.targets[0]].Prefix + "/")
	} else {
		in.Prefix = aws.String(l.dir)
		in.StartAfter = aws.String(beforePrefix(ms.Prefixes[l.targets[0]].Prefix))
	}
	for {
		page, err := t.cfg.Client.ListObjectsV2(ctx, in)
		if err != nil {
			return err
		}
		last := ""
		stray := false
		for _, o := range page.Contents {
			obj := Object{
				Key:   aws.ToString(o.Key),
				Size:  aws.ToInt64(o.Size),
				ETag:  aws.ToString(o.ETag),
				Class: storageclass.Normalize(string(o.StorageClass)),
			}
			if o.LastModified != nil {
				obj.LastModified = o.LastModified.UTC()
			}
			last = obj.Key
			owner := mostSpecific(ms.Prefixes, l.bucket, obj.Key)
			stray = owner < 0
			if !stray {
				ms.Prefixes[owner].Objects = append(ms.Prefixes[owner].Objects, obj)
			}
		}
		if !aws.ToBool(page.IsTruncated) {
			return nil
		}
		in.ContinuationToken, in.StartAfter = page.NextContinuationToken, nil
		if !stray {
			continue
		}
		// Keys come in byte order, so every target whose prefix sorts
		// before a key outside it has been read in full.
		next := slices.IndexFunc(l.targets, func(i int) bool { return ms.Prefixes[i].Prefix+"/" > last })
		if next < 0 {
			return nil
		}
		if jump := beforePrefix(ms.Prefixes[l.targets[next]].Prefix); jump > last {
			in.ContinuationToken, in.StartAfter = nil, aws.String(jump)
		}
	}
}

// beforePrefix is a key that sorts after nothing under prefix+"/" and
// before all of it: '.' is the byte just below '/'.
func beforePrefix(prefix string) string { return prefix + "." }

func mostSpecific(ps []PrefixState, bucket, key string) int {
	best := -1
	for i, p := range ps {
		if p.contains(bucket, key) && (best < 0 || len(p.Prefix) > len(ps[best].Prefix)) {
			best = i
		}
	}
	return best
}
