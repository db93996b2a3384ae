package s3

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/test/testenv"
)

// countingHTTP counts the requests an S3 client sends.
type countingHTTP struct {
	next s3.HTTPClient
	n    *atomic.Int64
}

func (c countingHTTP) Do(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.Do(r)
}

// refusingHTTP answers 403 AccessDenied to LISTs of a directory, as a
// bucket policy that allows only each version's prefix would.
type refusingHTTP struct{ next s3.HTTPClient }

func (c refusingHTTP) Do(r *http.Request) (*http.Response, error) {
	if r.URL.Query().Has("start-after") {
		body := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`
		return &http.Response{StatusCode: http.StatusForbidden, Status: "403 Forbidden", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(strings.NewReader(body)),
			ContentLength: int64(len(body)), Request: r}, nil
	}
	return c.next.Do(r)
}

func countingClient(c *s3.Client, n *atomic.Int64) *s3.Client {
	return s3.New(c.Options(), func(o *s3.Options) { o.HTTPClient = countingHTTP{o.HTTPClient, n} })
}

// manyRegistry is a registry that also answers for many models at once,
// counting both kinds of reads, with versionsPerPage versions per simulated
// registry page (the MLflow side's own page bound is tested with the MLflow
// target's VersionLister).
type manyRegistry struct {
	*registry
	one, many atomic.Int64
}

const versionsPerPage = 1000

func (r *manyRegistry) ListVersions(ctx context.Context, registered string) ([]reconciler.RegistryVersion, error) {
	r.one.Add(1)
	return r.registry.ListVersions(ctx, registered)
}

func (r *manyRegistry) ListVersionsOf(_ context.Context, names []string) (map[string][]reconciler.RegistryVersion, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]reconciler.RegistryVersion{}
	versions := 0
	for _, n := range names {
		if vs, ok := r.versions[n]; ok {
			out[n] = vs
			versions += len(vs)
		}
	}
	r.many.Add(int64(1 + versions/versionsPerPage))
	return out, nil
}

// objectsOf renders an observation as model -> prefix -> keys.
func objectsOf(o *Observation) map[string]map[string][]string {
	out := map[string]map[string][]string{}
	for _, m := range o.Models {
		if m.Error != "" {
			out[m.Model] = map[string][]string{"error": {m.Error}}
			continue
		}
		out[m.Model] = map[string][]string{}
		for _, p := range m.Prefixes {
			keys := []string{}
			for _, ob := range p.Objects {
				keys = append(keys, ob.Key)
			}
			out[m.Model][p.Location.String()] = keys
		}
	}
	return out
}

// Observing N models cost a registered-model read and a version search per
// model and a LIST per version: ~5 requests per model per pass, 50,000 at
// 10,000 models. Now the registry is read for all models at once and each
// model's side-by-side versions in one LIST. The objects each prefix owns
// are the same as listed prefix by prefix, whatever shares the directory.
func TestObserveRequestsDoNotGrowPerVersion(t *testing.T) {
	for _, s := range []struct {
		name string
		srv  func(*testing.T) *testenv.S3
	}{
		{"minio", func(t *testing.T) *testenv.S3 { return testenv.NewMinIO(t) }},
		{"moto", func(t *testing.T) *testenv.S3 { return testenv.NewMoto(t, testenv.MotoOptions{}) }},
	} {
		t.Run(s.name, func(t *testing.T) {
			srv := s.srv(t)
			c := srv.Client(t.Context())
			if err := srv.MakeBucket(t.Context(), "models", false); err != nil {
				t.Fatal(err)
			}
			now := time.Now().UTC()
			const models, versions = 24, 3
			reg := &manyRegistry{registry: newRegistry()}
			want := map[string]map[string][]string{}
			var ds []reconciler.DesiredModel
			put := func(key string) { putObject(t, c, "models", key, randomBytes(16, 1)) }
			for i := range models {
				name := fmt.Sprintf("m%02d", i)
				want[name] = map[string][]string{}
				for v := 1; v <= versions; v++ {
					prefix := fmt.Sprintf("models/%s/%d", name, v)
					reg.add(name+"-registered", reconciler.RegistryVersion{Version: v, Created: now.Add(-time.Hour)}, "s3://models/"+prefix)
					keys := []string{prefix + "/MLmodel", prefix + "/model.pkl"}
					for _, k := range keys {
						put(k)
					}
					want[name]["s3://models/"+prefix] = keys
				}
				// Neighbours of the versions that belong to none: an
				// unregistered version, a longer name, a file beside them.
				put(fmt.Sprintf("models/%s/1.tmp/x", name))
				put(fmt.Sprintf("models/%s/10/model.pkl", name))
				put(fmt.Sprintf("models/%s/README", name))
				ds = append(ds, model(name, minioLifecycle(), env("prod", versions)))
			}
			var n atomic.Int64
			tg, err := New(Config{Client: countingClient(c, &n), Locator: reg, Versions: reg, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			obs := mustObserve(t, tg, desiredState(ds...))
			if got := objectsOf(obs); !reflect.DeepEqual(got, want) {
				t.Errorf("observed objects:\n got %v\nwant %v", got, want)
			}
			// One LIST per model (its objects fit a page), one registry
			// read for all: per-model growth beyond that fails.
			if got := n.Load(); got > models {
				t.Errorf("%d models × %d versions: %d S3 requests, want at most %d (one LIST per model)", models, versions, got, models)
			}
			if one, many := reg.one.Load(), reg.many.Load(); one != 0 || many != 1 {
				t.Errorf("registry reads: %d per model, %d for all; want 0 and 1", one, many)
			}
			t.Logf("%s: %d models × %d versions: %d S3 requests, %d registry reads", s.name, models, versions, n.Load(), reg.many.Load())
		})
	}
}

// Versions spread among many unrelated objects (other runs of the same
// experiment) are read by jumping from version to version, never reading
// more than a page of the objects between, and across page boundaries.
func TestObserveWalkSkipsUnrelatedObjects(t *testing.T) {
	srv := testenv.NewMinIO(t)
	c := srv.Client(t.Context())
	if err := srv.MakeBucket(t.Context(), "mlruns", false); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	reg := &manyRegistry{registry: newRegistry()}
	want := map[string][]string{}
	put := func(key string) { putObject(t, c, "mlruns", key, randomBytes(16, 2)) }
	for run := range 30 {
		prefix := fmt.Sprintf("1/run%02d/artifacts/model", run)
		for _, f := range []string{"MLmodel", "conda.yaml", "model.pkl"} {
			put(prefix + "/" + f)
		}
		if run%10 != 3 {
			continue
		}
		v := run/10 + 1
		reg.add("churn-registered", reconciler.RegistryVersion{Version: v, Created: now.Add(-time.Hour)}, "s3://mlruns/"+prefix)
		want["s3://mlruns/"+prefix] = []string{prefix + "/MLmodel", prefix + "/conda.yaml", prefix + "/model.pkl"}
	}
	// v4's files sit inside v3's run: a nested prefix owns them.
	nested := "1/run23/artifacts/model/data"
	put(nested + "/weights.bin")
	reg.add("churn-registered", reconciler.RegistryVersion{Version: 4, Created: now.Add(-time.Hour)}, "s3://mlruns/"+nested)
	want["s3://mlruns/"+nested] = []string{nested + "/weights.bin"}

	var n atomic.Int64
	tg, err := New(Config{Client: countingClient(c, &n), Locator: reg, Versions: reg, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	tg.listPageSize = 2
	obs := mustObserve(t, tg, desiredState(model("churn", minioLifecycle(), env("prod", 4))))
	got := objectsOf(obs)["churn"]
	for _, keys := range got {
		sort.Strings(keys)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("observed objects:\n got %v\nwant %v", got, want)
	}
	// The versions' own 10 objects take 6 pages of 2 (as listed version
	// by version), and one more page finds the end; the 87 other objects
	// would take 44.
	if got := n.Load(); got > 7 {
		t.Errorf("%d S3 requests, want at most 7 (never more than a LIST per version)", got)
	}
	t.Logf("%d S3 requests for 4 versions among 90 unrelated objects", n.Load())
}

// A store that refuses to list the versions' common directory (a policy
// scoped to each version's prefix) is listed version by version.
func TestObserveFallsBackToListingEachVersion(t *testing.T) {
	srv := testenv.NewMinIO(t)
	c := srv.Client(t.Context())
	if err := srv.MakeBucket(t.Context(), "models", false); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	reg := newRegistry()
	want := map[string][]string{}
	for v := 1; v <= 3; v++ {
		prefix := fmt.Sprintf("models/churn/%d", v)
		reg.add("churn-registered", reconciler.RegistryVersion{Version: v, Created: now.Add(-time.Hour)}, "s3://models/"+prefix)
		putObject(t, c, "models", prefix+"/model.pkl", randomBytes(16, 3))
		want["s3://models/"+prefix] = []string{prefix + "/model.pkl"}
	}
	refusing := s3.New(c.Options(), func(o *s3.Options) { o.HTTPClient = refusingHTTP{o.HTTPClient} })
	tg, err := New(Config{Client: refusing, Locator: reg, Versions: reg, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	obs := mustObserve(t, tg, desiredState(model("churn", minioLifecycle(), env("prod", 3))))
	if got := objectsOf(obs)["churn"]; !reflect.DeepEqual(got, want) {
		t.Errorf("observed objects:\n got %v\nwant %v", got, want)
	}
}
