package controller

import (
	"slices"

	"github.com/modelsync/modelsync/internal/syncwindow"
	"github.com/modelsync/modelsync/reconciler"
)

// Window kinds; see syncwindow, which plan and apply share.
const (
	WindowAllow = syncwindow.Allow
	WindowDeny  = syncwindow.Deny
)

// SyncWindow is a recurring period in which the controller may (allow) or
// may not (deny) change an environment.
type SyncWindow = syncwindow.Window

// WindowStatus says whether an environment may change now.
type WindowStatus = syncwindow.Status

// windowsFor combines the sync windows of the options with those
// modelsync.yaml declares at this revision, so a window change in Git takes
// effect with the commit. The manifest was validated already; windows that
// still fail to compile are logged and left out.
func (c *Controller) windowsFor(d *reconciler.DesiredState) syncwindow.Set {
	all := slices.Clone(c.opts.Windows)
	if d != nil {
		fromGit, err := syncwindow.FromConfig(d.Config)
		if err != nil {
			c.log.Error("sync windows from modelsync.yaml ignored", "revision", d.Revision, "error", err)
		}
		all = append(all, fromGit...)
	}
	ws, err := syncwindow.Compile(all)
	if err != nil {
		c.log.Error("sync windows from modelsync.yaml ignored", "revision", d.Revision, "error", err)
		ws, _ = syncwindow.Compile(c.opts.Windows)
	}
	return ws
}

// windowSet returns the sync windows in force.
func (c *Controller) windowSet() syncwindow.Set {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.windows
}
