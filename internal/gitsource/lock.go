package gitsource

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// cacheLock is an advisory lock on a file next to one repository's cache
// directory (<cache-dir>/<key>.lock). Every process that creates the cache
// or writes to it (Open, Sync, FetchRef) holds it exclusively, so two
// processes on one cache take turns: the second finds the first's pack
// and refs installed, instead of installing a pack the first was halfway
// through or trusting an object index read before the first's pack
// arrived. Readers take no lock: everything a write adds is immutable and
// made visible by renames (pack before index, packed-refs as a whole), and
// a reader's view of packs changes only when it reindexes, which it does
// under the lock.
//
// The lock file is never removed: deleting it would let a late process
// lock a new file while an early one still holds the old.
type cacheLock struct {
	f *os.File
}

// lockPollMin and lockPollMax pace the polls for a busy lock; polling
// rather than a blocking flock keeps the wait cancellable by the context.
const (
	lockPollMin = 5 * time.Millisecond
	lockPollMax = 200 * time.Millisecond
)

func openCacheLock(path string) (*cacheLock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	return &cacheLock{f: f}, nil
}

// lock takes the lock exclusively, waiting until it is free or ctx ends.
func (l *cacheLock) lock(ctx context.Context) error {
	wait := lockPollMin
	for {
		ok, err := tryLockFile(l.f)
		if err != nil {
			return fmt.Errorf("lock %s: %w", l.f.Name(), err)
		}
		if ok {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for another process's fetch into the cache (%s): %w", l.f.Name(), ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, lockPollMax)
	}
}

func (l *cacheLock) unlock() error { return unlockFile(l.f) }

func (l *cacheLock) close() error { return l.f.Close() }

// diskState identifies what other processes may have changed in a cache:
// its pack indexes and its refs and shallow files. Equal states mean the
// in-memory view (go-git's pack indexes, the known refs) is current.
type diskState struct {
	packs   string
	refs    fileStamp
	shallow fileStamp
}

// fileStamp tells versions of a file apart: every write of the refs and
// shallow files is a rename of a new file, so the file identity changes
// along with the size and time.
type fileStamp struct{ fi os.FileInfo }

func (a fileStamp) equal(b fileStamp) bool {
	if a.fi == nil || b.fi == nil {
		return a.fi == nil && b.fi == nil
	}
	return os.SameFile(a.fi, b.fi) && a.fi.Size() == b.fi.Size() && a.fi.ModTime().Equal(b.fi.ModTime())
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{fi: fi}
}

func (a diskState) equal(b diskState) bool {
	return a.packs == b.packs && a.refs.equal(b.refs) && a.shallow.equal(b.shallow)
}

// readDiskState reads the state of the cache at dir; callers hold the lock.
func readDiskState(dir string) (diskState, error) {
	entries, err := os.ReadDir(filepath.Join(dir, "objects", "pack"))
	if err != nil && !os.IsNotExist(err) {
		return diskState{}, err
	}
	var idx []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".idx") {
			idx = append(idx, e.Name())
		}
	}
	slices.Sort(idx)
	return diskState{
		packs:   strings.Join(idx, "\n"),
		refs:    stampOf(filepath.Join(dir, "packed-refs")),
		shallow: stampOf(filepath.Join(dir, "shallow")),
	}, nil
}
