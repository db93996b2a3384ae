package s3

import (
	"fmt"
	"strings"
	"time"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/storageclass"
	"github.com/modelsync/modelsync/reconciler"
)

// Role is where a version's artifacts belong. Roles are ordered from hot to
// cold; objects shared by several versions take the hottest role.
type Role int

const (
	RoleActive Role = iota
	// RoleKeep leaves objects where they are: the version's age is unknown.
	RoleKeep
	RoleArchived
	RoleDeepArchived
	RoleDeleted
)

func (r Role) String() string {
	switch r {
	case RoleActive:
		return "active"
	case RoleKeep:
		return "keep"
	case RoleArchived:
		return "archived"
	case RoleDeepArchived:
		return "deep-archived"
	case RoleDeleted:
		return "deleted"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// Decision is the role of one version and why.
type Decision struct {
	Version int    `json:"version"`
	Role    Role   `json:"role"`
	Reason  string `json:"reason"`
}

// Class is the storage class the role asks for under l; keep=true means the
// object stays as it is (RoleKeep, or RoleDeleted, which is no class).
func (r Role) Class(l manifest.Lifecycle) (class string, keep bool) {
	switch r {
	case RoleActive:
		return storageclass.Normalize(l.ActiveClass), false
	case RoleArchived:
		return storageclass.Normalize(l.ArchivedClass), false
	case RoleDeepArchived:
		return storageclass.Normalize(l.DeepArchiveClass), false
	}
	return "", true
}

// Decide places one version. referencedBy names what uses it in Git, e.g.
// "prod" or "staging canary"; now is the observation time.
//
// Idle time runs from LastUsed, else Created. Inside the rollback window a
// version stays active whatever archiveAfter says, so that rolling back to
// it never waits; deletion needs allowDelete, a deleteAfter, and idle time
// past both deleteAfter and the rollback window.
func Decide(l manifest.Lifecycle, v reconciler.RegistryVersion, referencedBy []string, now time.Time) Decision {
	d := Decision{Version: v.Version}
	if len(referencedBy) > 0 {
		d.Role, d.Reason = RoleActive, "referenced by "+strings.Join(referencedBy, ", ")
		return d
	}
	if v.InUse {
		d.Role, d.Reason = RoleActive, "still served by the registry"
		return d
	}
	since, what := v.LastUsed, "last used"
	if since.IsZero() {
		since, what = v.Created, "created"
	}
	if since.IsZero() {
		d.Role, d.Reason = RoleKeep, "unreferenced, but neither last use nor creation time is known"
		return d
	}
	idle := max(now.Sub(since), 0)
	age := fmt.Sprintf("unreferenced, %s %s ago (%s)", what, days(idle), since.UTC().Format(time.DateOnly))
	switch {
	case idle < l.RollbackWindow.Duration:
		d.Role, d.Reason = RoleActive, age+", inside rollbackWindow "+days(l.RollbackWindow.Duration)
	case l.AllowDelete && l.DeleteAfter.Duration > 0 && idle >= l.DeleteAfter.Duration:
		d.Role, d.Reason = RoleDeleted, age+", past deleteAfter "+days(l.DeleteAfter.Duration)
	case l.DeepArchiveAfter.Duration > 0 && idle >= l.DeepArchiveAfter.Duration:
		d.Role, d.Reason = RoleDeepArchived, age+", past deepArchiveAfter "+days(l.DeepArchiveAfter.Duration)
	case l.ArchiveAfter.Duration > 0 && idle >= l.ArchiveAfter.Duration:
		d.Role, d.Reason = RoleArchived, age+", past archiveAfter "+days(l.ArchiveAfter.Duration)
	default:
		d.Role, d.Reason = RoleActive, age+", not yet past archiveAfter "+days(l.ArchiveAfter.Duration)
	}
	return d
}

// days renders a duration in days when it is a whole number of them.
func days(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= day && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	if d >= day {
		return fmt.Sprintf("%.1fd", d.Hours()/24)
	}
	return d.Round(time.Second).String()
}

// references maps each version a model uses in Git to what uses it.
func references(m *reconciler.DesiredModel) map[int][]string {
	refs := map[int][]string{}
	for _, e := range m.Environments {
		refs[e.Version] = append(refs[e.Version], e.Environment)
		if e.Canary != nil {
			refs[e.Canary.Version] = append(refs[e.Canary.Version], e.Environment+" canary")
		}
	}
	return refs
}

// environmentsUsing lists the environments whose main or canary version is v.
func environmentsUsing(m *reconciler.DesiredModel, v int) []string {
	var envs []string
	for _, e := range m.Environments {
		if e.Version == v || (e.Canary != nil && e.Canary.Version == v) {
			envs = append(envs, e.Environment)
		}
	}
	return envs
}
