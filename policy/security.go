package policy

import "time"

// SecurityModel is what scans say about one model's versions, keyed by
// the decimal version number. A version absent from Versions was never
// scanned (or no registry could be asked): security.not_scanned judges it.
type SecurityModel struct {
	Versions map[string]SecurityVersion `json:"versions"`
}

// SecurityVersion is the scan record of one version, read from its MLflow
// tags (internal/scanrecord).
type SecurityVersion struct {
	// Result is safe, unknown or dangerous.
	Result string `json:"result"`
	// Digest is the artifact digest the scan computed; Scanner the scanner
	// version that made it.
	Digest    string    `json:"digest"`
	Scanner   string    `json:"scanner"`
	ScannedAt time.Time `json:"scanned_at"`
	// Dangerous and Unknown count findings; the globals name them (each
	// once, possibly truncated to fit a tag, then Truncated is set).
	Dangerous        int      `json:"dangerous"`
	Unknown          int      `json:"unknown"`
	DangerousGlobals []string `json:"dangerous_globals"`
	UnknownGlobals   []string `json:"unknown_globals"`
	Truncated        bool     `json:"truncated"`
	// Dependencies is nil when no advisories were configured for the scan.
	Dependencies *SecurityDependencies `json:"dependencies"`
	// Approved maps environments to the digest the version had when it
	// was first served there.
	Approved map[string]string `json:"approved"`
}

// SecurityDependencies is the dependency check of one version.
type SecurityDependencies struct {
	Vulnerabilities []SecurityVulnerability `json:"vulnerabilities"`
	// Unpinned lists requirements without one exact version, as
	// "file: spec".
	Unpinned []string `json:"unpinned"`
	// ExpiredAllows are allow-list entries that no longer apply.
	ExpiredAllows []string `json:"expired_allows"`
	Truncated     bool     `json:"truncated"`
}

// SecurityVulnerability is one advisory affecting one required package.
// Allowed is set by an allow-list entry; AllowExpires is when that entry
// ends, and the rule checks it against the evaluation time again.
type SecurityVulnerability struct {
	ID           string     `json:"id"`
	Package      string     `json:"package"`
	Version      string     `json:"version"`
	Severity     string     `json:"severity"`
	Fixed        []string   `json:"fixed"`
	Allowed      bool       `json:"allowed"`
	AllowExpires *time.Time `json:"allow_expires"`
	AllowReason  string     `json:"allow_reason"`
}
