package gitsource

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// Reader reads the commits and trees of a repository: the bare mirror a
// process owns (Source) or a working clone (Workspace). Commits are named by
// full hash, so what a Reader answers never changes for a given argument.
type Reader interface {
	// Commit describes a commit.
	Commit(hash string) (Commit, error)
	// Tree is the read-only file tree of a commit.
	Tree(hash string) (fs.FS, error)
	// ChangedPaths lists the files that differ between two commits.
	ChangedPaths(fromHash, toHash string) ([]string, error)
	// FirstParent returns the first parent of a commit; ok is false for a
	// root commit and at a shallow boundary.
	FirstParent(hash string) (parent string, ok bool, err error)
	// PathHash returns the object hash of a file or directory in a
	// commit's tree; ok is false when the path is absent.
	PathHash(hash, path string) (object string, ok bool, err error)
}

// Writer changes a working clone and publishes the changes, as a person
// would with git: check out a branch, commit, tag, push.
type Writer interface {
	Reader
	// HeadCommit is the commit checked out.
	HeadCommit() (Commit, error)
	// CheckoutRemoteBranch checks out the remote's branch as a local one.
	CheckoutRemoteBranch(remote, branch string) error
	// CommitFiles commits work-tree files on a branch, creating it at HEAD.
	CommitFiles(branch string, paths []string, message string, author Signature) (string, error)
	// PushBranch pushes a local branch to the remote branch of the same name.
	PushBranch(ctx context.Context, remote, branch string, mustBeNew bool, auth Auth) error
	// CreateAnnotatedTag tags HEAD.
	CreateAnnotatedTag(name, message string, tagger Signature) error
	// PushTag publishes a tag, never moving one the remote has.
	PushTag(ctx context.Context, remote, name string, auth Auth) error
}

var (
	_ Reader = (*Source)(nil)
	_ Writer = (*Workspace)(nil)
)

// ErrBranchExists means a branch that must be new is already on the remote.
var ErrBranchExists = errors.New("branch already exists on the remote")

// ErrRejected means the remote refused a push, e.g. because the branch
// moved since the clone or branch protection forbids direct pushes. It is
// not retryable as is.
var ErrRejected = errors.New("push rejected by the remote")

// CloneOptions configure Clone.
type CloneOptions struct {
	// URL is an http(s)://, ssh://, scp-like, git:// or file:// URL, or a
	// local path. Credentials embedded in it, in any scheme, are used for
	// transfers but never written to the clone's configuration.
	URL string
	// Branch is checked out after the clone.
	Branch string
	Auth   Auth
	// Dir is an empty or missing directory for the clone.
	Dir string
}

// Clone makes a full working clone of opts.URL, with every branch (as
// remote-tracking refs of "origin") and every tag, so history walks and
// release tags see what the remote has. It returns the clone and the
// credentials to push with (those of the URL moved into Auth).
func Clone(ctx context.Context, opts CloneOptions) (*Workspace, Auth, error) {
	if opts.URL == "" || opts.Branch == "" || opts.Dir == "" {
		return nil, Auth{}, errors.New("gitsource: a clone needs a repository URL, a branch and a directory")
	}
	clean, auth := MoveURLCredentials(opts.URL, opts.Auth)
	tauth, err := auth.transportAuth(clean)
	if err != nil {
		return nil, Auth{}, scrub(err, opts.URL, auth)
	}
	repo, err := git.PlainCloneContext(ctx, opts.Dir, false, &git.CloneOptions{
		URL:           clean,
		Auth:          tauth,
		ReferenceName: plumbing.NewBranchReferenceName(opts.Branch),
		Tags:          git.AllTags,
	})
	if err != nil {
		return nil, Auth{}, classify(ctx, "clone branch "+opts.Branch+" of", opts.URL, auth, err)
	}
	return newWorkspace(opts.Dir, repo), auth, nil
}

// Dir is the root of the work tree.
func (w *Workspace) Dir() string { return w.dir }

// IsBare reports whether the repository has no work tree.
func (w *Workspace) IsBare() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err := w.repo.Worktree()
	return errors.Is(err, git.ErrIsBareRepository)
}

// RemoteURL returns the first URL of the named remote, as configured
// (credentials included, if the configuration has them).
func (w *Workspace) RemoteURL(remote string) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	rem, err := w.repo.Remote(remote)
	if err != nil {
		if errors.Is(err, git.ErrRemoteNotFound) {
			return "", fmt.Errorf("%w: remote %q in %s", ErrNotFound, remote, w.dir)
		}
		return "", fmt.Errorf("gitsource: remote %q in %s: %w", remote, w.dir, err)
	}
	if urls := rem.Config().URLs; len(urls) > 0 {
		return urls[0], nil
	}
	return "", fmt.Errorf("gitsource: remote %q in %s has no URL", remote, w.dir)
}

// GlobalIdentity returns user.name and user.email from the user's global
// Git configuration, empty where unset or unreadable.
func GlobalIdentity() (name, email string) {
	cfg, err := config.LoadConfig(config.GlobalScope)
	if err != nil {
		return "", ""
	}
	return cfg.User.Name, cfg.User.Email
}

// Branch returns the branch checked out.
func (w *Workspace) Branch() (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ref, err := w.repo.Head()
	if err != nil {
		return "", fmt.Errorf("gitsource: HEAD of %s: %w", w.dir, err)
	}
	if !ref.Name().IsBranch() {
		return "", fmt.Errorf("gitsource: HEAD of %s is detached at %s", w.dir, ref.Hash())
	}
	return ref.Name().Short(), nil
}

// Commit implements Reader.
func (w *Workspace) Commit(hash string) (Commit, error) {
	h, err := parseHash(hash)
	if err != nil {
		return Commit{}, fmt.Errorf("gitsource: commit in %s: %w", w.dir, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	c, err := readCommit(w.repo, w.objs, h)
	if err != nil {
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			return Commit{}, fmt.Errorf("%w: commit %s in %s", ErrNotFound, h, w.dir)
		}
		return Commit{}, fmt.Errorf("gitsource: read commit %s of %s: %w", h, w.dir, err)
	}
	return toCommit(c), nil
}

// Tree implements Reader. The tree shares the workspace's lock, as a
// Source's trees share the Source's.
func (w *Workspace) Tree(hash string) (fs.FS, error) {
	h, err := parseHash(hash)
	if err != nil {
		return nil, fmt.Errorf("gitsource: tree in %s: %w", w.dir, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	c, err := readCommit(w.repo, w.objs, h)
	if err != nil {
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			return nil, fmt.Errorf("%w: commit %s in %s", ErrNotFound, h, w.dir)
		}
		return nil, fmt.Errorf("gitsource: read commit %s of %s: %w", h, w.dir, err)
	}
	fsys := newTreeFS(&w.mu, w.repo.Storer, w.objs, nil, w.maxBlob, c, w.treeCache())
	if _, err := fsys.treeAt(fsys.root); err != nil {
		return nil, fmt.Errorf("gitsource: read tree of commit %s in %s: %w", h, w.dir, err)
	}
	return fsys, nil
}

// treeCache returns the decoded directories the workspace's trees share.
// Callers hold mu.
func (w *Workspace) treeCache() *treeCache {
	if w.trees == nil {
		w.trees = newTreeCache(DefaultCacheSize / 2)
	}
	return w.trees
}

// ChangedPaths implements Reader; see Source.ChangedPaths.
func (w *Workspace) ChangedPaths(fromHash, toHash string) ([]string, error) {
	to, err := parseHash(toHash)
	if err != nil {
		return nil, fmt.Errorf("gitsource: changed paths in %s: %w", w.dir, err)
	}
	var from plumbing.Hash
	if fromHash != "" {
		if from, err = parseHash(fromHash); err != nil {
			return nil, fmt.Errorf("gitsource: changed paths in %s: %w", w.dir, err)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return changedPaths(w.repo, w.objs, from, to, w.dir)
}

// FirstParent implements Reader.
func (w *Workspace) FirstParent(hash string) (string, bool, error) {
	h, err := parseHash(hash)
	if err != nil {
		return "", false, fmt.Errorf("gitsource: parent in %s: %w", w.dir, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return firstParent(w.repo, w.objs, h, w.dir)
}

// PathHash implements Reader.
func (w *Workspace) PathHash(hash, path string) (string, bool, error) {
	h, err := parseHash(hash)
	if err != nil {
		return "", false, fmt.Errorf("gitsource: %s in %s: %w", path, w.dir, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return pathHash(w.repo, w.objs, h, path, w.dir)
}

// FirstParent implements Reader.
func (s *Source) FirstParent(hash string) (string, bool, error) {
	h, err := parseHash(hash)
	if err != nil {
		return "", false, fmt.Errorf("gitsource: parent in %s: %w", s.URL(), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return firstParent(s.repo, s.objs, h, s.URL())
}

// PathHash implements Reader.
func (s *Source) PathHash(hash, path string) (string, bool, error) {
	h, err := parseHash(hash)
	if err != nil {
		return "", false, fmt.Errorf("gitsource: %s in %s: %w", path, s.URL(), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return pathHash(s.repo, s.objs, h, path, s.URL())
}

func firstParent(repo *git.Repository, objs *objectHeaders, h plumbing.Hash, where string) (string, bool, error) {
	c, err := readCommit(repo, objs, h)
	if err != nil {
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			return "", false, fmt.Errorf("%w: commit %s in %s", ErrNotFound, h, where)
		}
		return "", false, fmt.Errorf("gitsource: read commit %s of %s: %w", h, where, err)
	}
	if c.NumParents() == 0 {
		return "", false, nil
	}
	p := c.ParentHashes[0]
	// A shallow clone has the parent's hash but not the parent.
	if repo.Storer.HasEncodedObject(p) != nil {
		return "", false, nil
	}
	return p.String(), true, nil
}

func pathHash(repo *git.Repository, objs *objectHeaders, h plumbing.Hash, p, where string) (string, bool, error) {
	t, err := commitTree(repo, objs, h, where)
	if err != nil {
		return "", false, err
	}
	e, err := t.FindEntry(strings.Trim(p, "/"))
	if err != nil {
		if errors.Is(err, object.ErrEntryNotFound) || errors.Is(err, object.ErrDirectoryNotFound) {
			return "", false, nil
		}
		return "", false, fmt.Errorf("gitsource: %s at %s in %s: %w", p, h, where, err)
	}
	return e.Hash.String(), true, nil
}

// CheckoutRemoteBranch implements Writer: it creates (or resets) the local
// branch at the remote-tracking branch and checks it out.
func (w *Workspace) CheckoutRemoteBranch(remote, branch string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	tracking, err := w.repo.Reference(plumbing.NewRemoteReferenceName(remote, branch), true)
	if err != nil {
		if errors.Is(err, plumbing.ErrReferenceNotFound) {
			return fmt.Errorf("%w: branch %q of remote %s in %s", ErrNotFound, branch, remote, w.dir)
		}
		return fmt.Errorf("gitsource: branch %q of remote %s in %s: %w", branch, remote, w.dir, err)
	}
	wt, err := w.repo.Worktree()
	if err != nil {
		return fmt.Errorf("gitsource: work tree %s: %w", w.dir, err)
	}
	local := plumbing.NewBranchReferenceName(branch)
	_, err = w.repo.Reference(local, false)
	create := errors.Is(err, plumbing.ErrReferenceNotFound)
	if err := wt.Checkout(&git.CheckoutOptions{Branch: local, Hash: tracking.Hash(), Create: create, Force: !create}); err != nil {
		return fmt.Errorf("gitsource: check out branch %q in %s: %w", branch, w.dir, err)
	}
	return nil
}

// CommitFiles implements Writer: it stages paths (slash paths relative to
// the work tree) and commits them on branch, which is created at HEAD,
// keeping the work tree's changes, when it is not the branch checked out.
func (w *Workspace) CommitFiles(branch string, paths []string, message string, author Signature) (string, error) {
	if author.Name == "" || author.Email == "" {
		return "", fmt.Errorf("gitsource: commit on %s in %s: author name and email are required", branch, w.dir)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	wt, err := w.repo.Worktree()
	if err != nil {
		return "", fmt.Errorf("gitsource: work tree %s: %w", w.dir, err)
	}
	head, err := w.repo.Head()
	if err != nil {
		return "", fmt.Errorf("gitsource: HEAD of %s: %w", w.dir, err)
	}
	if head.Name() != plumbing.NewBranchReferenceName(branch) {
		if err := wt.Checkout(&git.CheckoutOptions{Branch: plumbing.NewBranchReferenceName(branch), Hash: head.Hash(), Create: true, Keep: true}); err != nil {
			return "", fmt.Errorf("gitsource: create branch %s in %s: %w", branch, w.dir, err)
		}
	}
	for _, p := range paths {
		if _, err := wt.Add(p); err != nil {
			return "", fmt.Errorf("gitsource: stage %s in %s: %w", p, w.dir, err)
		}
	}
	when := author.When
	if when.IsZero() {
		when = time.Now()
	}
	sig := &object.Signature{Name: author.Name, Email: author.Email, When: when}
	h, err := wt.Commit(message, &git.CommitOptions{Author: sig, Committer: sig})
	if err != nil {
		return "", fmt.Errorf("gitsource: commit on %s in %s: %w", branch, w.dir, err)
	}
	return h.String(), nil
}

// PushBranch implements Writer. With mustBeNew the push is refused
// (ErrBranchExists) when the remote has the branch already; otherwise it
// must fast-forward (ErrRejected when the remote refuses).
func (w *Workspace) PushBranch(ctx context.Context, remote, branch string, mustBeNew bool, auth Auth) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	rawURL, tauth, auth, err := w.remoteAuthLocked(remote, auth)
	if err != nil {
		return err
	}
	ref := plumbing.NewBranchReferenceName(branch)
	if mustBeNew {
		refs, err := w.listLocked(ctx, remote, rawURL, tauth)
		if err != nil {
			return classify(ctx, "list branches before pushing "+branch+" to", rawURL, auth, err)
		}
		for _, r := range refs {
			if r.Name() == ref {
				return fmt.Errorf("%w: %s on %s (at %s)", ErrBranchExists, branch, SanitizeURL(rawURL), r.Hash())
			}
		}
	}
	err = w.repo.PushContext(ctx, &git.PushOptions{
		RemoteName: remote,
		RemoteURL:  rawURL,
		RefSpecs:   []config.RefSpec{config.RefSpec(ref.String() + ":" + ref.String())},
		Auth:       tauth,
	})
	if err == nil || errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil
	}
	msg := scrub(err, rawURL, auth).Error()
	if errors.Is(err, git.ErrNonFastForwardUpdate) || strings.Contains(msg, "non-fast-forward") || strings.Contains(msg, "rejected") ||
		strings.Contains(msg, "protected") || strings.Contains(msg, "declined") {
		return fmt.Errorf("%w: pushing %s to %s: %w", ErrRejected, branch, SanitizeURL(rawURL), scrub(err, rawURL, auth))
	}
	return classify(ctx, "push branch "+branch+" to", rawURL, auth, err)
}

// remoteAuthLocked returns the remote's URL without credentials and the
// transport credentials for it: auth, or else those embedded in the URL.
// Callers hold mu.
func (w *Workspace) remoteAuthLocked(remote string, auth Auth) (string, transport.AuthMethod, Auth, error) {
	rem, err := w.repo.Remote(remote)
	if err != nil {
		if errors.Is(err, git.ErrRemoteNotFound) {
			return "", nil, auth, fmt.Errorf("%w: remote %q in %s", ErrNotFound, remote, w.dir)
		}
		return "", nil, auth, fmt.Errorf("gitsource: remote %q in %s: %w", remote, w.dir, err)
	}
	urls := rem.Config().URLs
	if len(urls) == 0 {
		return "", nil, auth, fmt.Errorf("gitsource: remote %q in %s has no URL", remote, w.dir)
	}
	rawURL, auth := MoveURLCredentials(urls[0], auth)
	tauth, err := auth.transportAuth(rawURL)
	if err != nil {
		return "", nil, auth, scrub(err, urls[0], auth)
	}
	return rawURL, tauth, auth, nil
}

// listLocked lists the remote's refs; an empty remote has none. Callers
// hold mu.
func (w *Workspace) listLocked(ctx context.Context, remote, rawURL string, tauth transport.AuthMethod) ([]*plumbing.Reference, error) {
	lister := git.NewRemote(w.repo.Storer, &config.RemoteConfig{Name: remote, URLs: []string{rawURL}})
	refs, err := lister.ListContext(ctx, &git.ListOptions{Auth: tauth})
	if err != nil && !errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return nil, err
	}
	return refs, nil
}
