package registry

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/modelsync/modelsync/internal/mlflow"
	"github.com/modelsync/modelsync/reconciler"
)

// Locator maps a model version to the storage URI of its files, asking
// MLflow's get-download-uri rather than rebuilding paths.
type Locator struct {
	Client *mlflow.Client
	// ArtifactsDestination is the MLflow server's --artifacts-destination
	// (e.g. s3://mlflow/artifacts): no API exposes it, and proxied
	// mlflow-artifacts:/ URIs mean nothing without it.
	ArtifactsDestination string
}

var _ reconciler.ArtifactLocator = (*Locator)(nil)

// maxIndirections bounds runs:/ → mlflow-artifacts:/ → ... chains.
const maxIndirections = 4

// ArtifactURI implements reconciler.ArtifactLocator.
func (l *Locator) ArtifactURI(ctx context.Context, model string, version int) (string, error) {
	uri, err := l.Client.ModelVersionDownloadURI(ctx, model, version)
	if err != nil {
		return "", err
	}
	for range maxIndirections {
		next, done, err := l.resolve(ctx, uri)
		if err != nil {
			return "", fmt.Errorf("model %s version %d: artifact URI %q: %w", model, version, uri, err)
		}
		if done {
			return next, nil
		}
		uri = next
	}
	return "", fmt.Errorf("model %s version %d: artifact URI %q: too many indirections", model, version, uri)
}

func (l *Locator) resolve(ctx context.Context, uri string) (string, bool, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", false, err
	}
	switch u.Scheme {
	case "mlflow-artifacts":
		if l.ArtifactsDestination == "" {
			return "", false, fmt.Errorf("artifacts are proxied by the MLflow server; configure the server's artifacts destination (--artifacts-destination) so modelsync can find them")
		}
		return strings.TrimRight(l.ArtifactsDestination, "/") + "/" + strings.TrimLeft(u.Path, "/"), true, nil
	case "runs":
		// runs:/<run_id>/<path>
		runID, rest, _ := strings.Cut(strings.TrimLeft(u.Path, "/"), "/")
		run, err := l.Client.GetRun(ctx, runID)
		if err != nil {
			return "", false, err
		}
		return strings.TrimRight(run.Info.ArtifactURI, "/") + "/" + rest, false, nil
	case "models":
		return "", false, fmt.Errorf("models:/ sources (MLflow 3 logged models) need the logged-models API, which this MLflow client does not read yet; register the version with a run or storage source")
	case "":
		return "", false, fmt.Errorf("not a URI")
	default:
		return uri, true, nil
	}
}
