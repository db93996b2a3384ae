package analysis

import (
	"testing"
	"time"
)

// BenchmarkLook is the cost of one look for the benchmark's configuration
// (three steps, two metrics), evaluated on the last step so all three
// windows enter the likelihood.
func BenchmarkLook(b *testing.B) {
	a, err := New(Config{
		Steps:   []int{10, 25, 50},
		Metrics: []Metric{{Name: "errors", Margin: 1.2}, {Name: "latency", Margin: 1.2}},
	})
	if err != nil {
		b.Fatal(err)
	}
	st := a.Start(t0)
	for i := range 2 {
		if st, _, err = a.Look(st, look(t0.Add(time.Duration(i+1)*time.Minute), small, small)); err != nil {
			b.Fatal(err)
		}
		if st, err = a.Advance(st, t0.Add(time.Duration(i+1)*time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
	l := look(t0.Add(time.Hour), arms(50, 5000, 250, 5000), arms(250, 5000, 1250, 5000))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := a.Look(st, l); err != nil {
			b.Fatal(err)
		}
	}
}
