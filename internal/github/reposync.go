package github

import (
	"context"
	"fmt"

	"github.com/modelsync/modelsync/internal/github/prcheck"
	"github.com/modelsync/modelsync/internal/repo"
)

// RepoSync gives the gate the models repository through the process's one
// owner of it, shared with the controller: each evaluation fetches (joining
// a fetch in progress when that one still sees what GitHub announced) and
// judges the snapshot of that fetch, which later fetches do not change.
type RepoSync struct {
	git *repo.Repository
}

// NewRepoSync returns a sync through git.
func NewRepoSync(git *repo.Repository) *RepoSync { return &RepoSync{git: git} }

// Sync implements GateOptions.Sync.
func (s *RepoSync) Sync(ctx context.Context) (prcheck.Repository, error) {
	snap, err := s.git.Sync(ctx)
	if err != nil {
		return nil, err
	}
	return prcheck.FromSnapshot(snap), nil
}

// FetchPullHead implements GateOptions.FetchPull: it downloads GitHub's
// refs/pull/<number>/head, where the commits of a pull request from a fork
// live in the base repository.
func (s *RepoSync) FetchPullHead(ctx context.Context, number int) error {
	_, err := s.git.FetchRef(ctx, fmt.Sprintf("refs/pull/%d/head", number))
	return err
}
