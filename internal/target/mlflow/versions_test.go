package mlflow_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/internal/target/mlflow"
	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/test/testenv"
)

// The S3 target listed versions model by model: a registered-model read and
// a version search each, 20,000 requests per resync at 10,000 models.
// ListVersionsOf reads what ListVersions reads for every model with the
// MLflow target's paged searches, on every server; a model that does not
// exist is left out.
func TestListVersionsOfCostsFewRequests(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testenv.MLflow) {
		const models, versions = 12, 3
		admin := client(t, s, s.URL, nil)
		ctx := context.Background()
		prefix := testenv.UniqueName("many")
		var names []string
		for i := range models {
			name := fmt.Sprintf("%s-%02d", prefix, i)
			names = append(names, name)
			registerVersions(t, admin, name, versions)
			if err := admin.SetAlias(ctx, name, "prod", 1+i%versions); err != nil {
				t.Fatal(err)
			}
			if i%4 == 0 {
				if err := admin.SetModelVersionTag(ctx, name, 1, mlflowclient.TagArchivedAt, "2026-01-02T03:04:05Z"); err != nil {
					t.Fatal(err)
				}
			}
		}
		var mu sync.Mutex
		reads := map[string]int{}
		c := countingClient(t, s, func(endpoint string) {
			mu.Lock()
			reads[endpoint]++
			mu.Unlock()
		})
		l := mlflow.VersionLister{Client: c}
		got, err := l.ListVersionsOf(ctx, append(names, prefix+"-missing"))
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		total := 0
		for _, n := range reads {
			total += n
		}
		t.Logf("%s: %d requests for %d models: %v", s.Name, total, models, reads)
		mu.Unlock()
		if total > 4 {
			t.Errorf("listing %d models' versions sent %d requests, want at most 4 (capabilities, registered models, versions)", models, total)
		}
		if _, ok := got[prefix+"-missing"]; ok {
			t.Error("a model that does not exist was listed")
		}
		for _, n := range names {
			want, err := l.ListVersions(ctx, n)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(sortedVersions(got[n]), sortedVersions(want)) {
				t.Errorf("%s:\n got %+v\nwant %+v (ListVersions)", n, got[n], want)
			}
		}
		if len(got) != models {
			t.Errorf("listed %d models, want %d", len(got), models)
		}
	})
}

func sortedVersions(vs []reconciler.RegistryVersion) []reconciler.RegistryVersion {
	out := make([]reconciler.RegistryVersion, len(vs))
	for _, v := range vs {
		if v.Version >= 1 && v.Version <= len(vs) {
			out[v.Version-1] = v
		}
	}
	return out
}

// registerVersions registers model name with versions 1..n, each with its
// own artifact source.
func registerVersions(t *testing.T, admin *mlflowclient.Client, name string, n int) {
	t.Helper()
	ctx := context.Background()
	if _, err := admin.CreateRegisteredModel(ctx, mlflowclient.CreateRegisteredModelRequest{Name: name}); err != nil {
		t.Fatal(err)
	}
	for v := 1; v <= n; v++ {
		if _, err := admin.CreateModelVersion(ctx, mlflowclient.CreateModelVersionRequest{Name: name, Source: fmt.Sprintf("s3://artifacts/%s/v%d", name, v)}); err != nil {
			t.Fatal(err)
		}
	}
}

// countingClient is a client of s that calls count with the endpoint of
// every request it makes.
func countingClient(t *testing.T, s *testenv.MLflow, count func(endpoint string)) *mlflowclient.Client {
	t.Helper()
	c, err := mlflowclient.New(mlflowclient.Config{TrackingURI: s.URL, Username: s.Username, Password: s.Password, Timeout: 30 * time.Second,
		Observe: func(_, endpoint string, _ int, _ time.Duration) { count(endpoint) }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
