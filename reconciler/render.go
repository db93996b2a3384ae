package reconciler

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/modelsync/modelsync/internal/textio"
)

// WritePlanText renders a plan as a table, in the spirit of `terraform plan`:
// one row per action, then errors and waits, then a summary line.
func WritePlanText(w io.Writer, p *Plan) error {
	ew := &textio.ErrWriter{W: w}
	fmt.Fprintf(ew, "Plan for %s (targets: %s)\n\n", p.revision, strings.Join(p.targets, ", "))
	var observed []string
	for _, t := range p.targets {
		if !slices.Contains(p.unobserved, t) {
			observed = append(observed, t)
		}
	}
	if len(p.unobserved) > 0 {
		// Never "no changes" for a target nobody could look at.
		fmt.Fprintf(ew, "Target %s could not be observed: what it would change is unknown (see Errors below).\n", strings.Join(p.unobserved, ", "))
	}
	switch {
	case len(p.actions) == 0 && len(p.unobserved) == 0:
		fmt.Fprintln(ew, "No changes. Live state matches Git.")
	case len(p.actions) == 0 && len(observed) > 0:
		fmt.Fprintf(ew, "No changes at %s.\n", strings.Join(observed, ", "))
	case len(p.actions) == 0:
	default:
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  MODEL\tENV\tTARGET\tACTION\tRESOURCE\tCHANGE")
		for _, a := range p.actions {
			env := a.Environment
			if env == "" {
				env = "-"
			}
			change := a.To
			if a.From != "" || a.Op == OpUpdate {
				change = orDash(a.From) + " -> " + orDash(a.To)
			}
			if a.Op == OpDelete {
				change = orDash(a.From) + " -> (deleted)"
			}
			if a.Drift {
				change += "  (drift)"
			}
			fmt.Fprintf(tw, "%s %s\t%s\t%s\t%s\t%s\t%s\n", opSymbol(a.Op), a.Model, env, a.Target, a.Kind, a.Resource, change)
		}
		tw.Flush()
	}
	if len(p.waits) > 0 {
		fmt.Fprintln(ew, "\nWaiting:")
		for _, wt := range p.waits {
			fmt.Fprintf(ew, "  ~ %s\n", joinNonEmpty("/", wt.Target, wt.Model, wt.Environment)+": "+wt.Reason)
		}
		if len(p.held) > 0 {
			fmt.Fprintln(ew, "\nHeld until the wait ends, or until a view with release tags can say what the environment runs (not applied by this plan):")
			for _, a := range p.held {
				fmt.Fprintf(ew, "  ~ %s %s %s %s\n", joinNonEmpty("/", a.Model, a.Environment), a.Target, a.Kind, a.Resource)
			}
		}
	}
	if len(p.errors) > 0 {
		fmt.Fprintln(ew, "\nErrors (these models are not planned; all others are):")
		for _, e := range p.errors {
			fmt.Fprintf(ew, "  ! %s\n", indentRest(e.Error(), "    "))
		}
	}
	writeWarnings(ew, p.warnings)
	s := p.Summary()
	fmt.Fprintf(ew, "\nPlan: %d to create, %d to change, %d to delete", s.Create, s.Update, s.Delete)
	if s.Drift > 0 {
		fmt.Fprintf(ew, ", %d drift to correct", s.Drift)
	}
	if s.Waits > 0 {
		fmt.Fprintf(ew, ", %d waiting", s.Waits)
	}
	if s.Held > 0 {
		fmt.Fprintf(ew, ", %d held", s.Held)
	}
	if s.Errors > 0 {
		fmt.Fprintf(ew, ", %d errors", s.Errors)
	}
	if len(p.unobserved) > 0 {
		fmt.Fprintf(ew, "; INCOMPLETE: %s not observed", strings.Join(p.unobserved, ", "))
	}
	fmt.Fprintln(ew, ".")
	return ew.Err
}

// WriteDesiredText renders desired state as a table of models × environments.
func WriteDesiredText(w io.Writer, d *DesiredState) error {
	ew := &textio.ErrWriter{W: w}
	fmt.Fprintf(ew, "Desired state at %s\n\n", d.Revision)
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tENV\tVERSION\tCANARY\tALIAS\tNAMESPACE\tREVISION")
	for _, m := range d.Models {
		if len(m.Environments) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t(in no environment)\n", m.Name)
		}
		for _, e := range m.Environments {
			canary := "-"
			if e.Canary != nil {
				canary = "v" + strconv.Itoa(e.Canary.Version) + " @ " + strconv.Itoa(e.Canary.Weight) + "%"
			}
			fmt.Fprintf(tw, "%s\t%s\tv%d\t%s\t%s\t%s\t%s\n", m.Name, e.Environment, e.Version, canary, e.Alias, e.Namespace, shortRevision(e.Revision))
		}
	}
	tw.Flush()
	if len(d.Errors) > 0 {
		fmt.Fprintln(ew, "\nErrors:")
		for _, e := range d.Errors {
			fmt.Fprintf(ew, "  ! %s\n", indentRest(e.Error(), "    "))
		}
	}
	writeWarnings(ew, d.Warnings)
	return ew.Err
}

// writeWarnings lists a desired state's warnings: environments it leaves
// out, about which nothing is planned.
func writeWarnings(w io.Writer, ws []ModelError) {
	if len(ws) == 0 {
		return
	}
	fmt.Fprintln(w, "\nWarnings (environments left out of the desired state; nothing is planned for them):")
	for _, e := range ws {
		fmt.Fprintf(w, "  ! %s\n", indentRest(e.Error(), "    "))
	}
}

// shortRevision abbreviates the hash of a revision to 12 characters.
func shortRevision(rev string) string {
	ref, hash, ok := strings.Cut(rev, "@sha1:")
	if !ok || len(hash) <= 12 {
		return rev
	}
	return ref + "@sha1:" + hash[:12]
}

func opSymbol(op Op) string {
	switch op {
	case OpCreate:
		return "+"
	case OpDelete:
		return "-"
	default:
		return "~"
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}

func indentRest(s, indent string) string {
	return strings.ReplaceAll(s, "\n", "\n"+indent)
}
