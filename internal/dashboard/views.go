package dashboard

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/modelsync/modelsync/internal/canary"
	"github.com/modelsync/modelsync/internal/controller"
	"github.com/modelsync/modelsync/internal/manifest"
)

// page is what every template gets.
type page struct {
	Title  string
	Viewer viewer
	// Live pages open the event stream.
	Live bool
	Data any
}

// maxPageBuffer bounds a rendered page held in memory before it is sent.
const maxPageBuffer = 8 << 20

// render executes a template into a buffer first, so a template error
// becomes a clean 500 instead of half a page.
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, code int, name string, p page) {
	p.Viewer = viewerOf(r)
	var buf bytes.Buffer
	if err := d.tmpl.ExecuteTemplate(&buf, name, p); err != nil {
		d.log.Error("dashboard template failed", "template", name, "error", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// Problem states: a row in one of them counts at the top of the overview.
func isProblem(r controller.StatusRow) bool {
	switch r.State {
	case controller.StateFailed, controller.StateInvalid, controller.StateOutOfSync:
		return true
	}
	return r.Drift || r.Health == "degraded" || r.Health == "unhealthy" || r.Health == "failed"
}

// row is one model × environment of the overview.
type row struct {
	controller.StatusRow
	Team      string
	CommitURL string
	Commit    string
	Problem   bool
	Analysis  *canary.Status
}

type overviewData struct {
	Revision    string
	RevisionURL string
	Ready       bool
	FetchError  string
	// Environments are the columns, in modelsync.yaml order.
	Environments []string
	Models       []modelRow
	Total        int // model × environment pairs
	Shown        int // models shown after the filter
	ModelsN      int
	Problems     int
	Teams        []string
	States       []string
	Filter       overviewFilter
	Generated    time.Time
}

// modelRow is one model of the overview; Cells line up with Environments
// (nil where the model does not run).
type modelRow struct {
	Name    string
	Team    string
	Problem bool
	Cells   []*row
}

type overviewFilter struct {
	Team, Q, State string
}

func (f overviewFilter) Active() bool { return f.Team != "" || f.Q != "" || f.State != "" }

func (d *Dashboard) teams() map[string]string {
	out := map[string]string{}
	ds := d.opts.Controller.Desired()
	if ds == nil {
		return out
	}
	for _, m := range ds.Models {
		if m.Manifest != nil && m.Manifest.Spec.Team != "" {
			out[m.Name] = m.Manifest.Spec.Team
		}
	}
	return out
}

// overview builds the overview's data for a filter: a model matches when
// any of its environments does.
func (d *Dashboard) overview(f overviewFilter) overviewData {
	st := d.opts.Controller.Status()
	teams := d.teams()
	data := overviewData{Revision: st.Revision, RevisionURL: commitURL(d.opts.RepoURL, st.Revision), Ready: st.Ready, FetchError: st.FetchError,
		Filter: f, Generated: d.opts.Now().UTC()}
	envIdx := map[string]int{}
	if ds := d.opts.Controller.Desired(); ds != nil && ds.Config != nil {
		for _, e := range ds.Config.Environments {
			envIdx[e.Name] = len(data.Environments)
			data.Environments = append(data.Environments, e.Name)
		}
	}
	for _, sr := range st.Rows {
		if _, ok := envIdx[sr.Environment]; !ok {
			envIdx[sr.Environment] = len(data.Environments)
			data.Environments = append(data.Environments, sr.Environment)
		}
	}
	teamSet, stateSet := map[string]bool{}, map[string]bool{}
	q := strings.ToLower(f.Q)
	byModel := map[string]*modelRow{}
	matched := map[string]bool{}
	var order []string
	for _, sr := range st.Rows {
		rw := &row{StatusRow: sr, Team: teams[sr.Model], Problem: isProblem(sr)}
		if rw.Team != "" {
			teamSet[rw.Team] = true
		}
		stateSet[sr.State] = true
		if rw.Problem {
			data.Problems++
		}
		data.Total++
		rev := firstNonEmpty(sr.LastRevision, sr.DesiredRevision)
		if rev != st.Revision {
			rw.Commit = shortRevision(rev)
			rw.CommitURL = commitURL(d.opts.RepoURL, rev)
		}
		if d.opts.Canaries != nil && sr.Canary != nil {
			if cs, ok := d.opts.Canaries.CanaryStatus(sr.Model, sr.Environment); ok {
				rw.Analysis = &cs
			}
		}
		m, ok := byModel[sr.Model]
		if !ok {
			m = &modelRow{Name: sr.Model, Team: rw.Team, Cells: make([]*row, len(data.Environments))}
			byModel[sr.Model] = m
			order = append(order, sr.Model)
		}
		m.Cells[envIdx[sr.Environment]] = rw
		m.Problem = m.Problem || rw.Problem
		if (f.State == "" || f.State == "problems" && rw.Problem || f.State == sr.State) &&
			(f.Team == "" || rw.Team == f.Team) && (q == "" || strings.Contains(strings.ToLower(sr.Model), q)) {
			matched[sr.Model] = true
		}
	}
	data.ModelsN = len(order)
	for _, name := range order {
		if matched[name] {
			data.Models = append(data.Models, *byModel[name])
		}
	}
	data.Shown = len(data.Models)
	for t := range teamSet {
		data.Teams = append(data.Teams, t)
	}
	for s := range stateSet {
		data.States = append(data.States, s)
	}
	slices.Sort(data.Teams)
	slices.Sort(data.States)
	return data
}

func (d *Dashboard) handleOverview(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	data := d.overview(overviewFilter{Team: q.Get("team"), Q: q.Get("q"), State: q.Get("state")})
	d.render(w, r, http.StatusOK, "overview.html", page{Title: "Overview", Live: true, Data: data})
}

// envView is one environment on the model page.
type envView struct {
	row
	Reason   string
	Pending  []string
	Chart    template.HTML
	Looks    int
	Points   []lookPoint
	Versions []int // versions one may roll back to
	// Lineages are of the desired version, then the live and canary
	// versions when they differ.
	Lineages []*lineageView
	// Storage is the desired version's storage, when known.
	Storage *versionStorage
}

type modelData struct {
	Name     string
	Team     string
	Owners   []string
	Registry string
	Card     *manifest.ModelCard
	Envs     []envView
	History  []AuditRecord
	HistoryN int
	// Canaries is false when no canary source is wired.
	Canaries bool
	Storage  storageView
	// Verdicts are the PR gate's last verdicts on pull requests touching
	// the model; VerdictsOff when the gate does not run in this process.
	Verdicts    []verdictView
	VerdictsOff bool
}

func (d *Dashboard) handleModel(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	data, ok := d.model(r.Context(), name)
	if !ok {
		d.render(w, r, http.StatusNotFound, "error.html", page{Title: "Not found", Data: "model " + name + " is not in the models repository"})
		return
	}
	d.render(w, r, http.StatusOK, "model.html", page{Title: name, Live: true, Data: data})
}

func (d *Dashboard) model(ctx context.Context, name string) (modelData, bool) {
	st := d.opts.Controller.Status()
	data := modelData{Name: name, Canaries: d.opts.Canaries != nil, VerdictsOff: d.opts.Verdicts == nil}
	// One budget for every read the page starts: together they may delay
	// the page by PageWait at most.
	ctx, cancel := context.WithTimeout(ctx, d.opts.PageWait)
	defer cancel()
	found := false
	if ds := d.opts.Controller.Desired(); ds != nil {
		if m, ok := ds.Model(name); ok {
			found = true
			data.Owners, data.Registry = m.Owners, m.RegisteredModel
			if m.Manifest != nil {
				data.Team = m.Manifest.Spec.Team
				card := m.Manifest.Spec.ModelCard
				data.Card = &card
			}
		}
	}
	var rows []controller.StatusRow
	for _, sr := range st.Rows {
		if sr.Model == name {
			rows = append(rows, sr)
		}
	}
	if len(rows) > 0 {
		found = true
		// Every read starts before the page waits for any, so they run
		// at once within the one budget.
		if d.storage != nil {
			d.storage.start(name)
		}
		if d.lineages != nil {
			for _, sr := range rows {
				for _, v := range []int{sr.DesiredVersion, sr.LiveVersion, canaryVersion(sr)} {
					if v > 0 && sr.Environment != "-" {
						d.lineages.start(versionKey{name, v})
					}
				}
			}
		}
		data.Storage = d.storageOf(ctx, name)
	}
	// A version's lineage is shown once, under the first environment that
	// runs it; later ones point there.
	shownIn := map[int]string{}
	lineageOf := func(v int, env string) *lineageView {
		if first, ok := shownIn[v]; ok {
			return &lineageView{Version: v, ShownIn: first}
		}
		shownIn[v] = env
		return d.lineageOf(ctx, name, v)
	}
	for _, sr := range rows {
		rev := firstNonEmpty(sr.LastRevision, sr.DesiredRevision)
		ev := envView{row: row{StatusRow: sr, Team: data.Team, Problem: isProblem(sr), Commit: shortRevision(rev), CommitURL: commitURL(d.opts.RepoURL, rev)}}
		ev.Reason, ev.Pending = explain(sr)
		if d.opts.Canaries != nil && sr.Environment != "-" {
			if cs, ok := d.opts.Canaries.CanaryStatus(sr.Model, sr.Environment); ok {
				ev.Analysis = &cs
				var looks []lookPoint
				if cl, ok := d.opts.Canaries.(CanaryLooks); ok {
					looks = pointsFromDecisions(cl.CanaryLooks(sr.Model, sr.Environment))
				}
				if len(looks) == 0 {
					looks = pointsFromState(cs)
				}
				ev.Looks, ev.Points = len(looks), looks
				ev.Chart = chartSVG(cs, looks)
			}
		}
		if sr.Environment != "-" {
			for _, v := range []int{sr.DesiredVersion, sr.LiveVersion, canaryVersion(sr)} {
				if v > 0 && !slices.ContainsFunc(ev.Lineages, func(l *lineageView) bool { return l.Version == v }) {
					ev.Lineages = append(ev.Lineages, lineageOf(v, sr.Environment))
				}
			}
			if vs, ok := data.Storage.forVersion(sr.DesiredVersion); ok {
				ev.Storage = &vs
			}
		}
		for v := max(sr.LiveVersion, sr.DesiredVersion) - 1; v >= 1 && len(ev.Versions) < 10; v-- {
			if v != sr.DesiredVersion {
				ev.Versions = append(ev.Versions, v)
			}
		}
		data.Envs = append(data.Envs, ev)
	}
	data.History, data.HistoryN = d.opts.Audit.Query(AuditFilter{Model: name}, 0, 50)
	data.Verdicts = d.verdictsOf(name)
	return data, found
}

func canaryVersion(r controller.StatusRow) int {
	if r.Canary == nil {
		return 0
	}
	return r.Canary.Version
}

// explain says in words why an environment is as it is and what the plan
// still has to do, from the status the controller derived.
func explain(r controller.StatusRow) (string, []string) {
	var pending []string
	if r.DesiredVersion != 0 && r.LiveVersion != r.DesiredVersion && r.Environment != "-" {
		pending = append(pending, fmt.Sprintf("move alias from %s to v%d", r.Live, r.DesiredVersion))
	}
	if r.Canary != nil && r.Canary.LiveWeight != nil && *r.Canary.LiveWeight != r.Canary.Weight {
		pending = append(pending, fmt.Sprintf("shift canary v%d traffic from %d%% to %d%%", r.Canary.Version, *r.Canary.LiveWeight, r.Canary.Weight))
	}
	reason := r.Message
	switch {
	case r.Pin != nil:
		reason = fmt.Sprintf("pinned to v%d by %s; Git's version waits until the pin is released. %s", r.Pin.Version, r.Pin.Actor, r.Message)
	case !r.Window.Open:
		reason = "sync window closed: " + r.Window.Reason + ". " + r.Message
	case r.LastError != "":
		reason = strings.TrimSpace(r.Message + " " + r.LastError)
	}
	return strings.TrimSpace(reason), pending
}

type auditData struct {
	Entries  []AuditRecord
	Total    int
	Filter   AuditFilter
	Page     int
	Pages    int
	PrevURL  string
	NextURL  string
	CSVURL   string
	JSONURL  string
	PageSize int
}

const auditPageSize = 50

func auditFilterOf(q url.Values) AuditFilter {
	return AuditFilter{Q: q.Get("q"), Model: q.Get("model"), Environment: q.Get("environment"), Actor: q.Get("actor"), Action: q.Get("action"), Result: q.Get("result")}
}

func (f AuditFilter) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"q": f.Q, "model": f.Model, "environment": f.Environment, "actor": f.Actor, "action": f.Action, "result": f.Result} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

func (d *Dashboard) handleAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := auditFilterOf(q)
	switch q.Get("format") {
	case "csv":
		entries, _ := d.opts.Audit.Query(f, 0, 0)
		writeAuditCSV(w, entries)
		return
	case "json":
		entries, _ := d.opts.Audit.Query(f, 0, 0)
		writeAuditJSON(w, entries)
		return
	}
	pg, _ := strconv.Atoi(q.Get("page"))
	pg = max(pg, 1)
	entries, total := d.opts.Audit.Query(f, (pg-1)*auditPageSize, auditPageSize)
	data := auditData{Entries: entries, Total: total, Filter: f, Page: pg, Pages: max(1, (total+auditPageSize-1)/auditPageSize), PageSize: auditPageSize}
	link := func(extra map[string]string) string {
		v := f.values()
		for k, s := range extra {
			v.Set(k, s)
		}
		return "/audit?" + v.Encode()
	}
	if pg > 1 {
		data.PrevURL = link(map[string]string{"page": strconv.Itoa(pg - 1)})
	}
	if pg < data.Pages {
		data.NextURL = link(map[string]string{"page": strconv.Itoa(pg + 1)})
	}
	data.CSVURL, data.JSONURL = link(map[string]string{"format": "csv"}), link(map[string]string{"format": "json"})
	d.render(w, r, http.StatusOK, "audit.html", page{Title: "Audit trail", Live: true, Data: data})
}

func (d *Dashboard) handleAuditEntry(w http.ResponseWriter, r *http.Request) {
	e, ok := d.opts.Audit.Get(r.PathValue("id"))
	if !ok {
		d.render(w, r, http.StatusNotFound, "error.html", page{Title: "Not found", Data: "no audit entry " + r.PathValue("id") + " in the dashboard's window of the audit log"})
		return
	}
	d.render(w, r, http.StatusOK, "entry.html", page{Title: "Audit entry " + e.ID, Data: e})
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// shortRevision shortens "main@sha1:<40 hex>" to "main@1a2b3c4".
func shortRevision(rev string) string {
	name, h, ok := strings.Cut(rev, "@sha1:")
	if !ok {
		return rev
	}
	if len(h) > 7 {
		h = h[:7]
	}
	return name + "@" + h
}

// commitURL links a revision's commit on hosts whose commit URLs are known;
// other hosts get no link rather than a guessed one.
func commitURL(repoURL, rev string) string {
	_, h, ok := strings.Cut(rev, "@sha1:")
	if !ok || h == "" {
		return ""
	}
	host, path, ok := webRepo(repoURL)
	if !ok {
		return ""
	}
	switch host {
	case "github.com":
		return "https://github.com/" + path + "/commit/" + url.PathEscape(h)
	case "bitbucket.org":
		return "https://bitbucket.org/" + path + "/commits/" + url.PathEscape(h)
	case "gitlab.com":
		return "https://gitlab.com/" + path + "/-/commit/" + url.PathEscape(h)
	}
	return ""
}

// webRepo reads the host (lower case) and owner/name path of a repository
// URL, https or scp-like ssh.
func webRepo(repoURL string) (string, string, bool) {
	if repoURL == "" {
		return "", "", false
	}
	base := repoURL
	if rest, ok := strings.CutPrefix(base, "git@"); ok { // scp-like git@host:owner/name.git
		host, path, _ := strings.Cut(rest, ":")
		base = "https://" + host + "/" + path
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "ssh") {
		return "", "", false
	}
	return strings.ToLower(u.Hostname()), strings.TrimSuffix(strings.Trim(u.Path, "/"), ".git"), true
}
