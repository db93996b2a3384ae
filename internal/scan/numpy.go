package scan

import (
	"regexp"
	"strconv"
	"strings"
)

// maxNpyHeader bounds a .npy header; NumPy itself refuses headers over
// 10000 bytes unless told otherwise.
const maxNpyHeader = 64 << 10

var npyObject = regexp.MustCompile(`['"][|<>=]?O\d*['"]`)

// scanNpy reads a .npy header; an object array is a pickle after it
// (np.save pickles arrays of Python objects), which is scanned.
func (fs *fileScan) scanNpy(s *stream, name string) error {
	var pre [8]byte
	if err := s.full(pre[:]); err != nil {
		fs.add(Finding{Verdict: Unknown, Rule: "numpy.malformed", Message: "truncated .npy preamble"})
		return errStopFile
	}
	var hlen uint64
	switch pre[6] {
	case 1:
		var b [2]byte
		if err := s.full(b[:]); err != nil {
			return errStopFile
		}
		hlen = uint64(b[0]) | uint64(b[1])<<8
	case 2, 3:
		var b [4]byte
		if err := s.full(b[:]); err != nil {
			return errStopFile
		}
		hlen = uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24
	default:
		fs.add(Finding{Offset: 6, Verdict: Unknown, Rule: "numpy.malformed", Message: "unknown .npy version " + strconv.Itoa(int(pre[6]))})
		return errStopFile
	}
	if hlen > maxNpyHeader {
		fs.add(Finding{Offset: 8, Verdict: Unknown, Rule: "numpy.malformed", Message: "the .npy header is longer than NumPy accepts"})
		return errStopFile
	}
	hdr, _, err := s.prefix(int64(hlen), maxNpyHeader)
	if err != nil {
		fs.add(Finding{Offset: 8, Verdict: Unknown, Rule: "numpy.malformed", Message: "truncated .npy header"})
		return errStopFile
	}
	descr := hdr
	if i := strings.Index(hdr, "'descr'"); i >= 0 {
		descr = hdr[i:]
		if j := strings.Index(descr, "'fortran_order'"); j > 0 {
			descr = descr[:j]
		} else if j := strings.Index(descr, "'shape'"); j > 0 {
			descr = descr[:j]
		}
	}
	if !npyObject.MatchString(descr) {
		return nil // plain numbers: only hashed
	}
	// Object dtype: the data is pickle.dump(array); np.load runs it when
	// allow_pickle=True.
	return fs.runPickle(s, name, false)
}

// joblibArray returns the BUILD hook that follows joblib: after a
// NumpyArrayWrapper gets its state, joblib wrote the array's bytes (or,
// for object arrays, a whole nested pickle) straight into the stream. The
// hook skips exactly what joblib's reader would read, or scans the
// nested pickle.
func (fs *fileScan) joblibArray(s *stream, name string) func(val) error {
	return func(obj val) error {
		if obj.s != "joblib.numpy_pickle.NumpyArrayWrapper" {
			return nil
		}
		if obj.c == nil || obj.c.state == nil || obj.c.state.k != kDict {
			return &pickleError{Off: s.off, Msg: "joblib array wrapper without a readable state"}
		}
		st := obj.c.state.c
		shape, ok1 := st.get("shape")
		dtype, ok2 := st.get("dtype")
		if !ok1 || !ok2 || shape.c == nil || dtype.k != kObj {
			return &pickleError{Off: s.off, Msg: "joblib array wrapper's shape or dtype was not followed"}
		}
		itemsize, object, ok := dtypeSize(dtype)
		if !ok {
			return &pickleError{Off: s.off, Msg: "joblib array of a dtype the scanner cannot size"}
		}
		if object {
			vm := newPickleVM(s, fs.cls, name, fs.add)
			vm.afterBuild = fs.joblibArray(s, name)
			return vm.run()
		}
		count := uint64(1)
		if len(shape.c.items) != countItems(shape) {
			return &pickleError{Off: s.off, Msg: "joblib array of more dimensions than the scanner follows"}
		}
		for _, d := range shape.c.items {
			if d.k != kInt || d.i < 0 {
				return &pickleError{Off: s.off, Msg: "joblib array with a non-integer dimension"}
			}
			hi, lo := mul64(count, uint64(d.i))
			if hi != 0 {
				return &pickleError{Off: s.off, Msg: "joblib array size overflows"}
			}
			count = lo
		}
		hi, n := mul64(count, uint64(itemsize))
		if hi != 0 || n > pickleMaxLen {
			return &pickleError{Off: s.off, Msg: "joblib array size overflows"}
		}
		if al, ok := st.get("numpy_array_alignment_bytes"); ok && al.k == kInt {
			var pad [1]byte
			if err := s.full(pad[:]); err != nil {
				return err
			}
			if err := s.skip(int64(pad[0])); err != nil {
				return err
			}
		}
		return s.skip(int64(n))
	}
}

// countItems is how many children a composite had (its kept items when
// nothing was dropped): a shape with dropped dimensions cannot be sized.
func countItems(v val) int {
	if v.c == nil {
		return 0
	}
	return len(v.c.items)
}

// dtypeSize sizes a pickled numpy.dtype(str, align, copy) object with its
// BUILD state (version, byteorder, subarray, names, fields, elsize,
// alignment, flags).
func dtypeSize(d val) (int64, bool, bool) {
	if d.s != "numpy.dtype" || d.c == nil || len(d.c.items) == 0 || d.c.items[0].k != kStr {
		return 0, false, false
	}
	code := d.c.items[0].s
	if strings.HasPrefix(code, "O") {
		return 8, true, true
	}
	if d.c.state != nil && d.c.state.c != nil {
		st := d.c.state.c.items
		if len(st) >= 8 && st[len(st)-1].k == kInt && st[len(st)-1].i&1 != 0 {
			return 8, true, true // NPY_ITEM_REFCOUNT: a structure holding objects
		}
		if len(st) >= 6 && st[5].k == kInt && st[5].i > 0 {
			return st[5].i, false, true
		}
	}
	i := strings.IndexAny(code, "0123456789")
	if i < 0 {
		if code == "?" || code == "b" || code == "B" {
			return 1, false, true
		}
		return 0, false, false
	}
	n, err := strconv.ParseInt(code[i:], 10, 64)
	if err != nil || n <= 0 {
		return 0, false, false
	}
	if code[0] == 'U' {
		n *= 4
	}
	return n, false, true
}
