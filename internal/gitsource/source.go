// Package gitsource mirrors a models Git repository into an on-disk bare
// cache with go-git, detects ref changes cheaply, and exposes commits as
// read-only io/fs trees without a checkout. It also provides the small set
// of work-tree operations `modelsync release` and `modelsync rollback` need
// (Workspace, Clone).
//
// It is the only package that imports go-git: everyone else sees a Reader
// (commits, trees, differences) and a Writer (branch, commit, tag, push),
// after fluxcd/pkg/git's split, so go-git's concurrency rules and error
// types stay in one place.
package gitsource

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/modelsync/modelsync/internal/release"
)

const (
	remoteName = "origin"
	// cacheKeyLen is the number of hex digits of sha256(URL) naming a cache
	// directory: 64 bits make an accidental collision between the handful of
	// repositories one process mirrors negligible, and Open still verifies
	// the stored URL.
	cacheKeyLen = 16
	// maxOpenPacks bounds the pack file descriptors a Source keeps open.
	maxOpenPacks = 32
)

// fetchRefSpecs are recorded in the cache's config so that a `git fetch` run
// by hand inside the cache mirrors branches and tags one to one, as Sync does.
func fetchRefSpecs() []config.RefSpec {
	return []config.RefSpec{
		"+refs/heads/*:refs/heads/*",
		"+refs/tags/*:refs/tags/*",
	}
}

// Options configures Open.
type Options struct {
	// URL of the repository: a local path, file://, http(s)://, ssh://,
	// scp-like user@host:path, or git://. Credentials embedded in it, in
	// any scheme, are moved into Auth (unless Auth already has some) and
	// never stored in the cache or printed.
	URL string
	// CacheDir holds one bare repository per URL, and a lock file next to
	// each (<key>.lock) that keeps processes sharing the directory from
	// writing one repository at the same time. Within a process, use one
	// Source per repository (see Source).
	CacheDir string
	// Auth supplies credentials for the URL's scheme.
	Auth Auth
	// Depth limits history to that many commits per fetched ref; 0 fetches
	// full history. See Sync for the trade-off.
	Depth int
	// MaxBlobSize is the largest file the trees of this Source read, in
	// bytes (0: DefaultMaxBlobSize). Larger files can be listed and
	// stat'ed, but reading them fails with ErrTooLarge; sizes come from
	// object headers, so a refused file costs no memory.
	MaxBlobSize int64
	// CacheSize bounds, in bytes, what the Source keeps in memory between
	// reads: half for the decoded directories its trees share (estimated
	// generously), a quarter for the small objects its trees resolved
	// from the packs (bodyCache, which spares resolving delta bases
	// again), a quarter for go-git's cache of raw objects (commits, tags,
	// loose objects; it counts content bytes, and the buffers holding them
	// can take up to about twice that). 0 means
	// DefaultCacheSize. Objects and directories beyond it are read from the
	// pack files again.
	CacheSize int64
}

// Source is a bare on-disk mirror of one remote repository. A process
// should have one Source per cache directory and hand it to every component
// that reads the repository, so their fetches coalesce. Several processes
// (or Sources) may share a cache directory: writes take turns under a file
// lock (see cacheLock), and each owner catches up with the others' packs
// and refs when it next fetches.
//
// go-git's filesystem storage is not safe for concurrent use (its pack index
// maps are filled lazily without locks), so every storage access, including
// reads through a Tree file system, is serialised by mu. Sync holds mu only
// while it reads or writes the cache, never during network transfers.
type Source struct {
	url   string // credential-free URL used for every transport call
	dir   string
	auth  Auth
	tauth transport.AuthMethod
	depth int

	syncMu sync.Mutex // serialises writers of the cache: fetches and FetchRef
	// lock keeps writers in other processes out while syncMu's holder
	// writes; disk is the cache's state when this Source last held it, to
	// notice what others wrote since. Both are used under syncMu.
	lock *cacheLock
	disk diskState

	maxBlob int64 // largest file a TreeFS reads

	flightMu sync.Mutex // guards the fields below
	running  *flight    // the fetch in progress, nil when none
	queued   *flight    // the fetch after running, for callers it cannot serve
	closed   bool

	mu   sync.Mutex // guards repo storage and the fields below
	repo *git.Repository
	// known is the cache's branch and tag refs after the last successful
	// Sync, so an unchanged poll costs one ref advertisement and no disk
	// reads. nil means "read from disk". Guarded by mu.
	known map[string]string
	// knownSnap is the SyncResult of known (nil when known is nil), so an
	// unchanged poll does not parse every release tag again. Guarded by mu.
	knownSnap *SyncResult
	// peeled maps tag targets to the commits they peel to. Guarded by mu.
	peeled map[plumbing.Hash]plumbing.Hash
	// trees are the decoded directories every TreeFS of this Source
	// shares. Guarded by mu.
	trees *treeCache
	// objs reads object headers, to check sizes before go-git reads
	// content. Guarded by mu.
	objs *objectHeaders
	// raw are the directory bodies ChangedEntries read last, and the large
	// ones a TreeFS read. Guarded by mu.
	raw rawTrees
	// bodies are the small objects a TreeFS read from the packs. Guarded
	// by mu.
	bodies *bodyCache
}

// Commit describes a commit.
type Commit struct {
	Hash        string
	AuthorName  string
	AuthorEmail string
	When        time.Time
	Message     string
	// Parents are the hashes of the parent commits, in order.
	Parents []string
}

// SyncResult reports the state of the cache after Sync.
type SyncResult struct {
	// Changed is true when any branch or tag differed from the cache before
	// Sync (and objects were fetched or refs pruned).
	Changed bool
	// Heads maps branch names ("main") to commit hashes. A branch the
	// remote has only as refs/remotes/origin/<name> (a CI checkout) is
	// listed under <name> unless refs/heads/<name> exists too.
	Heads map[string]string
	// Refs maps every mirrored ref, by full ref name
	// ("refs/tags/churn/v1.0.0", "refs/remotes/origin/main"), to the object
	// it names (an annotated tag is not peeled), and "HEAD" to the commit
	// the remote's HEAD names. Resolve reads names from this result rather
	// than from the cache, whose refs a later Sync rewrites.
	Refs map[string]string
	// Tags are the valid release tags, sorted by model then version, with
	// Commit peeled through annotated tag objects.
	Tags []release.Tag
	// BadTags describes tags that look like release tags ("<x>/v<digit>…")
	// but do not parse, or do not point at a commit. They are ignored.
	BadTags []error
}

// Open prepares the cache for opts.URL under opts.CacheDir, reusing an
// existing bare repository when its remote URL matches. It does not contact
// the remote; call Sync for that.
func Open(ctx context.Context, opts Options) (*Source, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.URL == "" {
		return nil, errors.New("gitsource: repository URL is empty")
	}
	if opts.CacheDir == "" {
		return nil, fmt.Errorf("gitsource: cache directory for %s is empty", SanitizeURL(opts.URL))
	}
	if opts.Depth < 0 {
		return nil, fmt.Errorf("gitsource: negative depth %d for %s", opts.Depth, SanitizeURL(opts.URL))
	}
	maxBlob := opts.MaxBlobSize
	switch {
	case maxBlob < 0:
		return nil, fmt.Errorf("gitsource: negative file size limit %d for %s", maxBlob, SanitizeURL(opts.URL))
	case maxBlob == 0:
		maxBlob = DefaultMaxBlobSize
	}
	cacheSize := opts.CacheSize
	switch {
	case cacheSize < 0:
		return nil, fmt.Errorf("gitsource: negative cache size %d for %s", cacheSize, SanitizeURL(opts.URL))
	case cacheSize == 0:
		cacheSize = DefaultCacheSize
	}
	url, auth := MoveURLCredentials(opts.URL, opts.Auth)
	url, err := normalizeURL(url)
	if err != nil {
		return nil, err
	}
	tauth, err := auth.transportAuth(url)
	if err != nil {
		return nil, scrub(err, opts.URL, auth)
	}
	sum := sha256.Sum256([]byte(url))
	key := hex.EncodeToString(sum[:])[:cacheKeyLen]
	dir := filepath.Join(opts.CacheDir, key)
	lock, err := openCacheLock(dir + ".lock")
	if err != nil {
		return nil, fmt.Errorf("gitsource: lock file of the cache for %s: %w", SanitizeURL(url), err)
	}
	s := &Source{url: url, dir: dir, auth: auth, tauth: tauth, depth: opts.Depth, lock: lock, maxBlob: maxBlob, trees: newTreeCache(cacheSize - cacheSize/2), bodies: newBodyCache(cacheSize / 4)}
	if err := s.openLocked(ctx, opts.CacheDir, cacheSize/2-cacheSize/4); err != nil {
		_ = lock.close()
		return nil, err
	}
	return s, nil
}

// openLocked creates or opens the cache under the cache lock, so that a
// process creating it and one opening it cannot meet halfway.
func (s *Source) openLocked(ctx context.Context, cacheDir string, objectCache int64) error {
	if err := s.lock.lock(ctx); err != nil {
		return fmt.Errorf("gitsource: open cache for %s: %w", s.URL(), err)
	}
	defer s.lock.unlock()
	repo, err := openOrInitCache(cacheDir, s.dir, s.url, objectCache)
	if err != nil {
		return err
	}
	// Load the pack indexes now, under the lock: go-git reads them once,
	// on the first object access, and a process doing that while another
	// installs a pack could see the pack without its index.
	if err := repo.Storer.HasEncodedObject(plumbing.ZeroHash); err != nil && !errors.Is(err, plumbing.ErrObjectNotFound) {
		return fmt.Errorf("gitsource: read pack indexes of cache %s for %s: %w", s.dir, s.URL(), err)
	}
	s.repo = repo
	s.objs = newObjectHeaders(osfs.New(s.dir), repo.Storer)
	if s.disk, err = readDiskState(s.dir); err != nil {
		return fmt.Errorf("gitsource: read cache %s for %s: %w", s.dir, s.URL(), err)
	}
	return nil
}

// lockCache takes the cache lock for a write and catches up with what
// other processes wrote since this Source last held it: their packs
// (reindexed) and refs (read from disk again). Callers hold syncMu.
func (s *Source) lockCache(ctx context.Context) error {
	if err := s.lock.lock(ctx); err != nil {
		return fmt.Errorf("gitsource: fetch %s: %w", s.URL(), err)
	}
	st, err := readDiskState(s.dir)
	if err != nil {
		_ = s.lock.unlock()
		return fmt.Errorf("gitsource: read cache %s for %s: %w", s.dir, s.URL(), err)
	}
	if !st.equal(s.disk) {
		s.mu.Lock()
		if st.packs != s.disk.packs {
			if err := s.reindexLocked(); err != nil {
				s.mu.Unlock()
				_ = s.lock.unlock()
				return err
			}
		}
		s.known, s.knownSnap = nil, nil
		s.mu.Unlock()
		s.disk = st
	}
	return nil
}

// unlockCache records the cache's state as this Source leaves it and
// releases the lock. Callers hold syncMu.
func (s *Source) unlockCache() {
	if st, err := readDiskState(s.dir); err == nil {
		s.disk = st
	} else {
		s.disk = diskState{} // unknown: catch up next time
	}
	_ = s.lock.unlock()
}

// reindexLocked makes go-git read the pack indexes again. Callers hold mu.
func (s *Source) reindexLocked() error {
	r, ok := s.repo.Storer.(interface{ Reindex() })
	if !ok {
		return fmt.Errorf("gitsource: cache for %s: storage %T cannot reload its pack indexes", s.URL(), s.repo.Storer)
	}
	r.Reindex()
	s.objs.reset()
	return nil
}

// normalizeURL makes local paths absolute so the cache key and the remote
// URL do not depend on the working directory.
func normalizeURL(url string) (string, error) {
	ep, err := transport.NewEndpoint(url)
	if err != nil {
		return "", fmt.Errorf("gitsource: parse repository URL %s: %w", SanitizeURL(url), errNoSecrets(err, url))
	}
	if ep.Protocol != "file" || strings.HasPrefix(url, "file://") {
		return url, nil
	}
	abs, err := filepath.Abs(url)
	if err != nil {
		return "", fmt.Errorf("gitsource: resolve local repository path %s: %w", url, err)
	}
	return abs, nil
}

func openOrInitCache(cacheDir, dir, url string, objectCache int64) (*git.Repository, error) {
	repo, err := openCache(dir, url, objectCache)
	if err == nil || !errors.Is(err, git.ErrRepositoryNotExists) {
		return repo, err
	}
	if _, statErr := os.Stat(dir); statErr == nil {
		return nil, fmt.Errorf("gitsource: cache directory %s for %s exists but is not a Git repository; remove it to re-clone", dir, SanitizeURL(url))
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("gitsource: create cache directory for %s: %w", SanitizeURL(url), err)
	}
	// Initialise next to the final path and rename, so an interrupted Open
	// never leaves a half-configured repository where the next run would
	// trust it.
	tmp, err := os.MkdirTemp(cacheDir, ".init-"+filepath.Base(dir)+"-")
	if err != nil {
		return nil, fmt.Errorf("gitsource: create cache for %s: %w", SanitizeURL(url), err)
	}
	defer os.RemoveAll(tmp) // no-op after a successful rename
	r, err := git.PlainInit(tmp, true)
	if err != nil {
		return nil, fmt.Errorf("gitsource: init bare cache for %s: %w", SanitizeURL(url), err)
	}
	if _, err := r.CreateRemote(&config.RemoteConfig{Name: remoteName, URLs: []string{url}, Fetch: fetchRefSpecs()}); err != nil {
		return nil, fmt.Errorf("gitsource: configure cache remote for %s: %w", SanitizeURL(url), err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another Open of the same URL may have won the race; use its cache
		// if it is valid.
		if repo, openErr := openCache(dir, url, objectCache); openErr == nil {
			return repo, nil
		}
		return nil, fmt.Errorf("gitsource: install cache for %s at %s: %w", SanitizeURL(url), dir, err)
	}
	return openCache(dir, url, objectCache)
}

func openCache(dir, url string, objectCache int64) (*git.Repository, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, git.ErrRepositoryNotExists
	}
	// Pack files stay open between reads (bounded): go-git otherwise
	// reopens a pack for every object it reads, and a kustomize render
	// reads dozens of blobs.
	st := filesystem.NewStorageWithOptions(osfs.New(dir), newObjectCache(objectCache),
		filesystem.Options{MaxOpenDescriptors: maxOpenPacks})
	repo, err := git.Open(st, nil)
	if err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("gitsource: open cache %s for %s: %w", dir, SanitizeURL(url), err)
	}
	cfg, err := repo.Config()
	if err != nil {
		return nil, fmt.Errorf("gitsource: read cache config %s for %s: %w", dir, SanitizeURL(url), err)
	}
	if !cfg.Core.IsBare {
		return nil, fmt.Errorf("gitsource: cache %s for %s is not a bare repository; remove it to re-clone", dir, SanitizeURL(url))
	}
	rc, ok := cfg.Remotes[remoteName]
	if !ok || len(rc.URLs) == 0 || rc.URLs[0] != url {
		got := "<none>"
		if ok && len(rc.URLs) > 0 {
			got = SanitizeURL(rc.URLs[0])
		}
		return nil, fmt.Errorf("gitsource: cache %s mirrors %s, not %s; remove it or use another cache directory", dir, got, SanitizeURL(url))
	}
	return repo, nil
}

// Close releases the pack files the Source keeps open. The Source must not
// be used afterwards; TreeFS values obtained from it stop working too.
func (s *Source) Close() error {
	s.flightMu.Lock()
	s.closed = true
	for _, f := range []*flight{s.running, s.queued} {
		if f != nil {
			f.cancel()
		}
	}
	s.flightMu.Unlock()
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.objs.close()
	lerr := s.lock.close()
	if c, ok := s.repo.Storer.(interface{ Close() error }); ok {
		if err := c.Close(); err != nil {
			return fmt.Errorf("gitsource: close cache of %s: %w", s.URL(), err)
		}
	}
	if lerr != nil {
		return fmt.Errorf("gitsource: close cache lock of %s: %w", s.URL(), lerr)
	}
	return nil
}

// URL returns the repository URL without credentials.
func (s *Source) URL() string { return SanitizeURL(s.url) }

// Dir returns the path of the bare cache repository.
func (s *Source) Dir() string { return s.dir }

// Sync brings the cache up to date with the remote.
//
// It opens one upload-pack session and reads the ref advertisement (what git
// ls-remote shows). When no branch or tag moved it closes the session and
// returns Changed=false: no objects are requested. Otherwise it asks, on the
// same session, for the objects of the refs that moved or appeared, stores
// the pack, and rewrites the cache's refs to exactly the remote's branches
// and tags (moved refs updated with force, deleted refs pruned).
//
// One session instead of go-git's Remote.List followed by Remote.Fetch
// saves a second advertisement (a second process spawn or HTTP request),
// and writing all refs as one packed-refs file avoids go-git's one locked
// file per ref, which dominated fetches of repositories with a thousand
// release tags (see test/bench/gitfetch).
//
// With Options.Depth > 0 the fetch is shallow: the request carries the
// current shallow boundary and deepens only new history, and tags pointing
// below the boundary are fetched with their own shallow history, so every
// tagged commit's tree is readable (tested at depths 1 and 2). What is lost
// is history older than the boundary: ChangedPaths still works (it diffs two
// trees, not a history walk), but a commit reachable only through history
// deeper than Depth is absent and reported as ErrNotFound.
//
// Concurrent calls coalesce (see coalesce): one fetch is in flight at a
// time and every caller that joined it gets its result. The maps and
// slices of the result are the caller's own copies.
func (s *Source) Sync(ctx context.Context) (SyncResult, error) {
	return s.coalesce(ctx)
}

// fetch is one Sync against the remote; see Sync. listed is called once
// the ref advertisement has arrived (or failed to), which is when callers
// joining this fetch stop getting an up-to-date answer from it.
func (s *Source) fetch(ctx context.Context, listed func()) (SyncResult, error) {
	// syncMu serialises writers of the cache (fetches and FetchRef); mu is
	// taken only around storage access, so readers (Tree, Commit, ...)
	// never wait for the network.
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	// Other processes on the cache wait until this fetch has written its
	// refs; taken before the advertisement, so the next process's plan
	// already sees what this one fetched.
	if err := s.lockCache(ctx); err != nil {
		listed()
		return SyncResult{}, err
	}
	defer s.unlockCache()

	sess, err := s.uploadPackSession()
	if err != nil {
		listed()
		return SyncResult{}, classify(ctx, "connect to", s.url, s.auth, err)
	}
	// Closing an unused session sends the flush that ends the conversation,
	// as git ls-remote does; once UploadPack is called the response owns it.
	sessionOpen := true
	defer func() {
		if sessionOpen {
			_ = sess.Close()
		}
	}()
	ar, err := sess.AdvertisedReferencesContext(ctx)
	listed()
	empty := errors.Is(err, transport.ErrEmptyRemoteRepository)
	if err != nil && !empty {
		return SyncResult{}, classify(ctx, "list refs of", s.url, s.auth, err)
	}
	want := map[string]string{}
	if !empty {
		if want, err = advertisedRefs(ar); err != nil {
			return SyncResult{}, classify(ctx, "list refs of", s.url, s.auth, err)
		}
	}

	s.mu.Lock()
	p, err := s.planLocked(want)
	if err != nil || !p.changed {
		var res SyncResult
		if err == nil {
			if s.known == nil || s.knownSnap == nil {
				snap := s.snapshot(p.have)
				s.knownSnap = &snap
			}
			s.known = p.have
			res = s.knownSnap.clone()
		}
		s.mu.Unlock()
		return res, err
	}
	// Whatever happens next, the on-disk refs are the truth again.
	s.known, s.knownSnap = nil, nil
	s.mu.Unlock()

	var pack *os.File
	var shallow packp.ShallowUpdate
	if len(p.wants) > 0 {
		sessionOpen = false
		pack, shallow, err = s.download(ctx, sess, ar, p)
		if err != nil {
			return SyncResult{}, err
		}
		if pack != nil {
			defer os.Remove(pack.Name())
			defer pack.Close()
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if pack != nil {
		if err := s.storePack(pack, p, shallow); err != nil {
			return SyncResult{}, err
		}
	}
	if err := s.writeRefs(want); err != nil {
		return SyncResult{}, err
	}
	snap := s.snapshot(want)
	s.known, s.knownSnap = want, &snap
	res := snap.clone()
	res.Changed = true
	return res, nil
}

// ErrRefNotFound means the remote does not advertise the ref asked for.
var ErrRefNotFound = errors.New("ref not found on the remote")

// FetchRef downloads the commit the remote's ref points at (with what it
// needs that the cache lacks) and returns its hash. It is for refs outside
// the mirrored branches and tags, such as GitHub's refs/pull/<n>/head, the
// only place a pull request from a fork has its commits in the base
// repository. The ref itself is not recorded: the cache keeps mirroring
// branches and tags one to one, and the commit stays readable by hash.
func (s *Source) FetchRef(ctx context.Context, ref string) (string, error) {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if err := s.lockCache(ctx); err != nil {
		return "", err
	}
	defer s.unlockCache()
	sess, err := s.uploadPackSession()
	if err != nil {
		return "", classify(ctx, "connect to", s.url, s.auth, err)
	}
	sessionOpen := true
	defer func() {
		if sessionOpen {
			_ = sess.Close()
		}
	}()
	ar, err := sess.AdvertisedReferencesContext(ctx)
	if errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return "", fmt.Errorf("gitsource: %s at %s: %w", ref, s.URL(), ErrRefNotFound)
	}
	if err != nil {
		return "", classify(ctx, "list refs of", s.url, s.auth, err)
	}
	// The advertised list itself, not AllReferences (see advertisedRefs).
	h, ok := ar.References[ref]
	if !ok {
		return "", fmt.Errorf("gitsource: %s at %s: %w", ref, s.URL(), ErrRefNotFound)
	}
	hex := h.String()
	s.mu.Lock()
	// Planned against the local refs plus this one: the download asks only
	// for what the cache lacks and offers every local tip as common ground.
	want, err := s.localRefs()
	if err == nil {
		want[ref] = hex
		var p syncPlan
		if p, err = s.planLocked(want); err == nil && len(p.wants) > 0 {
			s.mu.Unlock()
			sessionOpen = false
			pack, shallow, err := s.download(ctx, sess, ar, p)
			if err != nil {
				return "", err
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if pack != nil {
				defer os.Remove(pack.Name())
				defer pack.Close()
				if err := s.storePack(pack, p, shallow); err != nil {
					return "", err
				}
			}
			return hex, nil
		}
	}
	s.mu.Unlock()
	return hex, err
}

// syncPlan is what one Sync must do, computed under mu.
type syncPlan struct {
	have     map[string]string
	changed  bool
	wants    []plumbing.Hash // objects of moved refs the cache lacks
	haves    []plumbing.Hash // ref tips the cache has, for negotiation
	shallows []plumbing.Hash // current shallow boundary
}

func (s *Source) planLocked(want map[string]string) (syncPlan, error) {
	have := s.known
	if have == nil {
		var err error
		if have, err = s.localRefs(); err != nil {
			return syncPlan{}, err
		}
	}
	p := syncPlan{have: have}
	wantSet := map[plumbing.Hash]bool{}
	for name, hex := range want {
		if have[name] == hex {
			continue
		}
		p.changed = true
		h := plumbing.NewHash(hex)
		// A ref that moved to an object the cache already has (a reverted
		// branch, a new tag on a known commit) needs no download.
		if !wantSet[h] && !s.objs.has(s.repo.Storer, h) {
			wantSet[h] = true
			p.wants = append(p.wants, h)
		}
	}
	for name := range have {
		if _, ok := want[name]; !ok {
			p.changed = true
		}
	}
	if len(p.wants) == 0 {
		return p, nil
	}
	p.haves = s.havesLocked(have)
	sortHashes(p.wants)
	sortHashes(p.haves)
	if s.depth > 0 {
		var err error
		if p.shallows, err = s.repo.Storer.Shallow(); err != nil {
			return syncPlan{}, fmt.Errorf("gitsource: read shallow list of cache for %s: %w", s.URL(), err)
		}
	}
	return p, nil
}

// maxHaves bounds the refs offered to the server as already held. Git
// itself gives up negotiating after a few hundred; a repository with a
// release tag per model has tens of thousands of refs, and checking and
// sending every one on each fetch grew the cost of a push with them.
const maxHaves = 256

// havesLocked returns the tips the cache holds, branches first (they
// reach almost everything), then other refs in name order, at most
// maxHaves. Leaving a tip out costs at most a larger pack, never a
// missing object. Callers hold s.mu.
func (s *Source) havesLocked(have map[string]string) []plumbing.Hash {
	names := slices.SortedFunc(maps.Keys(have), func(a, b string) int {
		if ab, bb := strings.HasPrefix(a, "refs/heads/"), strings.HasPrefix(b, "refs/heads/"); ab != bb {
			if ab {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	seen := map[plumbing.Hash]bool{}
	var haves []plumbing.Hash
	for _, name := range names {
		h := plumbing.NewHash(have[name])
		if seen[h] {
			continue
		}
		seen[h] = true
		if s.objs.has(s.repo.Storer, h) {
			haves = append(haves, h)
			if len(haves) == maxHaves {
				break
			}
		}
	}
	return haves
}

func (s *Source) uploadPackSession() (transport.UploadPackSession, error) {
	ep, err := transport.NewEndpoint(s.url)
	if err != nil {
		return nil, err
	}
	cl, err := client.NewClient(ep)
	if err != nil {
		return nil, err
	}
	return cl.NewUploadPackSession(ep, s.tauth)
}

// advertisedRefs returns the refs of an advertisement the cache mirrors
// (see mirrored), and the remote's HEAD under headRef.
//
// It reads the advertisement's lists itself rather than through go-git's
// AllReferences, which, when the server sends no symref (a detached HEAD,
// as in a CI checkout of a merge commit), guesses the branch HEAD is on and
// fails with "reference not found" when no ref points at that commit.
func advertisedRefs(ar *packp.AdvRefs) (map[string]string, error) {
	out := make(map[string]string, len(ar.References)+1)
	for name, h := range ar.References {
		if mirrored(plumbing.ReferenceName(name)) {
			out[name] = h.String()
		}
	}
	if ar.Head != nil {
		out[headRef] = ar.Head.String()
	}
	return out, nil
}

// download requests p.wants on sess and spools the pack to a temporary
// file in the cache directory, without holding mu: the transfer is bound by
// the network, storing the pack afterwards by the disk. It returns a nil file
// when the server had nothing to send. The session is closed on return.
func (s *Source) download(ctx context.Context, sess transport.UploadPackSession, ar *packp.AdvRefs, p syncPlan) (_ *os.File, _ packp.ShallowUpdate, err error) {
	req := packp.NewUploadPackRequestFromCapabilities(ar.Capabilities)
	// No thin packs: go-git's on-disk pack writer indexes the stream
	// without access to the existing objects, so a delta against an object
	// the cache already has fails with "reference delta not found" (go-git
	// issues #190, #484), and such a pack would be invalid for git too.
	// Self-contained packs cost a few bytes per changed file.
	req.Capabilities.Delete(capability.ThinPack)
	if ar.Capabilities.Supports(capability.NoProgress) {
		if err := req.Capabilities.Set(capability.NoProgress); err != nil {
			_ = sess.Close()
			return nil, packp.ShallowUpdate{}, fmt.Errorf("gitsource: fetch from %s: %w", s.URL(), err)
		}
	}
	if s.depth > 0 {
		req.Depth = packp.DepthCommits(s.depth)
		if err := req.Capabilities.Set(capability.Shallow); err != nil {
			_ = sess.Close()
			return nil, packp.ShallowUpdate{}, fmt.Errorf("gitsource: fetch from %s: %w", s.URL(), err)
		}
		req.Shallows = p.shallows
	}
	req.Wants = p.wants
	req.Haves = p.haves

	resp, err := sess.UploadPack(ctx, req)
	if err != nil {
		_ = sess.Close()
		if errors.Is(err, transport.ErrEmptyUploadPackRequest) {
			return nil, packp.ShallowUpdate{}, nil
		}
		return nil, packp.ShallowUpdate{}, classify(ctx, "fetch", s.url, s.auth, err)
	}
	defer func() {
		if cerr := resp.Close(); cerr != nil && err == nil {
			err = classify(ctx, "fetch", s.url, s.auth, cerr)
		}
	}()
	var stream io.Reader = resp
	switch {
	case req.Capabilities.Supports(capability.Sideband64k):
		stream = sideband.NewDemuxer(sideband.Sideband64k, resp)
	case req.Capabilities.Supports(capability.Sideband):
		stream = sideband.NewDemuxer(sideband.Sideband, resp)
	}
	f, err := os.CreateTemp(s.dir, "fetch-*.pack")
	if err != nil {
		return nil, packp.ShallowUpdate{}, fmt.Errorf("gitsource: spool pack from %s: %w", s.URL(), err)
	}
	if _, err := io.Copy(f, stream); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, packp.ShallowUpdate{}, classify(ctx, "fetch", s.url, s.auth, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, packp.ShallowUpdate{}, fmt.Errorf("gitsource: spool pack from %s: %w", s.URL(), err)
	}
	return f, resp.ShallowUpdate, nil
}

// storePack indexes a downloaded pack into the cache (see indexPack for
// why not with go-git's indexer). Callers hold mu.
func (s *Source) storePack(pack *os.File, p syncPlan, shallow packp.ShallowUpdate) error {
	if s.depth > 0 {
		if err := s.updateShallow(p.shallows, shallow); err != nil {
			return err
		}
	}
	if _, err := installPack(s.dir, pack); err != nil {
		return fmt.Errorf("gitsource: store pack from %s: %w", s.URL(), err)
	}
	// go-git reads the pack indexes once; make it read them again, also
	// when the same pack was there already (installed by another process
	// this Source's indexes predate).
	if err := s.reindexLocked(); err != nil {
		return err
	}
	for _, h := range p.wants {
		if s.repo.Storer.HasEncodedObject(h) != nil {
			return fmt.Errorf("gitsource: fetch from %s: server did not send object %s", s.URL(), h)
		}
	}
	return nil
}

func (s *Source) updateShallow(before []plumbing.Hash, upd packp.ShallowUpdate) error {
	if len(upd.Shallows) == 0 && len(upd.Unshallows) == 0 {
		return nil
	}
	set := map[plumbing.Hash]bool{}
	for _, h := range before {
		set[h] = true
	}
	for _, h := range upd.Shallows {
		set[h] = true
	}
	for _, h := range upd.Unshallows {
		delete(set, h)
	}
	list := make([]plumbing.Hash, 0, len(set))
	for h := range set {
		list = append(list, h)
	}
	sortHashes(list)
	if err := s.repo.Storer.SetShallow(list); err != nil {
		return fmt.Errorf("gitsource: write shallow list of cache for %s: %w", s.URL(), err)
	}
	return nil
}

func sortHashes(hs []plumbing.Hash) {
	sort.Slice(hs, func(i, j int) bool { return bytes.Compare(hs[i][:], hs[j][:]) < 0 })
}

// writeRefs makes refs the complete set of branches and tags in the cache:
// one packed-refs file written atomically, and no loose refs left that
// could shadow it. Callers hold mu.
func (s *Source) writeRefs(refs map[string]string) error {
	names := make([]string, 0, len(refs))
	for name := range refs {
		names = append(names, name)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	buf.WriteString("# pack-refs with: sorted \n")
	for _, name := range names {
		buf.WriteString(refs[name] + " " + name + "\n")
	}
	tmp, err := os.CreateTemp(s.dir, "packed-refs.tmp-")
	if err != nil {
		return fmt.Errorf("gitsource: write refs of cache for %s: %w", s.URL(), err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("gitsource: write refs of cache for %s: %w", s.URL(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("gitsource: write refs of cache for %s: %w", s.URL(), err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(s.dir, "packed-refs")); err != nil {
		return fmt.Errorf("gitsource: write refs of cache for %s: %w", s.URL(), err)
	}
	for _, sub := range []string{"heads", "tags"} {
		if err := removeLooseRefs(filepath.Join(s.dir, "refs", sub)); err != nil {
			return fmt.Errorf("gitsource: tidy refs of cache for %s: %w", s.URL(), err)
		}
	}
	return nil
}

// removeLooseRefs deletes every file and directory below root, keeping
// root itself.
func removeLooseRefs(root string) error {
	entries, err := os.ReadDir(root)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return os.MkdirAll(root, 0o755)
		}
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// headRef is where the cache keeps the commit the remote's HEAD names (the
// checkout of a local work tree, detached or not; a server's default
// branch). The cache's own HEAD cannot hold it: a bare repository's HEAD
// is its own, and git expects it to name a branch.
const headRef = "refs/modelsync/HEAD"

// RemotePrefix is where a work tree keeps its origin's branches. A CI
// checkout often has its branches only there.
const RemotePrefix = "refs/remotes/" + remoteName + "/"

// mirrored reports whether the cache keeps ref: branches and tags, a work
// tree's remote-tracking branches (a CI checkout has its branches only
// there), and headRef. Peeled "^{}" entries never are.
func mirrored(ref plumbing.ReferenceName) bool {
	if strings.HasSuffix(ref.String(), "^{}") {
		return false
	}
	return ref.IsBranch() || ref.IsTag() || ref.IsRemote() || ref == headRef
}

// mirroredRefs keeps the mirrored hash refs of refs, keyed by full ref
// name. Symbolic refs such as the cache's HEAD are dropped.
func mirroredRefs(refs []*plumbing.Reference) map[string]string {
	out := make(map[string]string, len(refs))
	for _, r := range refs {
		if r.Type() == plumbing.HashReference && mirrored(r.Name()) {
			out[r.Name().String()] = r.Hash().String()
		}
	}
	return out
}

func (s *Source) localRefs() (map[string]string, error) {
	iter, err := s.repo.Storer.IterReferences()
	if err != nil {
		return nil, fmt.Errorf("gitsource: read cache refs of %s: %w", s.URL(), err)
	}
	var all []*plumbing.Reference
	err = iter.ForEach(func(r *plumbing.Reference) error {
		all = append(all, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gitsource: read cache refs of %s: %w", s.URL(), err)
	}
	return mirroredRefs(all), nil
}

// snapshot builds a SyncResult from refs. Peeling results are cached by
// object hash (objects are immutable), and the cache keeps only entries for
// current tags, so it cannot grow without bound. Callers hold mu.
func (s *Source) snapshot(refs map[string]string) SyncResult {
	res := SyncResult{Heads: map[string]string{}, Refs: maps.Clone(refs)}
	if h, ok := res.Refs[headRef]; ok {
		delete(res.Refs, headRef)
		res.Refs["HEAD"] = h
	}
	names := make([]string, 0, len(refs))
	for name := range refs {
		names = append(names, name)
	}
	sort.Strings(names)
	peeled := make(map[plumbing.Hash]plumbing.Hash, len(s.peeled))
	for _, name := range names {
		// Prefixes are cut by hand: go-git's ReferenceName.Short tries
		// each of its rev-parse rules in turn, and was two thirds of this
		// loop with a release tag per model.
		hash := plumbing.NewHash(refs[name])
		if branch, ok := strings.CutPrefix(name, "refs/heads/"); ok {
			res.Heads[branch] = hash.String()
			continue
		}
		short, ok := strings.CutPrefix(name, "refs/tags/")
		if !ok {
			continue
		}
		if !release.LooksLikeReleaseTag(short) {
			continue
		}
		tag, err := release.ParseTag(short)
		if err != nil {
			res.BadTags = append(res.BadTags, fmt.Errorf("repository %s: %w", s.URL(), err))
			continue
		}
		commit, ok := peeled[hash]
		if !ok {
			commit, ok = s.peeled[hash]
		}
		if !ok {
			if commit, err = peelToCommit(s.repo, s.objs, hash); err != nil {
				res.BadTags = append(res.BadTags, fmt.Errorf("repository %s: %w %q for model %s version %s: %w",
					s.URL(), release.ErrInvalidTag, short, tag.Model, tag.Version, err))
				continue
			}
		}
		peeled[hash] = commit
		tag.Commit = commit.String()
		res.Tags = append(res.Tags, tag)
	}
	s.peeled = peeled
	release.Sort(res.Tags)
	// A branch the repository has only as origin's remote-tracking branch
	// counts as that branch: a CI checkout (detached, refs only under
	// refs/remotes/origin/) is read as the repository it was cloned from.
	// A local branch of the same name wins, as the one the user works on.
	for _, name := range names {
		b, ok := strings.CutPrefix(name, RemotePrefix)
		if !ok || b == "HEAD" {
			continue
		}
		if _, local := res.Heads[b]; !local {
			res.Heads[b] = refs[name]
		}
	}
	return res
}

// releaseTag interprets one tag ref. ok is false for tags that are not meant
// as release tags; err describes a malformed release tag.
func releaseTag(repo *git.Repository, objs *objectHeaders, name string, target plumbing.Hash) (release.Tag, bool, error) {
	if !release.LooksLikeReleaseTag(name) {
		return release.Tag{}, false, nil
	}
	tag, err := release.ParseTag(name)
	if err != nil {
		return release.Tag{}, false, err
	}
	commit, err := peelToCommit(repo, objs, target)
	if err != nil {
		return release.Tag{}, false, fmt.Errorf("%w %q for model %s version %s: %w", release.ErrInvalidTag, name, tag.Model, tag.Version, err)
	}
	tag.Commit = commit.String()
	return tag, true, nil
}

// maxTagChain bounds tag-of-tag chains so a crafted repository cannot make
// peeling loop.
const maxTagChain = 16

// peelToCommit follows annotated tags from h to a commit. Types and sizes
// come from object headers: a tag pointing at a large blob is refused
// without reading the blob, and a tag object is decoded only when small.
func peelToCommit(repo *git.Repository, objs *objectHeaders, h plumbing.Hash) (plumbing.Hash, error) {
	for range maxTagChain {
		info, err := objs.info(h)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("object %s: %w", h, err)
		}
		typ := info.typ
		if typ == plumbing.AnyObject { // unknown storage: ask go-git
			obj, err := repo.Storer.EncodedObject(plumbing.AnyObject, h)
			if err != nil {
				return plumbing.ZeroHash, fmt.Errorf("object %s: %w", h, err)
			}
			typ = obj.Type()
		}
		switch typ {
		case plumbing.CommitObject:
			return h, nil
		case plumbing.TagObject:
			if err := info.within(maxMetaSize); err != nil {
				return plumbing.ZeroHash, fmt.Errorf("tag object %s: %w", h, err)
			}
			t, err := repo.TagObject(h)
			if err != nil {
				return plumbing.ZeroHash, fmt.Errorf("decode tag object %s: %w", h, err)
			}
			h = t.Target
		default:
			return plumbing.ZeroHash, fmt.Errorf("points at a %s object %s, not a commit", typ, h)
		}
	}
	return plumbing.ZeroHash, fmt.Errorf("tag chain longer than %d at %s", maxTagChain, h)
}

// readCommit decodes commit h once its header shows a commit of sane size;
// a crafted commit with a message of hundreds of megabytes is refused
// before go-git inflates it.
func readCommit(repo *git.Repository, objs *objectHeaders, h plumbing.Hash) (*object.Commit, error) {
	if _, err := objs.check(h, plumbing.CommitObject, maxMetaSize); err != nil {
		return nil, err
	}
	return repo.CommitObject(h)
}

// readTree decodes directory h once its header shows a tree of sane size.
func readTree(repo *git.Repository, objs *objectHeaders, h plumbing.Hash) (*object.Tree, error) {
	if _, err := objs.check(h, plumbing.TreeObject, maxMetaSize); err != nil {
		return nil, err
	}
	return repo.TreeObject(h)
}

// Branch returns the commit at the tip of branch name in the cache.
func (s *Source) Branch(name string) (Commit, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ref, err := s.repo.Storer.Reference(plumbing.NewBranchReferenceName(name))
	if err != nil {
		if errors.Is(err, plumbing.ErrReferenceNotFound) {
			return Commit{}, fmt.Errorf("%w: branch %q in %s (run Sync first, or check the branch name)", ErrNotFound, name, s.URL())
		}
		return Commit{}, fmt.Errorf("gitsource: read branch %q of %s: %w", name, s.URL(), err)
	}
	return s.commitLocked(ref.Hash())
}

// Commit returns the commit with the given full hex hash.
func (s *Source) Commit(hash string) (Commit, error) {
	h, err := parseHash(hash)
	if err != nil {
		return Commit{}, fmt.Errorf("gitsource: commit in %s: %w", s.URL(), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commitLocked(h)
}

func (s *Source) commitLocked(h plumbing.Hash) (Commit, error) {
	c, err := readCommit(s.repo, s.objs, h)
	if err != nil {
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			return Commit{}, fmt.Errorf("%w: commit %s in %s", ErrNotFound, h, s.URL())
		}
		return Commit{}, fmt.Errorf("gitsource: read commit %s of %s: %w", h, s.URL(), err)
	}
	return toCommit(c), nil
}

func toCommit(c *object.Commit) Commit {
	parents := make([]string, len(c.ParentHashes))
	for i, h := range c.ParentHashes {
		parents[i] = h.String()
	}
	return Commit{
		Hash:        c.Hash.String(),
		AuthorName:  c.Author.Name,
		AuthorEmail: c.Author.Email,
		When:        c.Author.When,
		Message:     c.Message,
		Parents:     parents,
	}
}

func parseHash(hash string) (plumbing.Hash, error) {
	if len(hash) != 40 {
		return plumbing.ZeroHash, fmt.Errorf("invalid commit hash %q: want 40 hex digits", hash)
	}
	if _, err := hex.DecodeString(hash); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("invalid commit hash %q: want 40 hex digits", hash)
	}
	return plumbing.NewHash(strings.ToLower(hash)), nil
}

// ChangedPaths returns the sorted, de-duplicated slash paths of files that
// differ between the trees of two commits (added, deleted, modified or
// changed mode; a rename lists both paths). An empty fromHash lists every
// file of toHash, which is what a first plan needs.
func (s *Source) ChangedPaths(fromHash, toHash string) ([]string, error) {
	to, err := parseHash(toHash)
	if err != nil {
		return nil, fmt.Errorf("gitsource: changed paths in %s: %w", s.URL(), err)
	}
	var from plumbing.Hash
	if fromHash != "" {
		if from, err = parseHash(fromHash); err != nil {
			return nil, fmt.Errorf("gitsource: changed paths in %s: %w", s.URL(), err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return changedPaths(s.repo, s.objs, from, to, s.URL())
}

func changedPaths(repo *git.Repository, objs *objectHeaders, from, to plumbing.Hash, where string) ([]string, error) {
	toTree, err := commitTree(repo, objs, to, where)
	if err != nil {
		return nil, err
	}
	if from.IsZero() {
		var out []string
		walker := object.NewTreeWalker(toTree, true, nil)
		defer walker.Close()
		for {
			name, entry, err := walker.Next()
			if err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("gitsource: walk tree of %s in %s: %w", to, where, err)
			}
			if entry.Mode.IsFile() || entry.Mode == filemode.Submodule {
				out = append(out, name)
			}
		}
		sort.Strings(out)
		return out, nil
	}
	fromTree, err := commitTree(repo, objs, from, where)
	if err != nil {
		return nil, err
	}
	d := &treeDiff{read: func(h plumbing.Hash) (*object.Tree, error) { return readTree(repo, objs, h) }, where: where}
	if err := d.dirs(fromTree, toTree, ""); err != nil {
		return nil, fmt.Errorf("gitsource: diff %s..%s: %w", from, to, err)
	}
	// Git orders a directory as its name with "/", which is the order of
	// full paths, so out is sorted already unless a tree object was
	// written out of order (git fsck refuses those, other writers may not).
	slices.Sort(d.out)
	return slices.Compact(d.out), nil
}

func commitTree(repo *git.Repository, objs *objectHeaders, h plumbing.Hash, where string) (*object.Tree, error) {
	c, err := readCommit(repo, objs, h)
	if err != nil {
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			return nil, fmt.Errorf("%w: commit %s in %s", ErrNotFound, h, where)
		}
		return nil, fmt.Errorf("gitsource: read commit %s of %s: %w", h, where, err)
	}
	t, err := readTree(repo, objs, c.TreeHash)
	if err != nil {
		return nil, fmt.Errorf("gitsource: read tree of commit %s in %s: %w", h, where, err)
	}
	return t, nil
}
