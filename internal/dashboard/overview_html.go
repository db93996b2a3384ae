package dashboard

import (
	"html/template"
	"net/url"
	"strconv"
	"strings"
)

// overviewRows renders the overview table's body in Go rather than in the
// template: with thousands of cells, html/template's reflection dominated
// the page's time. Every dynamic string goes through esc; the markup is
// terse because the page must stay small for a thousand models.
func overviewRows(models []modelRow) template.HTML {
	var b strings.Builder
	b.Grow(len(models) * 256)
	for _, m := range models {
		if m.Problem {
			b.WriteString(`<tr class="problem">`)
		} else {
			b.WriteString(`<tr>`)
		}
		b.WriteString(`<th scope="row"><a href="/models/`)
		b.WriteString(esc(url.PathEscape(m.Name)))
		b.WriteString(`">`)
		b.WriteString(esc(m.Name))
		b.WriteString(`</a>`)
		if m.Team != "" {
			b.WriteString(`<small>` + esc(m.Team) + `</small>`)
		}
		b.WriteString(`</th>`)
		for _, c := range m.Cells {
			if c == nil {
				b.WriteString(`<td class="none">—</td>`)
				continue
			}
			writeCell(&b, c)
		}
		b.WriteString("</tr>\n")
	}
	return template.HTML(b.String())
}

func esc(s string) string { return template.HTMLEscapeString(s) }

// writeCell writes one model × environment: desired version, live when it
// differs, state, and only the facts that are not the quiet default
// (health when known, drift, pin, closed window, canary, a revision other
// than the head). Each carries a symbol and words, never colour alone.
func writeCell(b *strings.Builder, c *row) {
	b.WriteString(`<td class="s-` + esc(c.State) + `"><b>` + esc(c.Desired) + `</b>`)
	if c.LiveVersion != c.DesiredVersion {
		b.WriteString(`<br><i class="live">live ` + esc(c.Live) + `</i>`)
	}
	b.WriteString(`<br><span class="st">` + stateIcon(c.State) + " " + esc(c.State) + `</span>`)
	switch c.Health {
	case "unknown", "":
	case "healthy", "ready":
		b.WriteString(`<br>✓ ` + esc(c.Health))
	default:
		b.WriteString(`<br><em class="bad">✗ ` + esc(c.Health) + `</em>`)
	}
	if c.Drift {
		b.WriteString(`<br><em class="bad">≠ drift</em>`)
	}
	if c.Pin != nil {
		b.WriteString(`<br><em class="pin">📌 pinned v` + strconv.Itoa(c.Pin.Version) + `</em>`)
	}
	if !c.Window.Open {
		b.WriteString(`<br><em class="pin">⏸ window closed</em>`)
	}
	if c.Canary != nil {
		b.WriteString(`<ol class="steps" aria-label="canary steps">`)
		for _, s := range steps(c.Canary) {
			b.WriteString(`<li class="` + s.Class + `">` + s.Mark + strconv.Itoa(s.Weight) + `%</li>`)
		}
		b.WriteString(`</ol>`)
		if c.Analysis != nil && c.Analysis.Decision != nil {
			a := esc(string(c.Analysis.Decision.Action))
			b.WriteString(`<span class="decision d-` + a + `">` + a + `</span>`)
		}
	}
	if c.Commit != "" {
		if c.CommitURL != "" {
			b.WriteString(`<br><a class="rev" href="` + esc(c.CommitURL) + `">` + esc(c.Commit) + `</a>`)
		} else {
			b.WriteString(`<br><code class="rev">` + esc(c.Commit) + `</code>`)
		}
	}
	b.WriteString(`</td>`)
}
