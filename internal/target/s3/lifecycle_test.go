package s3

import (
	"strings"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/reconciler"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	withDelete := func(allow bool, after time.Duration) func(*manifest.Lifecycle) {
		return func(l *manifest.Lifecycle) { l.AllowDelete, l.DeleteAfter = allow, dur(after) }
	}
	deep := func(l *manifest.Lifecycle) { l.DeepArchiveAfter = dur(180 * day) }
	cases := []struct {
		name   string
		l      manifest.Lifecycle
		v      reconciler.RegistryVersion
		refs   []string
		want   Role
		reason string
	}{
		{"referenced stays active however old", lifecycle(deep), reconciler.RegistryVersion{Created: ago(900 * day)}, []string{"prod"}, RoleActive, "referenced by prod"},
		{"canary reference counts", lifecycle(), reconciler.RegistryVersion{Created: ago(900 * day)}, []string{"staging canary"}, RoleActive, "staging canary"},
		{"still served by the registry", lifecycle(), reconciler.RegistryVersion{Created: ago(900 * day), InUse: true}, nil, RoleActive, "still served"},
		{"young version stays active", lifecycle(), reconciler.RegistryVersion{Created: ago(20 * day)}, nil, RoleActive, "not yet past archiveAfter 30d"},
		{"idle past archiveAfter", lifecycle(), reconciler.RegistryVersion{Created: ago(40 * day)}, nil, RoleArchived, "past archiveAfter 30d"},
		{"last use wins over creation", lifecycle(), reconciler.RegistryVersion{Created: ago(400 * day), LastUsed: ago(10 * day)}, nil, RoleActive, "last used 10d ago"},
		{"rollback window beats a short archiveAfter", lifecycle(func(l *manifest.Lifecycle) { l.ArchiveAfter = dur(day) }),
			reconciler.RegistryVersion{LastUsed: ago(3 * day)}, nil, RoleActive, "inside rollbackWindow 7d"},
		{"deep archive", lifecycle(deep), reconciler.RegistryVersion{Created: ago(200 * day)}, nil, RoleDeepArchived, "past deepArchiveAfter 180d"},
		{"deep archive disabled", lifecycle(), reconciler.RegistryVersion{Created: ago(2000 * day)}, nil, RoleArchived, "past archiveAfter"},
		{"deleteAfter without allowDelete", lifecycle(deep, withDelete(false, 365*day)), reconciler.RegistryVersion{Created: ago(400 * day)}, nil, RoleDeepArchived, "deepArchiveAfter"},
		{"deleteAfter with allowDelete", lifecycle(deep, withDelete(true, 365*day)), reconciler.RegistryVersion{Created: ago(400 * day)}, nil, RoleDeleted, "past deleteAfter 365d"},
		{"never delete inside the rollback window", lifecycle(withDelete(true, day)), reconciler.RegistryVersion{LastUsed: ago(3 * day)}, nil, RoleActive, "inside rollbackWindow"},
		{"never delete a referenced version", lifecycle(withDelete(true, day)), reconciler.RegistryVersion{Created: ago(400 * day)}, []string{"dev"}, RoleActive, "referenced"},
		{"unknown age is left alone", lifecycle(), reconciler.RegistryVersion{}, nil, RoleKeep, "neither"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Decide(c.l, c.v, c.refs, now)
			if d.Role != c.want || !strings.Contains(d.Reason, c.reason) {
				t.Errorf("Decide = %s (%q), want %s with %q", d.Role, d.Reason, c.want, c.reason)
			}
		})
	}
}

func TestRoleClass(t *testing.T) {
	l := lifecycle(func(l *manifest.Lifecycle) { l.ArchivedClass = "reduced_redundancy" })
	for role, want := range map[Role]string{RoleActive: "STANDARD", RoleArchived: "REDUCED_REDUNDANCY", RoleDeepArchived: "DEEP_ARCHIVE"} {
		if got, keep := role.Class(l); got != want || keep {
			t.Errorf("%s.Class = %q, %v; want %q", role, got, keep, want)
		}
	}
	for _, role := range []Role{RoleKeep, RoleDeleted} {
		if _, keep := role.Class(l); !keep {
			t.Errorf("%s.Class: want keep", role)
		}
	}
}
