package dashboard

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/modelsync/modelsync/internal/controller"
)

// rollbackTimeout bounds one rollback's clone, commit and push.
const rollbackTimeout = 2 * time.Minute

type confirmData struct {
	Model, Environment string
	Action             string // "reconcile" or "rollback"
	From               string
	To                 int
	Question           string
}

type resultData struct {
	Model   string
	OK      bool
	Message string
	URL     string
}

func (d *Dashboard) knownEnv(model, env string) (controller.StatusRow, bool) {
	for _, r := range d.opts.Controller.Status().Rows {
		if r.Model == model && (env == "" || r.Environment == env) {
			return r, true
		}
	}
	return controller.StatusRow{}, false
}

// handleReconcileConfirm shows the confirmation form; the action is only
// ever taken by its POST.
func (d *Dashboard) handleReconcileConfirm(w http.ResponseWriter, r *http.Request) {
	model, env := r.PathValue("name"), r.URL.Query().Get("env")
	if _, ok := d.knownEnv(model, env); !ok {
		d.render(w, r, http.StatusNotFound, "error.html", page{Title: "Not found", Data: "model " + model + " in environment " + env + " is not in the models repository"})
		return
	}
	q := "Reconcile " + model + " in every environment now?"
	if env != "" {
		q = "Reconcile " + model + " in " + env + " now?"
	}
	d.render(w, r, http.StatusOK, "confirm.html", page{Title: "Confirm reconcile", Data: confirmData{Model: model, Environment: env, Action: "reconcile", Question: q}})
}

func (d *Dashboard) handleReconcile(w http.ResponseWriter, r *http.Request) {
	model, env := r.PathValue("name"), r.PostForm.Get("env")
	v := viewerOf(r)
	if !d.opts.Controller.Reconcile(model, env) {
		d.render(w, r, http.StatusNotFound, "result.html", page{Title: "Reconcile", Data: resultData{Model: model, Message: "model " + model + " in environment " + env + " is not in the models repository"}})
		return
	}
	d.opts.Controller.RecordAudit(controller.AuditEntry{Actor: v.Identity.Name, Model: model, Environment: env, Action: "reconcile-requested", Result: "queued"})
	d.render(w, r, http.StatusAccepted, "result.html", page{Title: "Reconcile", Data: resultData{Model: model, OK: true, Message: "Reconcile of " + model + " queued."}})
}

func (d *Dashboard) rollbackTarget(r *http.Request) (controller.StatusRow, int, string) {
	model, env := r.PathValue("name"), r.FormValue("env")
	to, err := strconv.Atoi(r.FormValue("to"))
	if err != nil || to < 1 {
		return controller.StatusRow{}, 0, "choose a version to roll back to (a positive number)"
	}
	row, ok := d.knownEnv(model, env)
	if !ok || env == "" || env == "-" {
		return row, 0, "model " + model + " in environment " + env + " is not in the models repository"
	}
	return row, to, ""
}

func (d *Dashboard) handleRollbackConfirm(w http.ResponseWriter, r *http.Request) {
	row, to, problem := d.rollbackTarget(r)
	if problem != "" {
		d.render(w, r, http.StatusBadRequest, "error.html", page{Title: "Roll back", Data: problem})
		return
	}
	q := "Roll back " + row.Model + " in " + row.Environment + " from " + row.Desired + " to v" + strconv.Itoa(to) + "? " +
		"The change is written to Git like `modelsync rollback`; the controller applies it from there."
	d.render(w, r, http.StatusOK, "confirm.html", page{Title: "Confirm rollback",
		Data: confirmData{Model: row.Model, Environment: row.Environment, Action: "rollback", From: row.Desired, To: to, Question: q}})
}

// handleRollback writes the rollback to Git through the Rollbacker and
// records who asked, whatever the outcome.
func (d *Dashboard) handleRollback(w http.ResponseWriter, r *http.Request) {
	if d.opts.Rollback == nil {
		d.render(w, r, http.StatusNotImplemented, "error.html", page{Title: "Roll back", Data: "rollback is not configured on this server"})
		return
	}
	row, to, problem := d.rollbackTarget(r)
	if problem != "" {
		d.render(w, r, http.StatusBadRequest, "error.html", page{Title: "Roll back", Data: problem})
		return
	}
	v := viewerOf(r)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), rollbackTimeout)
	defer cancel()
	res, err := d.opts.Rollback.Rollback(ctx, RollbackRequest{Model: row.Model, Environment: row.Environment, To: to, Actor: v.Identity.Name})
	entry := controller.AuditEntry{Actor: v.Identity.Name, Model: row.Model, Environment: row.Environment, Action: "rollback-requested",
		From: row.Desired, To: "v" + strconv.Itoa(to), Revision: res.Ref, Result: "written"}
	if err != nil {
		entry.Result, entry.Error = "failed", err.Error()
		d.opts.Controller.RecordAudit(entry)
		d.render(w, r, http.StatusBadGateway, "result.html", page{Title: "Roll back", Data: resultData{Model: row.Model, Message: "The rollback failed: " + err.Error()}})
		return
	}
	d.opts.Controller.RecordAudit(entry)
	d.render(w, r, http.StatusOK, "result.html", page{Title: "Roll back", Data: resultData{Model: row.Model, OK: true, Message: res.Summary, URL: res.URL}})
}
