// Package repo owns the models repository's clone cache for a process
// (Repository) and presents each fetch of it as an immutable Snapshot.
package repo

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"

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
	// MaxBlobSize is the largest file read from the repository, in bytes
	// (0: gitsource.DefaultMaxBlobSize); see gitsource.Options.MaxBlobSize.
	MaxBlobSize int64
}

// Snapshot is one synced state of the repository. It answers from the refs
// of its own fetch, never from the cache's current refs, which later
// fetches rewrite: what it says does not change. Commits and trees are
// read from the shared cache, whose objects are never removed.
type Snapshot struct {
	src  *gitsource.Source
	sync gitsource.SyncResult
	// tags indexes sync.Tags by model once per fetch, so every desired
	// state computed from this snapshot finds a model's release without
	// scanning all tags.
	tags *release.Index
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

// Repository is the one owner of a repository's clone cache in a process.
// `serve` makes one and hands it to the controller and the pull request
// gate: their fetches coalesce (see gitsource.Source.Sync) and their
// downloads of other refs are serialised with them, which two owners of one
// cache could not do.
type Repository struct {
	src *gitsource.Source
}

// New opens (or creates) the clone cache for opts.URL without contacting
// the remote; Sync fetches.
func New(ctx context.Context, opts Options) (*Repository, error) {
	src, err := gitsource.Open(ctx, gitsource.Options{URL: opts.URL, CacheDir: opts.CacheDir, Auth: opts.Auth, CacheSize: opts.CacheSize, MaxBlobSize: opts.MaxBlobSize})
	if err != nil {
		return nil, err
	}
	return &Repository{src: src}, nil
}

// Sync fetches the repository and returns the snapshot of that fetch.
// Snapshots taken earlier stay valid and unchanged.
func (r *Repository) Sync(ctx context.Context) (*Snapshot, error) {
	res, err := r.src.Sync(ctx)
	if err != nil {
		return nil, err
	}
	return &Snapshot{src: r.src, sync: res, tags: release.NewIndex(res.Tags)}, nil
}

// FetchRef downloads the commit at the remote's ref (one the snapshots do
// not mirror, such as refs/pull/<n>/head) into the cache and returns its
// hash; every snapshot's Commit and Tree then see it. It never runs at the
// same time as a fetch. See gitsource.Source.FetchRef.
func (r *Repository) FetchRef(ctx context.Context, ref string) (string, error) {
	return r.src.FetchRef(ctx, ref)
}

// URL is the repository URL without credentials.
func (r *Repository) URL() string { return r.src.URL() }

// Close releases the cache; snapshots stop working.
func (r *Repository) Close() error { return r.src.Close() }

// Open clones or fetches the repository once and returns a snapshot of it,
// for commands that read the repository once and exit.
func Open(ctx context.Context, opts Options) (*Snapshot, error) {
	r, err := New(ctx, opts)
	if err != nil {
		return nil, err
	}
	return r.Sync(ctx)
}

// Source returns the underlying Git source, to read commits and trees.
func (s *Snapshot) Source() *gitsource.Source { return s.src }

// ChangedPaths lists the files that differ between two commits; see
// gitsource.Source.ChangedPaths.
func (s *Snapshot) ChangedPaths(fromHash, toHash string) ([]string, error) {
	return s.src.ChangedPaths(fromHash, toHash)
}

// FirstParent returns the first parent of a commit; false at a root or a
// shallow clone's boundary. With DirEntries it is the reconciler.History
// the desired state credits changes with.
func (s *Snapshot) FirstParent(hash string) (string, bool, error) { return s.src.FirstParent(hash) }

// DirEntries returns the hash of each entry of a directory at a commit;
// see gitsource.Source.DirEntries.
func (s *Snapshot) DirEntries(hash, dir string) (map[string]string, error) {
	return s.src.DirEntries(hash, dir)
}

// ChangedEntries names the entries of a directory that differ between two
// commits; see gitsource.Source.ChangedEntries.
func (s *Snapshot) ChangedEntries(older, newer, dir string) ([]string, error) {
	return s.src.ChangedEntries(older, newer, dir)
}

// Resolve returns the commit a ref or an (abbreviated) hash names in this
// snapshot; see gitsource.Source.Resolve.
func (s *Snapshot) Resolve(rev string) (string, error) {
	return s.src.Resolve(s.sync.Refs, rev)
}

// BranchOf returns the branch ref stands for, when it names one: the
// branch itself ("main", "refs/heads/main") or origin's remote-tracking
// branch ("origin/main", "refs/remotes/origin/main"), which is what a CI
// checkout names a pull request's base by.
func (s *Snapshot) BranchOf(ref string) (string, bool) {
	for _, prefix := range []string{"", "refs/heads/", gitsource.RemotePrefix, "origin/"} {
		if b, ok := strings.CutPrefix(ref, prefix); ok && b != "" {
			if _, ok := s.sync.Heads[b]; ok {
				return b, true
			}
		}
	}
	return "", false
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

// BadTags lists malformed release tags, which are reported and ignored.
func (s *Snapshot) BadTags() []error { return s.sync.BadTags }

// BranchHead implements reconciler.Snapshot.
func (s *Snapshot) BranchHead(branch string) (reconciler.Commit, error) {
	hash, ok := s.sync.Heads[branch]
	if !ok {
		return reconciler.Commit{}, fmt.Errorf("branch %q of %s: %w", branch, s.src.URL(), gitsource.ErrNotFound)
	}
	c, err := s.src.Commit(hash)
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

// ReleaseIndex implements reconciler.ReleaseIndexer.
func (s *Snapshot) ReleaseIndex() *release.Index { return s.tags }

func toCommit(c gitsource.Commit) reconciler.Commit {
	return reconciler.Commit{Hash: c.Hash, AuthorName: c.AuthorName, AuthorEmail: c.AuthorEmail, When: c.When}
}
