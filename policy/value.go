package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/valyala/fastjson"
)

// inputValue converts the input to OPA's value form once per evaluation.
//
// The obvious route, ast.InterfaceToValue, decodes the JSON into
// map[string]any first and then copies that into terms; for a pull request
// in a repository of a thousand models that intermediate copy was most of
// the evaluation time. Here JSON is parsed once and its terms built
// directly, numbers kept in their exact JSON text as OPA does.
//
// Manifests are converted one by one, and a model whose manifest is the
// same before and after the pull request gets one term for both. The rules' "did this model change" comparison then stops at
// pointer equality instead of walking both manifests, which for a large
// repository with a small pull request is most of the work.
func (e *Engine) inputValue(in *Input) (ast.Value, error) {
	s, _ := e.scratch.Get().(*scratch)
	if s == nil {
		s = &scratch{}
	}
	defer e.scratch.Put(s)
	c := converter{strings: map[string]*ast.Term{}, s: s}

	rest := *in
	rest.Models = map[string]ModelDoc{}
	top, err := c.encode(&s.buf, &rest)
	if err != nil {
		return nil, err
	}
	obj, ok := top.Value.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("converting input: encoded as %s, not an object", ast.ValueName(top.Value))
	}
	models := make([][2]*ast.Term, 0, len(in.Models))
	for name, m := range in.Models {
		if err := encodeJSON(&s.prev, m.Before); err != nil {
			return nil, fmt.Errorf("model %s: before: %w", name, err)
		}
		before, err := c.manifest(e.manifests, s.prev.Bytes())
		if err != nil {
			return nil, fmt.Errorf("model %s: before: %w", name, err)
		}
		after := before
		if m.After != m.Before && !reflect.DeepEqual(m.After, m.Before) {
			if err := encodeJSON(&s.buf, m.After); err != nil {
				return nil, fmt.Errorf("model %s: after: %w", name, err)
			}
			// Values that differ in Go (nil or empty) may still encode the same.
			if !bytes.Equal(s.buf.Bytes(), s.prev.Bytes()) {
				if after, err = c.manifest(e.manifests, s.buf.Bytes()); err != nil {
					return nil, fmt.Errorf("model %s: after: %w", name, err)
				}
			}
		}
		lines := ast.NullTerm()
		if m.Lines != nil {
			pairs := make([][2]*ast.Term, 0, len(m.Lines))
			for field, line := range m.Lines {
				pairs = append(pairs, [2]*ast.Term{c.str([]byte(field)), ast.InternedTerm(line)})
			}
			lines = ast.ObjectTerm(pairs...)
		}
		models = append(models, [2]*ast.Term{c.str([]byte(name)), ast.ObjectTerm(
			[2]*ast.Term{c.str([]byte("before")), before},
			[2]*ast.Term{c.str([]byte("after")), after},
			[2]*ast.Term{c.str([]byte("file")), c.str([]byte(m.File))},
			[2]*ast.Term{c.str([]byte("lines")), lines},
		)})
	}
	obj.Insert(ast.InternedTerm("models"), ast.ObjectTerm(models...))
	return obj, nil
}

// scratch is the reusable state of one input conversion. Strings in the
// resulting terms are copies, so nothing refers to it after conversion.
type scratch struct {
	buf, prev bytes.Buffer
	parser    fastjson.Parser
}

func encodeJSON(buf *bytes.Buffer, v any) error {
	buf.Reset()
	if err := json.NewEncoder(buf).Encode(v); err != nil {
		return fmt.Errorf("encoding input: %w", err)
	}
	return nil
}

// converter shares one term among equal short strings: object keys and
// values such as environment names repeat in every model of the input.
// Terms are never mutated during evaluation (OPA interns common ones
// globally the same way), so sharing is safe.
type converter struct {
	strings map[string]*ast.Term
	s       *scratch
}

// encode writes v as JSON into buf and converts it; buf keeps the bytes.
func (c *converter) encode(buf *bytes.Buffer, v any) (*ast.Term, error) {
	if err := encodeJSON(buf, v); err != nil {
		return nil, err
	}
	return c.parse(buf.Bytes())
}

func (c *converter) parse(raw []byte) (*ast.Term, error) {
	v, err := c.s.parser.ParseBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("converting input: %w", err)
	}
	return c.term(v)
}

// maxSharedString bounds the strings worth sharing; long ones rarely repeat.
const maxSharedString = 64

func (c *converter) str(b []byte) *ast.Term {
	if len(b) > maxSharedString {
		return ast.StringTerm(string(b))
	}
	if t, ok := c.strings[string(b)]; ok {
		return t
	}
	t := ast.StringTerm(string(b))
	c.strings[string(b)] = t
	return t
}

func (c *converter) term(v *fastjson.Value) (*ast.Term, error) {
	if v.Type() == fastjson.TypeString {
		b, err := v.StringBytes()
		if err != nil {
			return nil, err
		}
		return c.str(b), nil
	}
	x, err := c.value(v)
	if err != nil {
		return nil, err
	}
	return ast.NewTerm(x), nil
}

func (c *converter) value(v *fastjson.Value) (ast.Value, error) {
	switch v.Type() {
	case fastjson.TypeObject:
		o, err := v.Object()
		if err != nil {
			return nil, err
		}
		pairs := make([][2]*ast.Term, 0, o.Len())
		o.Visit(func(k []byte, x *fastjson.Value) {
			if err != nil {
				return
			}
			var xt *ast.Term
			if xt, err = c.term(x); err == nil {
				pairs = append(pairs, [2]*ast.Term{c.str(k), xt})
			}
		})
		if err != nil {
			return nil, err
		}
		return ast.NewObject(pairs...), nil
	case fastjson.TypeArray:
		items, err := v.Array()
		if err != nil {
			return nil, err
		}
		terms := make([]*ast.Term, len(items))
		for i, x := range items {
			if terms[i], err = c.term(x); err != nil {
				return nil, err
			}
		}
		return ast.NewArray(terms...), nil
	case fastjson.TypeString:
		return c.str(v.GetStringBytes()).Value, nil
	case fastjson.TypeNumber:
		return ast.Number(v.MarshalTo(nil)), nil
	case fastjson.TypeTrue:
		return ast.Boolean(true), nil
	case fastjson.TypeFalse:
		return ast.Boolean(false), nil
	case fastjson.TypeNull:
		return ast.Null{}, nil
	}
	return nil, fmt.Errorf("converting input: unexpected JSON type %s", v.Type())
}

// manifest converts one encoded manifest, reusing the term of an earlier
// evaluation when the bytes are identical: the base branch's manifests are
// the same for every pull request against it and for every re-evaluation of
// one pull request.
func (c *converter) manifest(cache *termCache, raw []byte) (*ast.Term, error) {
	if cache == nil {
		return c.parse(raw)
	}
	h := xxhash.Sum64(raw)
	if t, ok := cache.get(h, raw); ok {
		return t, nil
	}
	t, err := c.parse(raw)
	if err != nil {
		return nil, err
	}
	cache.put(h, raw, t)
	return t, nil
}

// maxCachedTerms bounds termCache: about the manifests of a few revisions
// of a large repository. A full cache is emptied rather than managed as an
// LRU; the next evaluations refill it with what is current.
const maxCachedTerms = 8192

// termCache maps the exact JSON of a manifest to its term. A hit requires
// equal bytes, not only an equal hash, so a collision can never substitute
// another manifest. Terms are immutable once built, so sharing them across
// evaluations and goroutines is safe.
type termCache struct {
	mu      sync.Mutex
	entries map[uint64]cachedTerm
}

type cachedTerm struct {
	raw  []byte
	term *ast.Term
}

func newTermCache() *termCache { return &termCache{entries: map[uint64]cachedTerm{}} }

func (c *termCache) get(h uint64, raw []byte) (*ast.Term, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[h]
	if !ok || !bytes.Equal(e.raw, raw) {
		return nil, false
	}
	return e.term, true
}

func (c *termCache) put(h uint64, raw []byte, t *ast.Term) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCachedTerms {
		clear(c.entries)
	}
	c.entries[h] = cachedTerm{raw: bytes.Clone(raw), term: t}
}
