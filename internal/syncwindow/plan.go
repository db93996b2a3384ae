package syncwindow

import (
	"slices"
	"time"

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
