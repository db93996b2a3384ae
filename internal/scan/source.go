package scan

import (
	"context"
	"fmt"
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
	// The root is what the user named: a link there is followed (links
	// below it are not), or `scan model-link` would scan nothing and say
	// "safe".
	root, err := filepath.EvalSymlinks(d.root)
	if err != nil {
		return err
	}
	info, err := os.Stat(root)
	if err != nil {
		return err
	}
	if info.Mode().IsRegular() {
		return fn(filepath.ToSlash(filepath.Base(d.root)), info.Size(), func() (io.ReadCloser, error) { return os.Open(root) })
	}
	if !info.IsDir() {
		return fmt.Errorf("%s is neither a regular file nor a directory", d.root)
	}
	return filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
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
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		return fn(filepath.ToSlash(rel), info.Size(), func() (io.ReadCloser, error) { return os.Open(p) })
	})
}
