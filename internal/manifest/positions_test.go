package manifest

import (
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// Positions answers exactly what the map it was built from answers: every
// path present, and nothing for paths around them (prefixes, extensions,
// neighbours in sort order, the empty path).
func TestPositionsMatchTheMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	parts := []string{"spec", "environments", "prod", "dev", "version", "canary", "steps", "a", "ab", "b", "metadata", "name", "[0]", "[1]", "[10]", "é", "x.y"}
	for round := range 300 {
		m := map[string]Pos{}
		var probes []string
		for range rng.IntN(40) {
			var segs []string
			for range 1 + rng.IntN(5) {
				segs = append(segs, parts[rng.IntN(len(parts))])
			}
			k := strings.Join(segs, ".")
			m[k] = Pos{Line: rng.IntN(100000) - 1, Column: rng.IntN(300)}
			probes = append(probes, k, k+".", k[:len(k)-1], k+"a", "", "zzz", "a", strings.Join(segs[:len(segs)-1], "."))
		}
		p := NewPositions(m)
		if p.Len() != len(m) {
			t.Fatalf("round %d: Len %d, want %d", round, p.Len(), len(m))
		}
		for _, k := range probes {
			want, wantOK := m[k]
			got, ok := p.Get(k)
			if got != want || ok != wantOK {
				t.Fatalf("round %d: Get(%q) = %v, %v; want %v, %v (paths %q)", round, k, got, ok, want, wantOK, slices.Sorted(maps.Keys(m)))
			}
			if p.At(k) != want {
				t.Fatalf("round %d: At(%q) = %v, want %v", round, k, p.At(k), want)
			}
		}
		if got := p.Map(); !maps.Equal(got, m) {
			t.Fatalf("round %d: Map() = %v, want %v", round, got, m)
		}
		var order []string
		for k := range p.All() {
			order = append(order, k)
		}
		if !slices.IsSorted(order) {
			t.Fatalf("round %d: All not in path order: %q", round, order)
		}
	}
	if (Positions{}).Len() != 0 || (Positions{}).At("spec") != (Pos{}) {
		t.Fatal("the zero Positions is not empty")
	}
}

// What a decoded manifest keeps of its positions is a fraction of the map
// the decoder builds (and of the file): positions stay live with every
// cached manifest, which for a controller is every model.
func TestPositionsAreCompact(t *testing.T) {
	files, _ := filepath.Glob("../../manifests-example/models/*/model.yaml")
	if len(files) == 0 {
		t.Fatal("no example manifests")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var m Model
		asMap, _ := decodeStrictMap(f, data, &m)
		const copies = 200
		before := heapAlloc()
		kept := make([]map[string]Pos, copies)
		for i := range kept {
			kept[i] = maps.Clone(asMap)
			for k, v := range asMap { // own path strings, as decoding makes them
				delete(kept[i], k)
				kept[i][strings.Clone(k)] = v
			}
		}
		mapBytes := (heapAlloc() - before) / copies
		runtime.KeepAlive(kept)
		before = heapAlloc()
		compact := make([]Positions, copies)
		for i := range compact {
			compact[i] = NewPositions(asMap)
		}
		compactBytes := (heapAlloc() - before) / copies
		runtime.KeepAlive(compact)
		t.Logf("%s: %d fields, %d-byte file: map %d bytes, Positions %d", filepath.Base(filepath.Dir(f)), len(asMap), len(data), mapBytes, compactBytes)
		if compactBytes*4 > mapBytes || compactBytes*2 > int64(len(data)) {
			t.Errorf("%s: Positions take %d bytes, the map %d and the file %d: want at most a quarter of the map and half the file", f, compactBytes, mapBytes, len(data))
		}
		for k, v := range asMap {
			if got, ok := compact[0].Get(k); !ok || got != v {
				t.Errorf("%s: Get(%q) = %v, %v; want %v", f, k, got, ok, v)
			}
		}
	}
}

func heapAlloc() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
