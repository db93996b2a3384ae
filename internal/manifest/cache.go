package manifest

import (
	"errors"
	"io/fs"
	"slices"
	"sync"
)

// ContentHasher is a file system that names a file's content by hash
// without reading it, as a Git tree does.
type ContentHasher interface {
	ContentHash(name string) (string, error)
}

// PlainHasher is a file system that names a path by the hash of its
// content when the path is reached without any symbolic link, as a Git
// tree does for files and whole directories alike (linked is set when a
// link lies on the path).
type PlainHasher interface {
	PlainHash(name string) (hash string, linked bool, err error)
}

// Cache keeps decoded and validated manifests by the hash of their
// content, so that reading a commit decodes only the files that differ
// from what was read before: a model unchanged between two commits (a
// release tag and the branch head, or two pushes) is decoded once. Without
// it a push that changed one model re-read all of them, and the time from
// push to applied grew with the repository.
//
// Only file systems that implement ContentHasher are cached; others are
// read as by Load. What depends on other files (the serving directory's
// kustomization) is checked in every tree. Values returned through a
// Cache are shared between callers and must not be modified.
//
// Memory is bounded by Sweep: an entry not used by the last two
// computations is dropped, so the cache holds about the models of the
// commits being read. A Cache is safe for concurrent use.
type Cache struct {
	mu      sync.Mutex
	gen     uint64
	configs map[string]*cachedConfig
	models  map[modelKey]*cachedModel
	// folders holds finished models (their serving directory checked) by
	// the hash of the whole model folder, for file systems that are
	// PlainHashers: a folder unchanged since an earlier commit is answered
	// without reading anything inside it. Only folders whose consulted
	// paths hold no symbolic link are kept, since a link's target lies
	// outside what the folder's hash names.
	folders map[modelKey]*cachedModel
}

type cachedConfig struct {
	cfg    *RepoConfig
	pos    Positions
	errs   ErrorList
	usedAt uint64
}

// modelKey identifies a model's decoding: its content, its folder (which
// metadata.name must match) and the configuration it was validated
// against, by identity: the cache returns one *RepoConfig per content of
// modelsync.yaml.
type modelKey struct {
	cfg  *RepoConfig
	name string
	blob string
}

type cachedModel struct {
	m      *Model // nil when nothing decoded
	pos    Positions
	errs   ErrorList // decoding and validation, before checkServingDir (after it in folders)
	usedAt uint64
}

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{configs: map[string]*cachedConfig{}, models: map[modelKey]*cachedModel{}, folders: map[modelKey]*cachedModel{}}
}

// Sweep ends a computation: entries used by neither it nor the one
// before are dropped.
func (c *Cache) Sweep() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.configs {
		if e.usedAt+1 < c.gen {
			delete(c.configs, k)
		}
	}
	for _, m := range []map[modelKey]*cachedModel{c.models, c.folders} {
		for k, e := range m {
			if e.usedAt+1 < c.gen {
				delete(m, k)
			}
		}
	}
	c.gen++
}

// Len is the number of cached manifests, for tests and metrics.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.configs) + len(c.models) + len(c.folders)
}

// Load is Load reusing what c decoded before; a nil c is Load.
func (c *Cache) Load(fsys fs.FS) (*Repo, error) { return load(fsys, c) }

// LoadModel is LoadModel reusing what c decoded before; a nil c is
// LoadModel.
func (c *Cache) LoadModel(fsys fs.FS, name string, cfg *RepoConfig) (*Model, Positions, ErrorList, error) {
	m, pos, errs, err := loadModelCached(fsys, name, cfg, c)
	if len(errs) > 0 {
		m = nil
	}
	return m, pos, errs, err
}

// hashOf returns the content hash of file when c caches fsys.
func (c *Cache) hashOf(fsys fs.FS, file string) (string, bool) {
	if c == nil {
		return "", false
	}
	h, ok := fsys.(ContentHasher)
	if !ok {
		return "", false
	}
	// A missing or refused file is read the usual way, which reports it.
	blob, err := h.ContentHash(file)
	return blob, err == nil
}

func loadConfigCached(fsys fs.FS, c *Cache) (*RepoConfig, Positions, ErrorList, error) {
	blob, ok := c.hashOf(fsys, ConfigFile)
	if !ok {
		return loadConfig(fsys)
	}
	c.mu.Lock()
	e, hit := c.configs[blob]
	if hit {
		e.usedAt = c.gen
	}
	c.mu.Unlock()
	if !hit {
		cfg, pos, errs, err := loadConfig(fsys)
		if err != nil {
			return nil, Positions{}, nil, err
		}
		e = &cachedConfig{cfg: cfg, pos: pos, errs: errs}
		c.mu.Lock()
		if prev, raced := c.configs[blob]; raced {
			e = prev // one *RepoConfig per content: models are keyed by it
		} else {
			c.configs[blob] = e
		}
		e.usedAt = c.gen
		c.mu.Unlock()
	}
	return e.cfg, e.pos, slices.Clone(e.errs), nil
}

// folderOf returns the key of model name's whole folder when c caches
// fsys by folder and the folder is reached without a symbolic link.
func (c *Cache) folderOf(fsys fs.FS, name string, cfg *RepoConfig) (modelKey, bool) {
	if c == nil {
		return modelKey{}, false
	}
	ph, ok := fsys.(PlainHasher)
	if !ok {
		return modelKey{}, false
	}
	tree, linked, err := ph.PlainHash(ModelsDir + "/" + name)
	if err != nil || linked {
		return modelKey{}, false
	}
	return modelKey{cfg: cfg, name: name, blob: tree}, true
}

// plainModel reports whether every path that loading model name consulted
// in its folder is free of symbolic links, so the result depends on the
// folder's content alone. found is what decoding and validation reported,
// before the serving directory was checked.
func plainModel(fsys fs.FS, name string, m *Model, pos Positions, found ErrorList) bool {
	ph := fsys.(PlainHasher)
	plain := true
	exists := func(p string) bool {
		_, linked, err := ph.PlainHash(p)
		switch {
		case linked, err != nil && !errors.Is(err, fs.ErrNotExist):
			plain = false
			return false
		case err != nil:
			return false
		}
		return fileExists(fsys, p)
	}
	file := ModelPath(name)
	exists(file)
	if m != nil {
		checkServing(exists, file, name, pos, m, found)
	}
	return plain
}
