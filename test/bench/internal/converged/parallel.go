package converged

import (
	"context"
	"sync"
)

// Parallel calls f for every i in [0, n) from workers goroutines and
// returns the first error, after which no new call starts. Seeding servers
// one request at a time takes longer than anything measured; a few
// concurrent clients are what the servers are built for.
func Parallel(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) error {
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan int)
	var (
		once  sync.Once
		first error
		wg    sync.WaitGroup
	)
	for range max(1, workers) {
		wg.Go(func() {
			for i := range jobs {
				if err := f(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if first != nil {
		return first
	}
	// Stopped from outside: say so rather than report every call made.
	return parent.Err()
}
