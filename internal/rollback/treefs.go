package rollback

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"path"
	"time"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/modelsync/modelsync/internal/manifest"
)

// commitFS is a read-only fs.FS over one commit's tree, enough for the
// manifest loader (Stat and ReadFile) to validate a model as it was at that
// commit without checking anything out. Symlinks read as their target
// path's bytes, which the loader then rejects as YAML; a model that used
// symlinks for its manifest never ran anyway.
type commitFS struct {
	tree *object.Tree
	when time.Time
}

func (f commitFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return &memFile{info: info{name: ".", mode: fs.ModeDir | 0o555, when: f.when}}, nil
	}
	e, err := f.tree.FindEntry(name)
	if err != nil {
		if errors.Is(err, object.ErrEntryNotFound) || errors.Is(err, object.ErrDirectoryNotFound) || errors.Is(err, object.ErrFileNotFound) {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	base := path.Base(name)
	if e.Mode == filemode.Dir {
		return &memFile{info: info{name: base, mode: fs.ModeDir | 0o555, when: f.when}}, nil
	}
	file, err := f.tree.TreeEntryFile(e)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if file.Size > manifest.MaxFileSize {
		// Large files are only ever Stat-ed by the loader; do not read them.
		return &memFile{info: info{name: base, size: file.Size, mode: 0o444, when: f.when}}, nil
	}
	s, err := file.Contents()
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &memFile{info: info{name: base, size: int64(len(s)), mode: 0o444, when: f.when}, r: bytes.NewReader([]byte(s))}, nil
}

type memFile struct {
	info info
	r    *bytes.Reader
}

func (m *memFile) Stat() (fs.FileInfo, error) { return m.info, nil }
func (m *memFile) Close() error               { return nil }
func (m *memFile) Read(p []byte) (int, error) {
	if m.r == nil {
		if m.info.mode.IsDir() {
			return 0, &fs.PathError{Op: "read", Path: m.info.name, Err: errors.New("is a directory")}
		}
		return 0, io.EOF
	}
	return m.r.Read(p)
}

type info struct {
	name string
	size int64
	mode fs.FileMode
	when time.Time
}

func (i info) Name() string       { return i.name }
func (i info) Size() int64        { return i.size }
func (i info) Mode() fs.FileMode  { return i.mode }
func (i info) ModTime() time.Time { return i.when }
func (i info) IsDir() bool        { return i.mode.IsDir() }
func (i info) Sys() any           { return nil }
