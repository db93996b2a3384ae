package mlflowclient

import (
	"context"
	"fmt"
	"iter"
	"net/http"
	"slices"
	"strings"
)

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func need(what, v string) error {
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalidArgument, what)
	}
	return nil
}

func needVersion(model string, v int) error {
	if v <= 0 {
		return fmt.Errorf("%w: model %q: version %d is not a positive version number", ErrInvalidArgument, model, v)
	}
	return nil
}

// ---- registered models ----

// CreateRegisteredModelRequest is the input of CreateRegisteredModel.
type CreateRegisteredModelRequest struct {
	Name        string
	Description string
	Tags        map[string]string
}

type registeredModelReply struct {
	RegisteredModel wireRegisteredModel `json:"registered_model"`
}

// CreateRegisteredModel creates a model. An existing name fails with an
// error for which IsAlreadyExists is true; see EnsureRegisteredModel.
func (c *Client) CreateRegisteredModel(ctx context.Context, r CreateRegisteredModelRequest) (*RegisteredModel, error) {
	if err := need("model name", r.Name); err != nil {
		return nil, err
	}
	p := params{}.must("name", r.Name).str("description", r.Description)
	if tags := mapToTags(r.Tags); tags != nil {
		p = p.json("tags", tags)
	}
	var out registeredModelReply
	if err := c.call(ctx, http.MethodPost, "registered-models/create", p, &out); err != nil {
		return nil, fmt.Errorf("create registered model %q: %w", r.Name, err)
	}
	m := out.RegisteredModel.toModel()
	return &m, nil
}

// GetRegisteredModel returns the model with its aliases and tags.
func (c *Client) GetRegisteredModel(ctx context.Context, name string) (*RegisteredModel, error) {
	if err := need("model name", name); err != nil {
		return nil, err
	}
	var out registeredModelReply
	if err := c.call(ctx, http.MethodGet, "registered-models/get", params{}.must("name", name), &out); err != nil {
		return nil, fmt.Errorf("get registered model %q: %w", name, err)
	}
	m := out.RegisteredModel.toModel()
	return &m, nil
}

// DeleteRegisteredModel deletes a model and all its versions.
func (c *Client) DeleteRegisteredModel(ctx context.Context, name string) error {
	if err := need("model name", name); err != nil {
		return err
	}
	if err := c.call(ctx, http.MethodDelete, "registered-models/delete", params{}.must("name", name), nil); err != nil {
		return fmt.Errorf("delete registered model %q: %w", name, err)
	}
	return nil
}

// SearchOptions selects and pages search results.
type SearchOptions struct {
	// Filter is MLflow's search filter, e.g. "name LIKE 'fraud-%'" or, for
	// versions, "name = 'fraud' AND tags.status = 'approved'".
	Filter string
	// OrderBy entries such as "version_number DESC" (sent as repeated keys).
	OrderBy []string
	// PageSize is max_results per request; 0 lets the server choose (100 for
	// models). Models accept at most 1000.
	PageSize int
}

// params are the query of one search page, the same for models and versions.
func (o SearchOptions) params(pageToken string) params {
	p := params{}.str("filter", o.Filter).strs("order_by", o.OrderBy).str("page_token", pageToken)
	if o.PageSize > 0 {
		p = p.json("max_results", o.PageSize)
	}
	return p
}

// SearchRegisteredModelsPage fetches one page. An empty next token means
// there are no more pages.
func (c *Client) SearchRegisteredModelsPage(ctx context.Context, o SearchOptions, pageToken string) ([]RegisteredModel, string, error) {
	p := o.params(pageToken)
	var out struct {
		RegisteredModels []wireRegisteredModel `json:"registered_models"`
		NextPageToken    string                `json:"next_page_token"`
	}
	if err := c.call(ctx, http.MethodGet, "registered-models/search", p, &out); err != nil {
		return nil, "", fmt.Errorf("search registered models (filter %q): %w", o.Filter, err)
	}
	models := make([]RegisteredModel, 0, len(out.RegisteredModels))
	for i := range out.RegisteredModels {
		models = append(models, out.RegisteredModels[i].toModel())
	}
	return models, out.NextPageToken, nil
}

// RegisteredModels iterates over all matching models across pages. The page
// token is an offset, so concurrent creates can repeat a row on the next
// page; rows are deduplicated by name. Iteration stops at the first error,
// which is yielded once.
func (c *Client) RegisteredModels(ctx context.Context, o SearchOptions) iter.Seq2[RegisteredModel, error] {
	return paginate(func(token string) ([]RegisteredModel, string, error) {
		return c.SearchRegisteredModelsPage(ctx, o, token)
	}, func(m RegisteredModel) string { return m.Name }, "registered-models/search")
}

// SearchRegisteredModels returns all matching models (all pages, deduplicated).
func (c *Client) SearchRegisteredModels(ctx context.Context, o SearchOptions) ([]RegisteredModel, error) {
	return collect(c.RegisteredModels(ctx, o))
}

// SetRegisteredModelTag sets a tag on a model.
func (c *Client) SetRegisteredModelTag(ctx context.Context, model, key, value string) error {
	if err := need("model name", model); err != nil {
		return err
	}
	if err := need("tag key", key); err != nil {
		return err
	}
	p := params{}.must("name", model).must("key", key).must("value", value)
	if err := c.call(ctx, http.MethodPost, "registered-models/set-tag", p, nil); err != nil {
		return fmt.Errorf("set tag %q on model %q: %w", key, model, err)
	}
	return nil
}

// DeleteRegisteredModelTag removes a tag from a model.
func (c *Client) DeleteRegisteredModelTag(ctx context.Context, model, key string) error {
	if err := need("model name", model); err != nil {
		return err
	}
	if err := need("tag key", key); err != nil {
		return err
	}
	p := params{}.must("name", model).must("key", key)
	if err := c.call(ctx, http.MethodDelete, "registered-models/delete-tag", p, nil); err != nil {
		return fmt.Errorf("delete tag %q from model %q: %w", key, model, err)
	}
	return nil
}

// ---- model versions ----

// CreateModelVersionRequest is the input of CreateModelVersion.
type CreateModelVersionRequest struct {
	Name        string
	Source      string // artifact URI of the model, e.g. runs:/<id>/model or s3://...
	RunID       string
	RunLink     string
	Description string
	Tags        map[string]string
	// ModelID is the 3.x logged-model id; 2.x servers ignore it.
	ModelID string
}

type modelVersionReply struct {
	ModelVersion wireModelVersion `json:"model_version"`
}

// CreateModelVersion registers a new version. The call is not idempotent: a
// resend after an ambiguous failure would create a second version, so it is
// retried only when the request surely did not reach the server. Use
// EnsureModelVersion to register at most once per idempotency key.
func (c *Client) CreateModelVersion(ctx context.Context, r CreateModelVersionRequest) (*ModelVersion, error) {
	if err := need("model name", r.Name); err != nil {
		return nil, err
	}
	if err := need("version source", r.Source); err != nil {
		return nil, err
	}
	p := params{}.must("name", r.Name).must("source", r.Source).str("run_id", r.RunID).
		str("run_link", r.RunLink).str("description", r.Description).str("model_id", r.ModelID)
	if tags := mapToTags(r.Tags); tags != nil {
		p = p.json("tags", tags)
	}
	var out modelVersionReply
	if err := c.call(ctx, http.MethodPost, "model-versions/create", p, &out); err != nil {
		return nil, fmt.Errorf("create version of model %q from %s: %w", r.Name, r.Source, err)
	}
	v := out.ModelVersion.toModel()
	return &v, nil
}

// GetModelVersion returns one version, with its aliases.
func (c *Client) GetModelVersion(ctx context.Context, model string, version int) (*ModelVersion, error) {
	if err := need("model name", model); err != nil {
		return nil, err
	}
	if err := needVersion(model, version); err != nil {
		return nil, err
	}
	var out modelVersionReply
	p := params{}.must("name", model).version("version", version)
	if err := c.call(ctx, http.MethodGet, "model-versions/get", p, &out); err != nil {
		return nil, fmt.Errorf("get model %q version %d: %w", model, version, err)
	}
	v := out.ModelVersion.toModel()
	return &v, nil
}

// DeleteModelVersion soft-deletes a version (its artifacts stay).
func (c *Client) DeleteModelVersion(ctx context.Context, model string, version int) error {
	if err := need("model name", model); err != nil {
		return err
	}
	if err := needVersion(model, version); err != nil {
		return err
	}
	p := params{}.must("name", model).version("version", version)
	if err := c.call(ctx, http.MethodDelete, "model-versions/delete", p, nil); err != nil {
		return fmt.Errorf("delete model %q version %d: %w", model, version, err)
	}
	return nil
}

// SearchModelVersionsPage fetches one page. Versions from search carry no
// aliases (MLflow leaves them out); use ReadAliases.
func (c *Client) SearchModelVersionsPage(ctx context.Context, o SearchOptions, pageToken string) ([]ModelVersion, string, error) {
	p := o.params(pageToken)
	var out struct {
		ModelVersions []wireModelVersion `json:"model_versions"`
		NextPageToken string             `json:"next_page_token"`
	}
	if err := c.call(ctx, http.MethodGet, "model-versions/search", p, &out); err != nil {
		return nil, "", fmt.Errorf("search model versions (filter %q): %w", o.Filter, err)
	}
	vs := make([]ModelVersion, 0, len(out.ModelVersions))
	for i := range out.ModelVersions {
		vs = append(vs, out.ModelVersions[i].toModel())
	}
	return vs, out.NextPageToken, nil
}

// ModelVersions iterates over all matching versions across pages,
// deduplicated on (name, version).
func (c *Client) ModelVersions(ctx context.Context, o SearchOptions) iter.Seq2[ModelVersion, error] {
	return paginate(func(token string) ([]ModelVersion, string, error) {
		return c.SearchModelVersionsPage(ctx, o, token)
	}, func(v ModelVersion) string { return fmt.Sprintf("%s\x00%d", v.Name, v.Version) }, "model-versions/search")
}

// SearchModelVersions returns all matching versions (all pages, deduplicated).
func (c *Client) SearchModelVersions(ctx context.Context, o SearchOptions) ([]ModelVersion, error) {
	return collect(c.ModelVersions(ctx, o))
}

// ModelVersionDownloadURI returns where the version's files are
// (storage_location, else source). Always ask rather than rebuilding paths.
func (c *Client) ModelVersionDownloadURI(ctx context.Context, model string, version int) (string, error) {
	if err := need("model name", model); err != nil {
		return "", err
	}
	if err := needVersion(model, version); err != nil {
		return "", err
	}
	var out struct {
		ArtifactURI string `json:"artifact_uri"`
	}
	p := params{}.must("name", model).version("version", version)
	if err := c.call(ctx, http.MethodGet, "model-versions/get-download-uri", p, &out); err != nil {
		return "", fmt.Errorf("get download URI of model %q version %d: %w", model, version, err)
	}
	return out.ArtifactURI, nil
}

// canonicalStage maps MLflow's case-insensitive stage names to their
// canonical spelling; ok is false for anything else.
func canonicalStage(s string) (string, bool) {
	for _, st := range []string{StageNone, StageStaging, StageProduction, StageArchived} {
		if strings.EqualFold(s, st) {
			return st, true
		}
	}
	return "", false
}

// TransitionModelVersionStage moves a version to a (deprecated) stage.
// archiveExisting is only valid for Staging and Production: MLflow answers
// other targets with an HTTP 500, which looks retryable, so the client
// refuses them before sending.
func (c *Client) TransitionModelVersionStage(ctx context.Context, model string, version int, stage string, archiveExisting bool) (*ModelVersion, error) {
	if err := need("model name", model); err != nil {
		return nil, err
	}
	if err := needVersion(model, version); err != nil {
		return nil, err
	}
	st, ok := canonicalStage(stage)
	if !ok {
		return nil, fmt.Errorf("%w: model %q version %d: unknown stage %q (want None, Staging, Production or Archived)", ErrInvalidArgument, model, version, stage)
	}
	if archiveExisting && st != StageStaging && st != StageProduction {
		return nil, fmt.Errorf("%w: model %q version %d: archive_existing_versions applies only to Staging and Production, not %s", ErrInvalidArgument, model, version, st)
	}
	p := params{}.must("name", model).version("version", version).must("stage", st).boolean("archive_existing_versions", archiveExisting)
	var out modelVersionReply
	if err := c.call(ctx, http.MethodPost, "model-versions/transition-stage", p, &out); err != nil {
		return nil, fmt.Errorf("transition model %q version %d to stage %s: %w", model, version, st, err)
	}
	v := out.ModelVersion.toModel()
	return &v, nil
}

// SetModelVersionTag sets a tag on a version.
func (c *Client) SetModelVersionTag(ctx context.Context, model string, version int, key, value string) error {
	if err := need("model name", model); err != nil {
		return err
	}
	if err := needVersion(model, version); err != nil {
		return err
	}
	if err := need("tag key", key); err != nil {
		return err
	}
	p := params{}.must("name", model).version("version", version).must("key", key).must("value", value)
	if err := c.call(ctx, http.MethodPost, "model-versions/set-tag", p, nil); err != nil {
		return fmt.Errorf("set tag %q on model %q version %d: %w", key, model, version, err)
	}
	return nil
}

// DeleteModelVersionTag removes a tag from a version.
func (c *Client) DeleteModelVersionTag(ctx context.Context, model string, version int, key string) error {
	if err := need("model name", model); err != nil {
		return err
	}
	if err := needVersion(model, version); err != nil {
		return err
	}
	if err := need("tag key", key); err != nil {
		return err
	}
	p := params{}.must("name", model).version("version", version).must("key", key)
	if err := c.call(ctx, http.MethodDelete, "model-versions/delete-tag", p, nil); err != nil {
		return fmt.Errorf("delete tag %q from model %q version %d: %w", key, model, version, err)
	}
	return nil
}

// ---- aliases ----

// SetAlias points alias at version (moving it if it points elsewhere).
func (c *Client) SetAlias(ctx context.Context, model, alias string, version int) error {
	if err := need("model name", model); err != nil {
		return err
	}
	if err := need("alias", alias); err != nil {
		return err
	}
	if err := needVersion(model, version); err != nil {
		return err
	}
	p := params{}.must("name", model).must("alias", alias).version("version", version)
	if err := c.call(ctx, http.MethodPost, "registered-models/alias", p, nil); err != nil {
		return fmt.Errorf("set alias %q of model %q to version %d: %w", alias, model, version, err)
	}
	return nil
}

// DeleteAlias removes an alias. Removing an alias that is not set succeeds.
func (c *Client) DeleteAlias(ctx context.Context, model, alias string) error {
	if err := need("model name", model); err != nil {
		return err
	}
	if err := need("alias", alias); err != nil {
		return err
	}
	p := params{}.must("name", model).must("alias", alias)
	if err := c.call(ctx, http.MethodDelete, "registered-models/alias", p, nil); err != nil {
		return fmt.Errorf("delete alias %q of model %q: %w", alias, model, err)
	}
	return nil
}

// GetModelVersionByAlias returns the version an alias points at. An alias
// that is not set fails with INVALID_PARAMETER_VALUE (HTTP 400), not 404;
// use ReadAliases to test whether an alias is set.
func (c *Client) GetModelVersionByAlias(ctx context.Context, model, alias string) (*ModelVersion, error) {
	if err := need("model name", model); err != nil {
		return nil, err
	}
	if err := need("alias", alias); err != nil {
		return nil, err
	}
	var out modelVersionReply
	p := params{}.must("name", model).must("alias", alias)
	if err := c.call(ctx, http.MethodGet, "registered-models/alias", p, &out); err != nil {
		return nil, fmt.Errorf("get version of model %q by alias %q: %w", model, alias, err)
	}
	v := out.ModelVersion.toModel()
	return &v, nil
}

// ReadAliases returns the model's aliases as alias -> version with one
// registered-models/get. An alias absent from the map is not set.
func (c *Client) ReadAliases(ctx context.Context, model string) (map[string]int, error) {
	m, err := c.GetRegisteredModel(ctx, model)
	if err != nil {
		return nil, fmt.Errorf("read aliases: %w", err)
	}
	return m.AliasMap(), nil
}

// ---- pagination ----

// maxPages stops a server that keeps returning tokens from looping forever.
const maxPages = 100000

func paginate[T any](fetch func(token string) ([]T, string, error), key func(T) string, endpoint string) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		seen := map[string]struct{}{}
		tokens := map[string]struct{}{}
		token := ""
		for page := 0; ; page++ {
			if page >= maxPages {
				yield(zero, fmt.Errorf("mlflow %s: more than %d pages, giving up", endpoint, maxPages))
				return
			}
			items, next, err := fetch(token)
			if err != nil {
				yield(zero, err)
				return
			}
			for _, it := range items {
				k := key(it)
				if _, dup := seen[k]; dup {
					continue
				}
				seen[k] = struct{}{}
				if !yield(it, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			if _, again := tokens[next]; again {
				yield(zero, fmt.Errorf("mlflow %s: server repeated page token, stopping", endpoint))
				return
			}
			tokens[next] = struct{}{}
			token = next
		}
	}
}

func collect[T any](seq iter.Seq2[T, error]) ([]T, error) {
	var out []T
	for v, err := range seq {
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}
