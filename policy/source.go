package policy

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
)

// The default rules. "all:" keeps the bundle's .manifest, which names the
// Rego version and the bundle's roots.
//
//go:embed all:bundle
var embeddedBundle embed.FS

// embeddedRoot is the directory of embeddedBundle that holds the bundle.
const embeddedRoot = "bundle"

// MaxBundleBytes bounds any one file of a bundle, so a policy directory in
// the models repository cannot exhaust memory.
const MaxBundleBytes = 8 << 20

type sourceKind int

const (
	sourceNone sourceKind = iota
	sourceEmbedded
	sourceDir
	sourceTarball
	sourceFS
)

// Source says where a policy bundle is read from. Build one with
// DefaultSource, DirSource, TarballSource or FSSource; the zero Source is
// rejected rather than silently replaced by the default.
//
// Never build a Source from the pull request's head: see the package
// documentation.
type Source struct {
	kind     sourceKind
	path     string
	fsys     fs.FS
	revision string
}

// DefaultSource is the bundle compiled into this binary.
func DefaultSource() Source { return Source{kind: sourceEmbedded, path: embeddedRoot} }

// DirSource is a bundle directory on local disk.
func DirSource(dir string) Source { return Source{kind: sourceDir, path: dir} }

// TarballSource is a bundle archive (.tar.gz) on local disk, as built by
// `opa build`.
func TarballSource(path string) Source { return Source{kind: sourceTarball, path: path} }

// FSSource is the bundle in directory root of fsys. Pass the tree of the
// BASE branch's commit (for example the policy/ directory of the models
// repository at the base SHA), never the pull request's head or merge
// commit: a pull request must not be able to rewrite the rules that judge it.
func FSSource(fsys fs.FS, root string) Source {
	return Source{kind: sourceFS, fsys: fsys, path: root}
}

// WithRevision records the version of the rules, for example the base
// commit they were read from. It is reported in Result.Policy and passed to
// the rules as input.policy.revision; without it the bundle manifest's
// revision is used.
func (s Source) WithRevision(rev string) Source {
	s.revision = rev
	return s
}

// String names the source for messages.
func (s Source) String() string {
	switch s.kind {
	case sourceEmbedded:
		return "embedded"
	case sourceDir:
		return "dir:" + s.path
	case sourceTarball:
		return "tarball:" + s.path
	case sourceFS:
		return "fs:" + s.path
	default:
		return "none"
	}
}

// ErrNoSource is returned for the zero Source.
var ErrNoSource = errors.New("policy: no source given (use DefaultSource, DirSource, TarballSource or FSSource)")

// readBundle reads and parses the bundle, annotations included, as Rego v1.
func readBundle(ctx context.Context, src Source) (*bundle.Bundle, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var loader bundle.DirectoryLoader
	switch src.kind {
	case sourceEmbedded:
		loader = bundle.NewFSLoaderWithRoot(embeddedBundle, embeddedRoot)
	case sourceDir:
		info, err := os.Stat(src.path)
		if err != nil {
			return nil, fmt.Errorf("policy bundle %s: %w", src, err)
		}
		if !info.IsDir() {
			return nil, fmt.Errorf("policy bundle %s: not a directory", src)
		}
		loader = bundle.NewDirectoryLoader(src.path)
	case sourceTarball:
		f, err := os.Open(src.path)
		if err != nil {
			return nil, fmt.Errorf("policy bundle %s: %w", src, err)
		}
		defer f.Close()
		loader = bundle.NewTarballLoaderWithBaseURL(f, src.path)
	case sourceFS:
		if src.fsys == nil {
			return nil, fmt.Errorf("policy bundle %s: nil fs.FS", src)
		}
		root := strings.Trim(src.path, "/")
		if root == "" {
			root = "."
		}
		if _, err := fs.Stat(src.fsys, root); err != nil {
			return nil, fmt.Errorf("policy bundle %s: %w", src, err)
		}
		loader = bundle.NewFSLoaderWithRoot(src.fsys, root)
	default:
		return nil, ErrNoSource
	}
	b, err := bundle.NewCustomReader(loader.WithSizeLimitBytes(MaxBundleBytes)).
		WithProcessAnnotations(true).
		WithRegoVersion(ast.RegoV1).
		WithSizeLimitBytes(MaxBundleBytes).
		Read()
	if err != nil {
		return nil, fmt.Errorf("reading policy bundle %s: %w", src, err)
	}
	return &b, nil
}

// isTestFile reports whether a bundle module holds Rego unit tests, which
// the gate leaves out of evaluation.
func isTestFile(path string) bool { return strings.HasSuffix(path, "_test.rego") }

// withoutTests returns a shallow copy of b without its test modules.
func withoutTests(b *bundle.Bundle) *bundle.Bundle {
	out := *b
	out.Modules = nil
	for _, m := range b.Modules {
		if !isTestFile(m.Path) {
			out.Modules = append(out.Modules, m)
		}
	}
	return &out
}

// withConfig returns a copy of b whose data.modelsync.config has overrides
// merged in: objects merge key by key, anything else replaces the default.
func withConfig(b *bundle.Bundle, overrides map[string]any) *bundle.Bundle {
	if len(overrides) == 0 {
		return b
	}
	out := *b
	out.Data = maps.Clone(b.Data)
	if out.Data == nil {
		out.Data = map[string]any{}
	}
	ms, _ := out.Data["modelsync"].(map[string]any)
	ms = maps.Clone(ms)
	if ms == nil {
		ms = map[string]any{}
	}
	base, _ := ms["config"].(map[string]any)
	ms["config"] = mergeObjects(base, overrides)
	out.Data["modelsync"] = ms
	return &out
}

func mergeObjects(base, over map[string]any) map[string]any {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range over {
		if vo, ok := v.(map[string]any); ok {
			if bo, ok := out[k].(map[string]any); ok {
				out[k] = mergeObjects(bo, vo)
				continue
			}
		}
		out[k] = v
	}
	return out
}
