package scan

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// memSource is a Source of in-memory or generated files.
type memSource map[string]func() io.Reader

func (m memSource) Walk(ctx context.Context, fn func(string, int64, func() (io.ReadCloser, error)) error) error {
	for name, mk := range m {
		size := int64(-1)
		if r, ok := mk().(interface{ Len() int }); ok {
			size = int64(r.Len())
		}
		if lr, ok := mk().(*io.LimitedReader); ok {
			size = lr.N
		}
		if err := fn(name, size, func() (io.ReadCloser, error) { return io.NopCloser(mk()), nil }); err != nil {
			return err
		}
	}
	return nil
}

func bytesFile(b []byte) func() io.Reader { return func() io.Reader { return bytes.NewReader(b) } }

func scanOne(t *testing.T, name string, data []byte, opts Options) FileReport {
	t.Helper()
	rep, err := Scan(context.Background(), memSource{name: bytesFile(data)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Files) != 1 {
		t.Fatalf("%d files", len(rep.Files))
	}
	return rep.Files[0]
}

func hasRule(fr FileReport, rule string, v Verdict) *Finding {
	for i, f := range fr.Findings {
		if f.Rule == rule && f.Verdict == v {
			return &fr.Findings[i]
		}
	}
	return nil
}

func TestVerdictWorst(t *testing.T) {
	cases := []struct{ a, b, want Verdict }{
		{"", "", Safe}, {Safe, Unknown, Unknown}, {Unknown, Safe, Unknown}, {Unknown, Dangerous, Dangerous},
		{Dangerous, Safe, Dangerous}, {Safe, "bogus", "bogus"},
	}
	for _, c := range cases {
		if got := c.a.Worst(c.b); got != c.want {
			t.Errorf("%q.Worst(%q) = %q, want %q", c.a, c.b, got, c.want)
		}
	}
}

func TestPickleGlobals(t *testing.T) {
	cases := []struct {
		name    string
		data    string
		opts    Options
		verdict Verdict
		rule    string
		global  string
		offset  int64
	}{
		{"global offset", "\x80\x02cposix\nsystem\nX\x02\x00\x00\x00id\x85R.", Options{}, Dangerous, "pickle.denied_global", "posix.system", 2},
		{"stack global from memo", "\x80\x04\x8c\x02os\x94\x8c\x06system\x94" + "00" + "h\x00h\x01\x93.", Options{}, Dangerous, "pickle.denied_global", "os.system", 22},
		{"stack global from a DUP", "\x80\x04\x8c\x08builtins2\x8c\x04eval\x93.", Options{}, Dangerous, "pickle.denied_global", "builtins.eval", 0},
		{"stack global of a missing memo entry", "\x80\x04h\x07\x8c\x06system\x93.", Options{}, Dangerous, "pickle.unresolved_global", "", 0},
		{"stack global of a runtime value", "\x80\x04cbuiltins\nstr\n)R\x8c\x06system\x93.", Options{}, Dangerous, "pickle.unresolved_global", "", 0},
		{"dunder attribute path", "\x80\x04\x8c\x0bcollections\x8c\x20OrderedDict.__init__.__globals__\x93.", Options{}, Dangerous, "pickle.dunder_attribute", "", 0},
		{"unknown class", "\x80\x04\x8c\x06mypkg.\x8c\x05Model\x93).", Options{}, Unknown, "pickle.unknown_global", "mypkg..Model", 0},
		{"allowed by the user", "\x80\x04\x8c\x05mypkg\x8c\x05Model\x93)\x81.", Options{AllowGlobals: []string{"mypkg.*"}}, Safe, "", "", 0},
		{"deny wins over the user's allow", "\x80\x04\x8c\x02os\x8c\x06system\x93.", Options{AllowGlobals: []string{"os.*", "os.system"}}, Dangerous, "pickle.denied_global", "os.system", 0},
		// MEMOIZE's index is Python's len(memo): after a PUT to key 1 the
		// next MEMOIZE overwrites key 1.
		{"memoize after a sparse put", "\x80\x04\x8c\x05numpyq\x010\x8c\x02os\x940h\x01\x8c\x06system\x93.", Options{}, Dangerous, "pickle.denied_global", "os.system", 0},
		{"memoize after a sparse put, benign", "\x80\x04\x8c\x02osq\x010\x8c\x05numpy\x940h\x01\x8c\x05dtype\x93.", Options{}, Safe, "", "", 0},
		{"extension code", "\x80\x02\x82\x01.", Options{}, Unknown, "pickle.extension_code", "", 0},
		{"truncated", "\x80\x04\x8c\x05numpy", Options{}, Unknown, "pickle.malformed", "", 0},
		{"protocol 0 unicode escapes", "Vos\nVsy\\u0073tem\n\x93.", Options{}, Dangerous, "pickle.denied_global", "os.system", 0},
		{"protocol 0 string escapes", "S'o\\x73'\nS'system'\n\x93.", Options{}, Dangerous, "pickle.denied_global", "os.system", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fr := scanOne(t, "x.pkl", []byte(c.data), c.opts)
			if fr.Verdict != c.verdict {
				t.Fatalf("verdict %s, want %s: %+v", fr.Verdict, c.verdict, fr.Findings)
			}
			if c.rule == "" {
				return
			}
			f := hasRule(fr, c.rule, c.verdict)
			if f == nil {
				t.Fatalf("no %s: %+v", c.rule, fr.Findings)
			}
			if c.global != "" && f.Global != c.global {
				t.Errorf("global %q, want %q", f.Global, c.global)
			}
			if c.offset != 0 && f.Offset != c.offset {
				t.Errorf("offset %d, want %d", f.Offset, c.offset)
			}
		})
	}
}

// A long string's declared length is skipped, never allocated: a 1 GiB
// BINBYTES8 in a generated stream is read through in bounded memory.
func TestPickleStreamsLargeValues(t *testing.T) {
	const size = 512 << 20
	head := []byte("\x80\x05\x8e")
	head = binary.LittleEndian.AppendUint64(head, size)
	tail := []byte("\x94\x8c\x02os\x8c\x06system\x93.")
	mk := func() io.Reader {
		return io.MultiReader(bytes.NewReader(head), io.LimitReader(zeros{}, size), bytes.NewReader(tail))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rep, err := Scan(context.Background(), memSource{"big.pkl": mk}, Options{})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Verdict != Dangerous {
		t.Fatalf("the global after 512 MiB of bytes was missed: %+v", rep.Files)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Errorf("allocated %d bytes scanning a 512 MiB pickle; the reader must stream", got)
	}
	if rep.Files[0].Size != int64(len(head)+size+len(tail)) {
		t.Errorf("size %d", rep.Files[0].Size)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func safetensors(header map[string]any, data int, claimed uint64) []byte {
	h, _ := json.Marshal(header)
	n := uint64(len(h))
	if claimed != 0 {
		n = claimed
	}
	out := binary.LittleEndian.AppendUint64(nil, n)
	out = append(out, h...)
	return append(out, make([]byte, data)...)
}

func TestSafetensors(t *testing.T) {
	tensor := func(dtype string, shape []int, b, e int) map[string]any {
		return map[string]any{"dtype": dtype, "shape": shape, "data_offsets": []int{b, e}}
	}
	cases := []struct {
		name    string
		data    []byte
		verdict Verdict
		rule    string
	}{
		{"clean", safetensors(map[string]any{"__metadata__": map[string]string{"format": "pt"}, "a": tensor("F32", []int{2, 2}, 0, 16), "b": tensor("BF16", []int{4}, 16, 24)}, 24, 0), Safe, ""},
		{"overlap", safetensors(map[string]any{"a": tensor("F32", []int{4}, 0, 16), "b": tensor("F32", []int{4}, 8, 24)}, 24, 0), Dangerous, "safetensors.overlap"},
		{"claims 100 GB", safetensors(map[string]any{"a": tensor("F32", []int{1}, 0, 4)}, 4, 100e9), Dangerous, "safetensors.header_length"},
		{"past the data", safetensors(map[string]any{"a": tensor("F32", []int{4}, 0, 16)}, 8, 0), Dangerous, "safetensors.out_of_bounds"},
		{"shape disagrees", safetensors(map[string]any{"a": tensor("F32", []int{3}, 0, 16)}, 16, 0), Dangerous, "safetensors.size_mismatch"},
		{"shape overflows", safetensors(map[string]any{"a": tensor("F32", []int{1 << 40, 1 << 40}, 0, 16)}, 16, 0), Dangerous, "safetensors.size_mismatch"},
		{"gap", safetensors(map[string]any{"a": tensor("F32", []int{1}, 4, 8)}, 8, 0), Unknown, "safetensors.gap"},
		{"trailing", safetensors(map[string]any{"a": tensor("F32", []int{1}, 0, 4)}, 8, 0), Unknown, "safetensors.trailing_data"},
		{"unknown dtype", safetensors(map[string]any{"a": tensor("Q7", []int{1}, 0, 4)}, 4, 0), Unknown, "safetensors.dtype"},
		{"not json", append(binary.LittleEndian.AppendUint64(nil, 4), "{]]]"...), Dangerous, "safetensors.header_json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fr := scanOne(t, "m.safetensors", c.data, Options{})
			if fr.Verdict != c.verdict || (c.rule != "" && hasRule(fr, c.rule, c.verdict) == nil) {
				t.Fatalf("verdict %s, want %s with %s: %+v", fr.Verdict, c.verdict, c.rule, fr.Findings)
			}
		})
	}
	// Duplicate names cannot come from json.Marshal of a map.
	dup := []byte(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`)
	data := append(binary.LittleEndian.AppendUint64(nil, uint64(len(dup))), dup...)
	fr := scanOne(t, "m.safetensors", append(data, 0, 0), Options{})
	if hasRule(fr, "safetensors.duplicate_name", Dangerous) == nil {
		t.Errorf("duplicate tensor name not flagged: %+v", fr.Findings)
	}
}

func zipOf(t *testing.T, files map[string]string, order []string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, name := range order {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, files[name])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestZip(t *testing.T) {
	payload := "\x80\x02cposix\nsystem\nX\x02\x00\x00\x00id\x85R."
	clean := "\x80\x02ccollections\nOrderedDict\n)R."
	// archive/zip writes deflated members with data descriptors: the
	// streaming walk must find the next header without sizes.
	fr := scanOne(t, "m.pt", zipOf(t, map[string]string{"archive/data.pkl": payload, "archive/version": "3"}, []string{"archive/version", "archive/data.pkl"}), Options{})
	f := hasRule(fr, "pickle.denied_global", Dangerous)
	if fr.Format != "pytorch" || f == nil || f.Path != "m.pt!archive/data.pkl" || f.Offset != 2 {
		t.Fatalf("payload in data.pkl: format %s, %+v", fr.Format, fr.Findings)
	}
	fr = scanOne(t, "m.pt", zipOf(t, map[string]string{"archive/data.pkl": clean}, []string{"archive/data.pkl"}), Options{})
	if fr.Verdict != Safe {
		t.Fatalf("clean archive: %+v", fr.Findings)
	}
	fr = scanOne(t, "m.zip", zipOf(t, map[string]string{"/etc/passwd": "x"}, []string{"/etc/passwd"}), Options{})
	if hasRule(fr, "zip.path_traversal", Dangerous) == nil {
		t.Fatalf("absolute member: %+v", fr.Findings)
	}
	// A central directory entry that points at bytes the local headers did
	// not show: rename the second local header so the names disagree.
	z := zipOf(t, map[string]string{"a.txt": "hello", "b.pkl": clean}, []string{"a.txt", "b.pkl"})
	i := bytes.Index(z, []byte("b.pkl"))
	z[i] = 'c'
	fr = scanOne(t, "m.zip", z, Options{})
	if hasRule(fr, "zip.hidden_entry", Dangerous) == nil {
		t.Fatalf("central/local mismatch: %+v", fr.Findings)
	}
}

func TestNpy(t *testing.T) {
	npy := func(descr, body string) []byte {
		h := "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (2,), }"
		h += strings.Repeat(" ", 63-(10+len(h))%64) + "\n"
		out := append([]byte("\x93NUMPY\x01\x00"), byte(len(h)), byte(len(h)>>8))
		return append(append(out, h...), body...)
	}
	if fr := scanOne(t, "a.npy", npy("<f8", "\x80\x02cposix\nsystem\n."), Options{}); fr.Verdict != Safe || fr.Format != "numpy" {
		t.Errorf("float array's bytes are not a pickle: %+v", fr)
	}
	if fr := scanOne(t, "a.npy", npy("|O", "\x80\x02cposix\nsystem\n."), Options{}); hasRule(fr, "pickle.denied_global", Dangerous) == nil {
		t.Errorf("object array's pickle not scanned: %+v", fr)
	}
}

func TestONNXExternalData(t *testing.T) {
	// ModelProto{graph(7): GraphProto{initializer(5): TensorProto{external_data(13): {key, value}, data_location(14): 1}}}
	ld := func(field int, b []byte) []byte {
		out := binary.AppendUvarint(nil, uint64(field<<3|2))
		out = binary.AppendUvarint(out, uint64(len(b)))
		return append(out, b...)
	}
	model := func(loc string) []byte {
		entry := append(ld(1, []byte("location")), ld(2, []byte(loc))...)
		tensor := append(append(ld(8, []byte("W")), ld(13, entry)...), 14<<3, 1)
		graph := ld(5, tensor)
		return append([]byte{1 << 3, 8}, ld(7, graph)...)
	}
	for loc, want := range map[string]Verdict{"weights.bin": Safe, "sub/w.bin": Safe, "../w.bin": Dangerous, "/etc/passwd": Dangerous, `..\..\w.bin`: Dangerous, "a/../../w": Dangerous} {
		fr := scanOne(t, "m.onnx", model(loc), Options{})
		if fr.Verdict != want {
			t.Errorf("location %q: %s, want %s: %+v", loc, fr.Verdict, want, fr.Findings)
		}
	}
	if fr := scanOne(t, "m.onnx", []byte{0x0a, 0xff, 0xff, 0x01}, Options{}); hasRule(fr, "onnx.malformed", Unknown) == nil {
		t.Errorf("truncated protobuf: %+v", fr.Findings)
	}
}

func TestDigest(t *testing.T) {
	rep, err := Scan(context.Background(), memSource{"b": bytesFile([]byte("2")), "a/x": bytesFile([]byte("1"))}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	list := sum("1") + "  a/x\n" + sum("2") + "  b\n"
	if rep.Digest != "sha256:"+sum(list) || rep.Files[0].Path != "a/x" || rep.Files[0].SHA256 != sum("1") {
		t.Fatalf("digest %s files %+v", rep.Digest, rep.Files)
	}
	if rep.Scanner != ScannerVersion || rep.Verdict != Safe {
		t.Fatalf("%+v", rep)
	}
}

// A PATH that is a link is followed; links inside the tree are not.
func TestDirSourceLinks(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	os.Mkdir(real, 0o755)
	os.WriteFile(filepath.Join(real, "m.pkl"), []byte("\x80\x02cposix\nsystem\n."), 0o644)
	os.WriteFile(filepath.Join(dir, "outside.pkl"), []byte("\x80\x02cposix\nsystem\n."), 0o644)
	os.Symlink(filepath.Join(dir, "outside.pkl"), filepath.Join(real, "link.pkl"))
	os.Symlink(real, filepath.Join(dir, "model"))
	rep, err := Scan(context.Background(), DirSource(filepath.Join(dir, "model")), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Files) != 1 || rep.Files[0].Path != "m.pkl" || rep.Verdict != Dangerous {
		t.Fatalf("%+v", rep)
	}
}
