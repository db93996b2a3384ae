// Package syncwindow evaluates sync windows: recurring periods in which
// environments may (allow) or may not (deny) change, with Argo CD's
// semantics (deny wins; with any allow window for an environment, changes
// happen only inside one). The controller, plan and apply share this one
// implementation, so a window binds every path that writes.
package syncwindow

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/modelsync/modelsync/internal/cron"
	"github.com/modelsync/modelsync/internal/manifest"
)

// Window kinds.
const (
	Allow = "allow"
	Deny  = "deny"
)

// Window is a recurring period in which environments may (allow) or may not
// (deny) change. Schedule is a five-field cron expression giving each
// window's start; Duration its length.
type Window struct {
	Kind         string        `json:"kind"`
	Schedule     string        `json:"schedule"`
	Duration     time.Duration `json:"duration"`
	Environments []string      `json:"environments,omitempty"` // empty: every environment
	// Location interprets Schedule; nil means UTC.
	Location *time.Location `json:"-"`
}

type window struct {
	Window
	sched *cron.Schedule
	loc   *time.Location
}

// Set is a compiled list of windows; the zero Set holds nothing.
type Set []window

// Compile checks and compiles windows.
func Compile(ws []Window) (Set, error) {
	out := make(Set, 0, len(ws))
	for i, w := range ws {
		if w.Kind != Allow && w.Kind != Deny {
			return nil, fmt.Errorf("sync window %d: kind %q: want %q or %q", i, w.Kind, Allow, Deny)
		}
		if w.Duration <= 0 {
			return nil, fmt.Errorf("sync window %d (%s %q): duration must be positive", i, w.Kind, w.Schedule)
		}
		s, err := cron.Parse(w.Schedule)
		if err != nil {
			return nil, fmt.Errorf("sync window %d: %w", i, err)
		}
		loc := w.Location
		if loc == nil {
			loc = time.UTC
		}
		out = append(out, window{Window: w, sched: s, loc: loc})
	}
	return out, nil
}

// FromConfig converts the windows modelsync.yaml declares, loading their
// time zones. A window whose time zone does not load is reported in err and
// left out; the others are returned all the same, so a caller that must
// fail closed (apply) refuses on err and one that must keep going (the
// controller) keeps the rest.
func FromConfig(cfg *manifest.RepoConfig) ([]Window, error) {
	if cfg == nil {
		return nil, nil
	}
	var out []Window
	var errs []error
	for i, w := range cfg.SyncWindows {
		sw := Window{Kind: w.Kind, Schedule: w.Schedule, Duration: w.Duration.Duration, Environments: w.Environments}
		if w.TimeZone != "" {
			loc, err := time.LoadLocation(w.TimeZone)
			if err != nil {
				errs = append(errs, fmt.Errorf("sync window %d (%s %q): time zone %q: %w", i, w.Kind, w.Schedule, w.TimeZone, err))
				continue
			}
			sw.Location = loc
		}
		out = append(out, sw)
	}
	return out, errors.Join(errs...)
}

func (w window) appliesTo(env string) bool {
	return len(w.Environments) == 0 || slices.Contains(w.Environments, env)
}

// activeUntil reports whether the window is active at t and, if so, when
// the activation that started last ends.
func (w window) activeUntil(t time.Time) (bool, time.Time) {
	t = t.In(w.loc)
	s := w.sched.Next(t.Add(-w.Duration))
	if s.IsZero() || s.After(t) {
		return false, time.Time{}
	}
	for {
		n := w.sched.Next(s)
		if n.IsZero() || n.After(t) {
			return true, s.Add(w.Duration)
		}
		s = n
	}
}

// Status says whether an environment may change now. Reason is
// deterministic (it names the window, never a time); NextOpen is set when
// the environment is closed and a future opening was found.
type Status struct {
	Open     bool       `json:"open"`
	Reason   string     `json:"reason,omitempty"`
	NextOpen *time.Time `json:"nextOpen,omitempty"`
}

// State returns "open" or "closed", for tables.
func (s Status) State() string {
	if s.Open {
		return "open"
	}
	return "closed"
}

// String describes a closed status for people: why, and until when.
func (s Status) String() string {
	if s.Open {
		return "open"
	}
	if s.NextOpen == nil {
		return s.Reason + "; no opening within a year"
	}
	return s.Reason + "; opens " + s.NextOpen.UTC().Format(time.RFC3339)
}

// openAt decides one instant and returns when the decision may next change.
func (ws Set) openAt(env string, t time.Time) (open bool, reason string, change time.Time) {
	hasAllow, inAllow := false, false
	var denied string
	for _, w := range ws {
		if !w.appliesTo(env) {
			continue
		}
		active, until := w.activeUntil(t)
		var next time.Time
		if active {
			next = until
		} else {
			next = w.sched.Next(t.In(w.loc))
		}
		if !next.IsZero() && (change.IsZero() || next.Before(change)) {
			change = next
		}
		switch w.Kind {
		case Allow:
			hasAllow = true
			inAllow = inAllow || active
		case Deny:
			if active && denied == "" {
				denied = fmt.Sprintf("deny window %q (%s) is active", w.Schedule, w.Duration)
			}
		}
	}
	switch {
	case denied != "":
		return false, denied, change
	case hasAllow && !inAllow:
		return false, "outside every allow window", change
	}
	return true, "", change
}

// Status evaluates the windows of env at now, searching up to a year ahead
// for the next opening when closed.
func (ws Set) Status(env string, now time.Time) Status {
	open, reason, change := ws.openAt(env, now)
	if open {
		return Status{Open: true}
	}
	st := Status{Reason: reason}
	limit := now.AddDate(1, 0, 0)
	for i := 0; i < 10000 && !change.IsZero() && change.Before(limit); i++ {
		var o bool
		o, _, nextChange := ws.openAt(env, change)
		if o {
			at := change.UTC()
			st.NextOpen = &at
			return st
		}
		if !nextChange.After(change) {
			break
		}
		change = nextChange
	}
	return st
}
