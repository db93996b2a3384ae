package mlflowclient

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	if got := parseRetryAfter("3"); got != 3*time.Second {
		t.Errorf("seconds: %v", got)
	}
	future := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	if got := parseRetryAfter(future); got < 80*time.Second || got > 90*time.Second {
		t.Errorf("date: %v", got)
	}
	for _, v := range []string{"", "-1", "soon", "Mon, 01 Jan 2001 00:00:00 GMT"} {
		if got := parseRetryAfter(v); got != 0 {
			t.Errorf("%q: %v, want 0", v, got)
		}
	}
}

func TestBackoffIsFullJitterWithinCap(t *testing.T) {
	c := &Client{backoffBase: 100 * time.Millisecond, backoffMax: time.Second}
	for attempt := 0; attempt < 40; attempt++ {
		ceil := min(time.Second, 100*time.Millisecond<<min(attempt, 20))
		for i := 0; i < 50; i++ {
			if d := c.backoff(attempt); d <= 0 || d > ceil+time.Millisecond {
				t.Fatalf("attempt %d: backoff %v outside (0, %v]", attempt, d, ceil)
			}
		}
	}
}
