package gitsource

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// ErrSymlinkEscapesRepo is matched (errors.Is) when a path goes through a
// symbolic link whose target is absolute or climbs above the repository
// root. Such links are never followed.
var ErrSymlinkEscapesRepo error = fileRefusal("symbolic link leaves the repository")

// errSymlinkLoop is returned for chains of links longer than maxSymlinkHops.
var errSymlinkLoop error = fileRefusal("too many levels of symbolic links")

// maxSymlinkHops matches the Linux ELOOP limit.
const maxSymlinkHops = 40

// TreeFS is a read-only view of one commit's tree. It implements
// fs.FS, fs.ReadDirFS, fs.ReadFileFS, fs.StatFS and fs.ReadLinkFS.
//
// Symbolic links: directory entries and Lstat report them with
// fs.ModeSymlink, and ReadLink returns the stored target. Open, Stat,
// ReadFile and ReadDir follow links whose target stays inside the tree
// (relative, not climbing above the root) and fail with an error matching
// ErrSymlinkEscapesRepo otherwise, so a renderer reading through this FS
// can never be led outside the repository; a renderer that must refuse
// every link can check Lstat first.
//
// Submodule entries are listed with fs.ModeIrregular and cannot be opened:
// their content is not part of this repository.
//
// File contents are read into memory when opened, so open files stay
// readable while the Source syncs. Sizes come from object headers without
// reading the content (Stat reports any size); Open, ReadFile and ReadLink
// refuse files larger than the owner's limit (Options.MaxBlobSize) with an
// error matching ErrTooLarge that names the file and its size, and read
// the others through a reader bounded by the size the header gave.
type TreeFS struct {
	lock  sync.Locker // the owning Source's lock; go-git storage is not concurrency-safe
	store storer.EncodedObjectStorer
	objs  *objectHeaders // the owner's; guarded by lock
	// packed reads packed objects without go-git (nil: a workspace, read
	// through go-git). Guarded by lock.
	packed  packedReader
	maxBlob int64
	root    plumbing.Hash // the commit's root tree
	modTime time.Time
	commit  string

	// trees holds decoded directories; a Source shares one cache among all
	// its TreeFS values. Guarded by lock.
	trees *treeCache
}

// Tree returns a read-only file system of the tree of commit hash. The
// result is a *TreeFS; use fs.ReadLink and fs.Lstat (or a type assertion)
// to inspect symbolic links.
func (s *Source) Tree(hash string) (fs.FS, error) {
	h, err := parseHash(hash)
	if err != nil {
		return nil, fmt.Errorf("gitsource: tree in %s: %w", s.URL(), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := readCommit(s.repo, s.objs, h)
	if err != nil {
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			return nil, fmt.Errorf("%w: commit %s in %s", ErrNotFound, h, s.URL())
		}
		return nil, fmt.Errorf("gitsource: read commit %s of %s: %w", h, s.URL(), err)
	}
	fsys := newTreeFS(&s.mu, s.repo.Storer, s.objs, s, s.maxBlob, c, s.trees)
	// Read the root now, so a commit without its tree fails here rather
	// than on the first Open.
	if _, err := fsys.treeAt(fsys.root); err != nil {
		return nil, fmt.Errorf("gitsource: read tree of commit %s in %s: %w", h, s.URL(), err)
	}
	return fsys, nil
}

func newTreeFS(lock sync.Locker, store storer.EncodedObjectStorer, objs *objectHeaders, packed packedReader, maxBlob int64, c *object.Commit, trees *treeCache) *TreeFS {
	return &TreeFS{
		lock:    lock,
		store:   store,
		objs:    objs,
		packed:  packed,
		maxBlob: maxBlob,
		root:    c.TreeHash,
		modTime: c.Committer.When,
		commit:  c.Hash.String(),
		trees:   trees,
	}
}

// Commit returns the hash of the commit this tree belongs to.
func (f *TreeFS) Commit() string { return f.commit }

// node is a resolved tree entry.
type node struct {
	name string // base name as requested ("." for the root)
	mode filemode.FileMode
	hash plumbing.Hash
}

func (n node) isDir() bool { return n.mode == filemode.Dir }

// resolve walks name component by component, following symbolic links in
// intermediate components and, when follow is set, in the last one. Callers
// hold f.lock.
func (f *TreeFS) resolve(op, name string, follow bool) (node, error) {
	if !fs.ValidPath(name) {
		return node{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	pending := splitPath(name)
	var dir []string
	cur := node{name: ".", mode: filemode.Dir, hash: f.root}
	hops := 0
	for len(pending) > 0 {
		comp := pending[0]
		pending = pending[1:]
		t, err := f.treeAt(cur.hash)
		if err != nil {
			return node{}, &fs.PathError{Op: op, Path: name, Err: err}
		}
		e, ok := findEntry(t, comp)
		if !ok {
			return node{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		last := len(pending) == 0
		if e.Mode == filemode.Symlink && (!last || follow) {
			hops++
			if hops > maxSymlinkHops {
				return node{}, &fs.PathError{Op: op, Path: name, Err: errSymlinkLoop}
			}
			target, err := f.blob(e.Hash, maxLinkTarget)
			if err != nil {
				return node{}, &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("target of symbolic link %s: %w", path.Join(append(dir, comp)...), err)}
			}
			joined, err := joinLink(strings.Join(dir, "/"), string(target))
			if err != nil {
				return node{}, &fs.PathError{Op: op, Path: name, Err: err}
			}
			pending = append(splitPath(joined), pending...)
			dir = nil
			cur = node{name: ".", mode: filemode.Dir, hash: f.root}
			continue
		}
		if !last && e.Mode != filemode.Dir {
			return node{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		dir = append(dir, comp)
		cur = node{name: comp, mode: e.Mode, hash: e.Hash}
	}
	if name != "." {
		cur.name = path.Base(name)
	}
	return cur, nil
}

// joinLink resolves a link target relative to the directory holding the
// link and refuses targets outside the tree.
func joinLink(dir, target string) (string, error) {
	if target == "" {
		return "", errors.New("empty symbolic link target")
	}
	if strings.HasPrefix(target, "/") {
		return "", fmt.Errorf("%w: absolute target %q", ErrSymlinkEscapesRepo, target)
	}
	joined := path.Join(dir, target)
	if joined == ".." || strings.HasPrefix(joined, "../") {
		return "", fmt.Errorf("%w: target %q", ErrSymlinkEscapesRepo, target)
	}
	return joined, nil
}

func splitPath(name string) []string {
	if name == "." || name == "" {
		return nil
	}
	return strings.Split(name, "/")
}

// treeAt returns the decoded directory h; callers hold f.lock. A packed
// directory is read from the pack (packedReader) and decoded here; go-git
// reads the others (loose objects, alternates, a workspace's).
func (f *TreeFS) treeAt(h plumbing.Hash) (*object.Tree, error) {
	if t, ok := f.trees.get(h); ok {
		return t, nil
	}
	info, err := f.objs.check(h, plumbing.TreeObject, maxMetaSize)
	if err != nil {
		return nil, fmt.Errorf("read tree %s: %w", h, err)
	}
	var t *object.Tree
	if f.packed != nil {
		body, ok, err := f.packed.treeBody(h, info)
		switch {
		case err != nil:
			return nil, fmt.Errorf("read tree %s: %w", h, err)
		case ok && int64(len(body)) != info.size:
			return nil, fmt.Errorf("read tree %s: content is not the %d bytes its header says", h, info.size)
		case ok:
			if t, err = decodeTree(h, body); err != nil {
				return nil, fmt.Errorf("read tree %s: %w", h, err)
			}
		}
	}
	if t == nil {
		if t, err = object.GetTree(f.store, h); err != nil {
			return nil, fmt.Errorf("read tree %s: %w", h, err)
		}
	}
	f.trees.put(t)
	return t, nil
}

// blob reads blob h, refusing it when it (or what it is stored as) is
// larger than limit. Callers hold f.lock and wrap the error in a
// PathError naming the file.
func (f *TreeFS) blob(h plumbing.Hash, limit int64) ([]byte, error) {
	info, err := f.objs.check(h, plumbing.BlobObject, limit)
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, err
		}
		return nil, fmt.Errorf("read blob %s: %w", h, err)
	}
	if f.packed != nil {
		body, ok, err := f.packed.blobBody(h, info, limit)
		switch {
		case err != nil:
			return nil, fmt.Errorf("read blob %s: %w", h, err)
		case ok && int64(len(body)) != info.size:
			return nil, fmt.Errorf("read blob %s: content is not the %d bytes its header says", h, info.size)
		case ok:
			return body, nil
		}
	}
	return readObject(f.store, h, plumbing.BlobObject, info.size)
}

// readObject reads the content of object h, which its header said is size
// bytes, through a reader that stops one byte past that size.
func readObject(store storer.EncodedObjectStorer, h plumbing.Hash, typ plumbing.ObjectType, size int64) ([]byte, error) {
	obj, err := store.EncodedObject(typ, h)
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", typ, h, err)
	}
	r, err := obj.Reader()
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", typ, h, err)
	}
	defer r.Close()
	// One byte more than announced, to notice content that runs past it.
	buf := make([]byte, size+1)
	n, err := io.ReadFull(r, buf)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
	case err != nil:
		return nil, fmt.Errorf("read %s %s: %w", typ, h, err)
	}
	if int64(n) != size {
		return nil, fmt.Errorf("read %s %s: content is not the %d bytes its header says", typ, h, size)
	}
	return buf[:size:size], nil
}

func (f *TreeFS) blobSize(h plumbing.Hash) (int64, error) {
	info, err := f.objs.check(h, plumbing.BlobObject, math.MaxInt64)
	if err != nil {
		return 0, fmt.Errorf("read blob %s: %w", h, err)
	}
	return info.size, nil
}

func fileMode(m filemode.FileMode) fs.FileMode {
	switch m {
	case filemode.Dir:
		return fs.ModeDir | 0o555
	case filemode.Executable:
		return 0o555
	case filemode.Symlink:
		return fs.ModeSymlink | 0o777
	case filemode.Submodule:
		return fs.ModeIrregular
	default:
		return 0o444
	}
}

// info builds the FileInfo of n; callers hold f.lock.
func (f *TreeFS) info(n node) (fileInfo, error) {
	fi := fileInfo{name: n.name, mode: fileMode(n.mode), modTime: f.modTime}
	if n.mode.IsFile() {
		size, err := f.blobSize(n.hash)
		if err != nil {
			return fileInfo{}, err
		}
		fi.size = size
	}
	return fi, nil
}

// Open implements fs.FS.
func (f *TreeFS) Open(name string) (fs.File, error) {
	f.lock.Lock()
	defer f.lock.Unlock()
	n, err := f.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	fi, err := f.info(n)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	switch {
	case n.isDir():
		entries, err := f.readDirLocked(n)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &treeDir{info: fi, name: name, entries: entries}, nil
	case n.mode == filemode.Submodule:
		return nil, &fs.PathError{Op: "open", Path: name, Err: errSubmodule}
	}
	data, err := f.blob(n.hash, f.maxBlob)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &treeFile{info: fi, name: name, r: bytes.NewReader(data)}, nil
}

var errSubmodule = errors.New("submodule content is not part of this repository")

// ReadFile implements fs.ReadFileFS.
func (f *TreeFS) ReadFile(name string) ([]byte, error) {
	f.lock.Lock()
	defer f.lock.Unlock()
	n, err := f.resolve("readfile", name, true)
	if err != nil {
		return nil, err
	}
	switch {
	case n.isDir():
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: errIsDir}
	case n.mode == filemode.Submodule:
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: errSubmodule}
	}
	data, err := f.blob(n.hash, f.maxBlob)
	if err != nil {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: err}
	}
	return data, nil
}

var errIsDir = errors.New("is a directory")

// ContentHash returns the Git object hash of file name's content,
// following symbolic links, without reading the content: equal hashes
// mean equal bytes, so a reader may reuse what it decoded of that content
// in another commit. It fails as ReadFile would for a missing file, a
// directory or a submodule (not for one too large to read: the hash says
// nothing about the size).
func (f *TreeFS) ContentHash(name string) (string, error) {
	f.lock.Lock()
	defer f.lock.Unlock()
	n, err := f.resolve("contenthash", name, true)
	if err != nil {
		return "", err
	}
	switch {
	case n.isDir():
		return "", &fs.PathError{Op: "contenthash", Path: name, Err: errIsDir}
	case n.mode == filemode.Submodule:
		return "", &fs.PathError{Op: "contenthash", Path: name, Err: errSubmodule}
	}
	return n.hash.String(), nil
}

// PlainHash returns the Git object hash of name (a file's content or a
// directory's whole tree) when name is reached without any symbolic link,
// and linked set instead when a link lies on its path, the last component
// included. A directory's hash names everything below it, so a reader
// that consulted only link-free paths inside a directory may reuse what it
// concluded for any commit where that directory has the same hash, without
// reading the directory again.
func (f *TreeFS) PlainHash(name string) (hash string, linked bool, err error) {
	if !fs.ValidPath(name) {
		return "", false, &fs.PathError{Op: "plainhash", Path: name, Err: fs.ErrInvalid}
	}
	f.lock.Lock()
	defer f.lock.Unlock()
	cur := f.root
	comps := splitPath(name)
	for i, comp := range comps {
		t, err := f.treeAt(cur)
		if err != nil {
			return "", false, &fs.PathError{Op: "plainhash", Path: name, Err: err}
		}
		e, ok := findEntry(t, comp)
		switch {
		case !ok:
			return "", false, &fs.PathError{Op: "plainhash", Path: name, Err: fs.ErrNotExist}
		case e.Mode == filemode.Symlink:
			return "", true, nil
		case i < len(comps)-1 && e.Mode != filemode.Dir:
			return "", false, &fs.PathError{Op: "plainhash", Path: name, Err: fs.ErrNotExist}
		}
		cur = e.Hash
	}
	return cur.String(), false, nil
}

// Stat implements fs.StatFS; it follows symbolic links.
func (f *TreeFS) Stat(name string) (fs.FileInfo, error) {
	return f.stat("stat", name, true)
}

// Lstat implements fs.ReadLinkFS; a symbolic link is described itself.
func (f *TreeFS) Lstat(name string) (fs.FileInfo, error) {
	return f.stat("lstat", name, false)
}

func (f *TreeFS) stat(op, name string, follow bool) (fs.FileInfo, error) {
	f.lock.Lock()
	defer f.lock.Unlock()
	n, err := f.resolve(op, name, follow)
	if err != nil {
		return nil, err
	}
	fi, err := f.info(n)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return fi, nil
}

// ReadLink implements fs.ReadLinkFS: it returns the target stored in the
// symbolic link name, unresolved. Intermediate links in name are followed
// under the same rules as Open.
func (f *TreeFS) ReadLink(name string) (string, error) {
	f.lock.Lock()
	defer f.lock.Unlock()
	n, err := f.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	if n.mode != filemode.Symlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	target, err := f.blob(n.hash, maxLinkTarget)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return string(target), nil
}

// ReadDir implements fs.ReadDirFS; entries are sorted by name.
func (f *TreeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	f.lock.Lock()
	defer f.lock.Unlock()
	n, err := f.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if !n.isDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	entries, err := f.readDirLocked(n)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	return entries, nil
}

func (f *TreeFS) readDirLocked(n node) ([]fs.DirEntry, error) {
	t, err := f.treeAt(n.hash)
	if err != nil {
		return nil, err
	}
	out := make([]fs.DirEntry, 0, len(t.Entries))
	for _, e := range t.Entries {
		out = append(out, &dirEntry{fsys: f, name: e.Name, mode: e.Mode, hash: e.Hash})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

type fileInfo struct {
	name    string
	size    int64
	mode    fs.FileMode
	modTime time.Time
}

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return i.size }
func (i fileInfo) Mode() fs.FileMode  { return i.mode }
func (i fileInfo) ModTime() time.Time { return i.modTime }
func (i fileInfo) IsDir() bool        { return i.mode.IsDir() }
func (i fileInfo) Sys() any           { return nil }

type dirEntry struct {
	fsys *TreeFS
	name string
	mode filemode.FileMode
	hash plumbing.Hash
}

func (d *dirEntry) Name() string      { return d.name }
func (d *dirEntry) IsDir() bool       { return d.mode == filemode.Dir }
func (d *dirEntry) Type() fs.FileMode { return fileMode(d.mode).Type() }

// Info describes the entry itself (a symbolic link is not followed), as
// fs.DirEntry requires.
func (d *dirEntry) Info() (fs.FileInfo, error) {
	d.fsys.lock.Lock()
	defer d.fsys.lock.Unlock()
	fi, err := d.fsys.info(node{name: d.name, mode: d.mode, hash: d.hash})
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: d.name, Err: err}
	}
	return fi, nil
}

type treeFile struct {
	info fileInfo
	name string
	r    *bytes.Reader
}

func (f *treeFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *treeFile) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *treeFile) ReadAt(p []byte, off int64) (int, error) {
	return f.r.ReadAt(p, off)
}
func (f *treeFile) Seek(off int64, whence int) (int64, error) { return f.r.Seek(off, whence) }
func (f *treeFile) Close() error                              { return nil }

type treeDir struct {
	info    fileInfo
	name    string
	entries []fs.DirEntry
	offset  int
}

func (d *treeDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *treeDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errIsDir}
}
func (d *treeDir) Close() error { return nil }

// ReadDir implements fs.ReadDirFile.
func (d *treeDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.offset:]
	if n <= 0 {
		d.offset = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	if n > len(rest) {
		n = len(rest)
	}
	d.offset += n
	return rest[:n], nil
}

// Compile-time interface checks.
var (
	_ fs.ReadDirFS   = (*TreeFS)(nil)
	_ fs.ReadFileFS  = (*TreeFS)(nil)
	_ fs.StatFS      = (*TreeFS)(nil)
	_ fs.ReadLinkFS  = (*TreeFS)(nil)
	_ fs.ReadDirFile = (*treeDir)(nil)
)
