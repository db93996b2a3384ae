package reconciler

import (
	"context"
	"time"
)

// ArtifactLocator tells where a registered model version's files live, as
// the registry reports it (MLflow's get-download-uri), already mapped to a
// storage URI such as s3://bucket/prefix. Serving needs it for storageUri
// and artifact storage needs it to find the objects whose class to change.
type ArtifactLocator interface {
	ArtifactURI(ctx context.Context, registeredModel string, version int) (string, error)
}

// RegistryVersion is what artifact storage needs to know about one
// registered model version to place its artifacts.
type RegistryVersion struct {
	Version int       `json:"version"`
	Created time.Time `json:"created,omitzero"`
	// LastUsed is when the version stopped running anywhere (the registry's
	// modelsync.archived_at audit tag); zero when unknown, in which case
	// idle time counts from Created.
	LastUsed time.Time `json:"lastUsed,omitzero"`
	// InUse is set while the registry still points an alias or stage at
	// the version. Git may already have moved on, but until the registry
	// follows (and records LastUsed) the version is live, and measuring
	// from Created would archive it in the same plan that leaves it.
	InUse bool `json:"inUse,omitempty"`
}

// VersionLister lists a registered model's versions. The MLflow target's
// VersionLister implements it; the S3 target uses it, and neither imports
// the other.
type VersionLister interface {
	ListVersions(ctx context.Context, registeredModel string) ([]RegistryVersion, error)
}
