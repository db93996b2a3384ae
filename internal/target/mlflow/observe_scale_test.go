package mlflow_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/modelsync/modelsync/internal/target/mlflow"
	"github.com/modelsync/modelsync/test/testenv"
)

// Observing many models costs a few version searches on every server: on
// MLflow 2.x, which filters versions by one name at a time, it was one
// search per model (10,000 per resync at 10,000 models). Now a paged
// search of the models' common name prefix reads them all; MLflow 3 still
// batches names with IN. The plan built from it sees every version.
func TestObservingManyModelsCostsFewVersionSearches(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testenv.MLflow) {
		const models, versions = 12, 3
		admin := client(t, s, s.URL, nil)
		prefix := testenv.UniqueName("scan")
		want := map[string][]env{}
		for i := range models {
			name := fmt.Sprintf("%s-%02d", prefix, i)
			registerVersions(t, admin, name, versions)
			want[name] = []env{{"dev", versions, 0}, {"staging", 1 + i%versions, 0}}
		}
		var mu sync.Mutex
		searches := 0
		c := countingClient(t, s, func(endpoint string) {
			if strings.Contains(endpoint, "model-versions/search") {
				mu.Lock()
				searches++
				mu.Unlock()
			}
		})
		tg := mlflow.New(c)
		d := desired(testConfig, want)
		p := plan(t, tg, d)
		mu.Lock()
		got := searches
		mu.Unlock()
		if got > 2 {
			t.Errorf("observing %d models sent %d version searches, want at most 2", models, got)
		}
		// Every version was seen: the plan sets aliases and refuses none.
		if len(p.Errors()) > 0 {
			t.Fatalf("plan errors (versions not observed?): %v", p.Errors())
		}
		apply(t, tg, p)
		expectConverged(t, tg, d, "apply")
		t.Logf("%s: %d version searches for %d models", s.Name, got, models)
	})
}
