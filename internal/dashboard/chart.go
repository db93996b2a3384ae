package dashboard

import (
	"fmt"
	"html/template"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/modelsync/modelsync/internal/analysis"
	"github.com/modelsync/modelsync/internal/canary"
)

// lookPoint is one point of the canary chart: a look (or, without per-look
// records, a step's last look).
type lookPoint struct {
	At     time.Time
	Weight int
	Metric string
	// Canary and Stable are bad-event rates (NaN: no requests yet).
	Canary, Stable float64
	// Lower and Upper bound the rate ratio (NaN: not known for this point).
	Lower, Upper, Estimate, Margin float64
	Action                         analysis.Action
}

// maxChartPoints bounds the points drawn; older looks are dropped first.
const maxChartPoints = 500

func rate(c analysis.Counts) float64 {
	if c.Total <= 0 {
		return math.NaN()
	}
	return float64(c.Bad) / float64(c.Total)
}

// pointsFromDecisions draws one point per look from the decisions the
// controller kept; looks without data (provider errors) have no metrics and
// are skipped. The first metric is charted: it is the one named first in
// the canary's analysis block.
func pointsFromDecisions(ds []analysis.Decision) []lookPoint {
	var out []lookPoint
	for _, d := range ds {
		if len(d.Metrics) == 0 {
			continue
		}
		m := d.Metrics[0]
		out = append(out, lookPoint{At: d.At, Weight: d.Weight, Metric: m.Name, Canary: rate(m.Canary), Stable: rate(m.Stable),
			Lower: m.Lower, Upper: m.Upper, Estimate: m.Estimate, Margin: m.Margin, Action: d.Action})
	}
	if len(out) > maxChartPoints {
		out = out[len(out)-maxChartPoints:]
	}
	return out
}

// pointsFromState draws one point per step window from analysis.State,
// which keeps counts per step only; the last point carries the last
// decision's bounds.
func pointsFromState(cs canary.Status) []lookPoint {
	metric := ""
	margin := math.NaN()
	if cs.Decision != nil && len(cs.Decision.Metrics) > 0 {
		metric, margin = cs.Decision.Metrics[0].Name, cs.Decision.Metrics[0].Margin
	}
	var out []lookPoint
	for _, w := range cs.State.Windows {
		if metric == "" {
			names := make([]string, 0, len(w.Metrics))
			for n := range w.Metrics {
				names = append(names, n)
			}
			slices.Sort(names)
			if len(names) == 0 {
				continue
			}
			metric = names[0]
		}
		a, ok := w.Metrics[metric]
		if !ok {
			continue
		}
		out = append(out, lookPoint{At: w.Started, Weight: w.Weight, Metric: metric, Canary: rate(a.Canary), Stable: rate(a.Stable),
			Lower: math.NaN(), Upper: math.NaN(), Estimate: math.NaN(), Margin: margin})
	}
	if n := len(out); n > 0 && cs.Decision != nil && len(cs.Decision.Metrics) > 0 {
		m := cs.Decision.Metrics[0]
		out[n-1].Lower, out[n-1].Upper, out[n-1].Estimate, out[n-1].Action = m.Lower, m.Upper, m.Estimate, cs.Decision.Action
	}
	return out
}

// Chart geometry (SVG user units; the SVG scales to its container).
const (
	chartW      = 720.0
	chartLeft   = 56.0
	chartRight  = 16.0
	rateTop     = 28.0
	rateH       = 130.0
	ratioTop    = 200.0
	ratioH      = 130.0
	chartH      = 372.0
	ratioMin    = 0.25
	ratioMax    = 4.0
	noBoundHigh = 54.0 // analysis: Upper ≥ 54.6 means no bound yet
)

func f1(x float64) string { return fmt.Sprintf("%.1f", x) }

// chartSVG draws the canary analysis as static SVG: the bad-event rates of
// both arms per look (top), the rate-ratio confidence band per look against
// the margin on a log scale (bottom), the weight steps as shaded bands with
// their weights, and the decision point. Shapes and dash patterns, not only
// colours, tell the series apart; a data table follows the chart in the
// page for screen readers.
func chartSVG(cs canary.Status, pts []lookPoint) template.HTML {
	var b strings.Builder
	title := fmt.Sprintf("Canary analysis of %s in %s: v%d against v%d", cs.Model, cs.Environment, cs.CandidateVersion, cs.StableVersion)
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %s %s" role="img" aria-labelledby="chart-%s-t chart-%s-d" xmlns="http://www.w3.org/2000/svg">`,
		f1(chartW), f1(chartH), template.HTMLEscapeString(cs.Environment), template.HTMLEscapeString(cs.Environment))
	fmt.Fprintf(&b, `<title id="chart-%s-t">%s</title>`, template.HTMLEscapeString(cs.Environment), template.HTMLEscapeString(title))
	desc := fmt.Sprintf("%d looks; ", len(pts))
	if cs.Decision != nil {
		desc += "last decision " + string(cs.Decision.Action) + ": " + cs.Decision.Reason
	}
	fmt.Fprintf(&b, `<desc id="chart-%s-d">%s</desc>`, template.HTMLEscapeString(cs.Environment), template.HTMLEscapeString(desc))
	if len(pts) == 0 {
		fmt.Fprintf(&b, `<text x="%s" y="%s" class="chart-empty">No looks recorded yet.</text></svg>`, f1(chartLeft), f1(rateTop+20))
		return template.HTML(b.String())
	}
	plotW := chartW - chartLeft - chartRight
	n := len(pts)
	x := func(i int) float64 {
		if n == 1 {
			return chartLeft + plotW/2
		}
		return chartLeft + plotW*float64(i)/float64(n-1)
	}
	// Rate scale: 0 .. the largest rate, with headroom.
	maxRate := 0.0
	for _, p := range pts {
		for _, v := range []float64{p.Canary, p.Stable} {
			if !math.IsNaN(v) && v > maxRate {
				maxRate = v
			}
		}
	}
	if maxRate == 0 {
		maxRate = 0.01
	}
	maxRate *= 1.15
	yRate := func(v float64) float64 { return rateTop + rateH - rateH*v/maxRate }
	yRatio := func(v float64) float64 {
		v = math.Min(math.Max(v, ratioMin), ratioMax)
		return ratioTop + ratioH - ratioH*(math.Log(v)-math.Log(ratioMin))/(math.Log(ratioMax)-math.Log(ratioMin))
	}

	// Weight steps: a shaded band per run of equal weight, labelled.
	start := 0
	for i := 1; i <= n; i++ {
		if i < n && pts[i].Weight == pts[start].Weight {
			continue
		}
		x0, x1 := x(start)-plotW/float64(2*max(n-1, 1)), x(i-1)+plotW/float64(2*max(n-1, 1))
		x0, x1 = math.Max(x0, chartLeft), math.Min(x1, chartLeft+plotW)
		cls := "step-band"
		if stepIndex(pts, start)%2 == 1 {
			cls += " alt"
		}
		fmt.Fprintf(&b, `<rect class="%s" x="%s" y="%s" width="%s" height="%s"/>`, cls, f1(x0), f1(rateTop-14), f1(math.Max(x1-x0, 1)), f1(ratioTop+ratioH-rateTop+14))
		fmt.Fprintf(&b, `<text class="step-label" x="%s" y="%s">%d%%</text>`, f1(x0+3), f1(rateTop-3), pts[start].Weight)
		start = i
	}

	// Axes and labels.
	fmt.Fprintf(&b, `<text class="axis-title" x="4" y="%s">bad-event rate (%s)</text>`, f1(rateTop-16), template.HTMLEscapeString(pts[0].Metric))
	for _, v := range []float64{0, maxRate / 2, maxRate} {
		fmt.Fprintf(&b, `<line class="grid" x1="%s" x2="%s" y1="%s" y2="%s"/><text class="tick" x="%s" y="%s">%s</text>`,
			f1(chartLeft), f1(chartLeft+plotW), f1(yRate(v)), f1(yRate(v)), f1(chartLeft-4), f1(yRate(v)+4), pct(v))
	}
	fmt.Fprintf(&b, `<text class="axis-title" x="4" y="%s">rate ratio canary/stable (log scale)</text>`, f1(ratioTop-8))
	for _, v := range []float64{0.25, 0.5, 1, 2, 4} {
		fmt.Fprintf(&b, `<line class="grid" x1="%s" x2="%s" y1="%s" y2="%s"/><text class="tick" x="%s" y="%s">%g</text>`,
			f1(chartLeft), f1(chartLeft+plotW), f1(yRatio(v)), f1(yRatio(v)), f1(chartLeft-4), f1(yRatio(v)+4), v)
	}
	if m := pts[n-1].Margin; !math.IsNaN(m) && m > 0 {
		fmt.Fprintf(&b, `<line class="margin" x1="%s" x2="%s" y1="%s" y2="%s"/><text class="margin-label" x="%s" y="%s">margin %g</text>`,
			f1(chartLeft), f1(chartLeft+plotW), f1(yRatio(m)), f1(yRatio(m)), f1(chartLeft+plotW-4), f1(yRatio(m)-4), m)
	}

	// Rate lines: stable dashed with squares, canary solid with circles.
	line := func(cls string, get func(lookPoint) float64) {
		var d strings.Builder
		pen := "M"
		for i, p := range pts {
			v := get(p)
			if math.IsNaN(v) {
				pen = "M"
				continue
			}
			fmt.Fprintf(&d, "%s%s %s ", pen, f1(x(i)), f1(yRate(v)))
			pen = "L"
		}
		if d.Len() > 0 {
			fmt.Fprintf(&b, `<path class="%s" d="%s"/>`, cls, strings.TrimSpace(d.String()))
		}
	}
	line("line-stable", func(p lookPoint) float64 { return p.Stable })
	line("line-canary", func(p lookPoint) float64 { return p.Canary })
	for i, p := range pts {
		if !math.IsNaN(p.Stable) {
			fmt.Fprintf(&b, `<rect class="pt-stable" x="%s" y="%s" width="6" height="6"><title>look %d: stable %s</title></rect>`, f1(x(i)-3), f1(yRate(p.Stable)-3), i+1, pct(p.Stable))
		}
		cy := yRate(0)
		if !math.IsNaN(p.Canary) {
			cy = yRate(p.Canary)
		}
		fmt.Fprintf(&b, `<circle class="pt-canary" cx="%s" cy="%s" r="3.5"><title>look %d at %d%%: canary %s</title></circle>`, f1(x(i)), f1(cy), i+1, p.Weight, pct(p.Canary))
	}

	// Confidence band per look: a vertical bar from Lower to Upper, open at
	// the top when there is no upper bound yet.
	for i, p := range pts {
		if math.IsNaN(p.Lower) || math.IsNaN(p.Upper) {
			continue
		}
		cls := "band"
		if p.Upper >= noBoundHigh {
			cls += " open"
		}
		fmt.Fprintf(&b, `<line class="%s" x1="%s" x2="%s" y1="%s" y2="%s"><title>look %d: ratio %s .. %s</title></line>`,
			cls, f1(x(i)), f1(x(i)), f1(yRatio(math.Max(p.Lower, ratioMin))), f1(yRatio(p.Upper)), i+1, bound(p.Lower), bound(p.Upper))
		if !math.IsNaN(p.Estimate) {
			fmt.Fprintf(&b, `<line class="estimate" x1="%s" x2="%s" y1="%s" y2="%s"/>`, f1(x(i)-4), f1(x(i)+4), f1(yRatio(p.Estimate)), f1(yRatio(p.Estimate)))
		}
	}

	// The decision point: the last look that decided something other than
	// hold, else the last look.
	di := n - 1
	for i := n - 1; i >= 0; i-- {
		if pts[i].Action != "" && pts[i].Action != analysis.ActionHold {
			di = i
			break
		}
	}
	if act := pts[di].Action; act != "" {
		fmt.Fprintf(&b, `<line class="decision" x1="%s" x2="%s" y1="%s" y2="%s"/><text class="decision-label" x="%s" y="%s">◆ %s</text>`,
			f1(x(di)), f1(x(di)), f1(rateTop-14), f1(ratioTop+ratioH), f1(math.Min(x(di)+4, chartW-80)), f1(ratioTop+ratioH+14), template.HTMLEscapeString(string(act)))
	}
	// Legend: text and the same marks as the series.
	ly := chartH - 6
	fmt.Fprintf(&b, `<circle class="pt-canary" cx="%s" cy="%s" r="3.5"/><text class="legend" x="%s" y="%s">canary v%d</text>`, f1(chartLeft), f1(ly-4), f1(chartLeft+8), f1(ly), cs.CandidateVersion)
	fmt.Fprintf(&b, `<rect class="pt-stable" x="%s" y="%s" width="6" height="6"/><text class="legend" x="%s" y="%s">stable v%d (dashed)</text>`, f1(chartLeft+110), f1(ly-7), f1(chartLeft+120), f1(ly), cs.StableVersion)
	fmt.Fprintf(&b, `<line class="band" x1="%s" x2="%s" y1="%s" y2="%s"/><text class="legend" x="%s" y="%s">ratio bounds</text>`, f1(chartLeft+260), f1(chartLeft+260), f1(ly-9), f1(ly+1), f1(chartLeft+266), f1(ly))
	fmt.Fprintf(&b, `<line class="margin" x1="%s" x2="%s" y1="%s" y2="%s"/><text class="legend" x="%s" y="%s">margin</text>`, f1(chartLeft+360), f1(chartLeft+380), f1(ly-4), f1(ly-4), f1(chartLeft+384), f1(ly))
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// stepIndex counts weight changes before point i, to alternate bands.
func stepIndex(pts []lookPoint, i int) int {
	n := 0
	for j := 1; j <= i; j++ {
		if pts[j].Weight != pts[j-1].Weight {
			n++
		}
	}
	return n
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f%%", v*100)
}

func bound(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case v >= noBoundHigh:
		return "∞"
	}
	return fmt.Sprintf("%.3g", v)
}
