package prcheck

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/textio"
	"github.com/modelsync/modelsync/policy"
)

// WriteText renders the report as tables for a terminal.
func WriteText(w io.Writer, r *Report) error {
	ew := &textio.ErrWriter{W: w}
	fmt.Fprintf(ew, "Check %s (%s) -> %s (%s)\n\n", r.Refs.BaseRef, short(r.Refs.BaseSHA), r.Refs.HeadRef, short(r.Refs.HeadSHA))
	switch {
	case r.ConfigInvalid:
		fmt.Fprintf(ew, "%s is invalid at the head: nothing can be planned until it is fixed.\n", manifest.ConfigFile)
	case len(r.Changes) == 0:
		fmt.Fprintln(ew, "No model changes in any environment.")
	default:
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "MODEL\tENV\tFROM\tTO\tRELEASE")
		for _, c := range r.Changes {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Model, c.Environment, c.From, c.To, orDash(c.Release))
		}
		tw.Flush()
	}
	if len(r.ConfigChanges) > 0 {
		fmt.Fprintf(ew, "\n%s changes %s:\n", manifest.ConfigFile, Plural(len(r.ConfigChanges), "environment setting"))
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ENV\tSETTING\tFROM\tTO\tLINE")
		for _, c := range r.ConfigChanges {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", c.Environment, c.Field, orDash(c.From), orDash(c.To), c.Line)
		}
		tw.Flush()
	}
	if len(r.PlanErrors) > 0 {
		fmt.Fprintln(ew, "\nModels that cannot be planned at head:")
		for _, e := range r.PlanErrors {
			fmt.Fprintf(ew, "  ! %s\n", strings.ReplaceAll(e.Error(), "\n", "\n    "))
		}
	}
	if len(r.DesiredWarnings) > 0 {
		fmt.Fprintln(ew, "\nLeft out of the check (nothing is judged for these):")
		for _, e := range r.DesiredWarnings {
			fmt.Fprintf(ew, "  ! %s\n", strings.ReplaceAll(e.Error(), "\n", "\n    "))
		}
	}
	if r.PolicyChanged {
		fmt.Fprintf(ew, "\nThe head edits %s/: it was judged by the base's rules; policy owners must review the change.\n", PolicyDir)
	}
	fmt.Fprintf(ew, "\nPolicy: %s (%s)\n", r.Result.Policy.Revision, r.Result.Policy.Source)
	writeViolationsText(ew, "Denied", "x", r.Result.Denies)
	writeViolationsText(ew, "Warnings", "!", r.Result.Warnings)
	switch {
	case r.Error != "":
		fmt.Fprintf(ew, "\nResult: FAILED CLOSED: %s\n", r.Error)
	case r.Passed():
		fmt.Fprintf(ew, "\nResult: passed (%s)\n", Plural(len(r.Result.Warnings), "warning"))
	default:
		fmt.Fprintf(ew, "\nResult: denied (%s, %s)\n", Plural(len(r.Result.Denies), "violation"), Plural(len(r.Result.Warnings), "warning"))
	}
	return ew.Err
}

// Plural counts n things: "1 change", "2 changes", "0 warnings".
func Plural(n int, singular string) string {
	if n == 1 {
		return "1 " + singular
	}
	return strconv.Itoa(n) + " " + singular + "s"
}

func writeViolationsText(w io.Writer, heading, mark string, vs []policy.Violation) {
	if len(vs) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s:\n", heading)
	for _, v := range vs {
		fmt.Fprintf(w, "  %s [%s] %s", mark, v.Rule, v.Message)
		if loc := location(v); loc != "" {
			fmt.Fprintf(w, " (%s)", loc)
		}
		fmt.Fprintln(w)
	}
}

func location(v policy.Violation) string {
	if v.File == "" {
		return ""
	}
	if v.Line > 0 {
		return v.File + ":" + strconv.Itoa(v.Line)
	}
	return v.File
}

// WriteGitHub renders the report as GitHub Actions workflow commands, so a
// workflow run annotates the manifest lines concerned.
func WriteGitHub(w io.Writer, r *Report) error {
	ew := &textio.ErrWriter{W: w}
	for _, v := range r.Result.Denies {
		writeCommand(ew, "error", v)
	}
	for _, v := range r.Result.Warnings {
		writeCommand(ew, "warning", v)
	}
	for _, e := range r.DesiredWarnings {
		fmt.Fprintf(ew, "::warning title=%s::%s\n", escapeProperty("Left out of the check"), escapeData(e.Error()))
	}
	if r.PolicyChanged {
		fmt.Fprintf(ew, "::notice title=%s::%s\n", escapeProperty("Policy changed"),
			escapeData("this change edits "+PolicyDir+"/; it was judged by the base's rules and needs review by the policy owners"))
	}
	if r.Error != "" {
		fmt.Fprintf(ew, "::error title=%s::%s\n", escapeProperty("Policy evaluation failed"), escapeData(r.Error))
	}
	return ew.Err
}

func writeCommand(w io.Writer, level string, v policy.Violation) {
	var props []string
	if v.File != "" {
		props = append(props, "file="+escapeProperty(v.File))
		if v.Line > 0 {
			props = append(props, "line="+strconv.Itoa(v.Line))
		}
	}
	title := v.Title
	if title == "" {
		title = v.Rule
	}
	props = append(props, "title="+escapeProperty(title+" ("+v.Rule+")"))
	fmt.Fprintf(w, "::%s %s::%s\n", level, strings.Join(props, ","), escapeData(v.Message))
}

// escapeData and escapeProperty follow the workflow command encoding: a
// message may not contain raw newlines, and a property may not contain the
// separators of the property list either.
func escapeData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

func escapeProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}

// Markdown renders the report for a pull request comment. It does not
// include any marker; the caller adds its own.
func Markdown(r *Report) string {
	var b strings.Builder
	verdict := "passed"
	switch {
	case r.Error != "":
		verdict = "failed closed"
	case !r.Passed():
		verdict = "denied"
	}
	fmt.Fprintf(&b, "### modelsync plan: %s\n\n", verdict)
	fmt.Fprintf(&b, "Base `%s` (%s), head `%s` (%s). Policy `%s` (%s).\n\n",
		mdCode(r.Refs.BaseRef), short(r.Refs.BaseSHA), mdCode(r.Refs.HeadRef), short(r.Refs.HeadSHA),
		mdCode(r.Result.Policy.Revision), mdCode(r.Result.Policy.Source))
	if r.PolicyChanged {
		fmt.Fprintf(&b, "> [!WARNING]\n> This pull request edits `%s/`. It was judged by the base branch's rules, "+
			"not its own; the new rules apply after merge. **Policy owners must review this change.**\n\n", PolicyDir)
	}
	switch {
	case r.ConfigInvalid:
		fmt.Fprintf(&b, "**`%s` is invalid at the head**: nothing can be planned until it is fixed.\n\n", manifest.ConfigFile)
	case len(r.Changes) == 0:
		b.WriteString("No model changes in any environment.\n\n")
	default:
		b.WriteString("| Model | Environment | From | To | Release |\n|---|---|---|---|---|\n")
		for _, c := range r.Changes {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", mdCell(c.Model), mdCell(c.Environment), mdCell(c.From), mdCell(c.To), mdCell(orDash(c.Release)))
		}
		b.WriteString("\n")
	}
	if len(r.ConfigChanges) > 0 {
		fmt.Fprintf(&b, "**`%s` changes %s.** Every model running in these environments is affected.\n\n", manifest.ConfigFile, Plural(len(r.ConfigChanges), "environment setting"))
		b.WriteString("| Environment | Setting | From | To | Where |\n|---|---|---|---|---|\n")
		for _, c := range r.ConfigChanges {
			fmt.Fprintf(&b, "| %s | `%s` | %s | %s | %s |\n", mdCell(c.Environment), mdCode(c.Field), mdCell(orDash(c.From)), mdCell(orDash(c.To)),
				mdCell(c.File+":"+strconv.Itoa(c.Line)))
		}
		b.WriteString("\n")
	}
	if len(r.PlanErrors) > 0 {
		b.WriteString("**Models that cannot be planned at head**\n\n")
		for _, e := range r.PlanErrors {
			fmt.Fprintf(&b, "- %s\n", mdLine(e.Error()))
		}
		b.WriteString("\n")
	}
	if r.Error != "" {
		fmt.Fprintf(&b, "**The policy could not be evaluated**, so the check fails: %s\n\n", mdLine(r.Error))
	}
	writeViolationsMarkdown(&b, "Violations", r.Result.Denies)
	writeViolationsMarkdown(&b, "Warnings", r.Result.Warnings)
	return b.String()
}

func writeViolationsMarkdown(b *strings.Builder, heading string, vs []policy.Violation) {
	if len(vs) == 0 {
		return
	}
	fmt.Fprintf(b, "**%s (%d)**\n\n| Rule | Model | Env | Message | Where |\n|---|---|---|---|---|\n", heading, len(vs))
	for _, v := range vs {
		fmt.Fprintf(b, "| `%s` %s | %s | %s | %s | %s |\n", mdCode(v.Rule), mdCell(v.Title), mdCell(orDash(v.Model)),
			mdCell(orDash(v.Environment)), mdCell(v.Message), mdCell(orDash(location(v))))
	}
	b.WriteString("\n")
}

// mdCell keeps user-controlled text (messages quote manifest values) from
// breaking the table or injecting markup.
func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ", "<", "&lt;", ">", "&gt;").Replace(s)
}

func mdLine(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ", "<", "&lt;", ">", "&gt;").Replace(s)
}

func mdCode(s string) string { return strings.ReplaceAll(mdCell(s), "`", "'") }

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
