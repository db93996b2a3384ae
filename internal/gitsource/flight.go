package gitsource

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// errClosed is the result of a fetch asked of a closed Source.
var errClosed = errors.New("source is closed")

// flight is one fetch shared by every Sync call that joined it.
type flight struct {
	done   chan struct{} // closed once res and err are set
	ctx    context.Context
	cancel context.CancelFunc
	// waiters counts the callers still waiting; when the last one gives up,
	// the fetch is canceled. listed is set once the ref advertisement has
	// arrived. Both are guarded by Source.flightMu.
	waiters int
	listed  bool
	res     SyncResult
	err     error
}

// newFlight makes a fetch whose lifetime belongs to its waiters, not to the
// caller that happened to start it: the context keeps that caller's values
// but is canceled only when every waiter has left (or the Source closes).
func newFlight(ctx context.Context) *flight {
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	return &flight{done: make(chan struct{}), ctx: fctx, cancel: cancel}
}

// coalesce runs Sync with at most one fetch in flight.
//
// A caller joins the fetch in progress if that fetch has not yet received
// the remote's ref advertisement: the refs it will report were read after
// the caller asked, so sharing them loses nothing. A caller arriving later
// would get refs older than its call (a webhook's push could be missing),
// so it waits for the next fetch instead, which every such caller shares;
// the next fetch starts when the current one ends. Callers leave when
// their context ends; a fetch nobody waits for any more is canceled.
func (s *Source) coalesce(ctx context.Context) (SyncResult, error) {
	if err := ctx.Err(); err != nil {
		return SyncResult{}, fmt.Errorf("gitsource: sync %s: %w", s.URL(), err)
	}
	s.flightMu.Lock()
	if s.closed {
		s.flightMu.Unlock()
		return SyncResult{}, fmt.Errorf("gitsource: sync %s: %w", s.URL(), errClosed)
	}
	var f *flight
	switch {
	case s.running == nil:
		f = newFlight(ctx)
		s.running = f
		go s.fly(f)
	case !s.running.listed && s.running.ctx.Err() == nil:
		f = s.running
	default:
		if s.queued == nil {
			s.queued = newFlight(ctx)
		}
		f = s.queued
	}
	f.waiters++
	s.flightMu.Unlock()

	select {
	case <-f.done:
		if f.err != nil {
			return SyncResult{}, f.err
		}
		return f.res.clone(), nil
	case <-ctx.Done():
		s.leave(f)
		return SyncResult{}, fmt.Errorf("gitsource: sync %s: %w", s.URL(), ctx.Err())
	}
}

// leave records that a waiter of f gave up.
func (s *Source) leave(f *flight) {
	s.flightMu.Lock()
	defer s.flightMu.Unlock()
	f.waiters--
	if f.waiters > 0 {
		return
	}
	f.cancel()
	if s.queued == f {
		// Not started: nobody needs it any more.
		s.queued = nil
	}
}

// fly runs the fetch of f, then starts the queued one, if any.
func (s *Source) fly(f *flight) {
	for f != nil {
		res, err := s.fetch(f.ctx, func() {
			s.flightMu.Lock()
			f.listed = true
			s.flightMu.Unlock()
		})
		f.res, f.err = res, err
		close(f.done)
		f.cancel()

		s.flightMu.Lock()
		next := s.queued
		s.queued = nil
		s.running = next
		if next != nil && s.closed {
			s.running = nil
			next.err = fmt.Errorf("gitsource: sync %s: %w", s.URL(), errClosed)
			close(next.done)
			next.cancel()
			next = nil
		}
		s.flightMu.Unlock()
		f = next
	}
}

// clone copies the result's maps and slices, so callers sharing one fetch
// cannot see each other's changes.
func (r SyncResult) clone() SyncResult {
	r.Heads = maps.Clone(r.Heads)
	r.Refs = maps.Clone(r.Refs)
	r.Tags = slices.Clone(r.Tags)
	r.BadTags = slices.Clone(r.BadTags)
	return r
}
