package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Limits that keep a hostile or broken file from exhausting memory or CPU.
// A hand-written manifest is a few kilobytes and a few levels deep.
const (
	MaxFileSize = 1 << 20 // bytes
	MaxDepth    = 32      // nesting of mappings and sequences
	// MaxNodes bounds nodes visited including every alias expansion, which
	// is what defeats "billion laughs" documents.
	MaxNodes = 50_000
)

// Pos is where a value starts in its file.
type Pos struct{ Line, Column int }

// scalarDecoder is implemented by types written as one YAML string.
type scalarDecoder interface{ decodeScalar(string) error }

var scalarDecoderType = reflect.TypeFor[scalarDecoder]()

// errTooLarge stops decoding at once: nothing useful comes after a bomb.
var errTooLarge = errors.New("document too large")

type decoder struct {
	file  string
	errs  ErrorList
	pos   map[string]Pos
	nodes int
}

// decodeStrict decodes one YAML document in data into out (a pointer to a
// struct), refusing unknown fields, wrong types, duplicate keys and
// oversized documents. It returns every problem it found and the positions
// of every field it saw.
func decodeStrict(file string, data []byte, out any) (Positions, ErrorList) {
	pos, errs := decodeStrictMap(file, data, out)
	return NewPositions(pos), errs
}

func decodeStrictMap(file string, data []byte, out any) (map[string]Pos, ErrorList) {
	d := &decoder{file: file, pos: map[string]Pos{}}
	if len(data) > MaxFileSize {
		d.fail(Pos{}, "", fmt.Sprintf("file is %d bytes; at most %d are accepted", len(data), MaxFileSize))
		return d.pos, d.errs
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.fail(Pos{}, "", "file is empty; expected a YAML mapping")
			return d.pos, d.errs
		}
		d.syntaxError(err, data)
		return d.pos, d.errs
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		d.fail(Pos{extra.Line, extra.Column}, "", "expected exactly one YAML document; found a second one (remove the extra ---)")
	} else if !errors.Is(err, io.EOF) {
		d.syntaxError(err, data)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		// "null", "~" or an anchored empty value: a document that says
		// nothing must not pass as a manifest whose fields are all zero.
		d.fail(Pos{root.Line, root.Column}, "", "the document is null; expected a YAML mapping")
		d.errs.Sort()
		return d.pos, d.errs
	}
	func() {
		defer func() {
			if r := recover(); r != nil {
				if r != errTooLarge { //nolint:errorlint // sentinel identity
					panic(r)
				}
				// Half a document is not worth validating: report no
				// positions, so nobody checks the fields it did reach.
				d.pos = map[string]Pos{}
			}
		}()
		d.value(root, reflect.ValueOf(out).Elem(), "", 0)
	}()
	d.errs.Sort()
	return d.pos, d.errs
}

// syntaxError turns the parser's "yaml: line N: msg" into a FieldError.
func (d *decoder) syntaxError(err error, data []byte) {
	d.errs = append(d.errs, SyntaxError(d.file, err, data))
}

// SyntaxError turns a YAML parser error ("yaml: line N: msg") about data,
// the content of file, into a FieldError. The parser reports a tab in
// indentation at the line before the tab (the line it was reading when it
// looked ahead), or at no line at all on the first line; the tab itself is
// what the author must find, so such errors point at it.
func SyntaxError(file string, err error, data []byte) *FieldError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line, col := 0, 1
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.Index(rest, ":"); i > 0 {
			if n, convErr := strconv.Atoi(rest[:i]); convErr == nil {
				line = n
				msg = strings.TrimSpace(rest[i+1:])
			}
		}
	}
	if strings.Contains(msg, "tab character") || strings.Contains(msg, "cannot start any token") {
		if l, c := indentTab(data, max(line, 1)); l > 0 {
			line, col = l, c
		}
	}
	return &FieldError{File: file, Line: line, Column: col, Message: "invalid YAML: " + msg}
}

// indentTab finds the first tab in a line's indentation at or after line
// from (1-based), within the two lines the parser's report can be off by,
// and returns its line and column; 0, 0 when there is none.
func indentTab(data []byte, from int) (int, int) {
	lines := strings.Split(string(data), "\n")
	for n := from; n <= from+1 && n <= len(lines); n++ {
		l := lines[n-1]
		indent := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
		if i := strings.IndexByte(indent, '\t'); i >= 0 {
			return n, i + 1
		}
	}
	return 0, 0
}

func (d *decoder) fail(p Pos, field, msg string) {
	d.errs = append(d.errs, &FieldError{File: d.file, Line: p.Line, Column: p.Column, Field: field, Message: msg})
}

func nodePos(n *yaml.Node) Pos { return Pos{n.Line, n.Column} }

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (d *decoder) value(n *yaml.Node, v reflect.Value, path string, depth int) {
	d.nodes++
	if d.nodes > MaxNodes {
		d.fail(nodePos(n), path, fmt.Sprintf("document expands to more than %d nodes (too many aliases or elements); refusing to read further", MaxNodes))
		panic(errTooLarge)
	}
	if depth > MaxDepth {
		d.fail(nodePos(n), path, fmt.Sprintf("nesting deeper than %d levels", MaxDepth))
		panic(errTooLarge)
	}
	if n.Kind == yaml.AliasNode {
		// Record where the alias was written, then decode what it names.
		d.pos[path] = nodePos(n)
		d.value(n.Alias, v, path, depth+1)
		return
	}
	if path != "" {
		if _, seen := d.pos[path]; !seen {
			d.pos[path] = nodePos(n)
		}
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // leave the zero value; validation reports required fields
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.value(n, v.Elem(), path, depth)
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(scalarDecoderType) {
		s, ok := d.scalarString(n, path, "a string")
		if ok {
			if err := v.Addr().Interface().(scalarDecoder).decodeScalar(s); err != nil {
				d.fail(nodePos(n), path, err.Error())
			}
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.structValue(n, v, path, depth)
	case reflect.Map:
		d.mapValue(n, v, path, depth)
	case reflect.Slice:
		d.sliceValue(n, v, path, depth)
	case reflect.String:
		if s, ok := d.scalarString(n, path, "a string"); ok {
			v.SetString(s)
		}
	case reflect.Int:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			d.fail(nodePos(n), path, "expected an integer, got "+describe(n))
			return
		}
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if err != nil {
			d.fail(nodePos(n), path, "expected an integer, got "+describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
			d.fail(nodePos(n), path, "expected a number, got "+describe(n))
			return
		}
		f, err := strconv.ParseFloat(n.Value, 64)
		if err != nil {
			d.fail(nodePos(n), path, "expected a number, got "+describe(n))
			return
		}
		v.SetFloat(f)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			d.fail(nodePos(n), path, "expected true or false, got "+describe(n))
			return
		}
		v.SetBool(n.Value == "true" || n.Value == "True" || n.Value == "TRUE")
	default:
		panic(fmt.Sprintf("manifest: no decoding for %s", v.Type()))
	}
}

// scalarString accepts only string scalars: an unquoted 1.10 or yes in a
// string field is almost always a mistake that YAML would silently change.
func (d *decoder) scalarString(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		hint := ""
		if n.Kind == yaml.ScalarNode {
			hint = fmt.Sprintf(" (write \"%s\" in quotes if it is meant as text)", n.Value)
		}
		d.fail(nodePos(n), path, "expected "+want+", got "+describe(n)+hint)
		return "", false
	}
	return n.Value, true
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.Tag {
	case "!!str":
		return strconv.Quote(n.Value)
	case "!!int":
		return "integer " + n.Value
	case "!!float":
		return "number " + n.Value
	case "!!bool":
		return "boolean " + n.Value
	case "!!null":
		return "null"
	}
	return n.Tag + " " + n.Value
}

type fieldInfo struct {
	index int
	name  string
}

// structTable is the YAML view of one struct type: its fields by key and
// the keys in order, for "expected one of".
type structTable struct {
	fields map[string]fieldInfo
	names  []string
}

// structTables holds the table of every struct type the two documents
// decode into. It is built once when the package starts and only read
// after that: building a table per decoded mapping was an eighth of the
// desired state's CPU time.
var structTables = buildStructTables(reflect.TypeFor[Model](), reflect.TypeFor[RepoConfig]())

func buildStructTables(roots ...reflect.Type) map[reflect.Type]structTable {
	tables := map[reflect.Type]structTable{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		if reflect.PointerTo(t).Implements(scalarDecoderType) || t.Implements(scalarDecoderType) {
			return
		}
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array:
			walk(t.Elem())
		case reflect.Map:
			walk(t.Key())
			walk(t.Elem())
		case reflect.Struct:
			if _, done := tables[t]; done {
				return
			}
			tables[t] = newStructTable(t)
			for i := range t.NumField() {
				walk(t.Field(i).Type)
			}
		}
	}
	for _, t := range roots {
		walk(t)
	}
	return tables
}

// structFields returns t's table, built on the spot for a type outside
// the two documents (tests decode into their own).
func structFields(t reflect.Type) (map[string]fieldInfo, []string) {
	tab, ok := structTables[t]
	if !ok {
		tab = newStructTable(t)
	}
	return tab.fields, tab.names
}

func newStructTable(t reflect.Type) structTable {
	fields := map[string]fieldInfo{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name[:1]) + f.Name[1:]
		}
		fields[name] = fieldInfo{index: i, name: name}
		names = append(names, name)
	}
	sort.Strings(names)
	return structTable{fields: fields, names: names}
}

// mappingPairs checks that n is a mapping with string keys and no duplicate
// keys, and returns its key/value pairs in file order.
func (d *decoder) mappingPairs(n *yaml.Node, path string, depth int) [][2]*yaml.Node {
	if n.Kind == yaml.AliasNode {
		return d.mappingPairs(n.Alias, path, depth+1)
	}
	if n.Kind != yaml.MappingNode {
		d.fail(nodePos(n), path, "expected a mapping, got "+describe(n))
		return nil
	}
	seen := map[string]*yaml.Node{}
	var pairs [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			d.fail(nodePos(k), path, "merge keys (<<) are not supported; repeat the fields or use an alias for the whole value")
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.fail(nodePos(k), path, "expected a string key, got "+describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.fail(nodePos(k), join(path, k.Value), fmt.Sprintf("duplicate key %q (first defined at line %d)", k.Value, first.Line))
			continue
		}
		seen[k.Value] = k
		pairs = append(pairs, [2]*yaml.Node{k, val})
	}
	return pairs
}

func (d *decoder) structValue(n *yaml.Node, v reflect.Value, path string, depth int) {
	fields, names := structFields(v.Type())
	for _, kv := range d.mappingPairs(n, path, depth) {
		k, val := kv[0], kv[1]
		f, ok := fields[k.Value]
		if !ok {
			d.fail(nodePos(k), join(path, k.Value), fmt.Sprintf("unknown field %q; expected one of: %s", k.Value, strings.Join(names, ", ")))
			continue
		}
		d.keyPos(k, val, join(path, f.name))
		d.value(val, v.Field(f.index), join(path, f.name), depth+1)
	}
}

// keyPos records the key's position for a mapping or list value: a problem
// with a whole block reads best at the line that names it, while a problem
// with a scalar points at the value itself.
func (d *decoder) keyPos(k, val *yaml.Node, path string) {
	for val.Kind == yaml.AliasNode && val.Alias != nil {
		val = val.Alias
	}
	if val.Kind == yaml.MappingNode || val.Kind == yaml.SequenceNode {
		if _, seen := d.pos[path]; !seen {
			d.pos[path] = nodePos(k)
		}
	}
}

func (d *decoder) mapValue(n *yaml.Node, v reflect.Value, path string, depth int) {
	if v.Type().Key().Kind() != reflect.String {
		panic("manifest: only string-keyed maps are supported")
	}
	pairs := d.mappingPairs(n, path, depth)
	if v.IsNil() {
		v.Set(reflect.MakeMapWithSize(v.Type(), len(pairs)))
	}
	for _, kv := range pairs {
		k, val := kv[0], kv[1]
		elem := reflect.New(v.Type().Elem()).Elem()
		d.keyPos(k, val, join(path, k.Value))
		d.value(val, elem, join(path, k.Value), depth+1)
		v.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), elem)
	}
}

func (d *decoder) sliceValue(n *yaml.Node, v reflect.Value, path string, depth int) {
	if n.Kind == yaml.AliasNode {
		d.sliceValue(n.Alias, v, path, depth+1)
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(nodePos(n), path, "expected a list, got "+describe(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		d.value(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i), depth+1)
	}
	v.Set(s)
}
