package controller

import (
	"testing"
	"time"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestScheduleNext(t *testing.T) {
	for _, tc := range []struct{ expr, after, want string }{
		{"*/15 * * * *", "2026-03-01T10:07:30Z", "2026-03-01T10:15:00Z"},
		{"0 9 * * 1-5", "2026-03-06T09:00:00Z", "2026-03-09T09:00:00Z"}, // Friday 09:00 -> Monday
		{"30 22 1 * *", "2026-03-01T23:00:00Z", "2026-04-01T22:30:00Z"},
		{"0 0 * * 7", "2026-03-02T00:00:00Z", "2026-03-08T00:00:00Z"},   // 7 is Sunday
		{"0 12 13 * 5", "2026-03-01T00:00:00Z", "2026-03-06T12:00:00Z"}, // day-of-month OR day-of-week
		{"0,30 8-9 * 2,3 *", "2026-01-31T23:59:00Z", "2026-02-01T08:00:00Z"},
	} {
		s, err := ParseSchedule(tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		if got := s.Next(mustTime(t, tc.after)); !got.Equal(mustTime(t, tc.want)) {
			t.Errorf("%q after %s = %s, want %s", tc.expr, tc.after, got.Format(time.RFC3339), tc.want)
		}
	}
	for _, bad := range []string{"* * * *", "60 * * * *", "* 24 * * *", "*/0 * * * *", "5-1 * * * *", "a * * * *"} {
		if _, err := ParseSchedule(bad); err == nil {
			t.Errorf("ParseSchedule(%q) accepted", bad)
		}
	}
	if got := (&Schedule{}).Next(mustTime(t, "2026-01-01T00:00:00Z")); !got.IsZero() {
		t.Errorf("empty schedule fired at %s", got)
	}
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
