package scan

import (
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

const (
	zipLocal      = 0x04034b50
	zipCentral    = 0x02014b50
	zipDataDesc   = 0x08074b50
	maxZipEntries = 1 << 17
)

// scanZip walks a zip archive front to back through its local headers,
// scanning the members a loader unpickles (PyTorch's data.pkl, any .pkl,
// .npy in an .npz), then checks the central directory, which is what
// extractors and loaders actually read, against the entries it saw: a
// central entry pointing at bytes that were not a local header found on
// the way hides a member from a front-to-back reader.
func (fs *fileScan) scanZip(s *stream, name string) error {
	locals := map[int64]string{}
	for {
		if err := fs.ctx.Err(); err != nil {
			return err
		}
		off := s.off
		var sig [4]byte
		if err := s.full(sig[:]); err != nil {
			fs.add(Finding{Offset: off, Verdict: Unknown, Rule: "zip.malformed", Message: "archive ends without a central directory"})
			return errStopFile
		}
		switch binary.LittleEndian.Uint32(sig[:]) {
		case zipLocal:
			if len(locals) >= maxZipEntries {
				fs.add(Finding{Offset: off, Verdict: Unknown, Rule: "zip.limits", Message: "more entries than the scanner follows"})
				return errStopFile
			}
			member, err := fs.zipMember(s, name, off)
			if err != nil {
				return err
			}
			locals[off] = member
		case zipCentral:
			return fs.zipCentral(s, name, off, locals)
		default:
			fs.add(Finding{Offset: off, Verdict: Unknown, Rule: "zip.malformed", Message: "unexpected record in the archive; the rest was not analysed"})
			return errStopFile
		}
	}
}

// zipName flags a member name that would land outside the extraction
// directory.
func (fs *fileScan) zipName(member string, off int64) {
	n := strings.ReplaceAll(member, `\`, "/")
	bad := strings.HasPrefix(n, "/") || (len(n) >= 2 && n[1] == ':') || strings.ContainsRune(n, 0)
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			bad = true
		}
	}
	if bad {
		fs.add(Finding{Path: fs.fr.Path + "!" + member, Offset: off, Verdict: Dangerous, Rule: "zip.path_traversal",
			Message: fmt.Sprintf("archive member %q is absolute or climbs out with '..': extracting it writes outside the target directory", member)})
	}
}

func (fs *fileScan) zipMember(s *stream, name string, off int64) (string, error) {
	var h [26]byte
	if err := s.full(h[:]); err != nil {
		fs.add(Finding{Offset: off, Verdict: Unknown, Rule: "zip.malformed", Message: "truncated local header"})
		return "", errStopFile
	}
	flags := binary.LittleEndian.Uint16(h[2:])
	method := binary.LittleEndian.Uint16(h[4:])
	csize := uint64(binary.LittleEndian.Uint32(h[14:]))
	usize := uint64(binary.LittleEndian.Uint32(h[18:]))
	nlen := int64(binary.LittleEndian.Uint16(h[22:]))
	elen := int64(binary.LittleEndian.Uint16(h[24:]))
	member, _, err := s.prefix(nlen, 1<<16)
	if err != nil {
		return "", errStopFile
	}
	extra, _, err := s.prefix(elen, 1<<16)
	if err != nil {
		return "", errStopFile
	}
	zip64 := false
	if u, c, _, ok := zip64Extra([]byte(extra), usize == 0xffffffff, csize == 0xffffffff, false); ok {
		zip64 = true
		usize, csize = u, c
	}
	fs.zipName(member, off)
	dataOff := s.off
	sized := flags&8 == 0 || csize != 0
	var r io.Reader
	switch {
	case flags&1 != 0:
		fs.add(Finding{Path: name + "!" + member, Offset: off, Verdict: Unknown, Rule: "zip.encrypted", Message: "encrypted archive member cannot be scanned"})
		if !sized {
			return "", errStopFile
		}
		r = io.LimitReader(s, int64(csize))
	case method == 0 && sized:
		r = io.LimitReader(s, int64(csize))
	case method == 8:
		// flate reads exactly its stream from an io.ByteReader, so the
		// next header is where it stops even without sizes.
		r = flate.NewReader(s)
	default:
		fs.add(Finding{Path: name + "!" + member, Offset: off, Verdict: Unknown, Rule: "zip.unsupported",
			Message: fmt.Sprintf("member stored with method %d (or without sizes) cannot be read in one pass", method)})
		if !sized {
			return "", errStopFile
		}
		r = io.LimitReader(s, int64(csize))
	}
	ms := newStream(r)
	lower := strings.ToLower(member)
	base := path.Base(lower)
	mpath := name + "!" + member
	var perr error
	switch {
	case flags&1 != 0:
	case base == "data.pkl" || strings.HasSuffix(lower, ".pkl") || strings.HasSuffix(lower, ".pickle") || strings.HasSuffix(lower, ".joblib"):
		if base == "data.pkl" {
			fs.fr.Format = "pytorch"
		}
		perr = fs.runPickleAt(ms, mpath)
	case strings.HasSuffix(lower, ".npy"):
		perr = fs.withPath(mpath, func() error { return fs.scanNpy(ms, mpath) })
	}
	if perr != nil && !errors.Is(perr, errStopFile) {
		return "", perr
	}
	if err := drain(fs.ctx, ms); err != nil {
		fs.add(Finding{Path: mpath, Offset: off, Verdict: Unknown, Rule: "zip.malformed", Message: "member data: " + err.Error()})
		return "", errStopFile
	}
	if method == 0 && sized && s.off-dataOff != int64(csize) {
		fs.add(Finding{Path: mpath, Offset: off, Verdict: Unknown, Rule: "zip.malformed", Message: "member shorter than its header says"})
		return "", errStopFile
	}
	_ = usize
	if flags&8 != 0 {
		// Data descriptor: optional signature, CRC, then sizes.
		if b := s.peek(4); len(b) == 4 && binary.LittleEndian.Uint32(b) == zipDataDesc {
			_ = s.skip(4)
		}
		n := int64(12)
		if zip64 {
			n = 20
		}
		if err := s.skip(n); err != nil {
			return "", errStopFile
		}
	}
	return member, nil
}

// runPickleAt scans a pickle member, findings named after the member.
func (fs *fileScan) runPickleAt(ms *stream, mpath string) error {
	return fs.withPath(mpath, func() error { return fs.runPickle(ms, mpath, false) })
}

// withPath makes findings without their own path name the member.
func (fs *fileScan) withPath(mpath string, fn func() error) error {
	saved := fs.fr.Path
	fs.fr.Path = mpath
	defer func() { fs.fr.Path = saved }()
	return fn()
}

// zip64Extra reads the sizes and offset from a zip64 extended information
// field; only the values whose 32-bit fields were saturated are present.
func zip64Extra(extra []byte, wantU, wantC, wantOff bool) (u, c, off uint64, ok bool) {
	for len(extra) >= 4 {
		id := binary.LittleEndian.Uint16(extra)
		n := int(binary.LittleEndian.Uint16(extra[2:]))
		extra = extra[4:]
		if n > len(extra) {
			return
		}
		if id == 1 {
			f := extra[:n]
			next := func() uint64 {
				if len(f) < 8 {
					return 0
				}
				v := binary.LittleEndian.Uint64(f)
				f = f[8:]
				return v
			}
			if wantU {
				u = next()
			}
			if wantC {
				c = next()
			}
			if wantOff {
				off = next()
			}
			return u, c, off, wantU || wantC || wantOff
		}
		extra = extra[n:]
	}
	return
}

func (fs *fileScan) zipCentral(s *stream, name string, off int64, locals map[int64]string) error {
	for {
		var h [42]byte
		if err := s.full(h[:]); err != nil {
			fs.add(Finding{Offset: off, Verdict: Unknown, Rule: "zip.malformed", Message: "truncated central directory"})
			return errStopFile
		}
		nlen := int64(binary.LittleEndian.Uint16(h[24:]))
		elen := int64(binary.LittleEndian.Uint16(h[26:]))
		clen := int64(binary.LittleEndian.Uint16(h[28:]))
		loff := uint64(binary.LittleEndian.Uint32(h[38:]))
		usize := binary.LittleEndian.Uint32(h[20:])
		csize := binary.LittleEndian.Uint32(h[16:])
		member, _, err := s.prefix(nlen, 1<<16)
		if err != nil {
			return errStopFile
		}
		extra, _, err := s.prefix(elen, 1<<16)
		if err != nil {
			return errStopFile
		}
		if err := s.skip(clen); err != nil {
			return errStopFile
		}
		if loff == 0xffffffff {
			if _, _, o, ok := zip64Extra([]byte(extra), usize == 0xffffffff, csize == 0xffffffff, true); ok {
				loff = o
			}
		}
		fs.zipName(member, off)
		if seen, ok := locals[int64(loff)]; !ok || seen != member {
			fs.add(Finding{Path: name + "!" + member, Offset: off, Verdict: Dangerous, Rule: "zip.hidden_entry",
				Message: fmt.Sprintf("central directory entry %q points at offset %d, which is not the local entry of that name read front to back: the archive shows loaders a member that a streaming reader does not", member, loff)})
		}
		off = s.off
		b := s.peek(4)
		if len(b) < 4 || binary.LittleEndian.Uint32(b) != zipCentral {
			return nil // end-of-central-directory records follow; only hashed
		}
		_ = s.skip(4)
	}
}
