package gitsource_test

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/modelsync/modelsync/internal/gitsource"
	"github.com/modelsync/modelsync/test/testenv"
)

// benchRepo serves a repository of n models with one release tag each.
func benchRepo(b testing.TB, n int) (*testenv.GitServer, *testenv.Workdir) {
	b.Helper()
	g := testenv.NewGitServer(b)
	if _, err := g.NewBareRepo("models"); err != nil {
		b.Fatal(err)
	}
	w := testenv.NewWorkdir(b, g.DaemonURL+"models.git")
	w.WriteFile("modelsync.yaml", "environments: [dev, staging, prod]\n")
	for i := range n {
		m := fmt.Sprintf("m-%04d", i)
		w.WriteFile("models/"+m+"/model.yaml", "name: "+m+"\n")
		w.WriteFile("models/"+m+"/serving/kustomization.yaml", "resources: [isvc.yaml]\n")
		w.WriteFile("models/"+m+"/serving/isvc.yaml", "kind: InferenceService\nmetadata: {name: "+m+"}\n")
	}
	head := w.Commit("models")
	for i := range n {
		w.Run("update-ref", fmt.Sprintf("refs/tags/m-%04d/v1.0.0", i), head)
	}
	w.Push()
	return g, w
}

// BenchmarkSyncNoChange measures the steady state of a reconciler polling an
// unchanged repository: one ref advertisement, no object transfer.
func BenchmarkSyncNoChange(b *testing.B) {
	g, _ := benchRepo(b, 200)
	for _, tc := range []struct {
		name string
		url  string
		auth gitsource.Auth
	}{
		{"daemon", g.DaemonURL + "models.git", gitsource.Auth{}},
		{"http", g.HTTPURL + "models.git", gitsource.Auth{Username: g.Username, Password: g.Password}},
		{"path", g.Root + "/models.git", gitsource.Auth{}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			src, err := gitsource.Open(b.Context(), gitsource.Options{URL: tc.url, CacheDir: b.TempDir(), Auth: tc.auth})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := src.Sync(b.Context()); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				res, err := src.Sync(b.Context())
				if err != nil {
					b.Fatal(err)
				}
				if res.Changed {
					b.Fatal("unchanged repository reported Changed")
				}
			}
		})
	}
}

// BenchmarkSyncIncremental measures fetching one new commit over git://.
func BenchmarkSyncIncremental(b *testing.B) {
	g, w := benchRepo(b, 200)
	src, err := gitsource.Open(b.Context(), gitsource.Options{URL: g.DaemonURL + "models.git", CacheDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := src.Sync(b.Context()); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		w.WriteFile("models/m-0001/model.yaml", "name: m-0001\nrev: "+strconv.Itoa(i)+"\n")
		w.Commit("rev")
		w.Push()
		b.StartTimer()
		res, err := src.Sync(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		if !res.Changed {
			b.Fatal("new commit not detected")
		}
	}
}
