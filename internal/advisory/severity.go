package advisory

import (
	"strconv"
	"strings"

	gocvss30 "github.com/pandatix/go-cvss/30"
	gocvss31 "github.com/pandatix/go-cvss/31"
	gocvss40 "github.com/pandatix/go-cvss/40"
)

// Severity levels in ascending order. SeverityUnknown is a record that
// states none; the policy treats it as at its threshold (see README), since
// the PyPA database publishes no scores and "unknown" must not mean "fine".
const (
	SeverityUnknown  = "unknown"
	SeverityLow      = "low"
	SeverityMedium   = "medium"
	SeverityHigh     = "high"
	SeverityCritical = "critical"
)

// SeverityRank orders severities: low 1 … critical 4, unknown 0.
func SeverityRank(s string) int {
	switch s {
	case SeverityLow:
		return 1
	case SeverityMedium:
		return 2
	case SeverityHigh:
		return 3
	case SeverityCritical:
		return 4
	}
	return 0
}

// RecordSeverity derives a level and, when a CVSS vector is present, its
// base score: the highest CVSS score of severity[], else the
// database_specific.severity text GitHub's records carry (LOW, MODERATE,
// HIGH, CRITICAL), else unknown.
func (r *Record) RecordSeverity() (level string, score float64) {
	best := -1.0
	for _, s := range r.Severity {
		if sc, ok := cvssScore(s.Score); ok && sc > best {
			best = sc
		}
	}
	if best >= 0 {
		return levelOfScore(best), best
	}
	for _, m := range r.databaseSpecifics() {
		if t, ok := m["severity"].(string); ok {
			if l := levelOfText(t); l != SeverityUnknown {
				return l, 0
			}
		}
	}
	return SeverityUnknown, 0
}

func (r *Record) databaseSpecifics() []map[string]any {
	out := []map[string]any{r.DatabaseSpecific}
	for _, a := range r.Affected {
		out = append(out, a.EcosystemSpecific, a.DatabaseSpecific)
	}
	return out
}

// cvssScore scores a CVSS v3.0/v3.1/v4.0 vector with go-cvss, or a bare
// number.
func cvssScore(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(s, "CVSS:3.1/"):
		if c, err := gocvss31.ParseVector(s); err == nil {
			return c.BaseScore(), true
		}
	case strings.HasPrefix(s, "CVSS:3.0/"):
		if c, err := gocvss30.ParseVector(s); err == nil {
			return c.BaseScore(), true
		}
	case strings.HasPrefix(s, "CVSS:4.0/"):
		if c, err := gocvss40.ParseVector(s); err == nil {
			return c.Score(), true
		}
	default:
		if f, err := strconv.ParseFloat(s, 64); err == nil && f >= 0 && f <= 10 {
			return f, true
		}
	}
	return 0, false
}

// levelOfScore uses the CVSS qualitative scale (0.1–3.9 low, 4.0–6.9
// medium, 7.0–8.9 high, 9.0–10 critical).
func levelOfScore(f float64) string {
	switch {
	case f >= 9:
		return SeverityCritical
	case f >= 7:
		return SeverityHigh
	case f >= 4:
		return SeverityMedium
	case f > 0:
		return SeverityLow
	}
	return SeverityUnknown
}

func levelOfText(t string) string {
	switch strings.ToLower(strings.TrimSpace(t)) {
	case "low":
		return SeverityLow
	case "moderate", "medium":
		return SeverityMedium
	case "high", "important":
		return SeverityHigh
	case "critical":
		return SeverityCritical
	}
	return SeverityUnknown
}
