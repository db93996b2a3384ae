package mlflowclient_test

import (
	"testing"

	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/test/testenv"
)

// SearchRuns finds a run again by a tag whose key holds dots (quoted with
// backticks in the filter), the way canary analysis finds its run after a
// restart; GetMetricHistory returns every step of a metric.
func TestLiveSearchRunsByTagAndMetricHistory(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testenv.MLflow) {
		ctx := t.Context()
		c := liveClient(t, s, nil)
		expID, err := c.EnsureExperiment(ctx, testenv.UniqueName("runs"))
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, v := range []string{"a/1", "b'2"} {
			run, err := c.CreateRun(ctx, mlflowclient.CreateRunRequest{ExperimentID: expID, Tags: map[string]string{"x.canary.id": v}})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, run.Info.RunID)
		}
		for i, filter := range []string{"tags.`x.canary.id` = 'a/1'", `tags.` + "`x.canary.id`" + ` = 'b\'2'`} {
			runs, next, err := c.SearchRuns(ctx, mlflowclient.SearchRunsRequest{ExperimentIDs: []string{expID}, Filter: filter, MaxResults: 10})
			if err != nil {
				t.Fatalf("SearchRuns(%s): %v", filter, err)
			}
			if len(runs) != 1 || runs[0].Info.RunID != ids[i] || next != "" {
				t.Fatalf("SearchRuns(%s) = %+v, next %q; want run %s", filter, runs, next, ids[i])
			}
		}
		ms := []mlflowclient.Metric{{Key: "w", Value: 10, Step: 1}, {Key: "w", Value: 25, Step: 2}}
		if err := c.LogBatch(ctx, ids[0], ms, nil, nil); err != nil {
			t.Fatal(err)
		}
		hist, err := c.GetMetricHistory(ctx, ids[0], "w")
		if err != nil {
			t.Fatal(err)
		}
		if len(hist) != 2 || hist[0].Step+hist[1].Step != 3 || float64(hist[0].Value)+float64(hist[1].Value) != 35 {
			t.Fatalf("history = %+v", hist)
		}
	})
}
