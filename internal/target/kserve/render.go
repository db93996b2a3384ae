package kserve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/kustomize/api/krusty"
	ktypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/reconciler"
)

// Labels and annotations modelsync puts on every object it applies.
const (
	LabelManagedBy       = "app.kubernetes.io/managed-by"
	ManagedByValue       = "modelsync"
	LabelModel           = "modelsync.dev/model"
	LabelEnvironment     = "modelsync.dev/environment"
	LabelVersion         = "modelsync.dev/version"
	AnnotationRevision   = "modelsync.dev/revision"
	AnnotationRollbackOf = "modelsync.dev/rollback-of"

	// AnnotationDeploymentMode is KServe's per-object deployment mode.
	AnnotationDeploymentMode = "serving.kserve.io/deploymentMode"
)

// KServe's API group and the one InferenceService version modelsync writes.
const (
	KServeGroup          = "serving.kserve.io"
	KServeVersion        = "v1beta1"
	InferenceServiceKind = "InferenceService"
)

// Limits on symlinks in a model folder; a repository is untrusted input.
// Size and file-count limits are in Config.
const (
	maxSymlinkHops    = 40
	maxSymlinkNesting = 8
	// maxLinkTarget bounds a symlink's target, checked before it is read.
	maxLinkTarget = 4096
)

// renderLimits bound what one render reads (see Config.MaxModelBytes).
type renderLimits struct {
	bytes int64
	files int
	// offline: fetch nothing. A build that would clone or download a
	// reference the policy permits stops before kustomize runs, with
	// ErrNeedsFetch.
	offline bool
}

// legacyPredictors are the framework-specific predictor fields KServe's
// webhook rewrites into spec.predictor.model; emitting them would leave a
// permanent diff between Git and the cluster.
var legacyPredictors = []string{"sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "pmml", "lightgbm", "paddle", "huggingface"}

// Rendered is one model's serving objects in one environment, with every
// field Git decides already set.
type Rendered struct {
	Model       string
	Environment string
	Namespace   string
	Name        string
	// BuildDir is the repository directory kustomize built.
	BuildDir string
	// InferenceService is the object Git asks for: during a canary its
	// predictor points at the canary version with canaryTrafficPercent set.
	InferenceService *unstructured.Unstructured
	// Extras are the other objects of kinds serving.extraKinds allows.
	Extras []*unstructured.Unstructured

	StableVersion int
	StableURI     string
	// CanaryVersion is 0 when no canary is requested.
	CanaryVersion int
	CanaryURI     string
	CanaryWeight  int
	// DeploymentMode is the serving.kserve.io/deploymentMode annotation of
	// the rendered object, "" when the kustomization does not set one.
	DeploymentMode string
	// Revision is the Git revision the render comes from.
	Revision string
}

// PredictorVersion is the model version the predictor spec points at.
func (r *Rendered) PredictorVersion() int {
	if r.CanaryVersion > 0 {
		return r.CanaryVersion
	}
	return r.StableVersion
}

// Render builds the model's kustomization for one environment and sets the
// fields the model manifest decides. Only the model's own folder is visible
// to kustomize, so a kustomization cannot read another model's files. The
// default limits of Config apply.
func Render(ctx context.Context, m *reconciler.DesiredModel, env *reconciler.DesiredEnv, policy manifest.ServingPolicy, locator reconciler.ArtifactLocator) (*Rendered, error) {
	return render(ctx, m, env, policy, locator, Config{}.renderLimits().build)
}

// buildFunc runs kustomize for one model folder; see renderLimits.build.
type buildFunc func(files fs.FS, modelRoot, servingDir, env string, policy manifest.ServingPolicy) ([]*unstructured.Unstructured, string, error)

func render(ctx context.Context, m *reconciler.DesiredModel, env *reconciler.DesiredEnv, policy manifest.ServingPolicy, locator reconciler.ArtifactLocator, build buildFunc) (*Rendered, error) {
	version := env.Version
	if env.Canary != nil {
		version = env.Canary.Version
	}
	fail := func(err error) (*Rendered, error) {
		return nil, &ModelError{Model: m.Name, Environment: env.Environment, Version: version, Err: err}
	}
	if env.Files == nil {
		return fail(errors.New("no repository files to render"))
	}
	if env.Canary != nil && (env.Canary.Weight < 0 || env.Canary.Weight > 100) {
		return fail(fmt.Errorf("%w: canary weight %d is outside 0..100", ErrInvalidSpec, env.Canary.Weight))
	}
	modelRoot := path.Join(manifest.ModelsDir, m.Name)
	servingDir := path.Clean(env.Serving.Dir)
	if !within(servingDir, modelRoot) {
		return fail(fmt.Errorf("%w: serving directory %s is not inside %s/", ErrOutsideModel, servingDir, modelRoot))
	}
	objs, buildDir, err := build(env.Files, modelRoot, servingDir, env.Environment, policy)
	if err != nil {
		return fail(err)
	}
	r := &Rendered{
		Model:         m.Name,
		Environment:   env.Environment,
		Namespace:     env.Namespace,
		BuildDir:      buildDir,
		StableVersion: env.Version,
		Revision:      env.Revision,
	}
	var isvcs []*unstructured.Unstructured
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		if gvk.Group == KServeGroup && gvk.Kind == InferenceServiceKind {
			if gvk.Version != KServeVersion {
				return fail(fmt.Errorf("%w: InferenceService %q uses %s; modelsync writes %s/%s", ErrInvalidSpec, o.GetName(), o.GetAPIVersion(), KServeGroup, KServeVersion))
			}
			isvcs = append(isvcs, o)
			continue
		}
		if !kindAllowed(policy.ExtraKinds, gvk.Group, gvk.Kind) {
			return fail(&ObjectError{Cause: ErrKindNotAllowed, APIVersion: o.GetAPIVersion(), Kind: gvk.Kind, Name: o.GetName(),
				Message: fmt.Sprintf("the render of %s yields %s %q; list it in serving.extraKinds of modelsync.yaml to allow it", buildDir, qualifiedKind(gvk.Group, gvk.Kind), o.GetName())})
		}
		r.Extras = append(r.Extras, o)
	}
	if len(isvcs) != 1 {
		names := make([]string, len(isvcs))
		for i, o := range isvcs {
			names[i] = o.GetName()
		}
		return fail(fmt.Errorf("%w: the render of %s yields %d %v", ErrInferenceServiceCount, buildDir, len(isvcs), names))
	}
	isvc := isvcs[0]
	if isvc.GetName() == "" {
		isvc.SetName(m.Name)
	}
	if errs := validation.IsDNS1035Label(isvc.GetName()); len(errs) > 0 {
		return fail(fmt.Errorf("%w: InferenceService name %q: %s", ErrInvalidSpec, isvc.GetName(), strings.Join(errs, "; ")))
	}
	r.Name = isvc.GetName()
	r.DeploymentMode = isvc.GetAnnotations()[AnnotationDeploymentMode]

	if locator == nil {
		return fail(errors.New("no artifact locator configured"))
	}
	r.StableURI, err = locator.ArtifactURI(ctx, m.RegisteredModel, env.Version)
	if err != nil {
		return nil, &ModelError{Model: m.Name, Environment: env.Environment, Version: env.Version,
			Err: fmt.Errorf("locating artifacts of %s version %d: %w", m.RegisteredModel, env.Version, err)}
	}
	if env.Canary != nil {
		r.CanaryVersion = env.Canary.Version
		r.CanaryWeight = env.Canary.Weight
		r.CanaryURI, err = locator.ArtifactURI(ctx, m.RegisteredModel, env.Canary.Version)
		if err != nil {
			return fail(fmt.Errorf("locating artifacts of %s version %d: %w", m.RegisteredModel, env.Canary.Version, err))
		}
	}
	if err := setModelFields(isvc, r, env); err != nil {
		return fail(err)
	}
	for _, o := range r.Extras {
		setMetadata(o, r.Model, r.Environment, r.PredictorVersion(), r.Namespace, r.Revision)
	}
	r.InferenceService = isvc
	return r, nil
}

// setModelFields writes what the model manifest decides into the
// InferenceService, refusing fields that would fight it.
func setModelFields(isvc *unstructured.Unstructured, r *Rendered, env *reconciler.DesiredEnv) error {
	predictor, found, err := unstructured.NestedMap(isvc.Object, "spec", "predictor")
	if err != nil {
		return fmt.Errorf("%w: spec.predictor: %v", ErrInvalidSpec, err)
	}
	if !found {
		predictor = map[string]any{}
	}
	for _, k := range legacyPredictors {
		if _, ok := predictor[k]; ok {
			return fmt.Errorf("%w: spec.predictor.%s is KServe's legacy form, which its webhook rewrites (a permanent diff); use spec.predictor.model with modelFormat", ErrInvalidSpec, k)
		}
	}
	if _, ok := predictor["canaryTrafficPercent"]; ok {
		return fmt.Errorf("%w: spec.predictor.canaryTrafficPercent comes from the canary in model.yaml; remove it from the kustomization", ErrInvalidSpec)
	}
	model, _, err := unstructured.NestedMap(predictor, "model")
	if err != nil {
		return fmt.Errorf("%w: spec.predictor.model: %v", ErrInvalidSpec, err)
	}
	if model == nil {
		model = map[string]any{}
	}
	for _, k := range []string{"storage", "storageUris"} {
		if _, ok := model[k]; ok {
			return fmt.Errorf("%w: spec.predictor.model.%s conflicts with the storageUri modelsync sets from the registry; remove it", ErrInvalidSpec, k)
		}
	}
	uri := r.StableURI
	if r.CanaryVersion > 0 {
		uri = r.CanaryURI
	}
	model["storageUri"] = uri
	format, _, _ := unstructured.NestedMap(model, "modelFormat")
	if format == nil {
		format = map[string]any{}
	}
	if env.Serving.ModelFormat != "" {
		format["name"] = env.Serving.ModelFormat
	}
	if name, _ := format["name"].(string); name == "" {
		return fmt.Errorf("%w: no model format: set spec.serving.modelFormat in model.yaml", ErrInvalidSpec)
	}
	model["modelFormat"] = format
	if env.Serving.Runtime != "" {
		model["runtime"] = env.Serving.Runtime
	}
	predictor["model"] = model
	if r.CanaryVersion > 0 {
		predictor["canaryTrafficPercent"] = int64(r.CanaryWeight)
	}
	if err := unstructured.SetNestedMap(isvc.Object, predictor, "spec", "predictor"); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidSpec, err)
	}
	setMetadata(isvc, r.Model, r.Environment, r.PredictorVersion(), r.Namespace, r.Revision)
	return nil
}

func setMetadata(o *unstructured.Unstructured, model, env string, version int, ns, revision string) {
	o.SetNamespace(ns)
	labels := o.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelManagedBy] = ManagedByValue
	labels[LabelModel] = model
	labels[LabelEnvironment] = env
	labels[LabelVersion] = strconv.Itoa(version)
	o.SetLabels(labels)
	ann := o.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[AnnotationRevision] = revision
	o.SetAnnotations(ann)
}

func kindAllowed(extra []string, group, kind string) bool {
	for _, e := range extra {
		k, g, _ := strings.Cut(e, ".")
		if k == kind && (g == "" || g == group) {
			return true
		}
	}
	return false
}

func qualifiedKind(group, kind string) string {
	if group == "" {
		return kind
	}
	return kind + "." + group
}

// within reports whether the slash path p is root or below it.
func within(p, root string) bool {
	p, root = path.Clean(p), path.Clean(root)
	return p == root || strings.HasPrefix(p, root+"/")
}

// build copies the model folder into kustomize's in-memory file system and
// builds the environment's overlay, or the serving directory itself.
//
// Nothing of a render touches the disk unless the policy lets remote bases
// be cloned: kustomize then clones into directories of its own under the
// system temporary directory (its git runner cannot be pointed elsewhere),
// and the guard removes every one it saw when the build ends, whether the
// build succeeded or not.
func (l renderLimits) build(files fs.FS, modelRoot, servingDir, env string, policy manifest.ServingPolicy) ([]*unstructured.Unstructured, string, error) {
	mem := filesys.MakeFsInMemory()
	c := &copier{src: files, dst: mem, root: modelRoot, limits: l}
	if err := c.copyTree(modelRoot, modelRoot, 0); err != nil {
		return nil, "", err
	}
	if c.files == 0 {
		return nil, "", fmt.Errorf("model folder %s/ is empty or missing", modelRoot)
	}
	buildDir := buildDirFor(func(dir string) bool { return hasKustomization(mem, "/"+dir) }, modelRoot, servingDir, env)
	if !hasKustomization(mem, "/"+buildDir) {
		return nil, buildDir, fmt.Errorf("no kustomization.yaml in %s/", buildDir)
	}
	v := newVetter(remotePolicyOf(policy))
	resourceFiles, err := v.scanKustomizations(mem, modelRoot)
	if err != nil {
		return nil, buildDir, err
	}
	if l.offline && len(v.fetches) > 0 {
		slices.Sort(v.fetches)
		return nil, buildDir, fmt.Errorf("%w: %s", ErrNeedsFetch, strings.Join(slices.Compact(v.fetches), "; "))
	}
	if err := nameInferenceServices(mem, resourceFiles, path.Base(modelRoot)); err != nil {
		return nil, buildDir, err
	}
	g := &guardFS{mem: mem, root: "/" + modelRoot, vet: v, limits: l}
	if v.remote.allow && !l.offline {
		// Remote git bases are cloned by kustomize into a temporary
		// directory on disk; only those directories are reachable there.
		tmp, err := filepath.EvalSymlinks(os.TempDir())
		if err != nil {
			tmp = os.TempDir()
		}
		g.disk, g.tmpDir = filesys.MakeFsOnDisk(), tmp
		defer g.removeClones()
	}
	opts := krusty.MakeDefaultOptions()
	// The guard file system already confines every read to the model
	// folder, so an overlay may use files of the base beside it.
	opts.LoadRestrictions = ktypes.LoadRestrictionsNone
	resMap, err := krusty.MakeKustomizer(opts).Run(g, "/"+buildDir)
	if refused := g.refusals(); len(refused) > 0 {
		return nil, buildDir, refusalError(refused)
	}
	if esc := g.escapes(); len(esc) > 0 {
		return nil, buildDir, fmt.Errorf("%w: kustomize tried to read %s", ErrOutsideModel, strings.Join(esc, ", "))
	}
	if err != nil {
		return nil, buildDir, fmt.Errorf("kustomize build %s: %w", buildDir, err)
	}
	var out []*unstructured.Unstructured
	for _, res := range resMap.Resources() {
		js, err := res.MarshalJSON()
		if err != nil {
			return nil, buildDir, fmt.Errorf("kustomize build %s: %w", buildDir, err)
		}
		u := &unstructured.Unstructured{}
		// Decoding through JSON gives the int64/float64 number types the
		// API machinery uses, so rendered and live objects compare equal.
		if err := u.UnmarshalJSON(js); err != nil {
			return nil, buildDir, fmt.Errorf("kustomize build %s: resource %s: %w", buildDir, res.CurId(), err)
		}
		out = append(out, u)
	}
	return out, buildDir, nil
}

// buildDirFor is the directory kustomize builds for env: the overlay
// overlays/<env> below or beside the serving directory when it holds a
// kustomization (hasKust says), else the serving directory itself.
func buildDirFor(hasKust func(dir string) bool, modelRoot, servingDir, env string) string {
	for _, cand := range []string{
		path.Join(servingDir, "overlays", env),
		path.Join(path.Dir(servingDir), "overlays", env),
	} {
		if within(cand, modelRoot) && hasKust(cand) {
			return cand
		}
	}
	return servingDir
}

func hasKustomization(fsys filesys.FileSystem, dir string) bool {
	for _, n := range kustomizationNames {
		if fsys.Exists(path.Join(dir, n)) && !fsys.IsDir(path.Join(dir, n)) {
			return true
		}
	}
	return false
}

// copier copies a model folder out of the repository tree, following only
// symlinks that stay inside the model folder.
type copier struct {
	src    fs.FS
	dst    filesys.FileSystem
	root   string
	limits renderLimits
	files  int
	bytes  int64
}

// copyTree copies the source directory src to the destination path dst
// (both repository paths); they differ when src is reached through a symlink.
func (c *copier) copyTree(src, dst string, nesting int) error {
	if nesting > maxSymlinkNesting {
		return fmt.Errorf("%w: symlinks nested more than %d deep under %s", ErrOutsideModel, maxSymlinkNesting, dst)
	}
	if err := c.dst.MkdirAll("/" + dst); err != nil {
		return err
	}
	entries, err := fs.ReadDir(c.src, src)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && src == c.root {
			return nil
		}
		return fmt.Errorf("reading %s: %w", src, err)
	}
	for _, e := range entries {
		from, to := path.Join(src, e.Name()), path.Join(dst, e.Name())
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			target, err := c.resolve(from)
			if err != nil {
				return err
			}
			info, err := fs.Stat(c.src, target)
			if err != nil {
				return fmt.Errorf("symlink %s: %w", from, err)
			}
			if info.IsDir() {
				if err := c.copyTree(target, to, nesting+1); err != nil {
					return err
				}
				continue
			}
			if err := c.copyFile(target, to); err != nil {
				return err
			}
		case e.IsDir():
			if err := c.copyTree(from, to, nesting); err != nil {
				return err
			}
		case e.Type().IsRegular():
			if err := c.copyFile(from, to); err != nil {
				return err
			}
		default:
			// Submodules and other irregular entries have no content here.
			continue
		}
	}
	return nil
}

// copyFile copies one file, refusing it from its reported size before
// reading, and reading no more than the limit leaves in any case.
func (c *copier) copyFile(src, dst string) error {
	c.files++
	if c.files > c.limits.files {
		return fmt.Errorf("%w: model folder %s/ holds more than %d files", ErrTooLarge, c.root, c.limits.files)
	}
	left := c.limits.bytes - c.bytes
	info, err := fs.Stat(c.src, src)
	if err != nil {
		return fmt.Errorf("reading %s: %w", src, err)
	}
	if info.Size() > left {
		return c.tooLarge(src, info.Size())
	}
	f, err := c.src.Open(src)
	if err != nil {
		return fmt.Errorf("reading %s: %w", src, err)
	}
	defer f.Close()
	data, err := readAtMost(f, info.Size(), left)
	if err != nil {
		return fmt.Errorf("reading %s: %w", src, err)
	}
	if int64(len(data)) > left {
		return c.tooLarge(src, int64(len(data)))
	}
	c.bytes += int64(len(data))
	return c.dst.WriteFile("/"+dst, data)
}

// tooLarge says which file passes the size limit.
func (c *copier) tooLarge(file string, size int64) error {
	if c.bytes == 0 || size > c.limits.bytes {
		return fmt.Errorf("%w: %s is %s, more than the %s a model folder may hold", ErrTooLarge, file, byteSize(size), byteSize(c.limits.bytes))
	}
	return fmt.Errorf("%w: %s (%s) takes model folder %s/ past %s", ErrTooLarge, file, byteSize(size), c.root, byteSize(c.limits.bytes))
}

// readAtMost reads r up to limit+1 bytes, so a caller can tell that more
// than limit bytes were there without holding them; size is the expected
// length, a hint for the first allocation.
func readAtMost(r io.Reader, size, limit int64) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(int(min(max(size, 0), limit) + 1))
	_, err := b.ReadFrom(io.LimitReader(r, limit+1))
	return b.Bytes(), err
}

// byteSize formats a size for messages: "400 MiB", "12.5 KiB", "17 B".
func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return strings.TrimSuffix(strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64), ".0") + " MiB"
	case n >= 1<<10:
		return strings.TrimSuffix(strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64), ".0") + " KiB"
	}
	return strconv.FormatInt(n, 10) + " B"
}

// resolve follows a chain of symlinks, refusing any hop that is absolute or
// leaves the model folder.
func (c *copier) resolve(name string) (string, error) {
	cur := name
	for range maxSymlinkHops {
		info, err := fs.Lstat(c.src, cur)
		if err != nil {
			return "", fmt.Errorf("symlink %s: %w", name, err)
		}
		if info.Mode()&fs.ModeSymlink == 0 {
			return cur, nil
		}
		if info.Size() > maxLinkTarget {
			return "", fmt.Errorf("%w: symlink %s has a %s target", ErrOutsideModel, name, byteSize(info.Size()))
		}
		target, err := fs.ReadLink(c.src, cur)
		if err != nil {
			return "", fmt.Errorf("%w: symlink %s cannot be read: %v", ErrOutsideModel, name, err)
		}
		if path.IsAbs(target) {
			return "", fmt.Errorf("%w: symlink %s points to the absolute path %s", ErrOutsideModel, name, target)
		}
		next := path.Join(path.Dir(cur), target)
		if !within(next, c.root) {
			return "", fmt.Errorf("%w: symlink %s resolves to %s, outside %s/", ErrOutsideModel, name, next, c.root)
		}
		cur = next
	}
	return "", fmt.Errorf("%w: symlink %s: more than %d hops", ErrOutsideModel, name, maxSymlinkHops)
}

// nameInferenceServices gives an InferenceService that a resource file
// leaves unnamed the model's name: kustomize needs a name to build, and the
// model name is the default the manifest promises.
func nameInferenceServices(mem filesys.FileSystem, files []string, model string) error {
	for _, f := range files {
		data, err := mem.ReadFile(f)
		if err != nil {
			return err
		}
		docs := splitDocs(data)
		changed := false
		for i, doc := range docs {
			var obj map[string]any
			if err := yaml.Unmarshal(doc, &obj); err != nil || obj == nil {
				continue
			}
			apiVersion, _ := obj["apiVersion"].(string)
			if obj["kind"] != InferenceServiceKind || !strings.HasPrefix(apiVersion, KServeGroup+"/") {
				continue
			}
			md, _ := obj["metadata"].(map[string]any)
			if md == nil {
				md = map[string]any{}
			}
			if name, _ := md["name"].(string); name != "" {
				continue
			}
			md["name"] = model
			obj["metadata"] = md
			out, err := yaml.Marshal(obj)
			if err != nil {
				return fmt.Errorf("%s: %w", strings.TrimPrefix(f, "/"), err)
			}
			docs[i], changed = out, true
		}
		if changed {
			if err := mem.WriteFile(f, joinDocs(docs)); err != nil {
				return err
			}
		}
	}
	return nil
}

func splitDocs(data []byte) [][]byte {
	var docs [][]byte
	var cur []byte
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if strings.TrimRight(line, " \t\r\n") == "---" {
			docs = append(docs, cur)
			cur = nil
			continue
		}
		cur = append(cur, line...)
	}
	return append(docs, cur)
}

func joinDocs(docs [][]byte) []byte {
	var out []byte
	for i, d := range docs {
		if i > 0 {
			out = append(out, "---\n"...)
		}
		out = append(out, d...)
		if len(d) > 0 && d[len(d)-1] != '\n' {
			out = append(out, '\n')
		}
	}
	return out
}

// guardFS is the file system kustomize sees: the in-memory copy of the
// model folder, plus (when remote bases are allowed) kustomize's own clone
// directories on disk. Any other path is recorded and refused, so even a
// reference the scan did not anticipate cannot read outside the model.
// Files read from a clone are vetted as the model folder was before the
// build: a permitted remote base is trusted no further than the model.
type guardFS struct {
	mem    filesys.FileSystem
	disk   filesys.FileSystem
	root   string
	tmpDir string
	vet    *vetter
	limits renderLimits

	mu        sync.Mutex
	escaped   []string
	refused   []refusal
	clones    map[string]bool
	diskBytes int64
}

var _ filesys.FileSystem = (*guardFS)(nil)

// cloneDirPrefix is how kustomize names its clone directories.
const cloneDirPrefix = "kustomize-"

func (g *guardFS) route(p string) (filesys.FileSystem, string, error) {
	clean := filepath.Clean(p)
	if !filepath.IsAbs(clean) {
		clean = filepath.Join("/", clean)
	}
	if within(filepath.ToSlash(clean), g.root) {
		return g.mem, clean, nil
	}
	if clone := g.cloneOf(clean); clone != "" {
		g.mu.Lock()
		if g.clones == nil {
			g.clones = map[string]bool{}
		}
		g.clones[clone] = true
		g.mu.Unlock()
		return g.disk, clean, nil
	}
	g.mu.Lock()
	g.escaped = append(g.escaped, clean)
	g.mu.Unlock()
	return nil, clean, fmt.Errorf("%w: %s", ErrOutsideModel, clean)
}

// cloneOf returns the kustomize clone directory holding p, "" when p is in
// none or remote bases are not allowed.
func (g *guardFS) cloneOf(p string) string {
	if g.disk == nil {
		return ""
	}
	rel, err := filepath.Rel(g.tmpDir, p)
	if err != nil || !filepath.IsLocal(rel) {
		return ""
	}
	top, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
	if !strings.HasPrefix(top, cloneDirPrefix) || len(top) == len(cloneDirPrefix) {
		return ""
	}
	return filepath.Join(g.tmpDir, top)
}

// removeClones deletes every clone directory the build touched; kustomize
// removes them itself on most paths, not on all.
func (g *guardFS) removeClones() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for dir := range g.clones {
		_ = os.RemoveAll(dir)
	}
	g.clones = nil
}

func (g *guardFS) refuse(rs ...refusal) {
	g.mu.Lock()
	g.refused = append(g.refused, rs...)
	g.mu.Unlock()
}

func (g *guardFS) refusals() []refusal {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.refused)
}

func (g *guardFS) escapes() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, e := range g.escaped {
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	sort.Strings(out)
	return out
}

// readClone reads a file of a clone within the render's byte limit and
// vets it: kustomizations for their references, other files for builtin
// plugin configurations.
func (g *guardFS) readClone(p string) ([]byte, error) {
	clone := g.cloneOf(p)
	rel, _ := filepath.Rel(clone, p)
	shown := filepath.ToSlash(rel) + " (in the clone of a remote base)"
	// Kustomize confines reads to the clone only after resolving
	// symlinks itself; checking here too costs one lstat per element.
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return nil, err
	}
	if g.cloneOf(real) != clone {
		g.mu.Lock()
		g.escaped = append(g.escaped, real)
		g.mu.Unlock()
		return nil, fmt.Errorf("%w: %s leads to %s", ErrOutsideModel, shown, real)
	}
	f, err := os.Open(real)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	left := g.limits.bytes - g.diskBytes
	g.mu.Unlock()
	if info.Size() > left {
		err := fmt.Errorf("%w: %s is %s; remote bases may add at most %s to a render", ErrTooLarge, shown, byteSize(info.Size()), byteSize(g.limits.bytes))
		return nil, err
	}
	data, err := readAtMost(f, info.Size(), left)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > left {
		return nil, fmt.Errorf("%w: %s passes the %s remote bases may add to a render", ErrTooLarge, shown, byteSize(g.limits.bytes))
	}
	g.mu.Lock()
	g.diskBytes += int64(len(data))
	g.mu.Unlock()
	var problems []refusal
	if isKustomizationName(filepath.Base(p)) {
		problems = g.vet.kustomization(g.disk, p, shown, clone, data).problems
	} else {
		problems = g.vet.objectFile(shown, data)
	}
	if len(problems) > 0 {
		g.refuse(problems...)
		return nil, refusalError(problems)
	}
	return data, nil
}

func (g *guardFS) Create(p string) (filesys.File, error) {
	f, c, err := g.route(p)
	if err != nil {
		return nil, err
	}
	return f.Create(c)
}

func (g *guardFS) Mkdir(p string) error {
	f, c, err := g.route(p)
	if err != nil {
		return err
	}
	return f.Mkdir(c)
}

func (g *guardFS) MkdirAll(p string) error {
	f, c, err := g.route(p)
	if err != nil {
		return err
	}
	return f.MkdirAll(c)
}

func (g *guardFS) RemoveAll(p string) error {
	f, c, err := g.route(p)
	if err != nil {
		return err
	}
	return f.RemoveAll(c)
}

func (g *guardFS) Open(p string) (filesys.File, error) {
	f, c, err := g.route(p)
	if err != nil {
		return nil, err
	}
	if f == g.disk {
		// Files of a clone are read only through ReadFile, which vets them.
		return nil, fmt.Errorf("%w: opening %s of a remote base", ErrOutsideModel, c)
	}
	return f.Open(c)
}

func (g *guardFS) IsDir(p string) bool {
	f, c, err := g.route(p)
	return err == nil && f.IsDir(c)
}

func (g *guardFS) ReadDir(p string) ([]string, error) {
	f, c, err := g.route(p)
	if err != nil {
		return nil, err
	}
	return f.ReadDir(c)
}

func (g *guardFS) CleanedAbs(p string) (filesys.ConfirmedDir, string, error) {
	f, c, err := g.route(p)
	if err != nil {
		return "", "", err
	}
	return f.CleanedAbs(c)
}

func (g *guardFS) Exists(p string) bool {
	f, c, err := g.route(p)
	return err == nil && f.Exists(c)
}

func (g *guardFS) Glob(pattern string) ([]string, error) {
	f, c, err := g.route(pattern)
	if err != nil {
		return nil, err
	}
	return f.Glob(c)
}

func (g *guardFS) ReadFile(p string) ([]byte, error) {
	f, c, err := g.route(p)
	if err != nil {
		return nil, err
	}
	if f == g.disk {
		return g.readClone(c)
	}
	return f.ReadFile(c)
}

func (g *guardFS) WriteFile(p string, data []byte) error {
	f, c, err := g.route(p)
	if err != nil {
		return err
	}
	return f.WriteFile(c, data)
}

func (g *guardFS) Walk(p string, fn filepath.WalkFunc) error {
	f, c, err := g.route(p)
	if err != nil {
		return err
	}
	return f.Walk(c, fn)
}

func sortStrings(s []string) { sort.Strings(s) }
