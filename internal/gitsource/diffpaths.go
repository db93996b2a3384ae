package gitsource

import (
	"fmt"
	"path"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// treeDiff lists the files that differ between two trees, descending
// only into directories whose hashes differ. go-git's DiffTree opened
// every subdirectory of a changed directory to count its children, so a
// one-model push read all 10,000 model folders: most of the controller's
// CPU per push at that size.
type treeDiff struct {
	read  func(plumbing.Hash) (*object.Tree, error)
	where string
	out   []string
}

// dirs compares directory a with b (either may be nil: absent) below
// prefix.
func (d *treeDiff) dirs(a, b *object.Tree, prefix string) error {
	var ea, eb []object.TreeEntry
	if a != nil {
		ea = a.Entries
	}
	if b != nil {
		eb = b.Entries
	}
	for len(ea) > 0 || len(eb) > 0 {
		switch c := compareEntries(ea, eb); {
		case c < 0:
			if err := d.side(ea[0], prefix); err != nil {
				return err
			}
			ea = ea[1:]
		case c > 0:
			if err := d.side(eb[0], prefix); err != nil {
				return err
			}
			eb = eb[1:]
		default:
			if err := d.both(ea[0], eb[0], prefix); err != nil {
				return err
			}
			ea, eb = ea[1:], eb[1:]
		}
	}
	return nil
}

// both compares two entries of one name (both directories, or neither:
// Git sorts a directory as its name with "/", so a file and a directory
// of one name never meet here).
func (d *treeDiff) both(a, b object.TreeEntry, prefix string) error {
	if a.Hash == b.Hash && a.Mode == b.Mode {
		return nil
	}
	if a.Mode != filemode.Dir {
		if counted(a.Mode) || counted(b.Mode) {
			d.out = append(d.out, path.Join(prefix, a.Name))
		}
		return nil
	}
	ta, err := d.tree(a.Hash, prefix, a.Name)
	if err != nil {
		return err
	}
	tb, err := d.tree(b.Hash, prefix, b.Name)
	if err != nil {
		return err
	}
	return d.dirs(ta, tb, path.Join(prefix, a.Name))
}

// side lists an entry present on one side only: a file, or every file
// below a directory.
func (d *treeDiff) side(e object.TreeEntry, prefix string) error {
	if e.Mode != filemode.Dir {
		if counted(e.Mode) {
			d.out = append(d.out, path.Join(prefix, e.Name))
		}
		return nil
	}
	t, err := d.tree(e.Hash, prefix, e.Name)
	if err != nil {
		return err
	}
	return d.dirs(t, nil, path.Join(prefix, e.Name))
}

func (d *treeDiff) tree(h plumbing.Hash, prefix, name string) (*object.Tree, error) {
	t, err := d.read(h)
	if err != nil {
		return nil, fmt.Errorf("gitsource: read directory %s in %s: %w", path.Join(prefix, name), d.where, err)
	}
	return t, nil
}

// counted reports whether an entry of this mode is a file for
// ChangedPaths: regular and executable files, links and submodules.
func counted(m filemode.FileMode) bool { return m.IsFile() || m == filemode.Submodule }

// compareEntries orders the first entries of a and b by name as Git sorts
// them (a directory's name with a trailing "/"); an exhausted side sorts
// last.
func compareEntries(a, b []object.TreeEntry) int {
	switch {
	case len(a) == 0:
		return 1
	case len(b) == 0:
		return -1
	}
	key := b[0].Name
	if b[0].Mode == filemode.Dir {
		key += "/"
	}
	return compareKey(a[0], key)
}
