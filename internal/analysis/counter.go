package analysis

import (
	"errors"
	"fmt"
	"math"
)

// MaxSeries bounds how many counter series one Counter tracks, so a query
// that suddenly returns a series per pod per label value cannot grow the
// stored state without limit.
const MaxSeries = 1000

// ErrTooManySeries is returned when a sample set holds more than MaxSeries series.
var ErrTooManySeries = errors.New("too many counter series")

// ErrBadSample is returned for a negative, NaN or infinite counter value.
var ErrBadSample = errors.New("invalid counter sample")

// Increase is the exact number of events between two readings of the same
// counter series set (series key → value, e.g. the label set of each pod's
// series), unlike PromQL increase(), which extrapolates to the window edges
// and returns non-integers. A series whose value dropped was reset (a pod
// restarted): its events after the reset are counted from zero, so the
// count is its current value. A series absent at start appeared later (a
// new pod) and is counted from zero too. Series that disappeared contribute
// nothing; their events since the last reading are lost, which is why the
// controller should prefer a Counter fed at every look.
func Increase(start, now map[string]float64) (int64, error) {
	if len(now) > MaxSeries || len(start) > MaxSeries {
		return 0, fmt.Errorf("%w: %d series (limit %d)", ErrTooManySeries, max(len(now), len(start)), MaxSeries)
	}
	var total float64
	for k, v := range now {
		if err := checkSample(k, v); err != nil {
			return 0, err
		}
		s, ok := start[k]
		if ok {
			if err := checkSample(k, s); err != nil {
				return 0, err
			}
		}
		switch {
		case !ok, v < s:
			total += v
		default:
			total += v - s
		}
	}
	return int64(math.Round(total)), nil
}

func checkSample(key string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return fmt.Errorf("%w: series %q value %v", ErrBadSample, key, v)
	}
	return nil
}

// Counter accumulates the exact event count of a counter series set over
// many looks. Fed at every look, it also catches a reset that happened
// after the counter had already climbed past its starting value, which two
// readings alone cannot see. It is a value: Observe returns the next one,
// and it serializes to JSON so the count survives a controller restart.
type Counter struct {
	// Last holds each series' value at the previous look.
	Last map[string]float64 `json:"last,omitempty"`
	// Count is the number of events since the first look.
	Count int64 `json:"count"`
	// Resets counts the series resets seen, for the status display.
	Resets int `json:"resets,omitempty"`
	// Primed is set once a baseline was recorded; an empty baseline (no
	// series yet) is still a baseline, so new series count from zero.
	Primed bool `json:"primed"`
}

// Observe adds the events since the previous look and returns the updated
// Counter. The first call only records the baseline.
func (c Counter) Observe(now map[string]float64) (Counter, error) {
	if len(now) > MaxSeries {
		return c, fmt.Errorf("%w: %d series (limit %d)", ErrTooManySeries, len(now), MaxSeries)
	}
	for k, v := range now {
		if err := checkSample(k, v); err != nil {
			return c, err
		}
	}
	next := Counter{Last: make(map[string]float64, len(now)), Count: c.Count, Resets: c.Resets, Primed: true}
	if c.Primed {
		inc, err := Increase(c.Last, now)
		if err != nil {
			return c, err
		}
		next.Count += inc
		for k, v := range now {
			if s, ok := c.Last[k]; ok && v < s {
				next.Resets++
			}
		}
	}
	for k, v := range now {
		next.Last[k] = v
	}
	return next, nil
}
