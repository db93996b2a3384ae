package syncwindow

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/reconciler"
)

// Hold is how a plan splits under the windows in force: what may run now,
// and what a closed window holds back, per environment.
type Hold struct {
	// Allowed is the plan without the held actions.
	Allowed *reconciler.Plan
	// Held are the held actions in execution order.
	Held []reconciler.Action
	// Closed is the status of each environment whose changes are held.
	Closed map[string]Status
}

// Split holds the actions of every environment the windows close at now,
// as the controller does. A model-level action (version tags, lifecycle:
// Environment "") describes where versions run across environments, so it
// is held with the model's held environments.
func (ws Set) Split(p *reconciler.Plan, now time.Time) Hold {
	h := Hold{Closed: map[string]Status{}}
	heldModels := map[string]bool{}
	for _, a := range p.Actions() {
		if a.Environment == "" {
			continue
		}
		st, seen := h.Closed[a.Environment]
		if !seen {
			st = ws.Status(a.Environment, now)
			if st.Open {
				continue
			}
			h.Closed[a.Environment] = st
		}
		heldModels[a.Model] = true
	}
	held := func(a reconciler.Action) bool {
		if a.Environment == "" {
			return heldModels[a.Model]
		}
		_, closed := h.Closed[a.Environment]
		return closed
	}
	h.Allowed = p.Select(func(a reconciler.Action) bool { return !held(a) })
	h.Held = slices.DeleteFunc(p.Actions(), func(a reconciler.Action) bool { return !held(a) })
	return h
}

// ForConfig compiles the windows modelsync.yaml declares. Unlike the
// controller, which keeps the windows it can load, a command that writes
// refuses when any window fails to load: a window it cannot read might be
// the one that closes the environment.
func ForConfig(cfg *manifest.RepoConfig) (Set, error) {
	ws, err := FromConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("sync windows of modelsync.yaml: %w", err)
	}
	set, err := Compile(ws)
	if err != nil {
		return nil, fmt.Errorf("sync windows of modelsync.yaml: %w", err)
	}
	return set, nil
}

// WriteText lists the held changes by environment, with why and until when.
func (h Hold) WriteText(w io.Writer) error {
	if len(h.Held) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nHeld by sync windows (%d change(s); apply skips them until the window opens, or applies them with --override-window):\n", len(h.Held))
	for _, env := range slices.Sorted(maps.Keys(h.Closed)) {
		fmt.Fprintf(&b, "  %s: %s\n", env, h.Closed[env])
	}
	for _, a := range h.Held {
		env := a.Environment
		if env == "" {
			env = "(model-wide)"
		}
		fmt.Fprintf(&b, "    %s/%s %s %s %s\n", a.Target, a.Model, env, a.Kind, a.Resource)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Override is the audit record of changes applied inside a closed window.
type Override struct {
	Time        time.Time `json:"time"`
	Actor       string    `json:"actor"`
	Action      string    `json:"action"` // always "window-override"
	Revision    string    `json:"revision,omitempty"`
	Environment string    `json:"environment"`
	Window      string    `json:"window"`
	Models      []string  `json:"models"`
	Changes     int       `json:"changes"`
}

// Overrides returns one audit record per closed environment the hold
// covers, for an override by actor at now.
func (h Hold) Overrides(actor, revision string, now time.Time) []Override {
	var out []Override
	for _, env := range slices.Sorted(maps.Keys(h.Closed)) {
		o := Override{Time: now.UTC(), Actor: actor, Action: "window-override", Revision: revision, Environment: env, Window: h.Closed[env].Reason}
		for _, a := range h.Held {
			if a.Environment == env {
				o.Changes++
				if !slices.Contains(o.Models, a.Model) {
					o.Models = append(o.Models, a.Model)
				}
			}
		}
		slices.Sort(o.Models)
		out = append(out, o)
	}
	return out
}
