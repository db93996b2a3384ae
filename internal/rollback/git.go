package rollback

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/modelsync/modelsync/internal/gitsource"
	"github.com/modelsync/modelsync/internal/release"
	"github.com/modelsync/modelsync/reconciler"
)

// Signature is who a rollback commit or tag is attributed to.
type Signature struct {
	Name  string
	Email string
	When  time.Time
}

// CloneOptions locate the repository a rollback changes.
type CloneOptions struct {
	// URL is an http(s)://, ssh://, scp-like, git:// or file:// URL, or a
	// path to a bare repository. Credentials embedded in an http(s) URL are
	// used for the transfers but never written to the clone's config.
	URL string
	// Branch is checked out after the clone (the config branch).
	Branch string
	Auth   gitsource.Auth
	// Dir is an empty or missing directory the clone is made in; Close
	// removes it.
	Dir string
}

// Checkout is a temporary working clone of the models repository. The
// bare cache the reconciler reads is never written: a rollback commits in
// a clone of its own and pushes, like a person would.
type Checkout struct {
	dir    string
	url    string // without credentials
	branch string // currently checked out
	auth   gitsource.Auth
	tauth  transport.AuthMethod
	repo   *git.Repository
	ws     *gitsource.Workspace
}

// Clone makes a full working clone of opts.URL with every branch and tag,
// so history walks and release tags see what the remote has.
func Clone(ctx context.Context, opts CloneOptions) (*Checkout, error) {
	if opts.URL == "" || opts.Branch == "" || opts.Dir == "" {
		return nil, errors.New("rollback: clone needs a repository URL, a branch and a directory")
	}
	clean, auth := gitsource.MoveURLCredentials(opts.URL, opts.Auth)
	tauth, err := auth.TransportAuth(clean)
	if err != nil {
		return nil, fmt.Errorf("rollback: credentials for %s: %w", gitsource.SanitizeURL(clean), err)
	}
	repo, err := git.PlainCloneContext(ctx, opts.Dir, false, &git.CloneOptions{
		URL:           clean,
		Auth:          tauth,
		ReferenceName: plumbing.NewBranchReferenceName(opts.Branch),
		Tags:          git.AllTags,
	})
	if err != nil {
		return nil, fmt.Errorf("rollback: cloning branch %s of %s: %w", opts.Branch, gitsource.SanitizeURL(clean), gitsource.Scrub(err, opts.URL, auth))
	}
	ws, err := gitsource.OpenWorkspace(opts.Dir)
	if err != nil {
		return nil, err
	}
	return &Checkout{dir: opts.Dir, url: clean, branch: opts.Branch, auth: auth, tauth: tauth, repo: repo, ws: ws}, nil
}

// Close deletes the clone.
func (c *Checkout) Close() error { return os.RemoveAll(c.dir) }

// Dir is the clone's work tree.
func (c *Checkout) Dir() string { return c.dir }

// URL is the remote, without credentials.
func (c *Checkout) URL() string { return gitsource.SanitizeURL(c.url) }

// Branch is the branch checked out.
func (c *Checkout) Branch() string { return c.branch }

// UseBranch checks out the remote's branch name, e.g. an environment's
// source branch that differs from the config branch.
func (c *Checkout) UseBranch(name string) error {
	if name == c.branch {
		return nil
	}
	remote, err := c.repo.Reference(plumbing.NewRemoteReferenceName("origin", name), true)
	if err != nil {
		return fmt.Errorf("rollback: branch %q of %s: %w", name, c.URL(), err)
	}
	wt, err := c.repo.Worktree()
	if err != nil {
		return err
	}
	if err := wt.Checkout(&git.CheckoutOptions{Branch: plumbing.NewBranchReferenceName(name), Hash: remote.Hash(), Create: true}); err != nil {
		return fmt.Errorf("rollback: checking out branch %q of %s: %w", name, c.URL(), err)
	}
	c.branch = name
	return nil
}

// Head returns the commit checked out.
func (c *Checkout) Head() (*object.Commit, error) {
	ref, err := c.repo.Head()
	if err != nil {
		return nil, fmt.Errorf("rollback: HEAD of the clone of %s: %w", c.URL(), err)
	}
	return c.repo.CommitObject(ref.Hash())
}

// Files returns the tree of a commit as an fs.FS.
func (c *Checkout) Files(commit *object.Commit) (fs.FS, error) {
	return gitsource.CommitTreeFS(c.repo.Storer, commit, nil)
}

// commitAt resolves a full hash.
func (c *Checkout) commitAt(hash string) (*object.Commit, error) {
	return c.repo.CommitObject(plumbing.NewHash(hash))
}

// ReleaseTags lists the clone's valid release tags, sorted, and the
// malformed ones separately.
func (c *Checkout) ReleaseTags() ([]release.Tag, []error, error) { return c.ws.ReleaseTags() }

// WriteFile replaces a file of the work tree (rel is a slash path).
func (c *Checkout) WriteFile(rel string, data []byte) error {
	p := filepath.Join(c.dir, filepath.FromSlash(rel))
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	return os.WriteFile(p, data, st.Mode().Perm())
}

// ReadFile reads a file of the work tree (rel is a slash path).
func (c *Checkout) ReadFile(rel string) ([]byte, error) {
	return os.ReadFile(filepath.Join(c.dir, filepath.FromSlash(rel)))
}

// CommitFiles commits the named work-tree files on branch. A branch other
// than the one checked out is created at HEAD first.
func (c *Checkout) CommitFiles(branch string, paths []string, message string, author Signature) (string, error) {
	wt, err := c.repo.Worktree()
	if err != nil {
		return "", err
	}
	if branch != c.branch {
		head, err := c.repo.Head()
		if err != nil {
			return "", err
		}
		if err := wt.Checkout(&git.CheckoutOptions{Branch: plumbing.NewBranchReferenceName(branch), Hash: head.Hash(), Create: true, Keep: true}); err != nil {
			return "", fmt.Errorf("rollback: creating branch %s: %w", branch, err)
		}
		c.branch = branch
	}
	for _, p := range paths {
		if _, err := wt.Add(p); err != nil {
			return "", fmt.Errorf("rollback: staging %s: %w", p, err)
		}
	}
	when := author.When
	if when.IsZero() {
		when = time.Now()
	}
	sig := &object.Signature{Name: author.Name, Email: author.Email, When: when}
	h, err := wt.Commit(message, &git.CommitOptions{Author: sig, Committer: sig})
	if err != nil {
		return "", fmt.Errorf("rollback: committing on %s: %w", branch, err)
	}
	return h.String(), nil
}

// ErrBranchExists means the rollback branch is already on the remote,
// usually because the same rollback was proposed before.
var ErrBranchExists = errors.New("branch already exists on the remote")

// ErrRejected means the remote refused the push, e.g. because the branch
// moved since the clone or branch protection forbids direct pushes. It is
// not retryable as is: clone again, or open a pull request instead.
var ErrRejected = errors.New("push rejected by the remote")

// PushBranch pushes the checked-out branch to the remote branch of the same
// name. With mustBeNew the push is refused when the remote has that branch
// already; otherwise it must fast-forward.
func (c *Checkout) PushBranch(ctx context.Context, mustBeNew bool) error {
	ref := plumbing.NewBranchReferenceName(c.branch)
	if mustBeNew {
		refs, err := c.listRemote(ctx)
		if err != nil {
			return err
		}
		for _, r := range refs {
			if r.Name() == ref {
				return fmt.Errorf("%w: %s on %s (at %s); a rollback proposing the same change may be open already",
					ErrBranchExists, c.branch, c.URL(), r.Hash())
			}
		}
	}
	err := c.repo.PushContext(ctx, &git.PushOptions{
		RemoteName: "origin",
		RefSpecs:   []config.RefSpec{config.RefSpec(ref.String() + ":" + ref.String())},
		Auth:       c.tauth,
	})
	if err == nil || errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil
	}
	err = gitsource.Scrub(err, c.url, c.auth)
	msg := err.Error()
	if errors.Is(err, git.ErrNonFastForwardUpdate) || strings.Contains(msg, "non-fast-forward") || strings.Contains(msg, "rejected") ||
		strings.Contains(msg, "protected") || strings.Contains(msg, "declined") {
		return fmt.Errorf("%w: pushing %s to %s: %w", ErrRejected, c.branch, c.URL(), err)
	}
	return fmt.Errorf("rollback: pushing %s to %s: %w", c.branch, c.URL(), err)
}

func (c *Checkout) listRemote(ctx context.Context) ([]*plumbing.Reference, error) {
	rem, err := c.repo.Remote("origin")
	if err != nil {
		return nil, err
	}
	refs, err := rem.ListContext(ctx, &git.ListOptions{Auth: c.tauth})
	if err != nil && !errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return nil, fmt.Errorf("rollback: listing branches of %s: %w", c.URL(), gitsource.Scrub(err, c.url, c.auth))
	}
	return refs, nil
}

// TagNextPatch creates the model's next patch release tag at HEAD, as
// `modelsync release` would, and pushes it. It returns the tag name.
func (c *Checkout) TagNextPatch(ctx context.Context, model, message string, tagger Signature) (string, error) {
	tags, _, err := c.ws.ReleaseTags()
	if err != nil {
		return "", err
	}
	var prev *release.Version
	if t, ok := release.Latest(tags, model, true); ok {
		prev = &t.Version
	}
	next, err := release.Next(prev, release.BumpPatch)
	if err != nil {
		return "", err
	}
	name := release.FormatTag(model, next)
	if err := c.ws.CreateAnnotatedTag(name, message, gitsource.Signature(tagger)); err != nil {
		return "", err
	}
	if err := c.ws.PushTag(ctx, "origin", name, c.auth); err != nil {
		return "", fmt.Errorf("release tag %s of model %s was created in the clone but not pushed: %w", name, model, err)
	}
	return name, nil
}

// Revision formats a Git revision the way desired state does.
func Revision(ref, hash string) string { return reconciler.Revision(ref, hash) }
