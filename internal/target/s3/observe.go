package s3

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/modelsync/modelsync/internal/storageclass"
	"github.com/modelsync/modelsync/reconciler"
)

// Observation is what Observe saw, passed back to Plan. It is plain data and
// marshals to JSON.
type Observation struct {
	// At is the clock reading Plan measures idle times against, so that
	// planning the same observation twice gives the same plan.
	At     time.Time    `json:"at"`
	Models []ModelState `json:"models"`
}

// ModelState is one model's versions and the objects under their prefixes.
type ModelState struct {
	Model           string `json:"model"`
	RegisteredModel string `json:"registeredModel"`
	// Error is set when the model could not be observed; Plan reports it
	// and plans nothing for the model.
	Error    string         `json:"error,omitempty"`
	Versions []VersionState `json:"versions,omitempty"`
	Prefixes []PrefixState  `json:"prefixes,omitempty"`
}

// VersionState is one registry version and where its files are.
type VersionState struct {
	reconciler.RegistryVersion
	Location Location `json:"location"`
}

// PrefixState is one distinct version prefix. An object belongs to the most
// specific prefix that contains it, so nested prefixes do not share objects.
type PrefixState struct {
	Location
	// Versions are the versions located exactly at this prefix.
	Versions []int    `json:"versions"`
	Objects  []Object `json:"objects"`
}

// Object is one listed object.
type Object struct {
	Key          string    `json:"key"`
	Size         int64     `json:"size"`
	ETag         string    `json:"etag"`
	Class        string    `json:"class"`
	LastModified time.Time `json:"lastModified,omitzero"`
	// ArchiveStatus is the Intelligent-Tiering archive tier, if any.
	ArchiveStatus string `json:"archiveStatus,omitempty"`
	// Restore is read (with HeadObject) only for archived objects that the
	// lifecycle wants elsewhere; nil means it was not needed.
	Restore *RestoreStatus `json:"restore,omitempty"`
	// RestoreRequest is modelsync's record of a restore still in progress.
	RestoreRequest *RestoreRequest `json:"restoreRequest,omitempty"`
}

// archived reports whether the object cannot be read or copied as it is.
func (o Object) archived() bool { return storageclass.NeedsRestore(o.Class) || o.ArchiveStatus != "" }

// readable reports whether the object can be read now.
func (o Object) readable() bool { return !o.archived() || (o.Restore != nil && o.Restore.Readable()) }

// Model returns the observed state of a model.
func (o *Observation) Model(name string) (*ModelState, bool) {
	for i := range o.Models {
		if o.Models[i].Model == name {
			return &o.Models[i], true
		}
	}
	return nil, false
}

// ManyVersionLister is a VersionLister that also lists the versions of many
// registered models in a few requests (the MLflow target's VersionLister
// does). A model missing from the answer is asked with ListVersions, which
// gives its own error.
type ManyVersionLister interface {
	ListVersionsOf(ctx context.Context, registeredModels []string) (map[string][]reconciler.RegistryVersion, error)
}

// Observe implements reconciler.TypedTarget. A model whose versions, locations
// or objects cannot be read is recorded with an error; only a cancelled
// context fails the whole observation. The registry is read for all models
// at once when Config.Versions can (ManyVersionLister); each model's
// listings then run on one of Config.ObserveConcurrency workers.
func (t *Target) Observe(ctx context.Context, desired *reconciler.DesiredState) (*Observation, error) {
	obs := &Observation{At: t.cfg.Now().UTC()}
	var models []*reconciler.DesiredModel
	for i := range desired.Models {
		if !desired.Models[i].Suspended {
			models = append(models, &desired.Models[i])
		}
	}
	listed, listErr := t.listMany(ctx, models)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	obs.Models = make([]ModelState, len(models))
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(t.cfg.ObserveConcurrency, len(models)) {
		wg.Go(func() {
			for i := range work {
				m := models[i]
				vs, ok := listed[m.RegisteredModel]
				obs.Models[i] = t.observeModel(ctx, m, vs, ok, listErr, obs.At)
			}
		})
	}
	for i := range models {
		if ctx.Err() != nil {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return obs, nil
}

// listMany reads the versions of models in one go when the lister can. A
// failure is returned for every model to report, as a failed per-model
// listing was.
func (t *Target) listMany(ctx context.Context, models []*reconciler.DesiredModel) (map[string][]reconciler.RegistryVersion, error) {
	many, ok := t.cfg.Versions.(ManyVersionLister)
	if !ok || len(models) < 2 {
		return nil, nil
	}
	names := make([]string, len(models))
	for i, m := range models {
		names[i] = m.RegisteredModel
	}
	return many.ListVersionsOf(ctx, names)
}

// observeModel observes one model; listed are its versions when the
// registry was read for all models at once (ok), listErr that read's error.
func (t *Target) observeModel(ctx context.Context, m *reconciler.DesiredModel, listed []reconciler.RegistryVersion, ok bool, listErr error, at time.Time) ModelState {
	ms := ModelState{Model: m.Name, RegisteredModel: m.RegisteredModel}
	fail := func(err error) ModelState {
		ms.Error = err.Error()
		ms.Versions, ms.Prefixes = nil, nil
		return ms
	}
	if listErr != nil {
		return fail(fmt.Errorf("listing versions of registered model %q: %w", m.RegisteredModel, listErr))
	}
	if !ok {
		var err error
		listed, err = t.cfg.Versions.ListVersions(ctx, m.RegisteredModel)
		if err != nil {
			return fail(fmt.Errorf("listing versions of registered model %q: %w", m.RegisteredModel, err))
		}
	}
	byVersion := map[int]reconciler.RegistryVersion{}
	for _, v := range listed {
		byVersion[v.Version] = v
	}
	// Git may reference a version the registry listing missed (a lagging
	// replica, a page boundary); it must still be kept hot.
	for _, v := range m.ReferencedVersions() {
		if _, ok := byVersion[v]; !ok {
			byVersion[v] = reconciler.RegistryVersion{Version: v}
		}
	}
	for _, n := range sortedKeys(byVersion) {
		uri, err := t.cfg.Locator.ArtifactURI(ctx, m.RegisteredModel, n)
		if err != nil {
			return fail(fmt.Errorf("locating artifacts of v%d: %w", n, err))
		}
		loc, err := ParseURI(uri)
		if err != nil {
			return fail(fmt.Errorf("v%d: %w", n, err))
		}
		ms.Versions = append(ms.Versions, VersionState{RegistryVersion: byVersion[n], Location: loc})
	}
	ms.Prefixes = groupPrefixes(ms.Versions)
	if err := t.listObjects(ctx, &ms); err != nil {
		return fail(err)
	}
	roles := prefixRoles(m, &ms, at)
	for i := range ms.Prefixes {
		p := &ms.Prefixes[i]
		want, keep := roles[p.Location].Class(m.Lifecycle)
		if keep {
			continue
		}
		kept := p.Objects[:0]
		for _, o := range p.Objects {
			cur := storageclass.Normalize(o.Class)
			if cur != want && (storageclass.NeedsRestore(cur) || cur == storageclass.IntelligentTiering) {
				gone, err := t.readRestoreState(ctx, p.Bucket, &o)
				if err != nil {
					return fail(fmt.Errorf("%s: %w", versionsLabel(p.Versions), err))
				}
				if gone {
					continue
				}
			}
			kept = append(kept, o)
		}
		p.Objects = kept
	}
	return ms
}

// groupPrefixes collects distinct locations with the versions at each.
func groupPrefixes(vs []VersionState) []PrefixState {
	at := map[Location][]int{}
	for _, v := range vs {
		at[v.Location] = append(at[v.Location], v.Version)
	}
	var ps []PrefixState
	for loc, versions := range at {
		slices.Sort(versions)
		ps = append(ps, PrefixState{Location: loc, Versions: versions})
	}
	slices.SortFunc(ps, func(a, b PrefixState) int {
		if c := strings.Compare(a.Bucket, b.Bucket); c != 0 {
			return c
		}
		return strings.Compare(a.Prefix, b.Prefix)
	})
	return ps
}

// readRestoreState fills in the restore status of an archived object and,
// while its restore is running, modelsync's record of when it began. gone
// reports an object deleted since it was listed.
func (t *Target) readRestoreState(ctx context.Context, bucket string, o *Object) (gone bool, err error) {
	h, err := t.cfg.Client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(o.Key)})
	if isNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading restore status of s3://%s/%s: %w", bucket, o.Key, err)
	}
	o.ArchiveStatus = string(h.ArchiveStatus)
	if !o.archived() {
		t.forgetRestore(bucket, o.Key)
		return false, nil
	}
	rs, err := ParseRestore(aws.ToString(h.Restore))
	if err != nil {
		return false, fmt.Errorf("s3://%s/%s: %w", bucket, o.Key, err)
	}
	o.Restore = &rs
	if !rs.Ongoing {
		t.forgetRestore(bucket, o.Key)
		return false, nil
	}
	tags, err := t.cfg.Client.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(o.Key)})
	if err != nil {
		// The record only improves a message; the restore runs without it.
		t.cfg.Logger.DebugContext(ctx, "reading restore tag", "object", "s3://"+bucket+"/"+o.Key, "error", err)
	} else {
		for _, tag := range tags.TagSet {
			if aws.ToString(tag.Key) == RestoreTagKey {
				if rr, ok := parseRestoreTag(aws.ToString(tag.Value)); ok {
					o.RestoreRequest = &rr
				}
			}
		}
	}
	if o.RestoreRequest == nil {
		if rr, ok := t.rememberedRestore(bucket, o.Key); ok {
			o.RestoreRequest = &rr
		}
	}
	return false, nil
}

// decisions places every observed version.
func decisions(m *reconciler.DesiredModel, ms *ModelState, at time.Time) map[int]Decision {
	refs := references(m)
	ds := map[int]Decision{}
	for _, v := range ms.Versions {
		ds[v.Version] = Decide(m.Lifecycle, v.RegistryVersion, refs[v.Version], at)
	}
	return ds
}

// owners lists the versions whose prefix contains p: those located at p and
// at any prefix p is nested in.
func owners(ms *ModelState, p Location) []int {
	var vs []int
	for _, q := range ms.Prefixes {
		if p.within(q.Location) {
			vs = append(vs, q.Versions...)
		}
	}
	slices.Sort(vs)
	return slices.Compact(vs)
}

// prefixRoles gives each prefix the hottest role among its owners.
func prefixRoles(m *reconciler.DesiredModel, ms *ModelState, at time.Time) map[Location]Role {
	ds := decisions(m, ms, at)
	roles := map[Location]Role{}
	for _, p := range ms.Prefixes {
		r := RoleDeleted
		for _, v := range owners(ms, p.Location) {
			r = min(r, ds[v].Role)
		}
		roles[p.Location] = r
	}
	return roles
}

func sortedKeys[V any](m map[int]V) []int {
	ks := make([]int, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// versionsLabel renders versions as "v3" or "v3,v4".
func versionsLabel(vs []int) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = fmt.Sprintf("v%d", v)
	}
	return strings.Join(parts, ",")
}

func isNotFound(err error) bool {
	var nf *types.NotFound
	var nsk *types.NoSuchKey
	return errors.As(err, &nf) || errors.As(err, &nsk)
}
