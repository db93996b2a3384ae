// Package cron parses five-field cron expressions (minute hour
// day-of-month month day-of-week) and finds their next occurrence, for sync
// windows.
package cron

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Schedule is a parsed five-field cron expression (minute hour day-of-month
// month day-of-week), the subset sync windows need: numbers, "*", ranges
// "a-b", steps "*/n" and "a-b/n", and comma lists. Day-of-week 0 and 7 are
// Sunday. As in classic cron, when both day fields are restricted a day
// matches if either does.
type Schedule struct {
	expr                          string
	minute, hour, dom, month, dow uint64
	domAny, dowAny                bool
}

// Parse parses a five-field cron expression.
func Parse(expr string) (*Schedule, error) {
	fields := strings.Fields(expr)
	if len(fields) != 5 {
		return nil, fmt.Errorf("cron schedule %q: want 5 fields (minute hour day-of-month month day-of-week), got %d", expr, len(fields))
	}
	s := &Schedule{expr: expr}
	specs := []struct {
		dst      *uint64
		min, max int
		name     string
	}{
		{&s.minute, 0, 59, "minute"},
		{&s.hour, 0, 23, "hour"},
		{&s.dom, 1, 31, "day-of-month"},
		{&s.month, 1, 12, "month"},
		{&s.dow, 0, 7, "day-of-week"},
	}
	for i, sp := range specs {
		bits, err := parseField(fields[i], sp.min, sp.max)
		if err != nil {
			return nil, fmt.Errorf("cron schedule %q: %s field: %w", expr, sp.name, err)
		}
		*sp.dst = bits
	}
	if s.dow&(1<<7) != 0 {
		s.dow |= 1
	}
	s.domAny, s.dowAny = fields[2] == "*", fields[4] == "*"
	return s, nil
}

func (s *Schedule) String() string { return s.expr }

func parseField(f string, lo, hi int) (uint64, error) {
	var bits uint64
	for _, part := range strings.Split(f, ",") {
		rng, stepStr, hasStep := strings.Cut(part, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepStr)
			if err != nil || n < 1 {
				return 0, fmt.Errorf("bad step %q", stepStr)
			}
			step = n
		}
		a, b := lo, hi
		switch {
		case rng == "*":
		case strings.Contains(rng, "-"):
			x, y, _ := strings.Cut(rng, "-")
			var err1, err2 error
			a, err1 = strconv.Atoi(x)
			b, err2 = strconv.Atoi(y)
			if err1 != nil || err2 != nil {
				return 0, fmt.Errorf("bad range %q", rng)
			}
		default:
			n, err := strconv.Atoi(rng)
			if err != nil {
				return 0, fmt.Errorf("bad value %q", rng)
			}
			a = n
			if hasStep {
				b = hi
			} else {
				b = n
			}
		}
		if a < lo || b > hi || a > b {
			return 0, fmt.Errorf("%q is outside %d-%d", part, lo, hi)
		}
		for v := a; v <= b; v += step {
			bits |= 1 << uint(v)
		}
	}
	return bits, nil
}

func (s *Schedule) dayMatches(t time.Time) bool {
	domOK := s.dom&(1<<uint(t.Day())) != 0
	dowOK := s.dow&(1<<uint(t.Weekday())) != 0
	if s.domAny || s.dowAny {
		return domOK && dowOK
	}
	return domOK || dowOK
}

// Next returns the first activation strictly after t, in t's location, or
// the zero time when none falls within five years (e.g. "0 0 30 2 *").
func (s *Schedule) Next(t time.Time) time.Time {
	t = t.Truncate(time.Minute).Add(time.Minute)
	limit := t.AddDate(5, 0, 0)
	for t.Before(limit) {
		if s.month&(1<<uint(t.Month())) == 0 {
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, t.Location())
			continue
		}
		if !s.dayMatches(t) {
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, t.Location())
			continue
		}
		if s.hour&(1<<uint(t.Hour())) == 0 {
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour()+1, 0, 0, 0, t.Location())
			continue
		}
		if s.minute&(1<<uint(t.Minute())) == 0 {
			t = t.Add(time.Minute)
			continue
		}
		return t
	}
	return time.Time{}
}
