package scan

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math"
)

// stream is a forward-only reader that knows its offset, so that findings
// can name the byte where an opcode or structure starts. It never seeks:
// the scanner reads every file once, from a local disk or a network body.
type stream struct {
	r   *bufio.Reader
	off int64
	buf [256]byte
	// pipe, when set, is what r reads from: a long skip past r's buffer
	// drops the pipe's blocks without copying them through r.
	pipe *readPipe
}

const streamBuf = 256 << 10

func newStream(r io.Reader) *stream {
	if p, ok := r.(*readPipe); ok {
		return &stream{r: bufio.NewReaderSize(p, streamBuf), pipe: p}
	}
	if br, ok := r.(*bufio.Reader); ok && br.Size() >= streamBuf {
		return &stream{r: br}
	}
	return &stream{r: bufio.NewReaderSize(r, streamBuf)}
}

// ReadByte lets compress/flate read a zip member without reading past its
// end (flate consumes exactly its stream when given an io.ByteReader).
func (s *stream) ReadByte() (byte, error) {
	b, err := s.r.ReadByte()
	if err == nil {
		s.off++
	}
	return b, err
}

func (s *stream) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.off += int64(n)
	return n, err
}

// full reads exactly len(p) bytes; a short file is io.ErrUnexpectedEOF.
func (s *stream) full(p []byte) error {
	n, err := io.ReadFull(s.r, p)
	s.off += int64(n)
	if errors.Is(err, io.EOF) && len(p) > 0 {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// skip discards n bytes without buffering them.
func (s *stream) skip(n int64) error {
	if s.pipe != nil && n > int64(s.r.Buffered()) {
		// Once r's buffer is empty r holds nothing ahead of the pipe, so
		// the pipe can be read past directly.
		d, _ := s.r.Discard(s.r.Buffered())
		s.off += int64(d)
		n -= int64(d)
		skipped, err := s.pipe.skip(n)
		s.off += skipped
		if err != nil && skipped < n {
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		return nil
	}
	for n > 0 {
		step := n
		if step > 1<<30 {
			step = 1 << 30
		}
		d, err := s.r.Discard(int(step))
		s.off += int64(d)
		n -= int64(d)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// prefix reads n bytes keeping at most max of them: long strings are
// truncated, never buffered whole.
func (s *stream) prefix(n int64, max int) (string, bool, error) {
	keep := n
	if keep > int64(max) {
		keep = int64(max)
	}
	var b []byte
	if keep <= int64(len(s.buf)) {
		b = s.buf[:keep] // the common short string: one allocation, the string
	} else {
		b = make([]byte, keep)
	}
	if err := s.full(b); err != nil {
		return "", false, err
	}
	if err := s.skip(n - keep); err != nil {
		return "", false, err
	}
	return string(b), n > keep, nil
}

// line reads up to and including '\n', keeping at most max bytes of it.
func (s *stream) line(max int) (string, bool, error) {
	var out []byte
	trunc := false
	for {
		frag, err := s.r.ReadSlice('\n')
		s.off += int64(len(frag))
		if len(out) < max {
			room := max - len(out)
			if len(frag) > room {
				out = append(out, frag[:room]...)
				trunc = true
			} else {
				out = append(out, frag...)
			}
		} else if len(frag) > 0 {
			trunc = true
		}
		if err == nil {
			if !trunc {
				out = out[:len(out)-1]
			}
			return string(out), trunc, nil
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			return "", false, io.ErrUnexpectedEOF
		}
		return "", false, err
	}
}

// rest reads s to its end; with a pipe below, without copying.
func (s *stream) rest(ctx context.Context) error {
	if s.pipe != nil {
		err := s.skip(math.MaxInt64)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		return err
	}
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		_, err := s.Read(buf)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (s *stream) peek(n int) []byte {
	b, _ := s.r.Peek(n)
	return b
}
