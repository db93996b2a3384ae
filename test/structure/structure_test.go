// Package structure checks the module's import graph with `go list`, so
// the layering the code relies on is a test failure when it slips rather
// than a review comment.
package structure

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/modelsync/modelsync/"

type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

// listPackages returns every package of the module with its imports,
// test imports included, keyed by path relative to the module.
func listPackages(t *testing.T) map[string]pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,TestImports,XTestImports", module+"...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs[strings.TrimPrefix(p.ImportPath, module)] = p
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found only %d packages; is the test running inside the module?", len(pkgs))
	}
	return pkgs
}

// imports yields each module-internal import of p, saying whether it comes
// from a test file.
func imports(p pkg) map[string]bool {
	out := map[string]bool{}
	for _, list := range [][]string{p.Imports, p.TestImports, p.XTestImports} {
		for _, imp := range list {
			if rel, ok := strings.CutPrefix(imp, module); ok {
				out[rel] = true
			}
		}
	}
	return out
}

// targetImporters may import a concrete target package besides the wiring
// and the target's own tests, each with the reason. Remove an entry when
// its reason goes away; the test fails on entries no longer needed.
var targetImporters = map[string]string{
	// Benchmarks measure one target's own code paths directly.
	"test/bench/controller": "benchmark",
	"test/bench/mlflow":     "benchmark of the mlflow target",
	"test/bench/plan":       "benchmark of every target against its server",
	"test/bench/s3copy":     "benchmark of the s3 target's copies",
}

func TestOnlyTheWiringImportsConcreteTargets(t *testing.T) {
	pkgs := listPackages(t)
	var targets []string
	for rel := range pkgs {
		if strings.HasPrefix(rel, "internal/target/") && strings.Count(rel, "/") == 2 {
			targets = append(targets, rel)
		}
	}
	if len(targets) != 3 {
		t.Fatalf("target packages %v; want mlflow, kserve and s3 under internal/target", targets)
	}
	used := map[string]bool{}
	for rel, p := range pkgs {
		for imp := range imports(p) {
			if !slices.Contains(targets, imp) || rel == imp || rel == "internal/wiring" {
				continue
			}
			if _, ok := targetImporters[rel]; ok {
				used[rel] = true
				continue
			}
			t.Errorf("%s imports the concrete target %s: ask internal/wiring for targets and reconciler for capabilities (As)", rel, imp)
		}
	}
	for rel, why := range targetImporters {
		if !used[rel] {
			t.Errorf("%s is allowed to import a target (%s) but no longer does: remove the exemption", rel, why)
		}
	}
}

func TestCommandsDoNotImportEachOther(t *testing.T) {
	pkgs := listPackages(t)
	isCommand := func(rel string) bool {
		return path.Dir(rel) == "internal/cmd"
	}
	for rel, p := range pkgs {
		// root assembles the command tree; that is its job.
		if !isCommand(rel) || rel == "internal/cmd/root" {
			continue
		}
		for imp := range imports(p) {
			if isCommand(imp) && imp != rel {
				t.Errorf("%s imports %s: move what both need to a shared package (internal/wiring, internal/controller/apiclient, ...)", rel, imp)
			}
		}
	}
}

// go-git is one package's business (internal/gitsource, with its Reader
// and Writer): a second package opening the clone cache or a checkout is
// how two owners of one cache came about.
func TestOnlyGitsourceImportsGoGit(t *testing.T) {
	pkgs := listPackages(t)
	for rel, p := range pkgs {
		if rel == "internal/gitsource" {
			continue
		}
		for _, list := range [][]string{p.Imports, p.TestImports, p.XTestImports} {
			for _, imp := range list {
				if strings.HasPrefix(imp, "github.com/go-git/go-git/") {
					t.Errorf("%s imports %s: use internal/gitsource (or internal/repo) instead", rel, imp)
				}
			}
		}
	}
}

// The controller is split by job; a file that grows past this is doing
// two jobs again.
func TestControllerFilesStaySmall(t *testing.T) {
	const maxLines = 600
	files, err := filepath.Glob("../../internal/controller/*.go")
	if err != nil || len(files) < 5 {
		t.Fatalf("controller files: %v %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(b, []byte("\n")); n > maxLines {
			t.Errorf("%s has %d lines (more than %d): split it by job", filepath.Base(f), n, maxLines)
		}
	}
}
