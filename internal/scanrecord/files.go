package scanrecord

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/modelsync/modelsync/internal/scan"
)

// The per-file findings of a scan, so that a reused result lists what the
// scan found file by file, as the scan printed it, without reading an
// artifact again. A model version's tag value is limited to 5,000
// characters by MLflow 2.x (100,000 by 3.x), so the list is JSON split
// into numbered tags of at most maxTagValue characters each:
// TagFiles holds the number of parts, TagFiles+".0", ".1"... the parts.
// The list carries the artifact digest it belongs to; parts left by a
// different scan never read as this one's.
const (
	TagFiles = "modelsync.scan.files"
	// maxFileParts bounds the tags (and so the bytes, 100 KB) a list may
	// take; past it, files without findings are left out first, then
	// findings, with counts of what was left out.
	maxFileParts = 25
	// maxMessage bounds one finding's message in the list; the scanner's
	// own messages are far shorter.
	maxMessage = 300
)

// FilePartTag is the tag of the i-th part of the per-file list.
func FilePartTag(i int) string { return TagFiles + "." + strconv.Itoa(i) }

// FileList is the per-file summary of a scan.
type FileList struct {
	Digest string      `json:"d"`
	Files  []FileEntry `json:"f"`
	// OmittedFiles counts files without findings left out to fit.
	OmittedFiles int `json:"of,omitempty"`
}

// FileEntry is one file: what scan.FileReport says, with short keys.
type FileEntry struct {
	Path     string         `json:"p"`
	Size     int64          `json:"s"`
	SHA256   string         `json:"h,omitempty"`
	Format   string         `json:"t"`
	Verdict  scan.Verdict   `json:"v"`
	Findings []FindingEntry `json:"x,omitempty"`
	// Omitted counts findings left out to fit.
	Omitted int `json:"o,omitempty"`
}

// FindingEntry is one finding; Member is the archive member ("file!member"
// in scan.Finding.Path), empty for the file itself.
type FindingEntry struct {
	Member  string       `json:"m,omitempty"`
	Offset  int64        `json:"at"`
	Opcode  string       `json:"op,omitempty"`
	Global  string       `json:"g,omitempty"`
	Verdict scan.Verdict `json:"v"`
	Rule    string       `json:"r"`
	Message string       `json:"msg"`
}

// ListFiles condenses a report to its per-file list.
func ListFiles(rep scan.Report) FileList {
	fl := FileList{Digest: rep.Digest, Files: make([]FileEntry, 0, len(rep.Files))}
	for _, fr := range rep.Files {
		e := FileEntry{Path: fr.Path, Size: fr.Size, SHA256: fr.SHA256, Format: fr.Format, Verdict: fr.Verdict}
		for _, f := range fr.Findings {
			fe := FindingEntry{Offset: f.Offset, Opcode: f.Opcode, Global: f.Global, Verdict: f.Verdict, Rule: f.Rule, Message: truncate(f.Message, maxMessage)}
			if f.Path != fr.Path {
				fe.Member = strings.TrimPrefix(f.Path, fr.Path+"!")
			}
			e.Findings = append(e.Findings, fe)
		}
		fl.Files = append(fl.Files, e)
	}
	return fl
}

// Reports turns the list back into file reports, as the scan made them.
func (fl FileList) Reports() []scan.FileReport {
	out := make([]scan.FileReport, 0, len(fl.Files))
	for _, e := range fl.Files {
		fr := scan.FileReport{Path: e.Path, Size: e.Size, SHA256: e.SHA256, Format: e.Format, Verdict: e.Verdict, Findings: []scan.Finding{}}
		for _, f := range e.Findings {
			p := e.Path
			if f.Member != "" {
				p += "!" + f.Member
			}
			fr.Findings = append(fr.Findings, scan.Finding{Path: p, Offset: f.Offset, Opcode: f.Opcode, Global: f.Global, Verdict: f.Verdict, Rule: f.Rule, Message: f.Message})
		}
		if e.Omitted > 0 {
			fr.Findings = append(fr.Findings, scan.Finding{Path: e.Path, Verdict: e.Verdict, Rule: "scan.findings_truncated",
				Message: fmt.Sprintf("%d more findings not kept in the version's tags; scan the files themselves (modelsync scan PATH) to list them", e.Omitted)})
		}
		out = append(out, fr)
	}
	return out
}

// fileTags renders the list as parts that each fit a tag, leaving out
// detail until the parts fit maxFileParts: first files with no findings
// (the least informative), from the end, then half the findings of the
// file with the most, until it fits. Verdicts and counts always stay.
func fileTags(fl FileList) map[string]string {
	budget := maxFileParts * maxTagValue
	size := func(v any) int { b, _ := json.Marshal(v); return len(asciiJSON(b)) }
	sizes := make([]int, len(fl.Files))
	total := size(FileList{Digest: fl.Digest, OmittedFiles: 1 << 30})
	for i, e := range fl.Files {
		sizes[i] = size(e) + 1 // and its comma
		total += sizes[i]
	}
	if total > budget {
		keep := make([]FileEntry, 0, len(fl.Files))
		keepSizes := make([]int, 0, len(fl.Files))
		// Clean files go from the end until the rest fits.
		for i := len(fl.Files) - 1; i >= 0; i-- {
			if total > budget && len(fl.Files[i].Findings) == 0 && fl.Files[i].Omitted == 0 {
				total -= sizes[i]
				fl.OmittedFiles++
				continue
			}
			keep, keepSizes = append(keep, fl.Files[i]), append(keepSizes, sizes[i])
		}
		slices.Reverse(keep)
		slices.Reverse(keepSizes)
		fl.Files, sizes = keep, keepSizes
	}
	for total > budget {
		most := -1
		for i, f := range fl.Files {
			if len(f.Findings) > 0 && (most < 0 || len(f.Findings) > len(fl.Files[most].Findings)) {
				most = i
			}
		}
		if most < 0 {
			break // only the files' own lines are left: they stay
		}
		e := fl.Files[most]
		keep := len(e.Findings) / 2
		e.Omitted += len(e.Findings) - keep
		e.Findings = slices.Clone(e.Findings[:keep])
		fl.Files[most] = e
		n := size(e) + 1
		total += n - sizes[most]
		sizes[most] = n
	}
	b, _ := json.Marshal(fl)
	s := asciiJSON(b)
	tags := map[string]string{}
	n := 0
	for ; len(s) > 0; n++ {
		k := min(len(s), maxTagValue)
		tags[FilePartTag(n)] = s[:k]
		s = s[k:]
	}
	tags[TagFiles] = strconv.Itoa(n)
	return tags
}

// readFileTags joins the parts; ok is false when there are none, they are
// incomplete, or they belong to another digest.
func readFileTags(tags map[string]string, digest string) (FileList, bool) {
	n, err := strconv.Atoi(tags[TagFiles])
	if err != nil || n <= 0 || n > maxFileParts {
		return FileList{}, false
	}
	var b strings.Builder
	for i := 0; i < n; i++ {
		p, ok := tags[FilePartTag(i)]
		if !ok {
			return FileList{}, false
		}
		b.WriteString(p)
	}
	var fl FileList
	if json.Unmarshal([]byte(b.String()), &fl) != nil || fl.Digest != digest {
		return FileList{}, false
	}
	return fl, true
}

// asciiJSON escapes every non-ASCII character of a JSON text, so that the
// text can be cut into parts at any byte without splitting a character
// (MLflow counts characters, and a cut one would not be valid UTF-8).
func asciiJSON(b []byte) string {
	var out strings.Builder
	out.Grow(len(b))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		switch {
		case r < utf8.RuneSelf:
			out.WriteByte(b[0])
		case r > 0xffff:
			r -= 0x10000
			fmt.Fprintf(&out, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		default:
			fmt.Fprintf(&out, `\u%04x`, r)
		}
		b = b[size:]
	}
	return out.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
