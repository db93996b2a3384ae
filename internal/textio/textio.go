// Package textio holds small helpers for commands and reports that write
// text.
package textio

import "io"

// ErrWriter remembers the first write error and turns later writes into
// no-ops, so rendering code can write line after line and check once.
type ErrWriter struct {
	W   io.Writer
	Err error
}

func (e *ErrWriter) Write(p []byte) (int, error) {
	if e.Err != nil {
		return 0, e.Err
	}
	n, err := e.W.Write(p)
	e.Err = err
	return n, err
}
