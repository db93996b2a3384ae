package gitsource_test

import (
	"context"
	"errors"
	"io/fs"
	"sync"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/gitsource"
	"github.com/modelsync/modelsync/test/testenv"
)

func openIn(t *testing.T, url, cache string) *gitsource.Source {
	t.Helper()
	src, err := gitsource.Open(t.Context(), gitsource.Options{URL: url, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	return src
}

// Two owners of one cache (two processes, here two Sources) each see what
// the other fetched: a Source whose pack indexes predate the other's fetch
// catches up under the cache lock instead of fetching the same pack again
// and failing to find its objects.
func TestSourcesShareOneCache(t *testing.T) {
	w := testenv.NewWorkdir(t, "")
	seedModels(w)
	cache := t.TempDir()
	a := openIn(t, w.Dir, cache)
	b := openIn(t, w.Dir, cache)
	mustSync(t, a)

	w.WriteFile("models/churn/model.yaml", "name: churn\nversion: 2\n")
	head := w.Commit("churn v2")
	if res := mustSync(t, b); res.Heads["main"] != head {
		t.Fatalf("b: main = %s, want %s", res.Heads["main"], head)
	}
	res := mustSync(t, a)
	if res.Heads["main"] != head {
		t.Fatalf("a after b's fetch: main = %s, want %s", res.Heads["main"], head)
	}
	tree, err := a.Tree(head)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := fs.ReadFile(tree, "models/churn/model.yaml"); err != nil || string(b) != "name: churn\nversion: 2\n" {
		t.Fatalf("a reads %q, %v", b, err)
	}

	// Concurrent fetches through both, after further pushes, all succeed.
	for round := range 5 {
		w.WriteFile("models/fraud/model.yaml", "name: fraud\nround: "+string(rune('a'+round))+"\n")
		head := w.Commit("fraud round")
		var wg sync.WaitGroup
		for _, src := range []*gitsource.Source{a, b} {
			wg.Go(func() {
				res, err := src.Sync(t.Context())
				if err != nil {
					t.Errorf("round %d: %v", round, err)
				} else if res.Heads["main"] != head {
					t.Errorf("round %d: main = %s, want %s", round, res.Heads["main"], head)
				}
			})
		}
		wg.Wait()
	}
}

// A fetch waits for another owner's fetch to finish, and gives up when
// its context ends first.
func TestFetchWaitsForTheCacheLock(t *testing.T) {
	w := testenv.NewWorkdir(t, "")
	seedModels(w)
	cache := t.TempDir()
	a := openIn(t, w.Dir, cache)
	b := openIn(t, w.Dir, cache)
	unlock := gitsource.LockCacheForTest(t, a)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := b.Sync(ctx); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("b fetched while the cache was locked: %v", err)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond || waited > 20*time.Second {
		t.Fatalf("b gave up after %s, want about 300ms", waited)
	}
	done := make(chan error, 1)
	go func() {
		_, err := b.Sync(t.Context())
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("b's second fetch did not wait for the lock: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
