package mlflowclient

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// Locator maps a model version to the storage URI of its files: MLflow's
// get-download-uri, indirections (runs:/, models:/) resolved by the client,
// and proxied mlflow-artifacts:/ URIs mapped onto the server's artifacts
// destination.
type Locator struct {
	Client *Client
	// known caches answers: a version's files never move, and serving and
	// storage ask for every referenced version on every resync.
	known sync.Map // "model\x00version" -> string
	// ArtifactsDestination is the MLflow server's --artifacts-destination
	// (e.g. s3://mlflow/artifacts). No API exposes it, and proxied
	// mlflow-artifacts:/ URIs mean nothing to S3 or KServe without it.
	ArtifactsDestination string
}

// ArtifactURI implements reconciler.ArtifactLocator.
func (l *Locator) ArtifactURI(ctx context.Context, model string, version int) (string, error) {
	key := model + "\x00" + strconv.Itoa(version)
	if uri, ok := l.known.Load(key); ok {
		return uri.(string), nil
	}
	uri, err := l.Client.ModelVersionStorageURI(ctx, model, version)
	if err != nil {
		return "", err
	}
	mapped, err := MapProxiedURI(uri, l.ArtifactsDestination, model, version)
	if err != nil {
		return "", err
	}
	l.known.Store(key, mapped)
	return mapped, nil
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
