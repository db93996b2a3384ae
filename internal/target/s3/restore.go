package s3

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Restore tiers for GLACIER and DEEP_ARCHIVE (DEEP_ARCHIVE has no Expedited).
const (
	TierExpedited = "Expedited"
	TierStandard  = "Standard"
	TierBulk      = "Bulk"
)

// RestoreStatus is an object's x-amz-restore header.
type RestoreStatus struct {
	// Requested is false when the header is absent: never restored, or the
	// restored copy has expired.
	Requested bool      `json:"requested"`
	Ongoing   bool      `json:"ongoing,omitempty"`
	Expiry    time.Time `json:"expiry,omitzero"`
}

// Readable reports whether a restored copy can be read now.
func (s RestoreStatus) Readable() bool { return s.Requested && !s.Ongoing }

var restoreField = regexp.MustCompile(`([a-z-]+)="([^"]*)"`)

// ParseRestore parses x-amz-restore, e.g.
// ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT".
// An empty header means no restore.
func ParseRestore(h string) (RestoreStatus, error) {
	h = strings.TrimSpace(h)
	if h == "" {
		return RestoreStatus{}, nil
	}
	var s RestoreStatus
	seenOngoing := false
	for _, m := range restoreField.FindAllStringSubmatch(h, -1) {
		switch m[1] {
		case "ongoing-request":
			b, err := strconv.ParseBool(m[2])
			if err != nil {
				return RestoreStatus{}, fmt.Errorf("x-amz-restore %q: ongoing-request: %w", h, err)
			}
			s.Ongoing, seenOngoing = b, true
		case "expiry-date":
			t, err := http.ParseTime(m[2])
			if err != nil {
				return RestoreStatus{}, fmt.Errorf("x-amz-restore %q: expiry-date: %w", h, err)
			}
			s.Expiry = t.UTC()
		}
	}
	if !seenOngoing {
		return RestoreStatus{}, fmt.Errorf("x-amz-restore %q: no ongoing-request field", h)
	}
	s.Requested = true
	return s, nil
}

// RestoreTagKey is the object tag modelsync writes when it requests a
// restore, valued <tier>@<RFC 3339 time>. S3 keeps no record of when a
// restore began, and a plan must say how long a rollback has been waiting.
const RestoreTagKey = "modelsync.restore"

// RestoreRequest is the content of the restore tag.
type RestoreRequest struct {
	Tier string    `json:"tier"`
	At   time.Time `json:"at"`
}

func (r RestoreRequest) tagValue() string { return r.Tier + "@" + r.At.UTC().Format(time.RFC3339) }

func parseRestoreTag(v string) (RestoreRequest, bool) {
	tier, at, ok := strings.Cut(v, "@")
	if !ok {
		return RestoreRequest{}, false
	}
	t, err := time.Parse(time.RFC3339, at)
	if err != nil || tier == "" {
		return RestoreRequest{}, false
	}
	return RestoreRequest{Tier: tier, At: t}, true
}
