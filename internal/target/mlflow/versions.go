package mlflow

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/reconciler"
)

// VersionLister lists a registered model's versions with what the artifact
// lifecycle needs: creation time, when modelsync archived the version, and
// whether an alias or stage still points at it.
type VersionLister struct {
	Client *mlflowclient.Client
	// PageSize bounds search pages of ListVersionsOf; 1000 when 0.
	PageSize int
}

var _ reconciler.VersionLister = VersionLister{}

// ListVersions implements reconciler.VersionLister with two reads: the
// registered model (aliases) and one version search.
func (l VersionLister) ListVersions(ctx context.Context, model string) ([]reconciler.RegistryVersion, error) {
	rm, err := l.Client.GetRegisteredModel(ctx, model)
	if err != nil {
		return nil, err
	}
	aliased := map[int]bool{}
	for _, a := range rm.Aliases {
		aliased[a.Version] = true
	}
	mvs, err := l.Client.SearchModelVersions(ctx, mlflowclient.SearchOptions{Filter: "name = " + quote(model), PageSize: 1000})
	if err != nil {
		return nil, err
	}
	return registryVersions(model, mvs, aliased)
}

// ListVersionsOf lists the versions of many registered models with the
// reads the MLflow target observes with: paged searches whose count grows
// with versions / page size, not with models (a registered-model read and
// a version search per model cost 20,000 requests per resync at 10,000
// models). A model missing from the result does not exist or has a version
// that cannot be read; ListVersions tells which, for that model alone.
func (l VersionLister) ListVersionsOf(ctx context.Context, models []string) (map[string][]reconciler.RegistryVersion, error) {
	pageSize := l.PageSize
	if pageSize <= 0 {
		pageSize = 1000
	}
	obs, err := readRegistry(ctx, l.Client, pageSize, models)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]reconciler.RegistryVersion, len(obs.models))
	for name, lm := range obs.models {
		if !lm.exists {
			continue
		}
		aliased := map[int]bool{}
		for _, v := range lm.aliases {
			aliased[v] = true
		}
		mvs := make([]mlflowclient.ModelVersion, 0, len(lm.versions))
		for _, n := range slices.Sorted(maps.Keys(lm.versions)) {
			mvs = append(mvs, lm.versions[n])
		}
		if rvs, err := registryVersions(name, mvs, aliased); err == nil {
			out[name] = rvs
		}
	}
	return out, nil
}

// registryVersions converts a model's versions to what artifact storage
// needs; aliased are the versions an alias points at.
func registryVersions(model string, mvs []mlflowclient.ModelVersion, aliased map[int]bool) ([]reconciler.RegistryVersion, error) {
	out := make([]reconciler.RegistryVersion, 0, len(mvs))
	for _, mv := range mvs {
		rv := reconciler.RegistryVersion{
			Version: mv.Version,
			Created: time.UnixMilli(mv.CreationTimestamp).UTC(),
			InUse:   aliased[mv.Version] || mv.CurrentStage == mlflowclient.StageProduction || mv.CurrentStage == mlflowclient.StageStaging,
		}
		if at := mv.Tags[mlflowclient.TagArchivedAt]; at != "" {
			t, err := time.Parse(time.RFC3339, at)
			if err != nil {
				return nil, fmt.Errorf("model %s version %d: tag %s=%q is not RFC 3339: %w", model, mv.Version, mlflowclient.TagArchivedAt, at, err)
			}
			rv.LastUsed = t
		}
		out = append(out, rv)
	}
	return out, nil
}
