package manifest

import (
	"io/fs"
	"runtime"
	"slices"
	"sync"
)

// modelLoad is one model on its way through loadModels: looked up and
// read in order, decoded in parallel, finished in order.
type modelLoad struct {
	name     string
	folder   modelKey // the whole folder's key, when byFolder
	byFolder bool
	key      modelKey // the file's key, when cached
	cached   bool
	data     []byte       // to decode; nil once decoded or when not read
	decoded  *cachedModel // the file's decoding and validation
	finished bool         // a folder hit: m, pos and errs are final
	m        *Model
	pos      Positions
	errs     ErrorList
}

// loadBatch is how many models are read before their files are decoded
// together. It bounds what is held at once (a file is at most
// MaxFileSize) while giving every core work.
func loadBatch() int { return 16 * runtime.GOMAXPROCS(0) }

// loadModels loads the models names in order, calling each with the result
// of one model as loadModel returns it. Reading Git is sequential (a Git
// source serves one reader at a time); decoding YAML, most of the CPU time
// of a cold load, runs on every core.
func loadModels(fsys fs.FS, names []string, cfg *RepoConfig, c *Cache, each func(name string, m *Model, pos Positions, errs ErrorList) error) error {
	batch := make([]modelLoad, 0, min(len(names), loadBatch()))
	for start := 0; start < len(names); start += cap(batch) {
		batch = batch[:0]
		for _, name := range names[start:min(len(names), start+cap(batch))] {
			batch = append(batch, modelLoad{name: name})
			if err := c.startLoad(fsys, cfg, &batch[len(batch)-1]); err != nil {
				return err
			}
		}
		decodeLoads(batch, cfg)
		for i := range batch {
			l := &batch[i]
			if err := c.finishLoad(fsys, l); err != nil {
				return err
			}
			if err := each(l.name, l.m, l.pos, l.errs); err != nil {
				return err
			}
		}
	}
	return nil
}

func loadModelCached(fsys fs.FS, name string, cfg *RepoConfig, c *Cache) (m *Model, pos Positions, errs ErrorList, err error) {
	err = loadModels(fsys, []string{name}, cfg, c, func(_ string, lm *Model, lpos Positions, lerrs ErrorList) error {
		m, pos, errs = lm, lpos, lerrs
		return nil
	})
	return m, pos, errs, err
}

// use returns the entry of k in m (c.folders or c.models), marking it used
// by this computation.
func (c *Cache) use(m map[modelKey]*cachedModel, k modelKey) (*cachedModel, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, hit := m[k]
	if hit {
		e.usedAt = c.gen
	}
	return e, hit
}

// startLoad answers l from the cache when it can, and otherwise reads its
// file for decoding.
func (c *Cache) startLoad(fsys fs.FS, cfg *RepoConfig, l *modelLoad) error {
	l.folder, l.byFolder = c.folderOf(fsys, l.name, cfg)
	if l.byFolder {
		if e, hit := c.use(c.folders, l.folder); hit {
			l.finished, l.m, l.pos, l.errs = true, e.m, e.pos, slices.Clone(e.errs)
			return nil
		}
	}
	file := ModelPath(l.name)
	if blob, ok := c.hashOf(fsys, file); ok {
		l.key, l.cached = modelKey{cfg: cfg, name: l.name, blob: blob}, true
		if e, hit := c.use(c.models, l.key); hit {
			l.decoded = e
			return nil
		}
	}
	data, errs, err := readManifest(fsys, file, "not found: every folder under models/ needs a model.yaml")
	if err != nil {
		return err
	}
	if errs != nil {
		l.decoded = &cachedModel{errs: errs}
		return nil
	}
	l.data = data
	return nil
}

// decodeLoads decodes the files read by startLoad, on every core.
// decodeModel reads only its arguments and the package's read-only
// tables.
func decodeLoads(batch []modelLoad, cfg *RepoConfig) {
	var wg sync.WaitGroup
	work := make(chan *modelLoad)
	for range min(runtime.GOMAXPROCS(0), len(batch)) {
		wg.Go(func() {
			for l := range work {
				e := &cachedModel{}
				e.m, e.pos, e.errs = decodeModel(ModelPath(l.name), l.name, l.data, cfg)
				l.decoded, l.data = e, nil
			}
		})
	}
	for i := range batch {
		if batch[i].data != nil {
			work <- &batch[i]
		}
	}
	close(work)
	wg.Wait()
}

// finishLoad keeps what was decoded and adds what depends on the rest of
// the tree, as loadModel does.
func (c *Cache) finishLoad(fsys fs.FS, l *modelLoad) error {
	if l.finished {
		return nil
	}
	e := l.decoded
	if l.cached {
		c.mu.Lock()
		if prev, raced := c.models[l.key]; raced {
			e = prev
		} else {
			c.models[l.key] = e
		}
		e.usedAt = c.gen
		c.mu.Unlock()
	}
	found := e.errs // shared with the cache: finishModel gets a copy
	m, pos, errs, err := finishModel(fsys, ModelPath(l.name), l.name, e.m, e.pos, slices.Clone(found))
	if err != nil {
		return err
	}
	if l.byFolder && plainModel(fsys, l.name, m, pos, found) {
		c.mu.Lock()
		c.folders[l.folder] = &cachedModel{m: m, pos: pos, errs: slices.Clone(errs), usedAt: c.gen}
		c.mu.Unlock()
	}
	l.m, l.pos, l.errs = m, pos, errs
	return nil
}
