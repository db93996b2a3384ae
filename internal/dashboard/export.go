package dashboard

import (
	"encoding/csv"
	"encoding/json"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/modelsync/modelsync/internal/controller"
)

// writeAuditCSV exports entries for auditors. Cells that a spreadsheet
// would read as a formula are prefixed with a quote.
func writeAuditCSV(w http.ResponseWriter, entries []AuditRecord) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="modelsync-audit.csv"`)
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"id", "time", "actor", "revision", "model", "environment", "action", "from", "to", "result", "error"})
	for _, e := range entries {
		_ = cw.Write([]string{e.ID, e.Time.UTC().Format(time.RFC3339Nano), cell(e.Actor), cell(e.Revision), cell(e.Model), cell(e.Environment),
			cell(e.Action), cell(e.From), cell(e.To), cell(e.Result), cell(e.Error)})
	}
	cw.Flush()
}

func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func writeAuditJSON(w http.ResponseWriter, entries []AuditRecord) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", `attachment; filename="modelsync-audit.json"`)
	if entries == nil {
		entries = []AuditRecord{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(map[string]any{"entries": entries})
}

// funcs are the templates' helpers.
func funcs() template.FuncMap {
	return template.FuncMap{
		"stateIcon":    stateIcon,
		"overviewRows": overviewRows,
		"shortRev":     shortRevision,
		"healthIcon": func(h string) string {
			switch h {
			case "healthy", "ready":
				return "✓"
			case "unknown", "":
				return "?"
			}
			return "✗"
		},
		"ago": func(t time.Time) string {
			if t.IsZero() {
				return "never"
			}
			return t.UTC().Format("2006-01-02 15:04:05Z")
		},
		"isoTime":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"stepClass": func(c canaryStep) string { return c.Class },
		"steps":     steps,
		"pct":       pct,
		"bound":     bound,
		"add":       func(a, b int) int { return a + b },
		"deref":     func(p *int) int { return *p },
		"money":     money,
		"verdictIcon": func(state string) string {
			switch state {
			case "success":
				return "✓"
			case "failure":
				return "✗"
			}
			return "⚠"
		},
	}
}

// stateIcon pairs each state with a symbol, so colour is never the only
// carrier of state.
func stateIcon(s string) string {
	switch s {
	case "synced":
		return "✓"
	case "failed", "invalid":
		return "✗"
	case "out-of-sync":
		return "≠"
	case "held":
		return "⏸"
	case "waiting":
		return "…"
	case "suspended":
		return "⏹"
	}
	return "?"
}

// canaryStep is one step of a canary's progress bar.
type canaryStep struct {
	Weight int
	Class  string // done, current, todo
	Mark   string // text mark for the same
}

// steps lays out a canary's steps for its progress bar: done below the
// live weight (Git's weight until the target reports a split), current at
// it, to do above.
func steps(c *controller.CanaryStatus) []canaryStep {
	cur := c.Weight
	if c.LiveWeight != nil {
		cur = *c.LiveWeight
	}
	weights := c.Steps
	if len(weights) == 0 {
		weights = []int{c.Weight}
	}
	out := make([]canaryStep, 0, len(weights))
	for _, w := range weights {
		s := canaryStep{Weight: w, Class: "todo", Mark: "○"}
		switch {
		case w < cur:
			s.Class, s.Mark = "done", "✓"
		case w == cur:
			s.Class, s.Mark = "current", "●"
		}
		out = append(out, s)
	}
	return out
}
