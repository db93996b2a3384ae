// Package scanrecord keeps the result of scanning a model version's
// artifacts on the MLflow version itself, as tags keyed by the artifact
// digest and the scanner version, so the PR gate, the reconciler and
// lineage read it without reading gigabytes again. It also verifies that
// a version still holds the artifacts it was approved with.
package scanrecord

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/modelsync/modelsync/internal/advisory"
	"github.com/modelsync/modelsync/internal/scan"
)

// Tags on a model version. Listing is a fingerprint of the object listing
// (keys, sizes, ETags) the scan read: a later check that lists the same
// objects knows the digest still holds without reading them.
const (
	TagResult       = "modelsync.scan.result"
	TagDigest       = "modelsync.scan.digest"
	TagScanner      = "modelsync.scan.scanner"
	TagFindings     = "modelsync.scan.findings"
	TagDependencies = "modelsync.scan.dependencies"
	TagListing      = "modelsync.scan.listing"
	TagScannedAt    = "modelsync.scan.at"
	// ApprovedPrefix + env + ApprovedSuffix holds the artifact digest a
	// version had when it was first served in env.
	ApprovedPrefix = "modelsync.approved."
	ApprovedSuffix = ".digest"
)

// ApprovedTag is the tag recording the digest first served in env.
func ApprovedTag(env string) string { return ApprovedPrefix + env + ApprovedSuffix }

// maxTagValue keeps a tag under MLflow's model-version tag value limit
// (5,000 characters on the oldest supported server) with room to spare.
const maxTagValue = 4000

// Findings is the summary kept in TagFindings: counts per verdict and the
// globals behind them (the policy's allow-list of unknown globals needs
// the names), truncated to fit a tag.
type Findings struct {
	Dangerous int      `json:"dangerous"`
	Unknown   int      `json:"unknown"`
	Files     int      `json:"files"`
	Globals   Globals  `json:"globals"`
	First     []string `json:"first"` // "path@offset opcode global: message", the first few
	Truncated bool     `json:"truncated,omitempty"`
}

// Globals lists the imported names by verdict, each once, sorted.
type Globals struct {
	Dangerous []string `json:"dangerous"`
	Unknown   []string `json:"unknown"`
}

// Dependencies is the summary kept in TagDependencies.
type Dependencies struct {
	Vulnerabilities []Vuln   `json:"vulns"`
	Unpinned        []string `json:"unpinned"`
	ExpiredAllows   []string `json:"expiredAllows"`
	Requirements    int      `json:"requirements"`
	Advisories      int      `json:"advisories"`
	Truncated       bool     `json:"truncated,omitempty"`
}

// Vuln is one advisory on one package, short.
type Vuln struct {
	ID           string    `json:"id"`
	Package      string    `json:"pkg"`
	Version      string    `json:"ver"`
	Severity     string    `json:"sev"`
	Fixed        []string  `json:"fixed,omitempty"`
	Allowed      bool      `json:"allowed,omitempty"`
	AllowExpires time.Time `json:"allowExpires,omitzero"`
	AllowReason  string    `json:"allowReason,omitempty"`
}

// Record is what the tags say about a version.
type Record struct {
	Result       scan.Verdict  `json:"result"`
	Digest       string        `json:"digest"`
	Scanner      string        `json:"scanner"`
	Listing      string        `json:"listing,omitempty"`
	ScannedAt    time.Time     `json:"scannedAt"`
	Findings     Findings      `json:"findings"`
	Dependencies *Dependencies `json:"dependencies,omitempty"`
	// Approved maps environments to the digest first served there.
	Approved map[string]string `json:"approved"`
	// Files is the per-file list of findings, nil when the tags hold none
	// (a scan recorded before the list existed) or a torn one.
	Files *FileList `json:"-"`
}

// Current reports whether the record was made by this scanner version.
func (r Record) Current() bool { return r.Scanner == scan.ScannerVersion && r.Digest != "" }

// FromTags reads a record; ok is false when the version was never
// scanned. Approved digests are returned even then (in the record).
func FromTags(tags map[string]string) (Record, bool) {
	r := Record{Approved: map[string]string{}}
	for k, v := range tags {
		if env, ok := strings.CutPrefix(k, ApprovedPrefix); ok {
			if env, ok = strings.CutSuffix(env, ApprovedSuffix); ok && env != "" {
				r.Approved[env] = v
			}
		}
	}
	r.Result, r.Digest, r.Scanner, r.Listing = scan.Verdict(tags[TagResult]), tags[TagDigest], tags[TagScanner], tags[TagListing]
	if r.Result == "" || r.Digest == "" {
		return r, false
	}
	r.ScannedAt, _ = time.Parse(time.RFC3339, tags[TagScannedAt])
	if s := tags[TagFindings]; s != "" {
		_ = json.Unmarshal([]byte(s), &r.Findings) // a mangled summary reads as no details, never as safe: Result says
	}
	if fl, ok := readFileTags(tags, r.Digest); ok {
		r.Files = &fl
	}
	if s := tags[TagDependencies]; s != "" {
		var d Dependencies
		if json.Unmarshal([]byte(s), &d) == nil {
			r.Dependencies = &d
		}
	}
	return r, true
}

// Tags renders the record's scan tags (not the approvals).
func (r Record) Tags() map[string]string {
	t := map[string]string{
		TagResult: string(r.Result), TagDigest: r.Digest, TagScanner: r.Scanner,
		TagListing: r.Listing, TagScannedAt: r.ScannedAt.UTC().Format(time.RFC3339),
		TagFindings: fitFindings(r.Findings),
	}
	if r.Dependencies != nil {
		t[TagDependencies] = fitDependencies(*r.Dependencies)
	}
	if r.Files != nil {
		maps.Copy(t, fileTags(*r.Files))
	}
	return t
}

// Summarize condenses a scan report.
func Summarize(rep scan.Report) Findings {
	f := Findings{Files: len(rep.Files), Globals: Globals{Dangerous: []string{}, Unknown: []string{}}, First: []string{}}
	for _, fr := range rep.Files {
		for _, x := range fr.Findings {
			switch x.Verdict {
			case scan.Safe:
				continue
			case scan.Unknown:
				f.Unknown++
				if x.Global != "" && !slices.Contains(f.Globals.Unknown, x.Global) {
					f.Globals.Unknown = append(f.Globals.Unknown, x.Global)
				}
			default:
				f.Dangerous++
				if x.Global != "" && !slices.Contains(f.Globals.Dangerous, x.Global) {
					f.Globals.Dangerous = append(f.Globals.Dangerous, x.Global)
				}
			}
			if len(f.First) < 5 {
				s := x.Path + "@" + itoa(x.Offset) + " " + x.Opcode + " " + x.Global + ": " + x.Message
				f.First = append(f.First, strings.Join(strings.Fields(s), " "))
			}
		}
	}
	slices.Sort(f.Globals.Dangerous)
	slices.Sort(f.Globals.Unknown)
	return f
}

// SummarizeDependencies condenses a dependency check.
func SummarizeDependencies(res advisory.Result) Dependencies {
	d := Dependencies{Vulnerabilities: []Vuln{}, Unpinned: []string{}, ExpiredAllows: []string{}, Requirements: len(res.Requirements), Advisories: res.Advisories}
	for _, v := range res.Vulnerabilities {
		d.Vulnerabilities = append(d.Vulnerabilities, Vuln{ID: v.ID, Package: v.Package, Version: v.Version, Severity: v.Severity,
			Fixed: v.Fixed, Allowed: v.Allowed, AllowExpires: v.AllowExpires, AllowReason: v.AllowReason})
	}
	for _, u := range res.Unpinned {
		s := u.Source + ": " + u.Spec
		if !slices.Contains(d.Unpinned, s) {
			d.Unpinned = append(d.Unpinned, s)
		}
	}
	for _, a := range res.ExpiredAllows {
		d.ExpiredAllows = append(d.ExpiredAllows, a.ID)
	}
	return d
}

// fitFindings drops detail (first messages, then names) until the summary
// fits a tag; counts always stay, so truncation never hides a verdict.
func fitFindings(f Findings) string {
	for {
		b, _ := json.Marshal(f)
		if len(b) <= maxTagValue {
			return string(b)
		}
		f.Truncated = true
		switch {
		case len(f.First) > 0:
			f.First = f.First[:len(f.First)-1]
		case len(f.Globals.Unknown) > 0:
			f.Globals.Unknown = f.Globals.Unknown[:len(f.Globals.Unknown)-1]
		case len(f.Globals.Dangerous) > 0:
			f.Globals.Dangerous = f.Globals.Dangerous[:len(f.Globals.Dangerous)-1]
		default:
			return string(b)
		}
	}
}

// fitDependencies drops unpinned entries, then allowed vulnerabilities,
// then the lowest-severity ones, marking the summary truncated.
func fitDependencies(d Dependencies) string {
	slices.SortStableFunc(d.Vulnerabilities, func(a, b Vuln) int {
		// denied before allowed, then by severity descending
		if a.Allowed != b.Allowed {
			if a.Allowed {
				return 1
			}
			return -1
		}
		return advisory.SeverityRank(b.Severity) - advisory.SeverityRank(a.Severity)
	})
	for {
		b, _ := json.Marshal(d)
		if len(b) <= maxTagValue {
			return string(b)
		}
		d.Truncated = true
		switch {
		case len(d.Unpinned) > 1:
			d.Unpinned = d.Unpinned[:len(d.Unpinned)-1]
		case len(d.Vulnerabilities) > 1:
			d.Vulnerabilities = d.Vulnerabilities[:len(d.Vulnerabilities)-1]
		default:
			return string(b)
		}
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
