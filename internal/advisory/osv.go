// Package advisory checks Python packages against OSV advisories (the open
// schema osv.dev and the PyPA advisory database publish): records loaded
// from a local directory, optionally an OSV-compatible API, PEP 440 ranges
// compared with a maintained library, and an allow-list of advisory IDs
// that expire.
package advisory

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	pep440 "github.com/aquasecurity/go-pep440-version"
	"go.yaml.in/yaml/v3"
)

// EcosystemPyPI is the OSV ecosystem of Python packages.
const EcosystemPyPI = "PyPI"

// MaxRecordBytes bounds one advisory file (the largest PyPA record is a few
// KiB; osv.dev records with long version lists stay well below 1 MiB).
const MaxRecordBytes = 4 << 20

// Record is the part of an OSV record the checks read.
type Record struct {
	ID               string         `json:"id" yaml:"id"`
	Aliases          []string       `json:"aliases,omitempty" yaml:"aliases"`
	Summary          string         `json:"summary,omitempty" yaml:"summary"`
	Details          string         `json:"details,omitempty" yaml:"details"`
	Withdrawn        string         `json:"withdrawn,omitempty" yaml:"withdrawn"`
	Severity         []Severity     `json:"severity,omitempty" yaml:"severity"`
	Affected         []Affected     `json:"affected,omitempty" yaml:"affected"`
	DatabaseSpecific map[string]any `json:"database_specific,omitempty" yaml:"database_specific"`
}

// Severity is one OSV severity entry: a type (CVSS_V3, CVSS_V4, Ubuntu…)
// and a score (a CVSS vector or a number).
type Severity struct {
	Type  string `json:"type" yaml:"type"`
	Score string `json:"score" yaml:"score"`
}

// Affected names one package and the versions of it an advisory concerns.
type Affected struct {
	Package           Package        `json:"package" yaml:"package"`
	Ranges            []Range        `json:"ranges,omitempty" yaml:"ranges"`
	Versions          []string       `json:"versions,omitempty" yaml:"versions"`
	EcosystemSpecific map[string]any `json:"ecosystem_specific,omitempty" yaml:"ecosystem_specific"`
	DatabaseSpecific  map[string]any `json:"database_specific,omitempty" yaml:"database_specific"`
}

// Package is an OSV package identity.
type Package struct {
	Ecosystem string `json:"ecosystem" yaml:"ecosystem"`
	Name      string `json:"name" yaml:"name"`
}

// Range is an OSV range: a type and ordered events.
type Range struct {
	Type   string  `json:"type" yaml:"type"`
	Events []Event `json:"events" yaml:"events"`
}

// Event is one OSV range event; exactly one field is set.
type Event struct {
	Introduced   string `json:"introduced,omitempty" yaml:"introduced"`
	Fixed        string `json:"fixed,omitempty" yaml:"fixed"`
	LastAffected string `json:"last_affected,omitempty" yaml:"last_affected"`
	Limit        string `json:"limit,omitempty" yaml:"limit"`
}

// RecordError says which advisory file could not be used and why.
type RecordError struct {
	File string
	Err  error
}

func (e *RecordError) Error() string { return fmt.Sprintf("advisory %s: %v", e.File, e.Err) }
func (e *RecordError) Unwrap() error { return e.Err }

var nonNameChars = regexp.MustCompile(`[-_.]+`)

// NormalizeName is PEP 503's normalisation: lower case, runs of -, _ and .
// become one -. Scikit_Learn and scikit.learn are scikit-learn.
func NormalizeName(name string) string {
	return nonNameChars.ReplaceAllString(strings.ToLower(strings.TrimSpace(name)), "-")
}

// DB holds PyPI advisories indexed by normalised package name.
type DB struct {
	byName map[string][]*Record
	count  int
}

// NewDB indexes records; records for other ecosystems and withdrawn ones
// are left out.
func NewDB(records []*Record) *DB {
	db := &DB{byName: map[string][]*Record{}}
	for _, r := range records {
		db.add(r)
	}
	return db
}

func (db *DB) add(r *Record) {
	if r == nil || r.ID == "" || r.Withdrawn != "" {
		return
	}
	seen := map[string]bool{}
	for _, a := range r.Affected {
		if a.Package.Ecosystem != EcosystemPyPI {
			continue
		}
		n := NormalizeName(a.Package.Name)
		if seen[n] {
			continue
		}
		seen[n] = true
		db.byName[n] = append(db.byName[n], r)
	}
	if len(seen) > 0 {
		db.count++
	}
}

// Len is the number of PyPI advisories held.
func (db *DB) Len() int {
	if db == nil {
		return 0
	}
	return db.count
}

// LoadDir reads every *.json, *.yaml and *.yml file below dir as one OSV
// record (the layout of the PyPA advisory database and of osv.dev's
// exports). A file that is not a record fails the load: an advisory
// silently skipped is a vulnerability silently allowed.
func LoadDir(dir string) (*DB, error) {
	var records []*Record
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir // .git and the like
			}
			return nil
		}
		ext := strings.ToLower(filepath.Ext(path))
		if ext != ".json" && ext != ".yaml" && ext != ".yml" || !d.Type().IsRegular() {
			return nil
		}
		r, err := readRecord(path, ext)
		if err != nil {
			return &RecordError{File: path, Err: err}
		}
		records = append(records, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading advisories from %s: %w", dir, err)
	}
	return NewDB(records), nil
}

func readRecord(path, ext string) (*Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxRecordBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxRecordBytes {
		return nil, fmt.Errorf("larger than %d bytes", MaxRecordBytes)
	}
	return ParseRecord(b, ext == ".json")
}

// ParseRecord decodes one OSV record from JSON or YAML.
func ParseRecord(b []byte, isJSON bool) (*Record, error) {
	var r Record
	var err error
	if isJSON {
		err = json.Unmarshal(b, &r)
	} else {
		err = yaml.Unmarshal(b, &r)
	}
	if err != nil {
		return nil, err
	}
	if r.ID == "" {
		return nil, errors.New("no id: not an OSV record")
	}
	return &r, nil
}

// Affects reports whether the advisory concerns version of the package
// named name (any spelling; compared after PEP 503 normalisation). A
// version that PEP 440 cannot parse is compared only with the explicit
// versions list.
func (r *Record) Affects(name, version string) bool {
	n := NormalizeName(name)
	v, verr := pep440.Parse(version)
	for _, a := range r.Affected {
		if a.Package.Ecosystem != EcosystemPyPI || NormalizeName(a.Package.Name) != n {
			continue
		}
		for _, s := range a.Versions {
			if s == version {
				return true
			}
			if verr == nil {
				if av, err := pep440.Parse(s); err == nil && av.Equal(v) {
					return true
				}
			}
		}
		if verr != nil {
			continue
		}
		for _, rg := range a.Ranges {
			if rg.Type == "ECOSYSTEM" && rangeAffects(rg.Events, v) {
				return true
			}
		}
	}
	return false
}

// rangeAffects evaluates an ECOSYSTEM range as the OSV schema describes:
// events sorted by version ("0" first), a version is affected from an
// introduced event until a fixed event at or below it, or beyond a
// last_affected event. Events whose version does not parse are ignored
// except "0".
func rangeAffects(events []Event, v pep440.Version) bool {
	type ev struct {
		zero bool
		at   pep440.Version
		kind string
	}
	var evs []ev
	for _, e := range events {
		kind, s := "", ""
		switch {
		case e.Introduced != "":
			kind, s = "introduced", e.Introduced
		case e.Fixed != "":
			kind, s = "fixed", e.Fixed
		case e.LastAffected != "":
			kind, s = "last_affected", e.LastAffected
		default:
			continue // limit: only bounds which commits to walk in GIT ranges
		}
		if s == "0" && kind == "introduced" {
			evs = append(evs, ev{zero: true, kind: kind})
			continue
		}
		at, err := pep440.Parse(s)
		if err != nil {
			continue
		}
		evs = append(evs, ev{at: at, kind: kind})
	}
	slices.SortStableFunc(evs, func(a, b ev) int {
		switch {
		case a.zero && b.zero:
			return 0
		case a.zero:
			return -1
		case b.zero:
			return 1
		}
		return a.at.Compare(b.at)
	})
	affected := false
	for _, e := range evs {
		switch e.kind {
		case "introduced":
			if e.zero || v.GreaterThanOrEqual(e.at) {
				affected = true
			}
		case "fixed":
			if v.GreaterThanOrEqual(e.at) {
				affected = false
			}
		case "last_affected":
			if v.GreaterThan(e.at) {
				affected = false
			}
		}
	}
	return affected
}

// Fixed lists the versions the record names as fixing the package.
func (r *Record) Fixed(name string) []string {
	n := NormalizeName(name)
	var out []string
	for _, a := range r.Affected {
		if a.Package.Ecosystem != EcosystemPyPI || NormalizeName(a.Package.Name) != n {
			continue
		}
		for _, rg := range a.Ranges {
			for _, e := range rg.Events {
				if e.Fixed != "" && !slices.Contains(out, e.Fixed) {
					out = append(out, e.Fixed)
				}
			}
		}
	}
	return out
}

// Lookup returns the advisories affecting name at version.
func (db *DB) Lookup(name, version string) []*Record {
	if db == nil {
		return nil
	}
	var out []*Record
	for _, r := range db.byName[NormalizeName(name)] {
		if r.Affects(name, version) {
			out = append(out, r)
		}
	}
	return out
}

// Fingerprint identifies the advisories held: a cached dependency result
// made against another set is checked again.
func (db *DB) Fingerprint() string {
	if db == nil {
		return "none"
	}
	seen := map[*Record]bool{}
	var recs []*Record
	for _, rs := range db.byName {
		for _, r := range rs {
			if !seen[r] {
				seen[r] = true
				recs = append(recs, r)
			}
		}
	}
	slices.SortFunc(recs, func(a, b *Record) int { return strings.Compare(a.ID, b.ID) })
	h := sha256.New()
	enc := json.NewEncoder(h)
	for _, r := range recs {
		_ = enc.Encode(r)
	}
	return hex.EncodeToString(h.Sum(nil))
}
