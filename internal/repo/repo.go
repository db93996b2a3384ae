// Package repo opens the models repository through the Git source and
// presents one fetch of it to the reconciler as a Snapshot.
package repo

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"

	"github.com/modelsync/modelsync/internal/gitsource"
	"github.com/modelsync/modelsync/internal/release"
	"github.com/modelsync/modelsync/reconciler"
)

// Options locate the repository and the clone cache.
type Options struct {
	// URL is a local path, file://, http(s)://, ssh:// or git:// URL.
	URL      string
	CacheDir string
	Auth     gitsource.Auth
	// CacheSize bounds the Git caches kept in memory, in bytes (0:
	// gitsource.DefaultCacheSize); see gitsource.Options.CacheSize.
	CacheSize int64
}

// Snapshot is one synced state of the repository.
type Snapshot struct {
	src  *gitsource.Source
	sync gitsource.SyncResult
}

var _ reconciler.Snapshot = (*Snapshot)(nil)

// DefaultCacheDir is where clones live unless configured otherwise.
func DefaultCacheDir(getenv func(string) string) string {
	if d := getenv("MODELSYNC_CACHE_DIR"); d != "" {
		return d
	}
	base := getenv("XDG_CACHE_HOME")
	if base == "" {
		if home, err := os.UserHomeDir(); err == nil {
			base = filepath.Join(home, ".cache")
		} else {
			base = os.TempDir()
		}
	}
	return filepath.Join(base, "modelsync", "repos")
}

// Open clones or fetches the repository and returns a snapshot of it.
func Open(ctx context.Context, opts Options) (*Snapshot, error) {
	src, err := gitsource.Open(ctx, gitsource.Options{URL: opts.URL, CacheDir: opts.CacheDir, Auth: opts.Auth, CacheSize: opts.CacheSize})
	if err != nil {
		return nil, err
	}
	res, err := src.Sync(ctx)
	if err != nil {
		return nil, err
	}
	return &Snapshot{src: src, sync: res}, nil
}

// Source returns the underlying Git source, for a later Sync.
func (s *Snapshot) Source() *gitsource.Source { return s.src }

// Sync fetches again and returns a new snapshot; the old one stays valid.
func (s *Snapshot) Sync(ctx context.Context) (*Snapshot, bool, error) {
	res, err := s.src.Sync(ctx)
	if err != nil {
		return nil, false, err
	}
	return &Snapshot{src: s.src, sync: res}, res.Changed, nil
}

// SameRefs reports whether o resolves every branch and release tag to the
// same commit as s. Commits and their trees are immutable, so anything
// derived from one snapshot's refs (the desired state) holds for the other.
func (s *Snapshot) SameRefs(o *Snapshot) bool {
	if s == o {
		return true
	}
	if s == nil || o == nil || s.src != o.src {
		return false
	}
	if !maps.Equal(s.sync.Heads, o.sync.Heads) || len(s.sync.Tags) != len(o.sync.Tags) {
		return false
	}
	for i, t := range s.sync.Tags {
		// The name carries the model and version; Commit is peeled.
		if u := o.sync.Tags[i]; t.Name != u.Name || t.Commit != u.Commit {
			return false
		}
	}
	return true
}

// FetchRef downloads the commit at the remote's ref (one the snapshot does
// not mirror, such as refs/pull/<n>/head) into the shared cache and returns
// its hash; the snapshot's Commit and trees then see it. See
// gitsource.Source.FetchRef.
func (s *Snapshot) FetchRef(ctx context.Context, ref string) (string, error) {
	return s.src.FetchRef(ctx, ref)
}

// BadTags lists malformed release tags, which are reported and ignored.
func (s *Snapshot) BadTags() []error { return s.sync.BadTags }

// BranchHead implements reconciler.Snapshot.
func (s *Snapshot) BranchHead(branch string) (reconciler.Commit, error) {
	c, err := s.src.Branch(branch)
	if err != nil {
		return reconciler.Commit{}, fmt.Errorf("branch %q of %s: %w", branch, s.src.URL(), err)
	}
	return toCommit(c), nil
}

// Commit implements reconciler.Snapshot.
func (s *Snapshot) Commit(hash string) (reconciler.Commit, error) {
	c, err := s.src.Commit(hash)
	if err != nil {
		return reconciler.Commit{}, err
	}
	return toCommit(c), nil
}

// Tree implements reconciler.Snapshot.
func (s *Snapshot) Tree(hash string) (fs.FS, error) { return s.src.Tree(hash) }

// ReleaseTags implements reconciler.Snapshot.
func (s *Snapshot) ReleaseTags() []release.Tag { return s.sync.Tags }

func toCommit(c gitsource.Commit) reconciler.Commit {
	return reconciler.Commit{Hash: c.Hash, AuthorName: c.AuthorName, AuthorEmail: c.AuthorEmail, When: c.When}
}
