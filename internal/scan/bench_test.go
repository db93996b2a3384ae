package scan

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"testing"
)

// BenchmarkScanStream is the scanner's own cost (hash + parse) on a 256 MiB
// pickle of large byte strings, with no disk in the way.
func BenchmarkScanStream(b *testing.B) {
	const chunk, n = 16 << 20, 16
	var head bytes.Buffer
	head.WriteString("\x80\x04]\x94(")
	hdr := binary.LittleEndian.AppendUint64([]byte{0x8e}, chunk)
	mk := func() io.Reader {
		parts := []io.Reader{bytes.NewReader(head.Bytes())}
		for i := 0; i < n; i++ {
			parts = append(parts, bytes.NewReader(hdr), io.LimitReader(zeros{}, chunk))
		}
		parts = append(parts, bytes.NewReader([]byte("e.")))
		return io.MultiReader(parts...)
	}
	b.SetBytes(chunk * n)
	for i := 0; i < b.N; i++ {
		rep, err := Scan(context.Background(), memSource{"x.pkl": mk}, Options{})
		if err != nil || rep.Verdict != Safe {
			b.Fatal(err, rep)
		}
	}
}

// BenchmarkScanDense is the per-opcode cost: a list of a million small
// records as Python's pickler writes them (protocol 4, memoized).
func BenchmarkScanDense(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString("\x80\x04]\x94")
	for batch := 0; batch < 1000; batch++ {
		buf.WriteString("(")
		for i := 0; i < 1000; i++ {
			buf.WriteString("J\x01\x02\x03\x04G\x3f\xf0\x00\x00\x00\x00\x00\x00\x8c\x0atoken12345\x94\x87\x94")
		}
		buf.WriteString("e")
	}
	buf.WriteString(".")
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		rep, err := Scan(context.Background(), memSource{"x.pkl": func() io.Reader { return bytes.NewReader(data) }}, Options{})
		if err != nil || rep.Verdict != Safe {
			b.Fatal(err, rep)
		}
	}
}
