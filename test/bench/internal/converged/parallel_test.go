package converged

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

func TestParallelCallsEveryIndexOnce(t *testing.T) {
	const n = 1000
	var seen [n]atomic.Int32
	if err := Parallel(context.Background(), n, 7, func(_ context.Context, i int) error {
		seen[i].Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := range seen {
		if c := seen[i].Load(); c != 1 {
			t.Fatalf("index %d called %d times, want 1", i, c)
		}
	}
}

func TestParallelStopsAtTheFirstError(t *testing.T) {
	boom := errors.New("boom")
	var calls atomic.Int32
	err := Parallel(context.Background(), 100000, 4, func(ctx context.Context, i int) error {
		calls.Add(1)
		if i == 10 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if c := calls.Load(); c > 1000 {
		t.Fatalf("%d calls after the error at index 10; want the feed to stop", c)
	}
}

func TestParallelReportsTheCallersCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	err := Parallel(ctx, 100000, 2, func(_ context.Context, i int) error {
		if i == 5 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}
