package scan

import (
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"compress/zlib"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// fileScan collects the findings of one file.
type fileScan struct {
	ctx     context.Context
	cls     *classifier
	fr      *FileReport
	dropped int
}

func (fs *fileScan) add(f Finding) {
	if f.Path == "" {
		f.Path = fs.fr.Path
	}
	fs.fr.Verdict = fs.fr.Verdict.Worst(f.Verdict)
	if len(fs.fr.Findings) >= maxFindings {
		fs.dropped++
		return
	}
	fs.fr.Findings = append(fs.fr.Findings, f)
}

// progressStep is how often, in bytes, the progress callback is called.
const progressStep = 16 << 20

// scanFile reads one file once: a pipe hands the same bytes to the hash and
// to the parser (see readPipe), and whatever the parser leaves is still
// hashed, so that the digest covers the whole file.
func scanFile(ctx context.Context, cls *classifier, name string, size int64, open func() (io.ReadCloser, error), progress func(string, int64, int64)) (FileReport, error) {
	fr := FileReport{Path: name, Size: size, Format: "other", Verdict: Safe, Findings: []Finding{}}
	rc, err := open()
	if err != nil {
		return fr, err
	}
	defer rc.Close()
	h := sha256.New()
	var onRead func(int64)
	last := int64(0)
	if progress != nil {
		onRead = func(done int64) {
			if done-last >= progressStep || done == size {
				last = done
				progress(name, done, size)
			}
		}
	}
	p := startPipe(ctx, rc, size, h, onRead)
	s := newStream(p)
	fs := &fileScan{ctx: ctx, cls: cls, fr: &fr}
	if err := fs.dispatch(s, name, size); err != nil && !errors.Is(err, errStopFile) {
		p.stop(rc)
		return fr, err
	}
	if err := s.rest(ctx); err != nil {
		p.stop(rc)
		return fr, err
	}
	n, err := p.finish()
	if err != nil {
		return fr, err
	}
	if fs.dropped > 0 {
		fr.Findings = append(fr.Findings, Finding{Path: name, Verdict: fr.Verdict, Rule: "scan.findings_truncated",
			Message: fmt.Sprintf("%d more findings not listed", fs.dropped)})
	}
	if progress != nil && n != last {
		progress(name, n, size)
	}
	fr.Size = n
	fr.SHA256 = hex.EncodeToString(h.Sum(nil))
	return fr, nil
}

// drain reads the rest of s, checking for cancellation.
func drain(ctx context.Context, s *stream) error { return s.rest(ctx) }

var pickleExts = map[string]bool{".pkl": true, ".pickle": true, ".joblib": true, ".pt": true, ".pth": true,
	".bin": true, ".ckpt": true, ".sav": true, ".p": true, ".pck": true, ".pcl": true, ".dill": true, ".mar": false}

func isPickleProto(b []byte) bool { return len(b) >= 2 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5 }

// looksProtocol0 is the first opcode of a protocol 0/1 pickle as Python
// writes them (a MARK, a container, a global, a scalar).
func looksProtocol0(b []byte) bool {
	return len(b) > 0 && bytes.IndexByte([]byte("(c]}ldNIFLSVX)KJMUTGqhi"), b[0]) >= 0
}

func (fs *fileScan) dispatch(s *stream, name string, size int64) error {
	head := s.peek(16)
	ext := strings.ToLower(path.Ext(name))
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		fs.fr.Format = "zip"
		if ext == ".npz" {
			fs.fr.Format = "npz"
		}
		return fs.scanZip(s, name)
	case bytes.HasPrefix(head, []byte("\x93NUMPY")):
		fs.fr.Format = "numpy"
		return fs.scanNpy(s, name)
	case ext == ".safetensors" || looksSafetensors(head, size):
		fs.fr.Format = "safetensors"
		return fs.scanSafetensors(s, name, size)
	case ext == ".onnx":
		fs.fr.Format = "onnx"
		return fs.scanONNX(s, name)
	case isPickleProto(head) || (pickleExts[ext] && looksProtocol0(head)):
		fs.fr.Format = "pickle"
		if ext == ".joblib" {
			fs.fr.Format = "joblib"
		}
		return fs.scanPickles(s, name)
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return fs.scanCompressed(s, name, size, "gzip", func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) })
	case bytes.HasPrefix(head, []byte("BZh")):
		return fs.scanCompressed(s, name, size, "bzip2", func(r io.Reader) (io.Reader, error) { return bzip2.NewReader(r), nil })
	case len(head) >= 2 && head[0] == 0x78 && (uint16(head[0])<<8|uint16(head[1]))%31 == 0 && (pickleExts[ext] || ext == ".z" || ext == ".zlib"):
		return fs.scanCompressed(s, name, size, "zlib", func(r io.Reader) (io.Reader, error) { return zlib.NewReader(r) })
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0}) || bytes.HasPrefix(head, []byte{0x04, 0x22, 0x4d, 0x18}) ||
		(pickleExts[ext] && bytes.HasPrefix(head, []byte{0x5d, 0, 0})):
		fs.fr.Format = "compressed"
		fs.add(Finding{Verdict: Unknown, Rule: "compressed.unsupported",
			Message: "xz, lzma or lz4 compression (joblib can write them) is not decompressed by the scanner; recompress with gzip, zlib or bz2, or store uncompressed"})
	}
	return nil
}

// looksSafetensors: an 8-byte little-endian header length that fits in the
// file, followed by '{'.
func looksSafetensors(head []byte, size int64) bool {
	if len(head) < 9 || head[8] != '{' {
		return false
	}
	n := uint64(0)
	for i := 7; i >= 0; i-- {
		n = n<<8 | uint64(head[i])
	}
	return n >= 2 && n <= uint64(size-8)
}

// scanPickles reads a pickle and any pickles that follow it (PyTorch's
// legacy format and joblib's object arrays write several in a row).
func (fs *fileScan) scanPickles(s *stream, name string) error {
	first := true
	for {
		if err := fs.ctx.Err(); err != nil {
			return err
		}
		if !first && !isPickleProto(s.peek(2)) {
			return nil
		}
		err := fs.runPickle(s, name, !first)
		if err != nil {
			return err
		}
		first = false
		if len(s.peek(1)) == 0 {
			return nil
		}
	}
}

// runPickle runs one pickle; a malformed one becomes a finding (quiet for
// a pickle after the first, which may be trailing data), an I/O error an
// error.
func (fs *fileScan) runPickle(s *stream, name string, quiet bool) error {
	vm := newPickleVM(s, fs.cls, name, fs.add)
	vm.afterBuild = fs.joblibArray(s, name)
	err := vm.run()
	var pe *pickleError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errLimits):
		fs.add(Finding{Offset: s.off, Verdict: Unknown, Rule: "pickle.limits", Message: err.Error() + "; the rest was not analysed"})
		return errStopFile
	case errors.As(err, &pe):
		if !quiet {
			fs.add(Finding{Offset: pe.Off, Verdict: Unknown, Rule: "pickle.malformed", Message: pe.Msg + "; a loader would fail here, what follows was not analysed"})
		}
		return errStopFile
	case errors.Is(err, io.ErrUnexpectedEOF):
		if !quiet {
			fs.add(Finding{Offset: s.off, Verdict: Unknown, Rule: "pickle.malformed", Message: "truncated pickle"})
		}
		return errStopFile
	}
	return err
}

// errStopFile ends the parsing of a file early; the rest is only hashed.
var errStopFile = errors.New("stop parsing")

func (fs *fileScan) scanCompressed(s *stream, name string, size int64, algo string, open func(io.Reader) (io.Reader, error)) error {
	fs.fr.Format = algo
	r, err := open(s)
	if err != nil {
		fs.add(Finding{Verdict: Unknown, Rule: "compressed.malformed", Message: algo + ": " + err.Error()})
		return nil
	}
	// A decompression bomb costs time, not memory (nothing is kept), but a
	// scan must end: past deflate's best ratio the stream is not a model.
	limit := size*1100 + 1<<20
	lr := &io.LimitedReader{R: r, N: limit}
	inner := newStream(lr)
	head := inner.peek(16)
	switch {
	case isPickleProto(head) || looksProtocol0(head):
		fs.fr.Format = "joblib+" + algo
		err = fs.scanPickles(inner, name)
	case bytes.HasPrefix(head, []byte("\x93NUMPY")):
		fs.fr.Format = "numpy+" + algo
		err = fs.scanNpy(inner, name)
	}
	if err != nil && !errors.Is(err, errStopFile) {
		fs.add(Finding{Verdict: Unknown, Rule: "compressed.malformed", Message: algo + ": " + err.Error()})
		return nil
	}
	if err := drain(fs.ctx, inner); err != nil {
		fs.add(Finding{Verdict: Unknown, Rule: "compressed.malformed", Message: algo + ": " + err.Error()})
		return nil
	}
	if lr.N <= 0 {
		fs.add(Finding{Verdict: Unknown, Rule: "compressed.bomb", Message: "decompresses past any real model's ratio; the rest was not analysed"})
	}
	return nil
}
