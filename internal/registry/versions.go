package registry

import (
	"context"
	"fmt"
	"time"

	"github.com/modelsync/modelsync/internal/mlflow"
	"github.com/modelsync/modelsync/internal/storage"
)

// VersionLister lists a registered model's versions with what the artifact
// lifecycle needs: creation time, when modelsync archived the version, and
// whether an alias or stage still points at it.
type VersionLister struct {
	Client *mlflow.Client
}

var _ storage.VersionLister = VersionLister{}

// ListVersions implements storage.VersionLister with two reads: the
// registered model (aliases) and one version search.
func (l VersionLister) ListVersions(ctx context.Context, model string) ([]storage.RegistryVersion, error) {
	rm, err := l.Client.GetRegisteredModel(ctx, model)
	if err != nil {
		return nil, err
	}
	aliased := map[int]bool{}
	for _, a := range rm.Aliases {
		aliased[a.Version] = true
	}
	mvs, err := l.Client.SearchModelVersions(ctx, mlflow.SearchOptions{Filter: "name = " + quote(model), PageSize: 1000})
	if err != nil {
		return nil, err
	}
	out := make([]storage.RegistryVersion, 0, len(mvs))
	for _, mv := range mvs {
		rv := storage.RegistryVersion{
			Version: mv.Version,
			Created: time.UnixMilli(mv.CreationTimestamp).UTC(),
			InUse:   aliased[mv.Version] || mv.CurrentStage == mlflow.StageProduction || mv.CurrentStage == mlflow.StageStaging,
		}
		if at := mv.Tags[TagArchivedAt]; at != "" {
			t, err := time.Parse(time.RFC3339, at)
			if err != nil {
				return nil, fmt.Errorf("model %s version %d: tag %s=%q is not RFC 3339: %w", model, mv.Version, TagArchivedAt, at, err)
			}
			rv.LastUsed = t
		}
		out = append(out, rv)
	}
	return out, nil
}
