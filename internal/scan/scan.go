// Package scan is a streaming scanner for model artifacts: it reads every
// file of a model once, hashing and parsing in the same pass, and reports
// what loading the file would import or trust (pickle globals, safetensors
// header consistency, ONNX external-data paths, zip entry names).
//
// Nothing in this package executes or deserializes the artifacts: pickles
// are read at the opcode level, as a static analyzer must, because a pickle
// runs whatever its GLOBAL/STACK_GLOBAL/REDUCE opcodes name when loaded.
package scan

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// ScannerVersion names this scanner and the rules it applies; a cached
// result is valid only for the same digest and the same ScannerVersion, so
// it changes whenever a rule or the allow/deny lists change.
const ScannerVersion = "modelsync-scan/1"

// Verdict is the judgement on a finding, a file or a whole report. They are
// ordered: safe < unknown < dangerous.
type Verdict string

const (
	// Safe means every global is allow-listed and every structure checked.
	Safe Verdict = "safe"
	// Unknown means a global is on neither list: loading it imports code
	// that nobody vouched for, but that is not known to be harmful.
	Unknown Verdict = "unknown"
	// Dangerous means a denied global (os.system, builtins.eval, ...) or a
	// structure that escapes its bounds (a zip entry with "..", a
	// safetensors header that lies about its offsets).
	Dangerous Verdict = "dangerous"
)

func (v Verdict) rank() int {
	switch v {
	case Safe, "":
		return 0
	case Unknown:
		return 1
	default: // Dangerous and anything unrecognized: fail closed.
		return 2
	}
}

// Worst returns the more severe of v and o; the empty verdict counts as safe.
func (v Verdict) Worst(o Verdict) Verdict {
	if o.rank() > v.rank() {
		return o
	}
	if v == "" {
		return Safe
	}
	return v
}

// Finding is one thing worth reporting in a file.
type Finding struct {
	// Path is the file, and for a member of an archive "file!member".
	Path string `json:"path"`
	// Offset is the byte offset of the opcode or structure in Path (in the
	// member's uncompressed stream for an archive member).
	Offset int64 `json:"offset"`
	// Opcode is the pickle opcode that named Global (GLOBAL, STACK_GLOBAL,
	// INST, OBJ...), empty for findings that are not about pickles.
	Opcode string `json:"opcode,omitempty"`
	// Global is the imported "module.name".
	Global  string  `json:"global,omitempty"`
	Verdict Verdict `json:"verdict"`
	// Rule is a stable identifier (pickle.denied_global, zip.path_traversal,
	// safetensors.overlap...) that SARIF and policies refer to.
	Rule    string `json:"rule"`
	Message string `json:"message"`
}

// FileReport is the result for one file.
type FileReport struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Format is what the content was recognized as (pickle, zip, pytorch,
	// numpy, npz, safetensors, onnx, joblib, other).
	Format   string    `json:"format"`
	Verdict  Verdict   `json:"verdict"`
	Findings []Finding `json:"findings"`
}

// Report is the result of scanning a Source.
type Report struct {
	// Digest is the artifact digest: the SHA-256 of the sorted
	// "sha256  path\n" lines of every file, as sha256sum prints them.
	Digest string `json:"digest"`
	// Scanner is ScannerVersion: with Digest, the key of a cached result.
	Scanner string       `json:"scanner"`
	Verdict Verdict      `json:"verdict"`
	Files   []FileReport `json:"files"`
}

// Source yields the files of an artifact tree. fn receives a slash-separated
// path relative to the root, the size, and a function that opens the
// content; a Source for a remote store opens lazily so that each file is
// read once, when it is scanned.
type Source interface {
	Walk(ctx context.Context, fn func(path string, size int64, open func() (io.ReadCloser, error)) error) error
}

// Options tune a scan.
type Options struct {
	// AllowGlobals are extra "module.name" globals (or "module.*") judged
	// safe, e.g. a model's own classes; a denied global stays dangerous.
	AllowGlobals []string
	// Progress, when set, is called as a file is read with the bytes done
	// and the file's size; from a goroutine of the scan, never two calls
	// at once.
	Progress func(path string, done, total int64)
}

// Scan reads every file of src once and reports it.
func Scan(ctx context.Context, src Source, opts Options) (Report, error) {
	rep := Report{Scanner: ScannerVersion, Verdict: Safe, Files: []FileReport{}}
	cls := newClassifier(opts.AllowGlobals)
	err := src.Walk(ctx, func(path string, size int64, open func() (io.ReadCloser, error)) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		fr, err := scanFile(ctx, cls, path, size, open, opts.Progress)
		if err != nil {
			return fmt.Errorf("scanning %s: %w", path, err)
		}
		rep.Files = append(rep.Files, fr)
		rep.Verdict = rep.Verdict.Worst(fr.Verdict)
		return nil
	})
	if err != nil {
		return Report{}, err
	}
	slices.SortFunc(rep.Files, func(a, b FileReport) int { return strings.Compare(a.Path, b.Path) })
	rep.Digest = ArtifactDigest(rep.Files)
	return rep, nil
}

// ArtifactDigest is one digest over the sorted (path, sha256) list, in
// sha256sum's line format so that it can be recomputed with coreutils.
func ArtifactDigest(files []FileReport) string {
	lines := make([]string, 0, len(files))
	for _, f := range files {
		lines = append(lines, f.SHA256+"  "+f.Path+"\n")
	}
	slices.Sort(lines)
	h := sha256.New()
	for _, l := range lines {
		io.WriteString(h, l)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// ErrTooLarge is returned for a structure whose declared size exceeds what
// the scanner will buffer (a header, a name); it becomes a finding.
var ErrTooLarge = errors.New("declared size exceeds the scanner's bound")
