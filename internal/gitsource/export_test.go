package gitsource

import "testing"

// LockCacheForTest holds s's cache lock, as another process's fetch would,
// until the returned function is called.
func LockCacheForTest(t *testing.T, s *Source) (unlock func()) {
	t.Helper()
	if err := s.lock.lock(t.Context()); err != nil {
		t.Fatal(err)
	}
	return func() { _ = s.lock.unlock() }
}
