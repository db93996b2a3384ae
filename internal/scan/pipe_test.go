package scan

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// The hash and the parser see every byte once, in order, whatever sizes
// the reads come in (a network body's small reads, block boundaries inside
// opcodes and inside skipped byte strings).
func TestPipeHashesAndParsesEveryByte(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	blob := make([]byte, 3*pipeBlockSize+12345)
	for i := range blob {
		blob[i] = byte(rng.Uint32())
	}
	var p bytes.Buffer
	p.WriteString("\x80\x04]\x94(")
	for i := 0; i < 3; i++ {
		p.WriteByte(0x8e)
		p.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(blob))))
		p.Write(blob)
		// A global after each blob: found only if the skip ended exactly
		// where the blob did.
		p.WriteString("\x8c\x02os\x94\x8c\x06system\x94\x93")
	}
	p.WriteString("e.")
	data := p.Bytes()
	want := sha256.Sum256(data)
	for name, mk := range map[string]func() io.Reader{
		"whole":  func() io.Reader { return bytes.NewReader(data) },
		"halves": func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) },
		"bytes":  func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data[:pipeBlockSize+100])) },
	} {
		t.Run(name, func(t *testing.T) {
			in := data
			if name == "bytes" {
				in = data[:pipeBlockSize+100]
			}
			fr, err := scanFile(context.Background(), newClassifier(nil), "x.pkl", int64(len(in)), func() (io.ReadCloser, error) { return io.NopCloser(mk()), nil }, nil)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(in)
			if name != "bytes" {
				sum = want
				if fr.Verdict != Dangerous || len(fr.Findings) != 1 || fr.Findings[0].Global != "os.system" {
					t.Errorf("verdict %s, findings %+v; want os.system found after the blobs", fr.Verdict, fr.Findings)
				}
			}
			if fr.SHA256 != hex.EncodeToString(sum[:]) || fr.Size != int64(len(in)) {
				t.Fatalf("size %d sha256 %s; want %d %x", fr.Size, fr.SHA256, len(in), sum)
			}
		})
	}
}

// A read error reaches the scan as an error, never as a digest of the
// bytes read so far.
func TestPipeReadErrorIsAnError(t *testing.T) {
	boom := errors.New("connection reset")
	data := bytes.Repeat([]byte("x"), 2*pipeBlockSize)
	_, err := scanFile(context.Background(), newClassifier(nil), "x.bin", int64(len(data))+5,
		func() (io.ReadCloser, error) {
			return io.NopCloser(io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom))), nil
		}, nil)
	if !errors.Is(err, boom) {
		t.Fatalf("err %v, want %v", err, boom)
	}
}
