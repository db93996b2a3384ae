package controller

import (
	"testing"

	"github.com/modelsync/modelsync/reconciler"
)

func TestCanaryStatusCompact(t *testing.T) {
	split := []reconciler.TrafficSplit{
		{Revision: "m-predictor-00001", Tag: "prev", Percent: 80},
		{Revision: "m-predictor-00002", Tag: "latest", Percent: 20, Latest: true},
	}
	for _, tc := range []struct {
		name    string
		canary  reconciler.DesiredCanary
		traffic []reconciler.TrafficSplit
		want    string
	}{
		{"rolling to the next step", reconciler.DesiredCanary{Version: 4, Weight: 50, Steps: []int{20, 50, 80, 100}}, split, "v4 20%→50% (2/4)"},
		{"at its step", reconciler.DesiredCanary{Version: 4, Weight: 20, Steps: []int{20, 50}}, split, "v4 20% (1/2)"},
		{"no steps", reconciler.DesiredCanary{Version: 7, Weight: 10}, nil, "v7 10%"},
		// One revision at 100% means the canary is not rolled out yet,
		// not that it takes all traffic.
		{"not rolled out", reconciler.DesiredCanary{Version: 4, Weight: 20, Steps: []int{20}},
			[]reconciler.TrafficSplit{{Revision: "m-predictor-00001", Percent: 100, Latest: true}}, "v4 20% (1/1)"},
	} {
		cs := canaryStatus(&tc.canary, tc.traffic)
		if got := cs.Compact(); got != tc.want {
			t.Errorf("%s: Compact() = %q, want %q", tc.name, got, tc.want)
		}
		if cs.Steps == nil || cs.Traffic == nil {
			t.Errorf("%s: nil lists in %+v", tc.name, cs)
		}
	}
}

func TestLabelVersion(t *testing.T) {
	for label, want := range map[string]int{"v3": 3, "v3 (canary v4 at 20%)": 3, "none": 0, "out of sync": 0, "unknown": 0, "-": 0, "v": 0} {
		if got := labelVersion(label); got != want {
			t.Errorf("labelVersion(%q) = %d, want %d", label, got, want)
		}
	}
}
