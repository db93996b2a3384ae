package advisory

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Requirement is one package a model version needs.
type Requirement struct {
	// Name as written; compare with NormalizeName.
	Name string `json:"name"`
	// Version is the exact version when Pinned, else "".
	Version string `json:"version,omitempty"`
	// Spec is the requirement as written (without comments).
	Spec string `json:"spec"`
	// Pinned is true for name==version (no wildcard) or name===version, and
	// for conda's name=version / name==version without wildcard.
	Pinned bool `json:"pinned"`
	// Source is the file (requirements.txt, conda.yaml, python_env.yaml) or
	// "spec.dependencies"; Line is its 1-based line when known.
	Source string `json:"source"`
	Line   int    `json:"line,omitempty"`
}

// PyPI requirement (PEP 508 without URLs): name, optional extras, the
// version specifiers, optional markers after ';'.
var pipReq = regexp.MustCompile(`^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[[^\]]*\])?\s*(.*)$`)

// exact matches one == or === specifier with a version and nothing else.
var exact = regexp.MustCompile(`^(===?)\s*([A-Za-z0-9][A-Za-z0-9.+!_-]*)$`)

// ParsePipRequirement parses one requirement line (comment and markers
// removed). ok is false for lines that are not a package: options (-r,
// --index-url…), URLs and paths, which name no PyPI version to check.
func ParsePipRequirement(line string) (Requirement, bool) {
	s := strings.TrimSpace(stripComment(line))
	if s == "" || strings.HasPrefix(s, "-") || strings.Contains(s, "://") || strings.HasPrefix(s, ".") || strings.HasPrefix(s, "/") {
		return Requirement{}, false
	}
	spec := s
	if i := strings.Index(s, ";"); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	if strings.Contains(s, " @ ") || strings.Contains(s, "@ ") {
		return Requirement{}, false // a direct reference: name @ url
	}
	m := pipReq.FindStringSubmatch(s)
	if m == nil {
		return Requirement{}, false
	}
	r := Requirement{Name: m[1], Spec: spec}
	if e := exact.FindStringSubmatch(strings.TrimSpace(m[2])); e != nil && !strings.Contains(e[2], "*") {
		r.Pinned, r.Version = true, e[2]
	}
	return r, true
}

func stripComment(s string) string {
	// pip: a # starts a comment at line start or after whitespace.
	if strings.HasPrefix(strings.TrimSpace(s), "#") {
		return ""
	}
	if i := strings.Index(s, " #"); i >= 0 {
		return s[:i]
	}
	if i := strings.Index(s, "\t#"); i >= 0 {
		return s[:i]
	}
	return s
}

// ParseRequirementsTxt reads a requirements.txt. Continuation lines (a
// trailing backslash) are joined; options and includes are skipped (an
// included file is read on its own when it is an artifact).
func ParseRequirementsTxt(b []byte, source string) []Requirement {
	var out []Requirement
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	lineNo, start := 0, 0
	var cur strings.Builder
	for sc.Scan() {
		lineNo++
		t := sc.Text()
		if cur.Len() == 0 {
			start = lineNo
		}
		if strings.HasSuffix(t, "\\") {
			cur.WriteString(strings.TrimSuffix(t, "\\"))
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(t)
		if r, ok := ParsePipRequirement(cur.String()); ok {
			r.Source, r.Line = source, start
			out = append(out, r)
		}
		cur.Reset()
	}
	return out
}

// conda MatchSpec: name, then an optional version (=1.2, ==1.2, >=1.2,
// 1.2.*), then an optional build string.
var condaReq = regexp.MustCompile(`^(?:[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*::)?([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*)$`)

// ParseCondaSpec parses one conda dependency, e.g. "numpy=1.26.4",
// "conda-forge::scikit-learn==1.5.2=py310h…", "python>=3.10".
func ParseCondaSpec(spec string) (Requirement, bool) {
	s := strings.TrimSpace(stripComment(spec))
	m := condaReq.FindStringSubmatch(s)
	if m == nil {
		return Requirement{}, false
	}
	r := Requirement{Name: m[1], Spec: s}
	v := strings.TrimSpace(m[2])
	if strings.HasPrefix(v, "=") && !strings.ContainsAny(v, "<>!,|*") {
		v = strings.TrimLeft(v, "=")
		// name=1.2=build or name==1.2 build
		v, _, _ = strings.Cut(v, "=")
		v, _, _ = strings.Cut(v, " ")
		if v != "" {
			r.Pinned, r.Version = true, v
		}
	} else if v != "" && !strings.ContainsAny(v, "<>=!,|* ") {
		// "numpy 1.26.4" (space-separated MatchSpec) is an exact version too.
		r.Pinned, r.Version = true, v
	}
	return r, true
}

// ParseCondaYAML reads MLflow's conda.yaml: conda specs and the pip
// section's requirements.
func ParseCondaYAML(b []byte, source string) ([]Requirement, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if len(root.Content) == 0 {
		return nil, nil
	}
	doc := root.Content[0]
	deps := mapValue(doc, "dependencies")
	if deps == nil {
		return nil, nil
	}
	if deps.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s:%d: dependencies is not a list", source, deps.Line)
	}
	var out []Requirement
	for _, d := range deps.Content {
		switch d.Kind {
		case yaml.ScalarNode:
			if r, ok := ParseCondaSpec(d.Value); ok && r.Name != "pip" && r.Name != "python" {
				r.Source, r.Line = source, d.Line
				out = append(out, r)
			}
		case yaml.MappingNode:
			if pip := mapValue(d, "pip"); pip != nil && pip.Kind == yaml.SequenceNode {
				for _, p := range pip.Content {
					if r, ok := ParsePipRequirement(p.Value); ok {
						r.Source, r.Line = source, p.Line
						out = append(out, r)
					}
				}
			}
		}
	}
	return out, nil
}

// ParsePythonEnv reads MLflow's python_env.yaml: build_dependencies and
// dependencies (whose "-r requirements.txt" points at the file read on its
// own).
func ParsePythonEnv(b []byte, source string) ([]Requirement, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if len(root.Content) == 0 {
		return nil, nil
	}
	var out []Requirement
	for _, key := range []string{"build_dependencies", "dependencies"} {
		seq := mapValue(root.Content[0], key)
		if seq == nil || seq.Kind != yaml.SequenceNode {
			continue
		}
		for _, p := range seq.Content {
			if r, ok := ParsePipRequirement(p.Value); ok {
				r.Source, r.Line = source, p.Line
				out = append(out, r)
			}
		}
	}
	return out, nil
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// ParseSpecDependencies reads a manifest's spec.dependencies.
func ParseSpecDependencies(deps []string) []Requirement {
	var out []Requirement
	for _, d := range deps {
		if r, ok := ParsePipRequirement(d); ok {
			r.Source = "spec.dependencies"
			out = append(out, r)
		}
	}
	return out
}

// RequirementFiles are the files MLflow logs beside a model that name its
// dependencies, by base name.
var requirementFiles = map[string]bool{"requirements.txt": true, "conda.yaml": true, "python_env.yaml": true}

// IsRequirementFile reports whether an artifact path (slash-separated) is
// one of MLflow's dependency files.
func IsRequirementFile(path string) bool {
	i := strings.LastIndex(path, "/")
	return requirementFiles[path[i+1:]]
}

// ParseRequirementFile dispatches on the base name of path.
func ParseRequirementFile(path string, b []byte) ([]Requirement, error) {
	switch path[strings.LastIndex(path, "/")+1:] {
	case "requirements.txt":
		return ParseRequirementsTxt(b, path), nil
	case "conda.yaml":
		return ParseCondaYAML(b, path)
	case "python_env.yaml":
		return ParsePythonEnv(b, path)
	}
	return nil, fmt.Errorf("%s: not a dependency file", path)
}
