// Package s3 is modelsync's artifact-storage target ("s3"): it keeps
// the storage class of every registered model version's files in line with
// the model's lifecycle, restores archived files before a rollback needs
// them, and reports what the artifacts cost.
//
// The target asks a reconciler.VersionLister which versions a registered model has and
// an ArtifactLocator where each one's files live (s3://bucket/prefix). It
// lists the objects under prefix+"/", decides a class per version from the
// lifecycle (referenced → active; idle past archiveAfter → archived; past
// deepArchiveAfter → deep archive; past deleteAfter with allowDelete →
// deleted) and plans one action per prefix and kind. Versions that share a
// prefix, or whose prefixes nest, keep the hottest class any of them needs.
//
// A pass costs few requests whatever the number of models: a lister that
// implements ManyVersionLister (the MLflow target's does) answers for all
// models in O(versions / page size) searches; each model's version
// prefixes in a bucket are read in one LIST walk of their common directory
// that jumps over keys of no version, so side-by-side versions
// (s3://b/models/m/1, s3://b/models/m/2) cost one request, and spread ones
// never more than a LIST per version; and Config.ObserveConcurrency models
// are observed at once.
//
// Class changes are server-side copies of an object onto itself. Up to the
// copy threshold (5 GiB, the CopyObject limit) a single CopyObject is used;
// above it a multipart copy whose parts are UploadPartCopy requests, so no
// object bytes pass through modelsync.
//
// Interrupted multipart copies are not resumed. A copy that fails aborts its
// own upload; and before a multipart copy starts, every incomplete multipart
// upload on the same key is aborted. Resuming would mean trusting parts
// whose source cannot be checked (ListParts reports part ETags, not which
// source version they were copied from), while a server-side copy is cheap
// to redo. This relies on modelsync being the only multipart writer of
// artifact keys, which holds for MLflow: it writes a version's files once,
// when the model is logged, before the version is registered.
//
// Archived GLACIER and DEEP_ARCHIVE objects (and Intelligent-Tiering objects
// in an archive tier) cannot be copied until restored. When such an object
// must become hotter, the plan requests a restore; the object is tagged
// modelsync.restore=<tier>@<RFC 3339 time> so later plans can say since when
// they have been waiting; once x-amz-restore reports ongoing-request="false"
// the object is copied to its new class and the tag is dropped. While a
// referenced version has unrestored objects the plan carries a
// reconciler.Wait for every environment that references it; Readiness reads
// those waits back as (model, version) pairs.
package s3
