package controller

import (
	"sync"

	"github.com/modelsync/modelsync/internal/analysis"
	"github.com/modelsync/modelsync/internal/canary"
)

// maxViewLooks bounds the looks kept per canary for the dashboard's chart:
// at the default one-minute interval, more than three hours of looks.
const maxViewLooks = 200

// canaryViews keeps, in memory, the last status and looks of each running
// canary as this replica's reconciles read or made them, so the dashboard
// draws every page without a request to the cluster per cell. The record
// in the cluster stays the evidence; this is only its last reading here.
type canaryViews struct {
	mu    sync.Mutex
	views map[Key]*canaryView
}

type canaryView struct {
	status canary.Status
	looks  []analysis.Decision
}

func newCanaryViews() *canaryViews { return &canaryViews{views: map[Key]*canaryView{}} }

// update stores the status of a reconcile's canary and, when it looked,
// the look's decision. A new canary (other versions) starts a new view.
func (v *canaryViews) update(k Key, st canary.Status, looked *analysis.Decision) {
	v.mu.Lock()
	defer v.mu.Unlock()
	cur := v.views[k]
	if cur == nil || cur.status.StableVersion != st.StableVersion || cur.status.CandidateVersion != st.CandidateVersion {
		cur = &canaryView{}
		v.views[k] = cur
	}
	cur.status = st
	if looked != nil {
		if len(cur.looks) == maxViewLooks {
			cur.looks = append(cur.looks[:0:0], cur.looks[1:]...)
		}
		cur.looks = append(cur.looks, *looked)
	}
}

func (v *canaryViews) forget(k Key) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.views, k)
}

// CanaryStatus is the last status of the environment's running canary
// analysis seen by this replica; false when it runs none.
func (c *Controller) CanaryStatus(model, env string) (canary.Status, bool) {
	c.canaries.mu.Lock()
	defer c.canaries.mu.Unlock()
	v := c.canaries.views[Key{Model: model, Environment: env}]
	if v == nil {
		return canary.Status{}, false
	}
	return v.status, true
}

// CanaryLooks are the decisions of the looks this replica made of the
// environment's canary (the last maxViewLooks), oldest first.
func (c *Controller) CanaryLooks(model, env string) []analysis.Decision {
	c.canaries.mu.Lock()
	defer c.canaries.mu.Unlock()
	v := c.canaries.views[Key{Model: model, Environment: env}]
	if v == nil {
		return nil
	}
	return append([]analysis.Decision(nil), v.looks...)
}
