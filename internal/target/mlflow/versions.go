package mlflow

import (
	"context"
	"fmt"
	"time"

	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/reconciler"
)

// VersionLister lists a registered model's versions with what the artifact
// lifecycle needs: creation time, when modelsync archived the version, and
// whether an alias or stage still points at it.
type VersionLister struct {
	Client *mlflowclient.Client
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
