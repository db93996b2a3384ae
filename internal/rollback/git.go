package rollback

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/modelsync/modelsync/internal/gitsource"
	"github.com/modelsync/modelsync/internal/release"
)

// Signature is who a rollback commit or tag is attributed to.
type Signature = gitsource.Signature

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
	// Into is the repository at URL when URL is a local non-bare
	// repository: a push to the branch it has checked out updates its
	// work tree too, or is refused when the work tree has changes.
	Into *gitsource.Workspace
}

// Checkout is a temporary working clone of the models repository. The
// bare cache the reconciler reads is never written: a rollback commits in
// a clone of its own and pushes, like a person would. All Git work goes
// through gitsource's Writer.
type Checkout struct {
	dir    string
	url    string // without credentials
	branch string // currently checked out
	auth   gitsource.Auth
	ws     *gitsource.Workspace
	into   *gitsource.Workspace // see CloneOptions.Into
}

// Clone makes a full working clone of opts.URL with every branch and tag,
// so history walks and release tags see what the remote has.
func Clone(ctx context.Context, opts CloneOptions) (*Checkout, error) {
	if opts.URL == "" || opts.Branch == "" || opts.Dir == "" {
		return nil, errors.New("rollback: clone needs a repository URL, a branch and a directory")
	}
	ws, auth, err := gitsource.Clone(ctx, gitsource.CloneOptions{URL: opts.URL, Branch: opts.Branch, Auth: opts.Auth, Dir: opts.Dir})
	if err != nil {
		return nil, fmt.Errorf("rollback: %w", err)
	}
	clean, _ := gitsource.MoveURLCredentials(opts.URL, opts.Auth)
	return &Checkout{dir: opts.Dir, url: clean, branch: opts.Branch, auth: auth, ws: ws, into: opts.Into}, nil
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
	if err := c.ws.CheckoutRemoteBranch("origin", name); err != nil {
		return fmt.Errorf("rollback: branch %q of %s: %w", name, c.URL(), err)
	}
	c.branch = name
	return nil
}

// Head returns the commit checked out.
func (c *Checkout) Head() (gitsource.Commit, error) {
	h, err := c.ws.HeadCommit()
	if err != nil {
		return gitsource.Commit{}, fmt.Errorf("rollback: HEAD of the clone of %s: %w", c.URL(), err)
	}
	return h, nil
}

// Files returns the tree of a commit as an fs.FS.
func (c *Checkout) Files(commit string) (fs.FS, error) { return c.ws.Tree(commit) }

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
	h, err := c.ws.CommitFiles(branch, paths, message, author)
	if err != nil {
		return "", fmt.Errorf("rollback: %w", err)
	}
	c.branch = branch
	return h, nil
}

// PushBranch pushes the checked-out branch to the remote branch of the same
// name. With mustBeNew the push is refused (gitsource.ErrBranchExists) when
// the remote has that branch already; otherwise it must fast-forward
// (gitsource.ErrRejected when it cannot: clone again, or open a pull request
// instead).
func (c *Checkout) PushBranch(ctx context.Context, mustBeNew bool) error {
	if c.into != nil && !mustBeNew && c.into.CheckedOutBranch() == c.branch {
		// git refuses a push to a checked-out branch; move branch and
		// work tree together instead, as a person would with a pull.
		if err := c.ws.UpdateCheckedOutBranch(c.into, c.branch); err != nil {
			return fmt.Errorf("rollback: %w", err)
		}
		return nil
	}
	err := c.ws.PushBranch(ctx, "origin", c.branch, mustBeNew, c.auth)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gitsource.ErrBranchExists):
		return fmt.Errorf("rollback: %w; a rollback proposing the same change may be open already", err)
	}
	return fmt.Errorf("rollback: %w", err)
}

// TagNextPatch creates the model's next patch release tag at HEAD, as
// `modelsync release` would, and pushes it. It returns the tag name.
func (c *Checkout) TagNextPatch(ctx context.Context, model, message string, tagger Signature) (string, error) {
	tags, _, err := c.ws.ReleaseTags()
	if err != nil {
		return "", err
	}
	next, _, err := release.NextRelease(tags, model, release.BumpPatch)
	if err != nil {
		return "", err
	}
	if err := c.ws.CreateAnnotatedTag(next.Name, message, tagger); err != nil {
		return "", err
	}
	if err := c.ws.PushTag(ctx, "origin", next.Name, c.auth); err != nil {
		return "", fmt.Errorf("release tag %s of model %s was created in the clone but not pushed: %w", next.Name, model, err)
	}
	return next.Name, nil
}
