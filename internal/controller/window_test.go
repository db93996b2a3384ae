package controller

import (
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/reconciler"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestWindowsDenyWinsAndNextOpen(t *testing.T) {
	ws, err := compileWindows([]SyncWindow{
		{Kind: WindowAllow, Schedule: "0 8 * * 1-5", Duration: 10 * time.Hour, Environments: []string{"prod"}},
		{Kind: WindowDeny, Schedule: "0 12 * * *", Duration: 2 * time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	set := windowSet(ws)
	for _, tc := range []struct {
		env, at  string
		open     bool
		nextOpen string
	}{
		{"prod", "2026-03-02T09:00:00Z", true, ""},                      // Monday, in allow
		{"prod", "2026-03-02T12:30:00Z", false, "2026-03-02T14:00:00Z"}, // deny beats allow
		{"prod", "2026-03-02T19:00:00Z", false, "2026-03-03T08:00:00Z"}, // outside allow
		{"prod", "2026-03-07T09:00:00Z", false, "2026-03-09T08:00:00Z"}, // Saturday
		{"dev", "2026-03-07T09:00:00Z", true, ""},                       // no allow window for dev
		{"dev", "2026-03-07T13:59:00Z", false, "2026-03-07T14:00:00Z"},
	} {
		st := set.status(tc.env, mustTime(t, tc.at))
		if st.Open != tc.open {
			t.Errorf("%s at %s: open=%v (%s), want %v", tc.env, tc.at, st.Open, st.Reason, tc.open)
			continue
		}
		if tc.nextOpen == "" {
			continue
		}
		if st.NextOpen == nil || !st.NextOpen.Equal(mustTime(t, tc.nextOpen)) {
			t.Errorf("%s at %s: next open %v, want %s", tc.env, tc.at, st.NextOpen, tc.nextOpen)
		}
		if st.Reason == "" {
			t.Errorf("%s at %s: closed without a reason", tc.env, tc.at)
		}
	}
	for _, bad := range []SyncWindow{{Kind: "maybe", Schedule: "* * * * *", Duration: time.Hour}, {Kind: WindowDeny, Schedule: "* * * * *"}} {
		if _, err := compileWindows([]SyncWindow{bad}); err == nil {
			t.Errorf("compileWindows(%+v) accepted", bad)
		}
	}
}

func TestPinStoreIsDurable(t *testing.T) {
	dir := t.TempDir()
	s, err := openPinStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	k := Key{Model: "churn", Environment: "prod"}
	if err := s.put(Pin{Model: "churn", Environment: "prod", Version: 3, Actor: "cli:alice"}); err != nil {
		t.Fatal(err)
	}
	again, err := openPinStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := again.get(k); !ok || p.Version != 3 || p.Actor != "cli:alice" {
		t.Fatalf("reopened store: %+v %v", p, ok)
	}
	if removed, _ := again.remove(k, 4); removed {
		t.Fatal("removed a pin at another version")
	}
	if removed, err := again.remove(k, 3); !removed || err != nil {
		t.Fatalf("remove: %v %v", removed, err)
	}
	third, err := openPinStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(third.list()) != 0 {
		t.Fatalf("pins after removal: %+v", third.list())
	}
}

// Windows declared in modelsync.yaml join the configured ones and change
// with the revision.
func TestWindowsFromRepositoryConfig(t *testing.T) {
	c, err := New(Options{Git: newGit(t, t.TempDir()), StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	d := &reconciler.DesiredState{Revision: "main@sha1:abc", Config: &manifest.RepoConfig{SyncWindows: []manifest.SyncWindow{
		{Kind: "deny", Schedule: "0 17 * * 5", Duration: manifest.Duration{Duration: 64 * time.Hour}, Environments: []string{"prod"}, TimeZone: "Europe/Berlin"},
	}}}
	ws := c.windowsFor(d)
	// Saturday noon in Berlin is inside the Friday 17:00 + 64h freeze.
	if st := ws.status("prod", mustTime(t, "2026-03-07T11:00:00Z")); st.Open {
		t.Fatalf("prod open during the weekend freeze: %+v", st)
	}
	if st := ws.status("dev", mustTime(t, "2026-03-07T11:00:00Z")); !st.Open {
		t.Fatalf("dev closed by a prod-only window: %+v", st)
	}
	if st := c.windowsFor(&reconciler.DesiredState{Config: &manifest.RepoConfig{}}).status("prod", mustTime(t, "2026-03-07T11:00:00Z")); !st.Open {
		t.Fatal("a window removed from Git still holds prod")
	}
}
