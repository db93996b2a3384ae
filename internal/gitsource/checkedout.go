package gitsource

import (
	"errors"
	"fmt"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// ErrWorkTreeDirty is matched (errors.Is) when a branch checked out in a
// work tree with uncommitted changes would have to move.
var ErrWorkTreeDirty = errors.New("work tree has uncommitted changes")

// CheckedOutBranch returns the branch checked out in a non-bare repository,
// "" for a bare one or a detached HEAD.
func (w *Workspace) CheckedOutBranch() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.repo.Worktree(); err != nil {
		return ""
	}
	ref, err := w.repo.Head()
	if err != nil || !ref.Name().IsBranch() {
		return ""
	}
	return ref.Name().Short()
}

// UpdateCheckedOutBranch brings the commit on branch of this clone into
// dst, a non-bare repository with that branch checked out, the way git's
// receive.denyCurrentBranch=updateInstead does (a plain push is refused
// there): only when dst's work tree is clean, only when its branch still
// points where this clone's origin/<branch> did (a fast-forward of what
// was cloned), and then branch, index and work tree move together. Objects
// are copied between the two object stores directly; no process runs in
// dst and none of its hooks.
func (w *Workspace) UpdateCheckedOutBranch(dst *Workspace, branch string) error {
	ref := plumbing.NewBranchReferenceName(branch)
	w.mu.Lock()
	defer w.mu.Unlock()
	tip, err := w.repo.Reference(ref, true)
	if err != nil {
		return fmt.Errorf("gitsource: branch %s of %s: %w", branch, w.dir, err)
	}
	base, err := w.repo.Reference(plumbing.NewRemoteReferenceName("origin", branch), true)
	if err != nil {
		return fmt.Errorf("gitsource: origin/%s of %s: %w", branch, w.dir, err)
	}

	dst.mu.Lock()
	defer dst.mu.Unlock()
	wt, err := dst.repo.Worktree()
	if err != nil {
		return fmt.Errorf("gitsource: work tree %s: %w", dst.dir, err)
	}
	head, err := dst.repo.Head()
	if err != nil {
		return fmt.Errorf("gitsource: HEAD of %s: %w", dst.dir, err)
	}
	if head.Name() != ref {
		return fmt.Errorf("gitsource: %s has %s checked out, not %s", dst.dir, head.Name().Short(), branch)
	}
	st, err := wt.Status()
	if err != nil {
		return fmt.Errorf("gitsource: status of %s: %w", dst.dir, err)
	}
	if !st.IsClean() {
		return fmt.Errorf("%w: %s has branch %s checked out with uncommitted changes (%d path(s)); commit or stash them and run again, or pass --repo the shared repository's URL",
			ErrWorkTreeDirty, dst.dir, branch, len(st))
	}
	if head.Hash() != base.Hash() {
		return fmt.Errorf("%w: branch %s of %s moved from %s to %s since it was read; run again", ErrRejected, branch, dst.dir, base.Hash(), head.Hash())
	}
	if err := copyObjects(w.repo, dst.repo, tip.Hash()); err != nil {
		return fmt.Errorf("gitsource: copy commit %s into %s: %w", tip.Hash(), dst.dir, err)
	}
	if err := dst.repo.Storer.CheckAndSetReference(plumbing.NewHashReference(ref, tip.Hash()), head); err != nil {
		return fmt.Errorf("%w: branch %s of %s: %w", ErrRejected, branch, dst.dir, err)
	}
	// The work tree was clean, so a hard reset only writes what the new
	// commit changed.
	if err := wt.Reset(&git.ResetOptions{Commit: tip.Hash(), Mode: git.HardReset}); err != nil {
		return fmt.Errorf("gitsource: branch %s of %s moved to %s but its work tree was not updated (run `git reset --hard` there): %w", branch, dst.dir, tip.Hash(), err)
	}
	return nil
}

// copyObjects stores in dst every object reachable from h that dst lacks.
// An object dst has implies it has everything below it, so only what is
// new is walked.
func copyObjects(src, dst *git.Repository, h plumbing.Hash) error {
	if dst.Storer.HasEncodedObject(h) == nil {
		return nil
	}
	o, err := src.Storer.EncodedObject(plumbing.AnyObject, h)
	if err != nil {
		return err
	}
	var below []plumbing.Hash
	switch o.Type() {
	case plumbing.CommitObject:
		c, err := object.DecodeCommit(src.Storer, o)
		if err != nil {
			return err
		}
		below = append(append(below, c.TreeHash), c.ParentHashes...)
	case plumbing.TreeObject:
		t, err := object.DecodeTree(src.Storer, o)
		if err != nil {
			return err
		}
		for _, e := range t.Entries {
			if e.Mode != filemode.Submodule {
				below = append(below, e.Hash)
			}
		}
	}
	for _, b := range below {
		if err := copyObjects(src, dst, b); err != nil {
			return err
		}
	}
	_, err = dst.Storer.SetEncodedObject(o)
	return err
}
