package manifest

import (
	"encoding/binary"
	"iter"
	"maps"
	"slices"
)

// Positions maps a field path (e.g. spec.environments.prod.version) to the
// position of its value, so validation can point at what it rejects. The
// zero value has no fields; values are immutable and safe to share.
//
// Every decoded manifest keeps its positions for as long as it is cached,
// which for a controller is every model for good, while they are read only
// when something must be reported at a line. They are therefore kept as
// one string: the paths sorted, each written as the length it shares with
// the path before and the rest (paths repeat their prefixes: spec.,
// spec.environments.prod., ...), with line and column, all as varints. A
// map held a string per field plus the map's slots, about 1.4 KB per model
// (71 MB of a controller's 646 MB live heap at 50,000 models); this is a
// third of the file's size. Lookups scan it, which at a few dozen fields is
// cheap next to the error they are made for.
type Positions struct {
	enc string
	n   int
}

// NewPositions builds Positions from a map of path to position.
func NewPositions(m map[string]Pos) Positions {
	var b []byte
	prev := ""
	for _, k := range slices.Sorted(maps.Keys(m)) {
		shared := commonPrefix(prev, k)
		b = binary.AppendUvarint(b, uint64(shared))
		b = binary.AppendUvarint(b, uint64(len(k)-shared))
		b = append(b, k[shared:]...)
		b = binary.AppendVarint(b, int64(m[k].Line))
		b = binary.AppendVarint(b, int64(m[k].Column))
		prev = k
	}
	return Positions{enc: string(b), n: len(m)}
}

// Len is the number of fields.
func (p Positions) Len() int { return p.n }

// At is the position of field, the zero Pos when it was not seen.
func (p Positions) At(field string) Pos {
	pos, _ := p.Get(field)
	return pos
}

// Get is the position of field and whether it was seen.
func (p Positions) Get(field string) (Pos, bool) {
	// m is how much of field the path before matched. Paths are sorted, so
	// a path that shares less with its predecessor than field did, or
	// sorts after field where they differ, ends the search.
	m := 0
	for e := range p.entries() {
		switch {
		case e.shared > m:
			continue // differs from field where its predecessor did: still before it
		case e.shared < m:
			return Pos{}, false
		}
		l := commonPrefix(e.suffix, field[m:])
		m += l
		switch {
		case l == len(e.suffix) && m == len(field):
			return e.pos, true
		case l == len(e.suffix):
			continue // a prefix of field
		case m == len(field) || e.suffix[l] > field[m]:
			return Pos{}, false
		}
	}
	return Pos{}, false
}

// All yields every field and its position in path order.
func (p Positions) All() iter.Seq2[string, Pos] {
	return func(yield func(string, Pos) bool) {
		var path []byte
		for e := range p.entries() {
			path = append(path[:e.shared], e.suffix...)
			if !yield(string(path), e.pos) {
				return
			}
		}
	}
}

// Map returns the positions as a new map.
func (p Positions) Map() map[string]Pos {
	m := make(map[string]Pos, p.n)
	for k, pos := range p.All() {
		m[k] = pos
	}
	return m
}

type posEntry struct {
	shared int
	suffix string
	pos    Pos
}

func (p Positions) entries() iter.Seq[posEntry] {
	return func(yield func(posEntry) bool) {
		s := p.enc
		for len(s) > 0 {
			var e posEntry
			var shared, size, line, col uint64
			shared, s = uvarint(s)
			size, s = uvarint(s)
			e.shared, e.suffix, s = int(shared), s[:size], s[size:]
			line, s = uvarint(s)
			col, s = uvarint(s)
			e.pos = Pos{Line: int(unzigzag(line)), Column: int(unzigzag(col))}
			if !yield(e) {
				return
			}
		}
	}
}

func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// uvarint reads what binary.AppendUvarint wrote at the start of s, which
// NewPositions wrote: never malformed.
func uvarint(s string) (uint64, string) {
	var x uint64
	for i, shift := 0, uint(0); i < len(s); i, shift = i+1, shift+7 {
		if b := s[i]; b < 0x80 {
			return x | uint64(b)<<shift, s[i+1:]
		} else {
			x |= uint64(b&0x7f) << shift
		}
	}
	return x, ""
}

// unzigzag undoes binary.AppendVarint's encoding of signed values.
func unzigzag(u uint64) int64 {
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}
