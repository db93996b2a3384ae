package s3

import (
	"context"
	"time"
)

// RegistryVersion is what the target needs to know about one registered
// model version to place its artifacts.
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

// VersionLister lists a registered model's versions. The MLflow registry
// client implements it.
type VersionLister interface {
	ListVersions(ctx context.Context, registeredModel string) ([]RegistryVersion, error)
}
