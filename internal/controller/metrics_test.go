package controller

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// modelsync_model_info exports one series per key with its version, drops
// a key's series when it goes, and costs the heap little per key: it is
// the only metric with a series per model and environment, and a GaugeVec
// child per series took about 600 bytes (92 MB at 50,000 models × 3).
func TestModelInfoSeriesAndMemory(t *testing.T) {
	m := NewMetrics()
	m.setModelInfo(Key{Model: "a", Environment: "dev"}, 3)
	m.setModelInfo(Key{Model: "a", Environment: "prod"}, 2)
	m.setModelInfo(Key{Model: "a", Environment: "dev"}, 4)
	m.setModelInfo(Key{Model: "b", Environment: "dev"}, 1)
	m.setModelInfo(Key{Model: "b", Environment: "dev"}, 0)
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range families {
		if f.GetName() != "modelsync_model_info" {
			continue
		}
		for _, s := range f.GetMetric() {
			var labels []string
			for _, l := range s.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			got = append(got, fmt.Sprintf("%s %v", strings.Join(labels, ","), s.GetGauge().GetValue()))
		}
	}
	want := []string{"environment=dev,model=a,version=v4 1", "environment=prod,model=a,version=v2 1"}
	if !slices.Equal(got, want) {
		t.Fatalf("model_info series %q, want %q", got, want)
	}

	const n = 20000
	keys := make([]Key, n)
	for i := range keys {
		keys[i] = Key{Model: fmt.Sprintf("model-%05d", i), Environment: "dev"}
	}
	m = NewMetrics()
	before := heapInUse()
	for i, k := range keys {
		m.setModelInfo(k, i%7+1)
	}
	perKey := (heapInUse() - before) / n
	runtime.KeepAlive(m)
	t.Logf("%d heap bytes per key", perKey)
	if perKey > 150 {
		t.Errorf("model_info keeps %d heap bytes per key, want at most 150", perKey)
	}
}

func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
