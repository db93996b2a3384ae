package textio

import (
	"errors"
	"fmt"
	"testing"
)

type failing struct{ calls int }

func (f *failing) Write(p []byte) (int, error) {
	f.calls++
	return 0, errors.New("disk full")
}

func TestErrWriterKeepsFirstError(t *testing.T) {
	f := &failing{}
	w := &ErrWriter{W: f}
	fmt.Fprintln(w, "a")
	fmt.Fprintln(w, "b")
	if w.Err == nil || w.Err.Error() != "disk full" || f.calls != 1 {
		t.Fatalf("err %v after %d calls", w.Err, f.calls)
	}
}
