package controller

import (
	"fmt"
	"slices"
	"time"

	"github.com/modelsync/modelsync/internal/cron"
	"github.com/modelsync/modelsync/reconciler"
)

// Window kinds. A deny window blocks changes while it is active; once any
// allow window applies to an environment, changes happen only inside one.
// Deny wins when both are active.
const (
	WindowAllow = "allow"
	WindowDeny  = "deny"
)

// SyncWindow is a recurring period in which the controller may (allow) or
// may not (deny) change an environment. Schedule is a five-field cron
// expression giving each window's start; Duration its length.
type SyncWindow struct {
	Kind         string        `json:"kind"`
	Schedule     string        `json:"schedule"`
	Duration     time.Duration `json:"duration"`
	Environments []string      `json:"environments,omitempty"` // empty: every environment
	// Location interprets Schedule; nil means UTC.
	Location *time.Location `json:"-"`
}

type window struct {
	SyncWindow
	sched *cron.Schedule
	loc   *time.Location
}

func compileWindows(ws []SyncWindow) ([]window, error) {
	out := make([]window, 0, len(ws))
	for i, w := range ws {
		if w.Kind != WindowAllow && w.Kind != WindowDeny {
			return nil, fmt.Errorf("sync window %d: kind %q: want %q or %q", i, w.Kind, WindowAllow, WindowDeny)
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
		out = append(out, window{SyncWindow: w, sched: s, loc: loc})
	}
	return out, nil
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

// WindowStatus says whether an environment may change now. Reason is
// deterministic (it names the window, never a time); NextOpen is set when
// the environment is closed and a future opening was found.
type WindowStatus struct {
	Open     bool       `json:"open"`
	Reason   string     `json:"reason,omitempty"`
	NextOpen *time.Time `json:"nextOpen,omitempty"`
}

// State returns "open" or "closed", for tables.
func (s WindowStatus) State() string {
	if s.Open {
		return "open"
	}
	return "closed"
}

type windowSet []window

// openAt decides one instant and returns when the decision may next change.
func (ws windowSet) openAt(env string, t time.Time) (open bool, reason string, change time.Time) {
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
		case WindowAllow:
			hasAllow = true
			inAllow = inAllow || active
		case WindowDeny:
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

// status evaluates the windows of env at now, searching up to a year ahead
// for the next opening when closed.
func (ws windowSet) status(env string, now time.Time) WindowStatus {
	open, reason, change := ws.openAt(env, now)
	if open {
		return WindowStatus{Open: true}
	}
	st := WindowStatus{Reason: reason}
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

// windowsFor combines the sync windows of the options with those
// modelsync.yaml declares at this revision, so a window change in Git takes
// effect with the commit. The manifest was validated already; a window that
// still fails to compile is logged and left out.
func (c *Controller) windowsFor(d *reconciler.DesiredState) windowSet {
	all := slices.Clone(c.opts.Windows)
	if d != nil && d.Config != nil {
		for _, w := range d.Config.SyncWindows {
			sw := SyncWindow{Kind: w.Kind, Schedule: w.Schedule, Duration: w.Duration.Duration, Environments: w.Environments}
			if w.TimeZone != "" {
				loc, err := time.LoadLocation(w.TimeZone)
				if err != nil {
					c.log.Error("sync window time zone", "timeZone", w.TimeZone, "error", err)
					continue
				}
				sw.Location = loc
			}
			all = append(all, sw)
		}
	}
	ws, err := compileWindows(all)
	if err != nil {
		c.log.Error("sync windows from modelsync.yaml ignored", "revision", d.Revision, "error", err)
		ws, _ = compileWindows(c.opts.Windows)
	}
	return ws
}

// windowSet returns the sync windows in force.
func (c *Controller) windowSet() windowSet {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.windows
}
