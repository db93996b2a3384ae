package cron

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
		s, err := Parse(tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		if got := s.Next(mustTime(t, tc.after)); !got.Equal(mustTime(t, tc.want)) {
			t.Errorf("%q after %s = %s, want %s", tc.expr, tc.after, got.Format(time.RFC3339), tc.want)
		}
	}
	for _, bad := range []string{"* * * *", "60 * * * *", "* 24 * * *", "*/0 * * * *", "5-1 * * * *", "a * * * *"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if got := (&Schedule{}).Next(mustTime(t, "2026-01-01T00:00:00Z")); !got.IsZero() {
		t.Errorf("empty schedule fired at %s", got)
	}
}
