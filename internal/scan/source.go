package scan

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

type dirSource struct{ root string }

// DirSource walks the regular files under root (or root itself when it is
// a file), in lexical order. Symbolic links are not followed: a model
// directory is scanned as it would be uploaded, and a link could point
// anywhere on the machine running the scan.
func DirSource(root string) Source { return dirSource{root: root} }

func (d dirSource) Walk(ctx context.Context, fn func(path string, size int64, open func() (io.ReadCloser, error)) error) error {
	info, err := os.Lstat(d.root)
	if err != nil {
		return err
	}
	if info.Mode().IsRegular() {
		return fn(filepath.ToSlash(filepath.Base(d.root)), info.Size(), func() (io.ReadCloser, error) { return os.Open(d.root) })
	}
	return filepath.WalkDir(d.root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !de.Type().IsRegular() {
			return nil
		}
		info, err := de.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		return fn(filepath.ToSlash(rel), info.Size(), func() (io.ReadCloser, error) { return os.Open(p) })
	})
}
