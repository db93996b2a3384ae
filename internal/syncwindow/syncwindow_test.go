package syncwindow

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

func TestWindowsDenyWinsAndNextOpen(t *testing.T) {
	ws, err := Compile([]Window{
		{Kind: Allow, Schedule: "0 8 * * 1-5", Duration: 10 * time.Hour, Environments: []string{"prod"}},
		{Kind: Deny, Schedule: "0 12 * * *", Duration: 2 * time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	set := ws
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
		st := set.Status(tc.env, mustTime(t, tc.at))
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
	for _, bad := range []Window{{Kind: "maybe", Schedule: "* * * * *", Duration: time.Hour}, {Kind: Deny, Schedule: "* * * * *"}} {
		if _, err := Compile([]Window{bad}); err == nil {
			t.Errorf("Compile(%+v) accepted", bad)
		}
	}
}
