package mlflowclient

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// maxURIHops bounds models:/ indirections (a version whose source names
// another version, ...), which MLflow does not forbid.
const maxURIHops = 8

// ModelVersionStorageURI returns the storage URI of a version's files:
// get-download-uri, then resolved with ResolveArtifactURI, because a version
// registered over REST keeps a runs:/ or models:/ source as given.
func (c *Client) ModelVersionStorageURI(ctx context.Context, model string, version int) (string, error) {
	uri, err := c.ModelVersionDownloadURI(ctx, model, version)
	if err != nil {
		return "", err
	}
	resolved, err := c.ResolveArtifactURI(ctx, uri)
	if err != nil {
		return "", fmt.Errorf("model %q version %d: %w", model, version, err)
	}
	return resolved, nil
}

// ResolveArtifactURI maps MLflow's indirect artifact URIs to the URI where
// the files are stored:
//
//	runs:/<run_id>/<path>   -> <run artifact_uri>/<path>
//	models:/<name>/<ver>    -> that version's storage URI
//	models:/<name>@<alias>  -> the aliased version's storage URI
//	models:/m-<id>          -> the 3.x logged model's artifact_uri
//
// Anything else (s3://, mlflow-artifacts:/, file:, gs://, ...) is returned
// unchanged. Stage URIs (models:/<name>/Production) are refused: they are
// deprecated and ambiguous.
func (c *Client) ResolveArtifactURI(ctx context.Context, uri string) (string, error) {
	for range maxURIHops {
		next, done, err := c.resolveOnce(ctx, uri)
		if err != nil || done {
			return next, err
		}
		uri = next
	}
	return "", fmt.Errorf("%w: artifact URI %s: more than %d models:/ indirections", ErrInvalidArgument, uri, maxURIHops)
}

func (c *Client) resolveOnce(ctx context.Context, uri string) (string, bool, error) {
	switch {
	case strings.HasPrefix(uri, "runs:/"):
		rest := strings.TrimPrefix(uri, "runs:/")
		runID, path, _ := strings.Cut(rest, "/")
		if runID == "" {
			return "", true, fmt.Errorf("%w: artifact URI %s names no run", ErrInvalidArgument, uri)
		}
		run, err := c.GetRun(ctx, runID)
		if err != nil {
			return "", true, fmt.Errorf("resolve %s: %w", uri, err)
		}
		return joinURI(run.Info.ArtifactURI, path), false, nil
	case strings.HasPrefix(uri, "models:/"):
		rest := strings.Trim(strings.TrimPrefix(uri, "models:/"), "/")
		if name, alias, ok := strings.Cut(rest, "@"); ok && !strings.Contains(alias, "/") {
			mv, err := c.GetModelVersionByAlias(ctx, name, alias)
			if err != nil {
				return "", true, fmt.Errorf("resolve %s: %w", uri, err)
			}
			next, err := c.ModelVersionDownloadURI(ctx, name, mv.Version)
			return next, err != nil, err
		}
		name, ref, ok := strings.Cut(rest, "/")
		if !ok {
			if !strings.HasPrefix(rest, "m-") {
				return "", true, fmt.Errorf("%w: artifact URI %s: want models:/<name>/<version>, models:/<name>@<alias> or models:/m-<id>", ErrInvalidArgument, uri)
			}
			loc, err := c.loggedModelArtifactURI(ctx, rest)
			return loc, true, err
		}
		v, err := strconv.Atoi(ref)
		if err != nil || v <= 0 {
			return "", true, fmt.Errorf("%w: artifact URI %s: only version numbers and aliases are resolved, not stages", ErrInvalidArgument, uri)
		}
		next, err := c.ModelVersionDownloadURI(ctx, name, v)
		return next, err != nil, err
	}
	return uri, true, nil
}

// loggedModelArtifactURI reads a 3.x logged model (GET logged-models/<id>).
func (c *Client) loggedModelArtifactURI(ctx context.Context, modelID string) (string, error) {
	var out struct {
		Model struct {
			Info struct {
				ArtifactURI string `json:"artifact_uri"`
			} `json:"info"`
		} `json:"model"`
	}
	if strings.ContainsAny(modelID, "/?#%") {
		return "", fmt.Errorf("%w: logged model id %q", ErrInvalidArgument, modelID)
	}
	if err := c.call(ctx, http.MethodGet, "logged-models/"+modelID, nil, &out); err != nil {
		return "", fmt.Errorf("get logged model %s: %w", modelID, err)
	}
	if out.Model.Info.ArtifactURI == "" {
		return "", fmt.Errorf("logged model %s has no artifact_uri", modelID)
	}
	return out.Model.Info.ArtifactURI, nil
}

func joinURI(base, path string) string {
	path = strings.Trim(path, "/")
	if path == "" {
		return base
	}
	return strings.TrimRight(base, "/") + "/" + path
}
