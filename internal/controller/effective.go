package controller

import (
	"slices"
	"strconv"
	"time"

	"github.com/modelsync/modelsync/reconciler"
)

// heldEnv records why an environment of the model may not change now.
type heldEnv struct {
	window WindowStatus
	// known is true when the state to hold at was substituted into the
	// effective desired state.
	known bool
}

// nextOpen is when a closed window opens next (far in the future when no
// opening is known).
func nextOpen(w WindowStatus) time.Time {
	if w.NextOpen == nil {
		return time.Unix(1<<62, 0)
	}
	return *w.NextOpen
}

// effective applies pins and sync windows to Git's desired model: a pinned
// environment takes the pinned version; a closed environment keeps what the
// controller last applied there. It only reads: pins whose version Git now
// asks for are returned as agreed, for the leader to release.
func (c *Controller) effective(m *reconciler.DesiredModel, now time.Time) (eff reconciler.DesiredModel, held map[string]heldEnv, pinned map[string]Pin, agreed []Pin) {
	eff = *m
	// The environments are Git's own until one must change: copied then
	// only, so that what the controller keeps of a pass (applied, the
	// sub-state a run plans) points into the desired state instead of
	// holding a copy per model.
	copied := false
	writable := func(i int) *reconciler.DesiredEnv {
		if !copied {
			eff.Environments, copied = slices.Clone(m.Environments), true
		}
		return &eff.Environments[i]
	}
	held = map[string]heldEnv{}
	pinned = map[string]Pin{}
	ws := c.windowSet()
	for i := range eff.Environments {
		e := &eff.Environments[i]
		k := Key{Model: m.Name, Environment: e.Environment}
		if p, ok := c.pins.get(k); ok {
			if e.Version == p.Version {
				agreed = append(agreed, p)
			} else {
				// Pins are emergency rollbacks: they apply inside deny
				// windows too.
				e = writable(i)
				e.Version, e.Canary = p.Version, nil
				if p.Revision != "" {
					e.Revision = p.Revision
				}
				pinned[e.Environment] = p
				continue
			}
		}
		st := ws.Status(e.Environment, now)
		if st.Open {
			continue
		}
		h := heldEnv{window: st}
		c.mu.Lock()
		last, ok := c.applied[k]
		c.mu.Unlock()
		if ok {
			e = writable(i)
			*e = *last
			h.known = true
		}
		held[e.Environment] = h
	}
	return eff, held, pinned, agreed
}

// releasePin removes a pin Git now agrees with and records it.
func (c *Controller) releasePin(p Pin, eff reconciler.DesiredModel) {
	k := Key{Model: p.Model, Environment: p.Environment}
	removed, err := c.pins.remove(k, p.Version)
	if err != nil {
		c.log.Error("releasing pin failed", "model", k.Model, "environment", k.Environment, "version", p.Version, "error", err)
		return
	}
	if !removed {
		return
	}
	rev := ""
	if e, ok := eff.Env(p.Environment); ok {
		rev = e.Revision
	}
	c.log.Info("pin released: Git agrees", "model", k.Model, "environment", k.Environment, "version", p.Version)
	c.writeAudit(AuditEntry{Actor: ActorController, Revision: rev, Model: k.Model, Environment: k.Environment,
		Action: "release-pin", From: "pinned v" + strconv.Itoa(p.Version), To: "git", Result: "applied"})
}
