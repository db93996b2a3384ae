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
	if st := ws.Status("prod", mustTime(t, "2026-03-07T11:00:00Z")); st.Open {
		t.Fatalf("prod open during the weekend freeze: %+v", st)
	}
	if st := ws.Status("dev", mustTime(t, "2026-03-07T11:00:00Z")); !st.Open {
		t.Fatalf("dev closed by a prod-only window: %+v", st)
	}
	if st := c.windowsFor(&reconciler.DesiredState{Config: &manifest.RepoConfig{}}).Status("prod", mustTime(t, "2026-03-07T11:00:00Z")); !st.Open {
		t.Fatal("a window removed from Git still holds prod")
	}
}
