package scan

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// maxSafetensorsHeader is the safetensors library's own bound on the JSON
// header; a header claiming more (100 GB, say) is refused before reading.
const maxSafetensorsHeader = 100_000_000

// maxTensors bounds the offsets kept for the overlap check (16 bytes each).
const maxTensors = 1 << 20

// dtypeBits is the element size of every safetensors dtype, in bits.
var dtypeBits = map[string]uint64{
	"BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "E8M0": 8,
	"I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
	"F64": 64, "I64": 64, "U64": 64, "C64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}

type span struct{ begin, end uint64 }

// scanSafetensors checks the header a loader trusts to index the file: its
// length, JSON, dtypes, shapes against offsets, offsets inside the data and
// not overlapping. The JSON is read token by token so a large header costs
// no more memory than its offsets; the data is only hashed.
func (fs *fileScan) scanSafetensors(s *stream, name string, size int64) error {
	var pre [8]byte
	if err := s.full(pre[:]); err != nil {
		fs.add(Finding{Verdict: Dangerous, Rule: "safetensors.header_length", Message: "file shorter than the 8-byte header length"})
		return errStopFile
	}
	n := binary.LittleEndian.Uint64(pre[:])
	if n > maxSafetensorsHeader || n > uint64(size)-8 || n < 2 {
		fs.add(Finding{Verdict: Dangerous, Rule: "safetensors.header_length",
			Message: fmt.Sprintf("header claims %d bytes; the file has %d and the format allows at most %d", n, size, maxSafetensorsHeader)})
		return errStopFile
	}
	dataLen := uint64(size) - 8 - n
	lr := &io.LimitedReader{R: s, N: int64(n)}
	dec := json.NewDecoder(lr)
	dec.UseNumber()
	bad := func(verdict Verdict, rule, format string, a ...any) {
		fs.add(Finding{Offset: 8 + dec.InputOffset(), Verdict: verdict, Rule: rule, Message: fmt.Sprintf(format, a...)})
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		bad(Dangerous, "safetensors.header_json", "header is not a JSON object")
		return errStopFile
	}
	seen := map[uint64]bool{}
	var spans []span
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			bad(Dangerous, "safetensors.header_json", "header JSON: %v", err)
			return errStopFile
		}
		key, _ := kt.(string)
		h := xxhash.Sum64String(key)
		if seen[h] {
			bad(Dangerous, "safetensors.duplicate_name", "tensor %q is declared twice; parsers disagree on which one counts", key)
		}
		if len(seen) < maxTensors {
			seen[h] = true
		}
		if key == "__metadata__" {
			if err := skipJSONValue(dec); err != nil {
				bad(Dangerous, "safetensors.header_json", "header JSON: %v", err)
				return errStopFile
			}
			continue
		}
		info, err := readTensorInfo(dec)
		if err != nil {
			bad(Dangerous, "safetensors.header_json", "tensor %q: %v", key, err)
			return errStopFile
		}
		eb, ok := dtypeBits[info.dtype]
		if !ok {
			bad(Unknown, "safetensors.dtype", "tensor %q has unknown dtype %q", key, info.dtype)
			continue
		}
		if info.begin > info.end || info.end > dataLen {
			bad(Dangerous, "safetensors.out_of_bounds", "tensor %q spans [%d, %d) of a %d-byte data section", key, info.begin, info.end, dataLen)
			continue
		}
		hi, nbits := bits.Mul64(info.elems, eb)
		if info.overflow || hi != 0 || (nbits+7)/8 != info.end-info.begin {
			bad(Dangerous, "safetensors.size_mismatch", "tensor %q: shape %v of %s needs %s bytes, offsets give %d", key, info.shape, info.dtype,
				sizeText(info.overflow || hi != 0, (nbits+7)/8), info.end-info.begin)
			continue
		}
		if len(spans) < maxTensors {
			spans = append(spans, span{info.begin, info.end})
		}
	}
	if _, err := dec.Token(); err != nil {
		bad(Dangerous, "safetensors.header_json", "header JSON: %v", err)
		return errStopFile
	}
	// The header may be padded with spaces; whatever remains is not data.
	if _, err := io.Copy(io.Discard, io.MultiReader(dec.Buffered(), lr)); err != nil {
		return err
	}
	slices.SortFunc(spans, func(a, b span) int {
		if a.begin != b.begin {
			if a.begin < b.begin {
				return -1
			}
			return 1
		}
		if a.end < b.end {
			return -1
		}
		if a.end > b.end {
			return 1
		}
		return 0
	})
	var end uint64
	for i, sp := range spans {
		switch {
		case i > 0 && sp.begin < end:
			fs.add(Finding{Offset: 8, Verdict: Dangerous, Rule: "safetensors.overlap",
				Message: fmt.Sprintf("tensors overlap at data bytes [%d, %d): writing one changes another, and the file is not what its header says", sp.begin, min(end, sp.end))})
			return nil
		case sp.begin > end:
			fs.add(Finding{Offset: 8, Verdict: Unknown, Rule: "safetensors.gap",
				Message: fmt.Sprintf("data bytes [%d, %d) belong to no tensor; the safetensors library refuses such a file", end, sp.begin)})
			return nil
		}
		end = max(end, sp.end)
	}
	if end != dataLen && len(spans) < maxTensors {
		fs.add(Finding{Offset: 8, Verdict: Unknown, Rule: "safetensors.trailing_data",
			Message: fmt.Sprintf("%d bytes after the last tensor belong to no tensor", dataLen-end)})
	}
	return nil
}

func sizeText(overflow bool, n uint64) string {
	if overflow {
		return "more than 2^64"
	}
	return strconv.FormatUint(n, 10)
}

type tensorInfo struct {
	dtype      string
	shape      []uint64
	elems      uint64
	overflow   bool
	begin, end uint64
}

func readTensorInfo(dec *json.Decoder) (tensorInfo, error) {
	ti := tensorInfo{elems: 1}
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ti, fmt.Errorf("not an object")
	}
	gotOffsets := false
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return ti, err
		}
		switch kt {
		case "dtype":
			t, err := dec.Token()
			if err != nil {
				return ti, err
			}
			s, ok := t.(string)
			if !ok || len(s) > 32 {
				return ti, fmt.Errorf("dtype is not a short string")
			}
			ti.dtype = s
		case "shape":
			nums, err := readUints(dec, 1<<20, func(d uint64) {
				hi, lo := bits.Mul64(ti.elems, d)
				if hi != 0 {
					ti.overflow = true
				}
				ti.elems = lo
			})
			if err != nil {
				return ti, fmt.Errorf("shape: %w", err)
			}
			ti.shape = nums
		case "data_offsets":
			nums, err := readUints(dec, 2, nil)
			if err != nil || len(nums) != 2 {
				return ti, fmt.Errorf("data_offsets is not two offsets")
			}
			ti.begin, ti.end = nums[0], nums[1]
			gotOffsets = true
		default:
			if err := skipJSONValue(dec); err != nil {
				return ti, err
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return ti, err
	}
	if ti.dtype == "" || !gotOffsets {
		return ti, fmt.Errorf("dtype or data_offsets missing")
	}
	return ti, nil
}

// readUints reads an array of non-negative integers, keeping at most 8 for
// messages (a shape of a million dimensions is counted, not stored).
func readUints(dec *json.Decoder, max int, each func(uint64)) ([]uint64, error) {
	if t, err := dec.Token(); err != nil || t != json.Delim('[') {
		return nil, fmt.Errorf("not an array")
	}
	var out []uint64
	n := 0
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		num, ok := t.(json.Number)
		if !ok {
			return nil, fmt.Errorf("not an integer")
		}
		v, err := strconv.ParseUint(num.String(), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s is not a non-negative integer", num)
		}
		n++
		if n > max {
			return nil, fmt.Errorf("more than %d values", max)
		}
		if each != nil {
			each(v)
		}
		if len(out) < 8 || max == 2 {
			out = append(out, v)
		}
	}
	_, err := dec.Token()
	return out, err
}

// skipJSONValue skips one value token by token, so that a large
// __metadata__ is never held whole.
func skipJSONValue(dec *json.Decoder) error {
	depth := 0
	for {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}
