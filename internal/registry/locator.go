package registry

import (
	"context"
	"fmt"
	"strings"

	"github.com/modelsync/modelsync/internal/mlflow"
	"github.com/modelsync/modelsync/reconciler"
)

// Locator maps a model version to the storage URI of its files: MLflow's
// get-download-uri, indirections (runs:/, models:/) resolved by the client,
// and proxied mlflow-artifacts:/ URIs mapped onto the server's artifacts
// destination.
type Locator struct {
	Client *mlflow.Client
	// ArtifactsDestination is the MLflow server's --artifacts-destination
	// (e.g. s3://mlflow/artifacts). No API exposes it, and proxied
	// mlflow-artifacts:/ URIs mean nothing to S3 or KServe without it.
	ArtifactsDestination string
}

var _ reconciler.ArtifactLocator = (*Locator)(nil)

// ArtifactURI implements reconciler.ArtifactLocator.
func (l *Locator) ArtifactURI(ctx context.Context, model string, version int) (string, error) {
	uri, err := l.Client.ModelVersionStorageURI(ctx, model, version)
	if err != nil {
		return "", err
	}
	return MapProxiedURI(uri, l.ArtifactsDestination, model, version)
}

// MapProxiedURI turns mlflow-artifacts:/<path> (or mlflow-artifacts://host/<path>)
// into <destination>/<path>; other URIs are returned unchanged.
func MapProxiedURI(uri, destination, model string, version int) (string, error) {
	rest, ok := strings.CutPrefix(uri, "mlflow-artifacts:")
	if !ok {
		return uri, nil
	}
	if destination == "" {
		return "", fmt.Errorf("model %s version %d: artifacts at %s are proxied by the MLflow server; set the server's artifacts destination (--artifacts-destination) so modelsync can find them", model, version, uri)
	}
	rest = strings.TrimPrefix(rest, "//")
	if !strings.HasPrefix(rest, "/") {
		// mlflow-artifacts://host:port/path: drop the authority.
		if i := strings.Index(rest, "/"); i >= 0 {
			rest = rest[i:]
		} else {
			rest = "/"
		}
	}
	return strings.TrimRight(destination, "/") + "/" + strings.TrimLeft(rest, "/"), nil
}
