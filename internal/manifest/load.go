package manifest

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"time"
)

// CanarySuffix is appended to an environment's alias to name its canary alias.
const CanarySuffix = "-canary"

// Default storage classes and timings, used when neither the model nor
// modelsync.yaml says otherwise.
const (
	DefaultActiveClass      = "STANDARD"
	DefaultArchivedClass    = "GLACIER_IR"
	DefaultDeepArchiveClass = "DEEP_ARCHIVE"
	DefaultArchiveAfter     = 30 * 24 * time.Hour
	DefaultRollbackWindow   = 7 * 24 * time.Hour
)

// AliasName is the MLflow alias of the environment.
func (e Environment) AliasName() string {
	if e.Alias != "" {
		return e.Alias
	}
	return e.Name
}

// FollowsReleases reports whether the environment takes release tags.
func (e Environment) FollowsReleases() bool { return e.Source == SourceReleases }

// Environment returns the named environment.
func (c *RepoConfig) Environment(name string) (Environment, bool) {
	for _, e := range c.Environments {
		if e.Name == name {
			return e, true
		}
	}
	return Environment{}, false
}

// RegistryMode is the configured MLflow mode, aliases by default.
func (c *RepoConfig) RegistryMode() string {
	if c.Defaults.Registry.Mode == "" {
		return ModeAliases
	}
	return c.Defaults.Registry.Mode
}

// RegisteredModel is the MLflow registered model name.
func (m *Model) RegisteredModel() string {
	if m.Spec.Registry.Name != "" {
		return m.Spec.Registry.Name
	}
	return m.Metadata.Name
}

// Lifecycle merges the model's lifecycle over the repository defaults and
// the built-in defaults, field by field.
func (c *RepoConfig) EffectiveLifecycle(m *Model) Lifecycle {
	l := m.Spec.Lifecycle
	d := c.Defaults.Lifecycle
	pick := func(a, b, def string) string {
		if a != "" {
			return a
		}
		if b != "" {
			return b
		}
		return def
	}
	pickD := func(a, b Duration, def time.Duration) Duration {
		if a.Duration != 0 {
			return a
		}
		if b.Duration != 0 {
			return b
		}
		return Duration{def}
	}
	return Lifecycle{
		ActiveClass:      pick(l.ActiveClass, d.ActiveClass, DefaultActiveClass),
		ArchivedClass:    pick(l.ArchivedClass, d.ArchivedClass, DefaultArchivedClass),
		ArchiveAfter:     pickD(l.ArchiveAfter, d.ArchiveAfter, DefaultArchiveAfter),
		DeepArchiveClass: pick(l.DeepArchiveClass, d.DeepArchiveClass, DefaultDeepArchiveClass),
		DeepArchiveAfter: pickD(l.DeepArchiveAfter, d.DeepArchiveAfter, 0),
		DeleteAfter:      pickD(l.DeleteAfter, d.DeleteAfter, 0),
		AllowDelete:      l.AllowDelete || (d.AllowDelete && l.DeleteAfter.Duration == 0),
		RollbackWindow:   pickD(l.RollbackWindow, d.RollbackWindow, DefaultRollbackWindow),
	}
}

// ModelPath is the path of a model's manifest inside the repository.
func ModelPath(name string) string { return path.Join(ModelsDir, name, ModelFile) }

// ServingDir is the repository path of the model's kustomize directory.
func (m *Model) ServingDir() string {
	return path.Join(ModelsDir, m.Metadata.Name, path.Clean(m.Spec.Serving.Path))
}

// Repo is a loaded models repository. Models holds only the models that
// passed validation; a broken model is reported in Problems and left out, so
// it blocks nobody else.
type Repo struct {
	Config *RepoConfig
	// ConfigErrors are problems in modelsync.yaml. When present, Config is
	// nil and no model can be planned.
	ConfigErrors ErrorList
	// BrokenConfig is what could be decoded of a modelsync.yaml with
	// problems (nil when nothing could), for checks that report every
	// problem at once; nothing may deploy from it.
	BrokenConfig *RepoConfig
	// ConfigLines are the positions of modelsync.yaml's fields, keyed like
	// environments[2].source; empty when the file does not decode.
	ConfigLines Positions
	Models      map[string]*Model
	// Problems maps a model folder name to what is wrong with it.
	Problems map[string]ErrorList
	// Lines maps a model name to the positions of its fields, for
	// annotations that point at a line.
	Lines map[string]Positions
	// Broken holds what could be decoded of each model in Problems, and
	// BrokenLines its positions, so `validate` can go on to check such a
	// model's serving directory and report every problem at once. Nothing
	// may deploy from them.
	Broken      map[string]*Model
	BrokenLines map[string]Positions
}

// ModelNames returns the valid models' names, sorted.
func (r *Repo) ModelNames() []string { return slices.Sorted(maps.Keys(r.Models)) }

// AllErrors returns every problem in the repository, sorted by file.
func (r *Repo) AllErrors() ErrorList {
	all := slices.Clone(r.ConfigErrors)
	for _, name := range slices.Sorted(maps.Keys(r.Problems)) {
		all = append(all, r.Problems[name]...)
	}
	all.Sort()
	return all
}

// Load reads modelsync.yaml and every models/<name>/model.yaml from fsys.
// It fails only when the filesystem itself cannot be read; manifest
// problems are returned inside the Repo.
func Load(fsys fs.FS) (*Repo, error) { return load(fsys, nil) }

func load(fsys fs.FS, c *Cache) (*Repo, error) {
	r := &Repo{Models: map[string]*Model{}, Problems: map[string]ErrorList{}, Lines: map[string]Positions{},
		Broken: map[string]*Model{}, BrokenLines: map[string]Positions{}}
	cfg, pos, errs, err := loadConfigCached(fsys, c)
	if err != nil {
		return nil, err
	}
	r.Config, r.ConfigLines, r.ConfigErrors = cfg, pos, errs
	if len(errs) > 0 {
		r.Config, r.BrokenConfig = nil, cfg
	}
	names, err := ModelFolders(fsys)
	if err != nil {
		return nil, err
	}
	byRegistry := map[string]string{}
	err = loadModels(fsys, names, r.Config, c, func(name string, m *Model, pos Positions, errs ErrorList) error {
		if len(errs) == 0 {
			if other, dup := byRegistry[m.RegisteredModel()]; dup {
				p := pos.At("spec.registry.name")
				if p.Line == 0 {
					p = pos.At("metadata.name")
				}
				errs = ErrorList{{File: ModelPath(name), Line: p.Line, Column: p.Column, Field: "spec.registry.name",
					Message: fmt.Sprintf("duplicate registered model %q: models/%s uses it too", m.RegisteredModel(), other)}}
			} else {
				byRegistry[m.RegisteredModel()] = name
			}
		}
		if len(errs) > 0 {
			r.Problems[name] = errs
			if m != nil {
				r.Broken[name], r.BrokenLines[name] = m, pos
			}
			return nil
		}
		r.Models[name] = m
		r.Lines[name] = pos
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// LoadConfig reads and validates modelsync.yaml.
func LoadConfig(fsys fs.FS) (*RepoConfig, ErrorList, error) {
	cfg, _, errs, err := loadConfig(fsys)
	if len(errs) > 0 {
		cfg = nil
	}
	return cfg, errs, err
}

func loadConfig(fsys fs.FS) (*RepoConfig, Positions, ErrorList, error) {
	data, errs, err := readManifest(fsys, ConfigFile, "not found: a models repository needs modelsync.yaml at its root")
	if err != nil || errs != nil {
		return nil, Positions{}, errs, err
	}
	var cfg RepoConfig
	var pos Positions
	pos, errs = decodeStrict(ConfigFile, data, &cfg)
	if pos.Len() > 0 {
		errs = append(errs, beyond(errs, validateConfig(ConfigFile, pos, &cfg))...)
	}
	if len(errs) > 0 {
		errs.Sort()
		if pos.Len() == 0 {
			return nil, pos, errs, nil
		}
		return &cfg, pos, errs, nil // callers keep it apart from Config
	}
	return &cfg, pos, nil, nil
}

// ModelFolders lists the folders under models/ that hold a model.yaml.
// Folders without one are reported by LoadModel as missing.
func ModelFolders(fsys fs.FS) ([]string, error) {
	entries, err := fs.ReadDir(fsys, ModelsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s/: %w", ModelsDir, err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// LoadModel reads and validates models/<name>/model.yaml. cfg may be nil
// when modelsync.yaml is broken; environment names are then not checked.
func LoadModel(fsys fs.FS, name string, cfg *RepoConfig) (*Model, Positions, ErrorList, error) {
	m, pos, errs, err := loadModel(fsys, name, cfg)
	if len(errs) > 0 {
		m = nil
	}
	return m, pos, errs, err
}

// loadModel is LoadModel, returning with problems also what could be
// decoded of the model (nil when the file could not be read or parsed).
func loadModel(fsys fs.FS, name string, cfg *RepoConfig) (*Model, Positions, ErrorList, error) {
	file := ModelPath(name)
	data, errs, err := readManifest(fsys, file, "not found: every folder under models/ needs a model.yaml")
	if err != nil || errs != nil {
		return nil, Positions{}, errs, err
	}
	m, pos, errs := decodeModel(file, name, data, cfg)
	return finishModel(fsys, file, name, m, pos, errs)
}

// decodeModel decodes and validates a model file's content: everything
// that depends on that content alone (and cfg). m is nil when nothing
// decoded and that is a problem.
func decodeModel(file, name string, data []byte, cfg *RepoConfig) (*Model, Positions, ErrorList) {
	var m Model
	pos, errs := decodeStrict(file, data, &m)
	if pos.Len() > 0 {
		errs = append(errs, beyond(errs, validateModel(file, name, pos, &m, cfg))...)
	}
	if pos.Len() == 0 && len(errs) > 0 {
		return nil, pos, errs
	}
	return &m, pos, errs
}

// finishModel adds what depends on the rest of the tree to a decoded
// model's problems and returns them as loadModel does. errs is the
// caller's to extend.
func finishModel(fsys fs.FS, file, name string, m *Model, pos Positions, errs ErrorList) (*Model, Positions, ErrorList, error) {
	if m == nil {
		errs.Sort()
		return nil, pos, errs, nil
	}
	// The serving directory is checked whatever else is wrong, so one run
	// reports it with the rest rather than after they are fixed.
	errs = append(errs, checkServingDir(fsys, file, name, pos, m, errs)...)
	if len(errs) > 0 {
		errs.Sort()
		return m, pos, errs, nil
	}
	return m, pos, nil, nil
}

// beyond returns the problems of more that concern no field decoding
// already refused (nor a field inside one): a value that did not decode
// is left zero, and "required" or "expected a positive integer" about it
// would only repeat the decoding error less precisely.
func beyond(decoding, more ErrorList) ErrorList {
	if len(decoding) == 0 {
		return more
	}
	var out ErrorList
	for _, e := range more {
		covered := false
		for _, d := range decoding {
			if d.Field == "" || e.Field == d.Field || strings.HasPrefix(e.Field, d.Field+".") || strings.HasPrefix(e.Field, d.Field+"[") {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, e)
		}
	}
	return out
}

// checkServingDir reports a serving path without a kustomization, unless
// found (the model's other problems) already covers that field. folder is
// the model's folder, which a mismatched metadata.name must not change.
func checkServingDir(fsys fs.FS, file, folder string, pos Positions, m *Model, found ErrorList) ErrorList {
	return checkServing(func(p string) bool { return fileExists(fsys, p) }, file, folder, pos, m, found)
}

// checkServing is checkServingDir's check with exists telling whether a
// file is there, so a cache can repeat it without following links.
func checkServing(exists func(string) bool, file, folder string, pos Positions, m *Model, found ErrorList) ErrorList {
	for _, e := range found {
		if e.Field == "spec.serving" || e.Field == "spec.serving.path" {
			return nil
		}
	}
	if _, ok := pos.Get("spec.serving.path"); !ok || !ServingPathValid(m.Spec.Serving.Path) {
		return nil
	}
	dir := path.Join(ModelsDir, folder, path.Clean(m.Spec.Serving.Path))
	for _, k := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		if exists(path.Join(dir, k)) {
			return nil
		}
	}
	p := pos.At("spec.serving.path")
	return ErrorList{{File: file, Line: p.Line, Column: p.Column, Field: "spec.serving.path",
		Message: fmt.Sprintf("expected a kustomization.yaml in %s/", dir)}}
}

// fileExists reports whether name is a file. A Git tree answers from its
// directories alone (ContentHash), where Stat also reads the object's
// header for its size: at 10,000 models those reads were a sixth of the
// desired state's time.
func fileExists(fsys fs.FS, name string) bool {
	if h, ok := fsys.(ContentHasher); ok {
		_, err := h.ContentHash(name)
		return err == nil
	}
	info, err := fs.Stat(fsys, name)
	return err == nil && !info.IsDir()
}

// readManifest reads a manifest file, turning a missing, oversized or
// refused file into a problem of that file rather than a failure of the
// whole load.
func readManifest(fsys fs.FS, file, missing string) ([]byte, ErrorList, error) {
	info, err := fs.Stat(fsys, file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrorList{{File: file, Message: missing}}, nil
	}
	if refused, ok := refusedFile(err); ok {
		return nil, ErrorList{{File: file, Message: refused}}, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if info.Size() > MaxFileSize {
		return nil, ErrorList{{File: file, Message: fmt.Sprintf("file is %d bytes; at most %d are accepted", info.Size(), MaxFileSize)}}, nil
	}
	data, err := fs.ReadFile(fsys, file)
	if refused, ok := refusedFile(err); ok {
		return nil, ErrorList{{File: file, Message: refused}}, nil
	}
	return data, nil, err
}

// refusedFile recognises the errors with which a file system declines one
// file by design, such as the Git tree's refusal of a file too large to
// read or of a link leaving the repository (they implement RefusedFile),
// and returns what to report against the file.
func refusedFile(err error) (string, bool) {
	var r interface{ RefusedFile() bool }
	if err == nil || !errors.As(err, &r) || !r.RefusedFile() {
		return "", false
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return "cannot be read: " + pe.Err.Error(), true
	}
	return "cannot be read: " + err.Error(), true
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
