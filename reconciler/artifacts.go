package reconciler

import "context"

// ArtifactLocator tells where a registered model version's files live, as
// the registry reports it (MLflow's get-download-uri), already mapped to a
// storage URI such as s3://bucket/prefix. Serving needs it for storageUri
// and artifact storage needs it to find the objects whose class to change.
type ArtifactLocator interface {
	ArtifactURI(ctx context.Context, registeredModel string, version int) (string, error)
}
