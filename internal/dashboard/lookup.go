package dashboard

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// lookup reads slow facts from elsewhere (a version's lineage in MLflow, a
// model's stored artifacts) for the model page without letting them make
// the page slow or break it:
//
//   - each key is read at most once at a time, in the background, bounded
//     by a timeout, with at most a few reads in flight;
//   - a page waits for its reads only up to its own short budget and
//     otherwise says "loading" (the event stream refreshes the page once
//     the read finishes, since seq changes);
//   - answers are kept for ttl and failures for errTTL, so an outage costs
//     one request per key per errTTL, not one per page view; a stale answer
//     is shown while its refresh runs;
//   - at most max keys are kept, the oldest dropped first.
type lookup[K comparable, V any] struct {
	fetch   func(context.Context, K) (V, error)
	timeout time.Duration
	ttl     time.Duration
	errTTL  time.Duration
	max     int
	now     func() time.Time
	slots   chan struct{}
	seq     atomic.Uint64

	mu      sync.Mutex
	entries map[K]*lookupEntry[V]
	order   []K
}

type lookupEntry[V any] struct {
	done chan struct{}
	res  lookupResult[V] // set before done closes
	// stale is the previous answer, shown while this one is read.
	stale *lookupResult[V]
}

// lookupResult is one finished read.
type lookupResult[V any] struct {
	Val V
	Err error
	At  time.Time
}

// lookupState is what a page shows for one key.
type lookupState[V any] struct {
	// Ready is false while the first read runs past the page's budget.
	Ready bool
	lookupResult[V]
}

func newLookup[K comparable, V any](fetch func(context.Context, K) (V, error), timeout, ttl, errTTL time.Duration, max, parallel int, now func() time.Time) *lookup[K, V] {
	return &lookup[K, V]{fetch: fetch, timeout: timeout, ttl: ttl, errTTL: errTTL, max: max, now: now,
		slots: make(chan struct{}, parallel), entries: map[K]*lookupEntry[V]{}}
}

// start returns the entry of k, starting a read when there is none or the
// finished one has expired.
func (l *lookup[K, V]) start(k K) *lookupEntry[V] {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[k]
	if ok {
		select {
		case <-e.done:
			ttl := l.ttl
			if e.res.Err != nil {
				ttl = l.errTTL
			}
			if l.now().Sub(e.res.At) < ttl {
				return e
			}
			prev := e.res
			e = &lookupEntry[V]{done: make(chan struct{}), stale: &prev}
			l.entries[k] = e
		default:
			return e // a read is running
		}
	} else {
		e = &lookupEntry[V]{done: make(chan struct{})}
		l.entries[k] = e
		l.order = append(l.order, k)
		for len(l.order) > l.max {
			delete(l.entries, l.order[0])
			l.order = l.order[1:]
		}
	}
	go l.read(k, e)
	return e
}

// read runs one fetch. It is not tied to the page that started it: a
// closed tab must not waste a read that the next view needs.
func (l *lookup[K, V]) read(k K, e *lookupEntry[V]) {
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	var res lookupResult[V]
	select {
	case l.slots <- struct{}{}:
		res.Val, res.Err = l.fetch(ctx, k)
		<-l.slots
		if res.Err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			res.Err = fmt.Errorf("no answer within %s", l.timeout)
		}
	case <-ctx.Done():
		res.Err = fmt.Errorf("no answer within %s (too many reads in flight)", l.timeout)
	}
	res.At = l.now()
	e.res = res
	close(e.done)
	l.seq.Add(1)
}

// get returns what is known of k once its read finishes or ctx (the
// page's budget) ends, whichever is first.
func (l *lookup[K, V]) get(ctx context.Context, k K) lookupState[V] {
	e := l.start(k)
	select {
	case <-e.done:
		return lookupState[V]{Ready: true, lookupResult: e.res}
	case <-ctx.Done():
	}
	if e.stale != nil {
		return lookupState[V]{Ready: true, lookupResult: *e.stale}
	}
	return lookupState[V]{}
}
