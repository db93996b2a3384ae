package wiring

import (
	"context"
	"io/fs"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/target/kserve"
)

// ValidateServing renders a model's serving directory offline, with the
// KServe target's own confined build, and returns what a later plan would
// fail on (see kserve.ValidateServing). It lives here because the wiring is
// the one importer of target packages: validate reaches the target's checks
// without depending on the target.
func ValidateServing(ctx context.Context, files fs.FS, cfg *manifest.RepoConfig, folder string, m *manifest.Model, pos manifest.Positions) (problems, warnings manifest.ErrorList) {
	return kserve.ValidateServing(ctx, files, cfg, folder, m, pos)
}
