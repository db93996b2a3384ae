package gitsource

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-billy/v5"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/modelsync/modelsync/internal/release"
)

// Signature identifies the author of a tag.
type Signature struct {
	Name  string
	Email string
	When  time.Time
}

// Workspace is a working repository: the developer's own copy, which
// `modelsync release` checks and tags, or a temporary clone (Clone) in
// which `modelsync rollback` commits. It is the package's Writer; unlike
// Source it never touches the cache.
type Workspace struct {
	dir   string
	mu    sync.Mutex // go-git repositories are not safe for concurrent use
	repo  *git.Repository
	trees *treeCache     // shared by the trees read through Tree; guarded by mu
	objs  *objectHeaders // guarded by mu
	// maxBlob is the largest file a tree of the workspace reads.
	maxBlob int64
}

func newWorkspace(dir string, repo *git.Repository) *Workspace {
	var fsys billy.Filesystem
	if st, ok := repo.Storer.(*filesystem.Storage); ok {
		fsys = st.Filesystem()
	}
	return &Workspace{dir: dir, repo: repo, objs: newObjectHeaders(fsys, repo.Storer), maxBlob: DefaultMaxBlobSize}
}

// OpenWorkspace opens the Git work tree containing dir (parent directories
// are searched for .git, as git does).
func OpenWorkspace(dir string) (*Workspace, error) {
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if err != nil {
		if errors.Is(err, git.ErrRepositoryNotExists) {
			return nil, fmt.Errorf("%w: no Git repository at or above %s", ErrNotFound, dir)
		}
		return nil, fmt.Errorf("gitsource: open work tree %s: %w", dir, err)
	}
	return newWorkspace(dir, repo), nil
}

// IsDirty reports uncommitted changes: modified, staged, deleted and
// untracked (not ignored) files. The paths are sorted slash paths relative
// to the work tree root.
func (w *Workspace) IsDirty() (bool, []string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wt, err := w.repo.Worktree()
	if err != nil {
		return false, nil, fmt.Errorf("gitsource: work tree %s: %w", w.dir, err)
	}
	st, err := wt.Status()
	if err != nil {
		return false, nil, fmt.Errorf("gitsource: status of %s: %w", w.dir, err)
	}
	var paths []string
	for p, fst := range st {
		if fst.Staging != git.Unmodified || fst.Worktree != git.Unmodified {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	return len(paths) > 0, paths, nil
}

// HeadCommit returns the commit HEAD points at.
func (w *Workspace) HeadCommit() (Commit, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, err := w.headLocked()
	if err != nil {
		return Commit{}, err
	}
	return toCommit(c), nil
}

func (w *Workspace) headLocked() (*object.Commit, error) {
	ref, err := w.repo.Head()
	if err != nil {
		if errors.Is(err, plumbing.ErrReferenceNotFound) {
			return nil, fmt.Errorf("%w: HEAD of %s has no commit yet", ErrNotFound, w.dir)
		}
		return nil, fmt.Errorf("gitsource: resolve HEAD of %s: %w", w.dir, err)
	}
	c, err := readCommit(w.repo, w.objs, ref.Hash())
	if err != nil {
		return nil, fmt.Errorf("gitsource: read HEAD commit %s of %s: %w", ref.Hash(), w.dir, err)
	}
	return c, nil
}

// ReleaseTags returns the valid release tags of the work tree (sorted by
// model, then version, with Commit peeled) and, separately, one error per
// tag that looks like a release tag but is malformed.
func (w *Workspace) ReleaseTags() ([]release.Tag, []error, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	iter, err := w.repo.Tags()
	if err != nil {
		return nil, nil, fmt.Errorf("gitsource: list tags of %s: %w", w.dir, err)
	}
	var tags []release.Tag
	var bad []error
	err = iter.ForEach(func(r *plumbing.Reference) error {
		// repo.Tags lists refs/tags/ only; cutting it by hand is much
		// cheaper than ReferenceName.Short (see snapshot).
		name, _ := strings.CutPrefix(r.Name().String(), "refs/tags/")
		tag, ok, err := releaseTag(w.repo, w.objs, name, r.Hash())
		switch {
		case err != nil:
			bad = append(bad, err)
		case ok:
			tags = append(tags, tag)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("gitsource: list tags of %s: %w", w.dir, err)
	}
	release.Sort(tags)
	return tags, bad, nil
}

// ChangedSince reports whether anything under subdir (a slash path such as
// "models/churn") differs between commit tagCommit and HEAD, including the
// directory appearing or disappearing. It compares the subtree hashes, so
// the cost does not depend on history length.
func (w *Workspace) ChangedSince(tagCommit, subdir string) (bool, error) {
	from, err := parseHash(tagCommit)
	if err != nil {
		return false, fmt.Errorf("gitsource: changes in %s of %s: %w", subdir, w.dir, err)
	}
	clean := path.Clean(strings.Trim(subdir, "/"))
	if clean == "." || clean == ".." || strings.HasPrefix(clean, "../") {
		return false, fmt.Errorf("gitsource: changes in %q of %s: subdir must be a path inside the repository", subdir, w.dir)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	head, err := w.headLocked()
	if err != nil {
		return false, err
	}
	fromTree, err := commitTree(w.repo, w.objs, from, w.dir)
	if err != nil {
		return false, err
	}
	headTree, err := readTree(w.repo, w.objs, head.TreeHash)
	if err != nil {
		return false, fmt.Errorf("gitsource: read HEAD tree of %s: %w", w.dir, err)
	}
	a, aok, err := subtreeEntry(fromTree, clean)
	if err != nil {
		return false, fmt.Errorf("gitsource: %s at %s in %s: %w", clean, from, w.dir, err)
	}
	b, bok, err := subtreeEntry(headTree, clean)
	if err != nil {
		return false, fmt.Errorf("gitsource: %s at HEAD in %s: %w", clean, w.dir, err)
	}
	if aok != bok {
		return true, nil
	}
	return aok && (a.Hash != b.Hash || a.Mode != b.Mode), nil
}

func subtreeEntry(t *object.Tree, p string) (*object.TreeEntry, bool, error) {
	e, err := t.FindEntry(p)
	if err != nil {
		if errors.Is(err, object.ErrEntryNotFound) || errors.Is(err, object.ErrDirectoryNotFound) {
			return nil, false, nil
		}
		return nil, false, err
	}
	// A file where a directory is expected is compared like one: its hash
	// and mode still identify the content.
	return e, true, nil
}

// CreateAnnotatedTag creates annotated tag name at HEAD. It fails if the
// tag already exists.
func (w *Workspace) CreateAnnotatedTag(name, message string, tagger Signature) error {
	if err := plumbing.ReferenceName("refs/tags/" + name).Validate(); err != nil {
		return fmt.Errorf("gitsource: tag name %q: %w", name, err)
	}
	if strings.TrimSpace(message) == "" {
		return fmt.Errorf("gitsource: tag %s: an annotated tag needs a message", name)
	}
	if tagger.Name == "" || tagger.Email == "" {
		return fmt.Errorf("gitsource: tag %s: tagger name and email are required", name)
	}
	when := tagger.When
	if when.IsZero() {
		when = time.Now()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	head, err := w.headLocked()
	if err != nil {
		return fmt.Errorf("gitsource: tag %s: %w", name, err)
	}
	_, err = w.repo.CreateTag(name, head.Hash, &git.CreateTagOptions{
		Tagger:  &object.Signature{Name: tagger.Name, Email: tagger.Email, When: when},
		Message: message,
	})
	if err != nil {
		if errors.Is(err, git.ErrTagExists) {
			return fmt.Errorf("%w: tag %s in %s: %w", ErrTagExists, name, w.dir, err)
		}
		return fmt.Errorf("gitsource: create tag %s in %s: %w", name, w.dir, err)
	}
	return nil
}

// PushTag pushes tag name to the named remote. It never overwrites a tag
// the remote already has at a different object (ErrTagExists); pushing an
// identical tag again succeeds.
func (w *Workspace) PushTag(ctx context.Context, remote, name string, auth Auth) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	rawURL, tauth, auth, err := w.remoteAuthLocked(remote, auth)
	if err != nil {
		return err
	}
	ref := "refs/tags/" + name
	local, err := w.repo.Storer.Reference(plumbing.ReferenceName(ref))
	if err != nil {
		return fmt.Errorf("%w: tag %s in %s: %w", ErrNotFound, name, w.dir, err)
	}
	// Look first: go-git's push cannot explain a conflicting remote tag (it
	// reports the remote's object as missing locally), and an identical tag
	// makes the push a no-op.
	refs, err := w.listLocked(ctx, remote, rawURL, tauth)
	if err != nil {
		return classify(ctx, "list refs before pushing tag "+name+" to", rawURL, auth, err)
	}
	for _, r := range refs {
		if r.Name().String() != ref {
			continue
		}
		if r.Hash() == local.Hash() {
			return nil
		}
		return fmt.Errorf("%w: tag %s already exists on %s at %s (local tag is %s); refusing to overwrite a published release",
			ErrTagExists, name, SanitizeURL(rawURL), r.Hash(), local.Hash())
	}
	err = w.repo.PushContext(ctx, &git.PushOptions{
		RemoteName: remote,
		RemoteURL:  rawURL,
		RefSpecs:   []config.RefSpec{config.RefSpec(ref + ":" + ref)},
		Auth:       tauth,
	})
	if err == nil || errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil
	}
	return classify(ctx, "push tag "+name+" to", rawURL, auth, err)
}
