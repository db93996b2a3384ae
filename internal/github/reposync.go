package github

import (
	"context"
	"fmt"
	"sync"

	"github.com/modelsync/modelsync/internal/github/prcheck"
	"github.com/modelsync/modelsync/internal/repo"
)

// RepoSync opens the models repository on first use and fetches it again
// on every call, so each evaluation sees the commits GitHub announced.
type RepoSync struct {
	opts repo.Options

	mu   sync.Mutex
	snap *repo.Snapshot
}

// NewRepoSync returns a sync for the repository opts names.
func NewRepoSync(opts repo.Options) *RepoSync { return &RepoSync{opts: opts} }

// Sync implements GateOptions.Sync.
func (s *RepoSync) Sync(ctx context.Context) (prcheck.Repository, error) {
	s.mu.Lock()
	if s.snap == nil {
		// Opened under the lock: two Sources over one cache directory
		// would write it concurrently.
		defer s.mu.Unlock()
		opened, err := repo.Open(ctx, s.opts)
		if err != nil {
			return nil, err
		}
		s.snap = opened
		return prcheck.FromSnapshot(opened), nil
	}
	snap := s.snap
	s.mu.Unlock()
	next, _, err := snap.Sync(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.snap = next
	s.mu.Unlock()
	return prcheck.FromSnapshot(next), nil
}

// FetchPullHead implements GateOptions.FetchPull: it downloads GitHub's
// refs/pull/<number>/head, where the commits of a pull request from a fork
// live in the base repository.
func (s *RepoSync) FetchPullHead(ctx context.Context, number int) error {
	s.mu.Lock()
	snap := s.snap
	s.mu.Unlock()
	if snap == nil {
		if _, err := s.Sync(ctx); err != nil {
			return err
		}
		s.mu.Lock()
		snap = s.snap
		s.mu.Unlock()
	}
	_, err := snap.FetchRef(ctx, fmt.Sprintf("refs/pull/%d/head", number))
	return err
}
