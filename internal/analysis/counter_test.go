package analysis

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
)

func TestIncrease(t *testing.T) {
	for _, tc := range []struct {
		name       string
		start, now map[string]float64
		want       int64
	}{
		{"plain", map[string]float64{"a": 10}, map[string]float64{"a": 25}, 15},
		{"two pods", map[string]float64{"a": 10, "b": 5}, map[string]float64{"a": 12, "b": 9}, 6},
		// A drop is a reset: the pod restarted and counted 4 since.
		{"reset", map[string]float64{"a": 100}, map[string]float64{"a": 4}, 4},
		// One pod reset, the other kept counting; a summed series would have
		// shown 104→13 and lost both.
		{"reset in one of two", map[string]float64{"a": 100, "b": 4}, map[string]float64{"a": 3, "b": 10}, 9},
		// A new pod's counter started at zero after the baseline.
		{"new series", map[string]float64{"a": 1}, map[string]float64{"a": 2, "b": 7}, 8},
		{"gone series", map[string]float64{"a": 1, "b": 50}, map[string]float64{"a": 2}, 1},
		{"float counters are exact integers", map[string]float64{"a": 0.9999999}, map[string]float64{"a": 3.0000001}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Increase(tc.start, tc.now)
			if err != nil || got != tc.want {
				t.Fatalf("Increase = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
	for _, bad := range []float64{-1, math.NaN(), math.Inf(1)} {
		if _, err := Increase(nil, map[string]float64{"a": bad}); !errors.Is(err, ErrBadSample) {
			t.Errorf("value %v: err %v, want ErrBadSample", bad, err)
		}
	}
	many := map[string]float64{}
	for i := range MaxSeries + 1 {
		many[string(rune('a'+i%26))+string(rune(i))] = 1
	}
	if _, err := Increase(nil, many); !errors.Is(err, ErrTooManySeries) {
		t.Errorf("too many series: err %v", err)
	}
}

// A reset after the counter had climbed past its baseline is invisible to
// two readings but caught by a Counter fed at every look.
func TestCounterCatchesResetBetweenLooks(t *testing.T) {
	var c Counter
	looks := []map[string]float64{
		{"pod": 10}, // baseline
		{"pod": 50}, // +40
		{"pod": 20}, // reset: +20 since
		{"pod": 60}, // +40
		{},          // pod gone, nothing to add
		{"pod2": 5}, // new pod: +5
	}
	for i, l := range looks {
		var err error
		if c, err = c.Observe(l); err != nil {
			t.Fatalf("look %d: %v", i, err)
		}
	}
	if c.Count != 105 || c.Resets != 1 {
		t.Fatalf("Count %d Resets %d, want 105 and 1", c.Count, c.Resets)
	}
	// Two readings alone would see 10 → 60 and report 50.
	if two, _ := Increase(looks[0], looks[3]); two != 50 {
		t.Fatalf("two-point increase %d, want 50", two)
	}
}

// An empty baseline is still a baseline: after a JSON round trip (which
// drops the empty map) the first series must count from zero, not become a
// new baseline.
func TestCounterEmptyBaselineSurvivesJSON(t *testing.T) {
	c, err := Counter{}.Observe(map[string]float64{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back Counter
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	back, err = back.Observe(map[string]float64{"pod": 7})
	if err != nil {
		t.Fatal(err)
	}
	if back.Count != 7 {
		t.Fatalf("Count %d after restart, want 7 (json %s)", back.Count, b)
	}
}
