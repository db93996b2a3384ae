package controller

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// AuditEntry is one line of the audit log: one write the controller made
// (or tried to make), or a pin placed or released.
type AuditEntry struct {
	Time time.Time `json:"time"`
	// Actor is the Git commit author for changes that come from Git, or
	// "cli:<user>" for pins and their effects.
	Actor       string `json:"actor"`
	Revision    string `json:"revision,omitempty"`
	Model       string `json:"model"`
	Environment string `json:"environment,omitempty"`
	Action      string `json:"action"`
	From        string `json:"from,omitempty"`
	To          string `json:"to,omitempty"`
	Result      string `json:"result"`
	Error       string `json:"error,omitempty"`
}

// auditLog appends JSON lines to every writer; lines are never rewritten.
type auditLog struct {
	mu      sync.Mutex
	writers []io.Writer
}

func (a *auditLog) write(e AuditEntry) error {
	if len(a.writers) == 0 {
		return nil
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	a.mu.Lock()
	defer a.mu.Unlock()
	var first error
	for _, w := range a.writers {
		if _, err := w.Write(b); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// RecordAudit appends e to the audit log with the controller's clock, for
// components that act on the controller's behalf (the dashboard's actions)
// and must leave the same trail as the API.
func (c *Controller) RecordAudit(e AuditEntry) { c.writeAudit(e) }
