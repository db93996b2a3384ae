package kserve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/reconciler"
)

// ValidateServing renders a model's serving directory for each of its
// environments exactly as the KServe target does (same confinement, same
// limits, same checks of what the render yields) but offline: nothing is
// fetched, so a permitted remote base makes a warning instead of a render,
// and no registry is asked, so storageUri is a placeholder. It returns the
// problems a later plan would fail on, each pointing at a file and line
// where one can be found, and warnings about what it could not check.
//
// folder is the model's folder under models/, m what could be decoded of
// its manifest (maybe with problems of its own) and pos its positions.
func ValidateServing(ctx context.Context, files fs.FS, cfg *manifest.RepoConfig, folder string, m *manifest.Model, pos manifest.Positions) (problems, warnings manifest.ErrorList) {
	modelFile := manifest.ModelPath(folder)
	modelRoot := path.Join(manifest.ModelsDir, folder)
	at := func(field string) manifest.Pos {
		for f := field; f != ""; {
			if p, ok := pos.Get(f); ok {
				return p
			}
			i := strings.LastIndexAny(f, ".[")
			if i < 0 {
				break
			}
			f = f[:i]
		}
		return manifest.Pos{Line: 1, Column: 1}
	}
	modelProblem := func(field, msg string) *manifest.FieldError {
		p := at(field)
		return &manifest.FieldError{File: modelFile, Line: p.Line, Column: p.Column, Field: field, Message: msg}
	}

	docs, syntax := parseYAMLFiles(files, modelRoot)
	if len(syntax) > 0 {
		// kustomize would stop at the first of them with less precision.
		return syntax, nil
	}
	if !manifest.ServingPathValid(m.Spec.Serving.Path) {
		return nil, nil // the manifest's own problems say why
	}
	dm := &reconciler.DesiredModel{Name: folder, RegisteredModel: m.RegisteredModel()}
	dir := path.Join(modelRoot, path.Clean(m.Spec.Serving.Path))
	limits := Config{}.renderLimits()
	limits.offline = true
	build := memoBuild(files, limits.build)

	// One message per distinct problem, naming every environment it
	// concerns: a broken base fails every environment the same way.
	type found struct {
		err  *manifest.FieldError
		envs []string
	}
	var order []string
	byMsg := map[string]*found{}
	add := func(env string, fe *manifest.FieldError, warn bool) {
		key := strconv.FormatBool(warn) + "\x00" + fe.Error()
		if f, ok := byMsg[key]; ok {
			f.envs = append(f.envs, env)
			return
		}
		byMsg[key] = &found{err: fe, envs: []string{env}}
		order = append(order, key)
	}
	for _, env := range cfg.Environments {
		spec, ok := m.Spec.Environments[env.Name]
		if !ok {
			continue
		}
		de := &reconciler.DesiredEnv{
			Environment: env.Name,
			Namespace:   env.Namespace,
			Alias:       env.AliasName(),
			Version:     spec.Version,
			Serving:     reconciler.DesiredServing{Dir: dir, ModelFormat: m.Spec.Serving.ModelFormat, Runtime: m.Spec.Serving.Runtime},
			Revision:    "validate",
			Files:       files,
		}
		if c := spec.Canary; c != nil {
			w := c.Weight
			if w == 0 && len(c.Steps) > 0 {
				w = c.Steps[0]
			}
			if w > 0 && w < 100 {
				de.Canary = &reconciler.DesiredCanary{Version: c.Version, Weight: w}
			}
		}
		r, err := render(ctx, dm, de, cfg.Serving, offlineLocator{}, build)
		if err != nil {
			var me *ModelError
			if errors.As(err, &me) {
				err = me.Err
			}
			if errors.Is(err, ErrNeedsFetch) {
				add(env.Name, modelProblem("spec.serving.path", "not rendered: "+err.Error()), true)
				continue
			}
			for _, fe := range renderProblems(err, docs, modelProblem) {
				add(env.Name, fe, false)
			}
			continue
		}
		if de.Canary != nil && r.DeploymentMode != "" && !knativeMode(r.DeploymentMode) {
			add(env.Name, modelProblem("spec.environments."+env.Name+".canary", fmt.Sprintf(
				"the InferenceService is in %s mode (annotation %s), where KServe ignores canaryTrafficPercent; remove the canary or use Knative mode",
				r.DeploymentMode, AnnotationDeploymentMode)), false)
		}
	}
	for _, key := range order {
		f := byMsg[key]
		fe := *f.err
		fe.Message = fmt.Sprintf("%s (rendering for %s)", fe.Message, strings.Join(f.envs, ", "))
		if strings.HasPrefix(key, "true") {
			warnings = append(warnings, &fe)
		} else {
			problems = append(problems, &fe)
		}
	}
	problems.Sort()
	warnings.Sort()
	return problems, warnings
}

// memoBuild builds each directory of a model once: environments without
// an overlay of their own share the serving directory's build, which is
// most of validate's time. Each caller gets its own copies of the
// objects, since a render writes into them.
func memoBuild(files fs.FS, build buildFunc) buildFunc {
	type result struct {
		objs []*unstructured.Unstructured
		dir  string
		err  error
	}
	done := map[string]result{}
	return func(fsys fs.FS, modelRoot, servingDir, env string, policy manifest.ServingPolicy) ([]*unstructured.Unstructured, string, error) {
		key := buildDirFor(func(dir string) bool {
			for _, n := range kustomizationNames {
				if info, err := fs.Stat(files, path.Join(dir, n)); err == nil && !info.IsDir() {
					return true
				}
			}
			return false
		}, modelRoot, servingDir, env)
		r, ok := done[key]
		if !ok {
			r.objs, r.dir, r.err = build(fsys, modelRoot, servingDir, env, policy)
			done[key] = r
		}
		objs := make([]*unstructured.Unstructured, len(r.objs))
		for i, o := range r.objs {
			objs[i] = o.DeepCopy()
		}
		return objs, r.dir, r.err
	}
}

// offlineLocator stands in for the registry: validate checks what the
// repository decides, not whether a version exists.
type offlineLocator struct{}

func (offlineLocator) ArtifactURI(_ context.Context, registeredModel string, version int) (string, error) {
	return fmt.Sprintf("models:/%s/%d", registeredModel, version), nil
}

// yamlDoc is one document of a YAML file in a model folder.
type yamlDoc struct {
	file string
	root *yaml.Node
}

// parseYAMLFiles parses every YAML file of the model folder but its
// model.yaml, reporting syntax errors at their line. Symlinks are not
// followed (the render decides what they may reach), and files larger
// than a manifest may be are left to the render's limits.
func parseYAMLFiles(files fs.FS, modelRoot string) ([]yamlDoc, manifest.ErrorList) {
	var docs []yamlDoc
	var errs manifest.ErrorList
	n := 0
	_ = fs.WalkDir(files, modelRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a missing folder is the manifest's problem
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		ext := path.Ext(p)
		if p == path.Join(modelRoot, manifest.ModelFile) || (ext != ".yaml" && ext != ".yml" && !isKustomizationName(path.Base(p))) {
			return nil
		}
		if n++; n > DefaultMaxModelFiles {
			return fs.SkipAll
		}
		info, err := d.Info()
		if err != nil || info.Size() > manifest.MaxFileSize {
			return nil
		}
		data, err := fs.ReadFile(files, p)
		if err != nil {
			return nil
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var doc yaml.Node
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				errs = append(errs, manifest.SyntaxError(p, err, data))
				break
			}
			if len(doc.Content) == 1 {
				docs = append(docs, yamlDoc{file: p, root: doc.Content[0]})
			}
		}
		return nil
	})
	errs.Sort()
	return docs, errs
}

// renderProblems turns a render error into problems pointing at the file
// and line that cause it where that can be found, else at the model's
// spec.serving.path.
func renderProblems(err error, docs []yamlDoc, modelProblem func(field, msg string) *manifest.FieldError) manifest.ErrorList {
	var re *RefusalError
	if errors.As(err, &re) {
		var out manifest.ErrorList
		for _, ref := range re.References() {
			fe := &manifest.FieldError{File: ref.File, Field: ref.Field, Message: ref.Reason}
			if ref.Value != "" {
				fe.Message = fmt.Sprintf("%q %s", ref.Value, ref.Reason)
			}
			if p, ok := findValue(docs, ref.File, ref.Field, ref.Value); ok {
				fe.Line, fe.Column = p.Line, p.Column
			}
			out = append(out, fe)
		}
		return out
	}
	var oe *ObjectError
	if errors.As(err, &oe) {
		if file, p, ok := findObject(docs, oe.APIVersion, oe.Kind, oe.Name); ok {
			return manifest.ErrorList{{File: file, Line: p.Line, Column: p.Column, Field: "kind",
				Message: fmt.Sprintf("expected an InferenceService (%s/%s) or a kind listed in serving.extraKinds of modelsync.yaml, found %s %q", KServeGroup, KServeVersion, oe.Kind, oe.Name)}}
		}
	}
	return manifest.ErrorList{modelProblem("spec.serving.path", err.Error())}
}

// findValue finds the scalar value under the top-level key that field
// starts with (resources, patches.path, ...) in file.
func findValue(docs []yamlDoc, file, field, value string) (manifest.Pos, bool) {
	key, _, _ := strings.Cut(field, ".")
	for _, d := range docs {
		if d.file != file || d.root.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(d.root.Content); i += 2 {
			if d.root.Content[i].Value != key {
				continue
			}
			if n := findScalar(d.root.Content[i+1], value); n != nil {
				return manifest.Pos{Line: n.Line, Column: n.Column}, true
			}
			k := d.root.Content[i]
			return manifest.Pos{Line: k.Line, Column: k.Column}, true
		}
	}
	return manifest.Pos{}, false
}

func findScalar(n *yaml.Node, value string) *yaml.Node {
	if n.Kind == yaml.ScalarNode && n.Value == value {
		return n
	}
	for i, c := range n.Content {
		if n.Kind == yaml.MappingNode && i%2 == 0 {
			continue // keys
		}
		if f := findScalar(c, value); f != nil {
			return f
		}
	}
	return nil
}

// findObject finds the document defining an object of the kind; by name
// when kustomize kept it, else the only document of that kind.
func findObject(docs []yamlDoc, apiVersion, kind, name string) (string, manifest.Pos, bool) {
	type hit struct {
		file string
		pos  manifest.Pos
		name string
	}
	var hits []hit
	for _, d := range docs {
		if d.root.Kind != yaml.MappingNode {
			continue
		}
		var k *yaml.Node
		var av, nm string
		for i := 0; i+1 < len(d.root.Content); i += 2 {
			key, val := d.root.Content[i].Value, d.root.Content[i+1]
			switch key {
			case "kind":
				k = val
			case "apiVersion":
				av = val.Value
			case "metadata":
				if val.Kind == yaml.MappingNode {
					for j := 0; j+1 < len(val.Content); j += 2 {
						if val.Content[j].Value == "name" {
							nm = val.Content[j+1].Value
						}
					}
				}
			}
		}
		if k != nil && k.Value == kind && (apiVersion == "" || av == apiVersion) {
			hits = append(hits, hit{d.file, manifest.Pos{Line: k.Line, Column: k.Column}, nm})
		}
	}
	if i := slices.IndexFunc(hits, func(h hit) bool { return h.name == name }); i >= 0 {
		return hits[i].file, hits[i].pos, true
	}
	if len(hits) == 1 {
		return hits[0].file, hits[0].pos, true
	}
	return "", manifest.Pos{}, false
}
