package dashboard

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"strings"
	"sync"

	"github.com/modelsync/modelsync/internal/controller"
)

// DefaultAuditEntries is how many audit entries the dashboard keeps.
const DefaultAuditEntries = 10000

// maxAuditLine bounds one buffered line: a longer one is dropped, not kept.
const maxAuditLine = 64 << 10

// AuditLog is the newest entries of the audit log, in memory and bounded.
// It is an io.Writer of the controller's JSON lines, so it sees exactly
// what the audit log records. The file (--audit-log) stays the complete
// record; this is what the pages search.
type AuditLog struct {
	mu      sync.Mutex
	max     int
	entries []AuditRecord // oldest first
	partial []byte
	seq     uint64
}

// AuditRecord is an entry with its stable id: a digest of its JSON line,
// so a link to it names the same entry after a restart that reloads the
// log.
type AuditRecord struct {
	ID string `json:"id"`
	controller.AuditEntry
}

// NewAuditLog keeps the newest max entries (DefaultAuditEntries when max ≤ 0).
func NewAuditLog(max int) *AuditLog {
	if max <= 0 {
		max = DefaultAuditEntries
	}
	return &AuditLog{max: max}
}

// Write takes JSON lines; lines that are not audit entries are skipped.
func (a *AuditLog) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	buf := append(a.partial, p...)
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		a.add(buf[:i])
		buf = buf[i+1:]
	}
	if len(buf) > maxAuditLine {
		buf = nil
	}
	a.partial = append([]byte(nil), buf...)
	return len(p), nil
}

func (a *AuditLog) add(line []byte) {
	line = bytes.TrimSpace(line)
	var e controller.AuditEntry
	if len(line) == 0 || json.Unmarshal(line, &e) != nil || e.Action == "" {
		return
	}
	sum := sha256.Sum256(line)
	a.entries = append(a.entries, AuditRecord{ID: hex.EncodeToString(sum[:8]), AuditEntry: e})
	a.seq++
	if len(a.entries) > a.max {
		// Copy instead of reslicing so the dropped entries are freed.
		a.entries = append([]AuditRecord(nil), a.entries[len(a.entries)-a.max:]...)
	}
}

// Seq counts the entries ever added: it changes when the log does.
func (a *AuditLog) Seq() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seq
}

// AuditFilter selects entries; empty fields match everything.
type AuditFilter struct {
	// Q matches any field, case-insensitively.
	Q           string
	Model       string
	Environment string
	Actor       string
	Action      string
	Result      string
}

func (f AuditFilter) match(e AuditRecord) bool {
	eq := func(want, got string) bool { return want == "" || strings.EqualFold(want, got) }
	if !eq(f.Model, e.Model) || !eq(f.Environment, e.Environment) || !eq(f.Actor, e.Actor) || !eq(f.Result, e.Result) {
		return false
	}
	if f.Action != "" && !strings.Contains(strings.ToLower(e.Action), strings.ToLower(f.Action)) {
		return false
	}
	if f.Q == "" {
		return true
	}
	q := strings.ToLower(f.Q)
	for _, s := range []string{e.ID, e.Actor, e.Revision, e.Model, e.Environment, e.Action, e.From, e.To, e.Result, e.Error} {
		if strings.Contains(strings.ToLower(s), q) {
			return true
		}
	}
	return false
}

// Query returns the matching entries newest first, skipping offset and
// returning at most limit (all when limit ≤ 0), and the number matching.
func (a *AuditLog) Query(f AuditFilter, offset, limit int) ([]AuditRecord, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []AuditRecord
	total := 0
	for i := len(a.entries) - 1; i >= 0; i-- {
		e := a.entries[i]
		if !f.match(e) {
			continue
		}
		if total >= offset && (limit <= 0 || len(out) < limit) {
			out = append(out, e)
		}
		total++
	}
	return out, total
}

// Get returns the entry with id.
func (a *AuditLog) Get(id string) (AuditRecord, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := len(a.entries) - 1; i >= 0; i-- {
		if a.entries[i].ID == id {
			return a.entries[i], true
		}
	}
	return AuditRecord{}, false
}

func auditEntry(actor, action, result, errText string) controller.AuditEntry {
	return controller.AuditEntry{Actor: actor, Action: action, Result: result, Error: errText}
}

// maxAuditPreload is how much of an existing audit file is read at start:
// its tail, enough for DefaultAuditEntries typical lines.
const maxAuditPreload = 16 << 20

// Preload reads the tail of an audit log file (--audit-log) into a, so the
// pages show history from before this process started. Memory stays
// bounded whatever the file's size.
func (a *AuditLog) Preload(r io.ReadSeeker) error {
	end, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	start := max(0, end-maxAuditPreload)
	if _, err := r.Seek(start, io.SeekStart); err != nil {
		return err
	}
	br := bufio.NewReaderSize(r, 64<<10)
	if start > 0 {
		// The first line is cut; skip it.
		if _, err := br.ReadString('\n'); err != nil {
			return nil
		}
	}
	if _, err := io.Copy(a, br); err != nil {
		return err
	}
	// A last line without its newline is complete in a file.
	_, err = a.Write([]byte("\n"))
	return err
}
