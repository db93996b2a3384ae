package scan

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"testing"
)

// FuzzPickle feeds arbitrary bytes to the pickle reader (and, by the file
// name the first byte picks, to the zip, NumPy, safetensors and ONNX
// readers). It must never panic, never fail with an I/O error on in-memory
// data, and never allocate far beyond the input: a declared length is
// skipped, not allocated.
func FuzzPickle(f *testing.F) {
	seeds := []string{
		"\x80\x02cposix\nsystem\nX\x02\x00\x00\x00id\x85R.",
		"\x80\x04\x8c\x02os\x94\x8c\x06system\x94" + "00" + "h\x00h\x01\x93.",
		"\x80\x05\x95\x10\x00\x00\x00\x00\x00\x00\x00]\x94(K\x01K\x02e.",
		"(S'id'\nios\nsystem\n.",
		"(cos\nsystem\nS'id'\no.",
		"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x7f.",
		"\x80\x03}q\x00(X\x01\x00\x00\x00aq\x01K\x01u.",
		"\x80\x02cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81}(X\x05\x00\x00\x00shapeK\x02\x85X\x05\x00\x00\x00dtypecnumpy\ndtype\nX\x02\x00\x00\x00f8\x89\x88\x87Rub" + "\x00\x00.",
		"PK\x03\x04",
		"\x93NUMPY\x01\x00\x10\x00{'descr': '|O'}\x80\x02.",
		"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":{}}       ",
	}
	for i, s := range seeds {
		f.Add(byte(i), []byte(s))
	}
	names := []string{"x.pkl", "x.pt", "x.npy", "x.safetensors", "x.onnx", "x.joblib", "x.gz"}
	f.Fuzz(func(t *testing.T, pick byte, data []byte) {
		name := names[int(pick)%len(names)]
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		rep, err := Scan(context.Background(), memSource{name: func() io.Reader { return bytes.NewReader(data) }}, Options{})
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(rep.Files) != 1 || rep.Files[0].Size != int64(len(data)) {
			t.Fatalf("%s: %+v", name, rep)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > 8<<20+uint64(64*len(data)) {
			t.Fatalf("%s: %d bytes allocated for a %d-byte input", name, got, len(data))
		}
	})
}
