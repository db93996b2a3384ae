package scanrecord

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/modelsync/modelsync/internal/scan"
)

func sampleReport(files int) scan.Report {
	rep := scan.Report{Digest: "sha256:" + strings.Repeat("d", 64), Scanner: scan.ScannerVersion, Verdict: scan.Dangerous}
	rep.Files = append(rep.Files, scan.FileReport{Path: "model/données.pkl", Size: 99, SHA256: strings.Repeat("a", 64), Format: "pytorch", Verdict: scan.Dangerous,
		Findings: []scan.Finding{
			{Path: "model/données.pkl!archive/data.pkl", Offset: 17, Opcode: "STACK_GLOBAL", Global: "posix.system", Verdict: scan.Dangerous, Rule: "pickle.denied_global", Message: "runs a shell command — «id»"},
			{Path: "model/données.pkl", Offset: 3, Verdict: scan.Unknown, Rule: "zip.encrypted", Message: "encrypted member"},
		}})
	for i := range files {
		rep.Files = append(rep.Files, scan.FileReport{Path: fmt.Sprintf("model/shard-%05d.safetensors", i), Size: int64(i), SHA256: strings.Repeat("b", 64),
			Format: "safetensors", Verdict: scan.Safe, Findings: []scan.Finding{}})
	}
	many := scan.FileReport{Path: "model/custom.pkl", Size: 5, SHA256: strings.Repeat("c", 64), Format: "pickle", Verdict: scan.Unknown, Findings: []scan.Finding{}}
	for i := range 64 {
		many.Findings = append(many.Findings, scan.Finding{Path: many.Path, Offset: int64(i), Opcode: "GLOBAL", Global: fmt.Sprintf("mypkg.layers.Custom%d", i),
			Verdict: scan.Unknown, Rule: "pickle.unknown_global", Message: strings.Repeat("not on the allow-list ", 10)})
	}
	rep.Files = append(rep.Files, many)
	return rep
}

// A small list comes back exactly as the scan reported it, through tags
// that each fit MLflow 2.x's 5,000-character limit.
func TestFileListRoundTrip(t *testing.T) {
	rep := sampleReport(3)
	fl := ListFiles(rep)
	r := Record{Result: rep.Verdict, Digest: rep.Digest, Scanner: rep.Scanner, Findings: Summarize(rep), Files: &fl}
	tags := r.Tags()
	if tags[TagFiles] == "" || tags[TagFiles] == "0" {
		t.Fatalf("no per-file tags: %v", tags)
	}
	for k, v := range tags {
		if utf8.RuneCountInString(v) > maxTagValue || !utf8.ValidString(v) {
			t.Fatalf("tag %s: %d characters (valid UTF-8 %v)", k, utf8.RuneCountInString(v), utf8.ValidString(v))
		}
	}
	back, ok := FromTags(tags)
	if !ok || back.Files == nil {
		t.Fatalf("no per-file list read back: %+v", back)
	}
	var want []scan.FileReport
	for _, fr := range rep.Files {
		fr.Findings = append([]scan.Finding{}, fr.Findings...)
		want = append(want, fr)
	}
	if got := back.Files.Reports(); !reflect.DeepEqual(got, want) {
		t.Fatalf("read back\n%+v\nwant\n%+v", got, want)
	}

	// Parts of another scan, or a torn set, read as no list (never as a
	// different one).
	other := map[string]string{}
	for k, v := range tags {
		other[k] = v
	}
	other[TagDigest] = "sha256:" + strings.Repeat("e", 64)
	if back, _ := FromTags(other); back.Files != nil {
		t.Error("a list of another digest was read")
	}
	delete(tags, FilePartTag(0))
	if back, _ := FromTags(tags); back.Files != nil {
		t.Error("a torn list was read")
	}
}

// A list too large for its bound leaves out clean files first, then
// findings of the file with most, and says how many.
func TestFileListBounded(t *testing.T) {
	rep := sampleReport(20000)
	fl := ListFiles(rep)
	tags := fileTags(fl)
	if len(tags) > maxFileParts+1 {
		t.Fatalf("%d tags, bound %d", len(tags), maxFileParts+1)
	}
	for k, v := range tags {
		if len(v) > maxTagValue {
			t.Fatalf("tag %s: %d bytes", k, len(v))
		}
	}
	tags[TagDigest], tags[TagResult] = rep.Digest, string(rep.Verdict)
	back, ok := FromTags(tags)
	if !ok || back.Files == nil || back.Files.OmittedFiles == 0 {
		t.Fatalf("bounded list not read back or not marked: %+v", back.Files)
	}
	got := back.Files.Reports()
	if got[0].Path != "model/données.pkl" || len(got[0].Findings) != 2 {
		t.Fatalf("the file with dangerous findings was cut: %+v", got[0])
	}
	if last := got[len(got)-1]; last.Path != "model/custom.pkl" || len(last.Findings) != 64 {
		t.Fatalf("a file with findings was cut while clean files were left to cut: %d findings", len(last.Findings))
	}

	// Only files with findings: every file stays, findings are cut and
	// counted.
	rep.Files = rep.Files[:1]
	for i := range 400 {
		f := sampleReport(0).Files[1]
		f.Path = fmt.Sprintf("model/custom-%03d.pkl", i)
		for j := range f.Findings {
			f.Findings[j].Path = f.Path
		}
		rep.Files = append(rep.Files, f)
	}
	tags = fileTags(ListFiles(rep))
	if len(tags) > maxFileParts+1 {
		t.Fatalf("%d tags, bound %d", len(tags), maxFileParts+1)
	}
	tags[TagDigest], tags[TagResult] = rep.Digest, string(rep.Verdict)
	back, _ = FromTags(tags)
	if back.Files == nil || len(back.Files.Files) != 401 {
		t.Fatalf("files left out while findings could be cut: %+v", back.Files)
	}
	for _, fr := range back.Files.Reports()[1:] {
		last := fr.Findings[len(fr.Findings)-1]
		if fr.Verdict != scan.Unknown || last.Rule != "scan.findings_truncated" || !strings.HasPrefix(last.Message, fmt.Sprint(64-len(fr.Findings)+1, " more")) {
			t.Fatalf("%s: verdict %s, last finding %+v", fr.Path, fr.Verdict, last)
		}
	}
}
