package validate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/manifest"
)

// The documents whose YAML examples must hold. By the README's
// convention every ```yaml block starts with a comment naming its path;
// paths of a models repository (modelsync.yaml, models/...) are assembled
// into one and validated, others (an install kustomization) only parsed.
var readmes = []string{"../../../README.md", "../../../deploy/README.md"}

type yamlBlock struct {
	doc, path string
	line      int
	body      []byte
}

// yamlBlocks extracts the ```yaml blocks of a Markdown file.
func yamlBlocks(t *testing.T, file string) []yamlBlock {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []yamlBlock
	var cur *yamlBlock
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```yaml":
			cur = &yamlBlock{doc: file, line: n}
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			if cur.path == "" && len(cur.body) == 0 {
				p, ok := strings.CutPrefix(line, "# ")
				if !ok || strings.ContainsAny(strings.TrimSpace(p), " \t") {
					t.Errorf("%s:%d: a YAML example must start with a comment naming its path, e.g. # models/<name>/model.yaml; got %q", file, n, line)
				}
				cur.path = strings.TrimSpace(p)
			}
			cur.body = append(cur.body, line+"\n"...)
		}
	}
	if cur != nil {
		t.Errorf("%s:%d: unterminated code block", file, cur.line)
	}
	return blocks
}

func modelsRepoPath(p string) bool {
	return p == manifest.ConfigFile || strings.HasPrefix(p, manifest.ModelsDir+"/")
}

func TestReadmeExamplesFormAValidRepository(t *testing.T) {
	dir := t.TempDir()
	seen := map[string]string{}
	for _, doc := range readmes {
		for _, b := range yamlBlocks(t, doc) {
			where := b.doc + ":" + filepath.Base(b.path)
			if !modelsRepoPath(b.path) {
				// Not a models repository file: it must still parse.
				dec := yaml.NewDecoder(bytes.NewReader(b.body))
				for {
					var n yaml.Node
					if err := dec.Decode(&n); errors.Is(err, io.EOF) {
						break
					} else if err != nil {
						t.Errorf("%s (block at line %d): %v", where, b.line, err)
						break
					}
				}
				continue
			}
			if other, dup := seen[b.path]; dup {
				t.Errorf("%s (block at line %d) and %s both claim %s", b.doc, b.line, other, b.path)
				continue
			}
			seen[b.path] = b.doc
			target := filepath.Join(dir, filepath.FromSlash(path.Clean(b.path)))
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(target, b.body, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The examples must show a whole repository, not just pass because
	// there is little to check.
	var kinds []string
	for p := range seen {
		kinds = append(kinds, path.Base(p))
	}
	for _, want := range []string{"modelsync.yaml", "model.yaml", "kustomization.yaml", "inferenceservice.yaml"} {
		if !strings.Contains(strings.Join(kinds, " "), want) {
			t.Errorf("the README examples show no %s", want)
		}
	}

	var out bytes.Buffer
	opts := &Options{IO: cmdutil.IOStreams{Out: &out, ErrOut: io.Discard}, Dir: dir, Output: cmdutil.FormatJSON, Branch: "main"}
	err := Run(context.Background(), opts)
	var rep Report
	if jerr := json.Unmarshal(out.Bytes(), &rep); jerr != nil {
		t.Fatalf("validate output: %v\n%s", jerr, out.String())
	}
	for _, p := range rep.Problems {
		t.Errorf("README example %s", p.Error())
	}
	for _, w := range rep.Warnings {
		t.Errorf("README example, not checked: %s", w.Error())
	}
	if err != nil || !rep.Valid || len(rep.Models) == 0 {
		t.Fatalf("validate: err %v valid %v models %v", err, rep.Valid, rep.Models)
	}
}
