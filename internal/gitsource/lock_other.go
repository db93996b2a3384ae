//go:build !unix

package gitsource

import "os"

// Without flock, processes are not kept apart: one process per cache
// directory, as before.
func tryLockFile(*os.File) (bool, error) { return true, nil }

func unlockFile(*os.File) error { return nil }
