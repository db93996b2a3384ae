package dashboard

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/apiauth"
	"github.com/modelsync/modelsync/internal/controller"
)

type env struct {
	t     *testing.T
	ctrl  *fakeController
	audit *AuditLog
	rb    *fakeRollback
	srv   *httptest.Server
	d     *Dashboard
}

func newEnv(t *testing.T, n int, mod func(*Options)) *env {
	t.Helper()
	audit := NewAuditLog(0)
	e := &env{t: t, audit: audit, ctrl: newFakeController(n, audit), rb: &fakeRollback{}}
	opts := Options{Controller: e.ctrl, Audit: audit, Providers: testProviders(), Rollback: e.rb, PollInterval: 20 * time.Millisecond,
		RepoURL: "https://github.com/acme/models.git"}
	if mod != nil {
		mod(&opts)
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.d = d
	e.srv = httptest.NewServer(d.Handler())
	t.Cleanup(e.srv.Close)
	return e
}

// client returns a browser-like client: a cookie jar, no redirects
// followed, and the Origin header a browser sends on POST.
func (e *env) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (e *env) do(c *http.Client, method, path string, form url.Values) (int, string, http.Header) {
	e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", e.srv.URL)
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func (e *env) login(token string) *http.Client {
	e.t.Helper()
	c := e.client()
	code, body, h := e.do(c, http.MethodPost, "/login", url.Values{"token": {token}, "next": {"/"}})
	if code != http.StatusSeeOther {
		e.t.Fatalf("login: %d\n%s", code, body)
	}
	ck := h.Get("Set-Cookie")
	for _, want := range []string{"HttpOnly", "SameSite=Strict"} {
		if !strings.Contains(ck, want) {
			e.t.Errorf("session cookie %q lacks %s", ck, want)
		}
	}
	return c
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token in page:\n%s", body)
	}
	return m[1]
}

func TestUnauthenticatedBrowserGetsLoginPage(t *testing.T) {
	e := newEnv(t, 3, nil)
	for _, p := range []string{"/", "/models/model-0000", "/audit", "/events"} {
		code, body, h := e.do(e.client(), http.MethodGet, p, nil)
		if code != http.StatusUnauthorized || !strings.Contains(body, `action="/login"`) || !strings.Contains(body, `type="password"`) {
			t.Errorf("GET %s without a session: %d, want 401 with the login form:\n%.400s", p, code, body)
		}
		if h.Get("WWW-Authenticate") == "" {
			t.Errorf("GET %s: no WWW-Authenticate", p)
		}
	}
	c := e.client()
	if code, body, _ := e.do(c, http.MethodPost, "/login", url.Values{"token": {"not-a-token-0123456789"}}); code != http.StatusUnauthorized || !strings.Contains(body, "not valid") {
		t.Errorf("a wrong token: %d\n%.300s", code, body)
	}
	if got, _ := e.audit.Query(AuditFilter{Action: "dashboard sign-in", Result: "unauthenticated"}, 0, 0); len(got) != 1 {
		t.Errorf("the refused sign-in is not audited once: %+v", got)
	}
	// Anonymous reading is off: no action either.
	if code, _, _ := e.do(c, http.MethodPost, "/models/model-0000/reconcile", url.Values{"env": {"dev"}}); code != http.StatusUnauthorized {
		t.Errorf("anonymous reconcile: %d", code)
	}
}

func TestSecurityHeadersAndEscaping(t *testing.T) {
	e := newEnv(t, 2, nil)
	e.ctrl.RecordAudit(controller.AuditEntry{Actor: `<script>alert(1)</script>`, Model: "model-0000", Action: "apply", Result: "ok"})
	c := e.login(adminToken)
	code, body, h := e.do(c, http.MethodGet, "/audit", nil)
	if code != 200 {
		t.Fatalf("audit: %d", code)
	}
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"frame-ancestors 'none'", "script-src 'self'", "default-src 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %s", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(body, "<script>alert") || !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("actor not escaped or inline allowed:\n%s", body)
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, " style=") {
		t.Errorf("page has inline script or style, which the CSP forbids")
	}
}

func TestActionsNeedPermissionCSRFAndAreAudited(t *testing.T) {
	e := newEnv(t, 3, nil)

	// A read-only user sees the pages but no action button, and cannot act.
	viewer := e.login(viewerToken)
	_, body, _ := e.do(viewer, http.MethodGet, "/models/model-0000", nil)
	if !strings.Contains(body, "read-only") || strings.Contains(body, "Reconcile now") || strings.Contains(body, "Roll back") {
		t.Errorf("read-only user sees actions:\n%s", body)
	}
	if code, _, _ := e.do(viewer, http.MethodGet, "/models/model-0000/reconcile?env=dev", nil); code != http.StatusForbidden {
		t.Errorf("viewer opens the reconcile form: %d", code)
	}

	// Anonymous read-only pages, when enabled, show no actions either.
	anon := newEnv(t, 3, func(o *Options) { o.AnonymousRead = true })
	code, body, _ := anon.do(anon.client(), http.MethodGet, "/models/model-0000", nil)
	if code != 200 || strings.Contains(body, "Reconcile now") || strings.Contains(body, "Roll back") {
		t.Errorf("anonymous: %d, actions shown:\n%.500s", code, body)
	}

	admin := e.login(adminToken)
	_, body, _ = e.do(admin, http.MethodGet, "/models/model-0000", nil)
	if !strings.Contains(body, "Reconcile now") || !strings.Contains(body, "Roll back…") {
		t.Fatalf("admin sees no actions:\n%s", body)
	}
	_, confirm, _ := e.do(admin, http.MethodGet, "/models/model-0000/reconcile?env=dev", nil)
	token := csrfOf(t, confirm)

	// Without the CSRF token, or from another origin, nothing happens.
	if code, _, _ := e.do(admin, http.MethodPost, "/models/model-0000/reconcile", url.Values{"env": {"dev"}}); code != http.StatusForbidden {
		t.Errorf("POST without CSRF token: %d", code)
	}
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/models/model-0000/reconcile", strings.NewReader(url.Values{"env": {"dev"}, "csrf": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	if resp, err := admin.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin POST: %v %v", resp.StatusCode, err)
	}
	if len(e.ctrl.reconciled) != 0 {
		t.Fatalf("refused requests reconciled: %v", e.ctrl.reconciled)
	}
	if code, body, _ := e.do(admin, http.MethodPost, "/models/model-0000/reconcile", url.Values{"env": {"dev"}, "csrf": {token}}); code != http.StatusAccepted {
		t.Fatalf("reconcile: %d\n%s", code, body)
	}
	if len(e.ctrl.reconciled) != 1 || e.ctrl.reconciled[0] != "model-0000/dev" {
		t.Errorf("reconciled %v", e.ctrl.reconciled)
	}
	got, _ := e.audit.Query(AuditFilter{Action: "reconcile-requested"}, 0, 0)
	if len(got) != 1 || got[0].Actor != "alice" || got[0].Environment != "dev" {
		t.Errorf("reconcile audit entries: %+v", got)
	}

	// Roll back to v1 through the Rollbacker, named after the user.
	_, confirm, _ = e.do(admin, http.MethodGet, "/models/model-0000/rollback?env=prod&to=1", nil)
	if !strings.Contains(confirm, "Roll back to v1") {
		t.Fatalf("no rollback confirmation:\n%s", confirm)
	}
	if code, body, _ := e.do(admin, http.MethodPost, "/models/model-0000/rollback", url.Values{"env": {"prod"}, "to": {"1"}, "csrf": {csrfOf(t, confirm)}}); code != 200 || !strings.Contains(body, "committed abc1234") {
		t.Fatalf("rollback: %d\n%s", code, body)
	}
	if len(e.rb.reqs) != 1 || e.rb.reqs[0] != (RollbackRequest{Model: "model-0000", Environment: "prod", To: 1, Actor: "alice"}) {
		t.Errorf("rollback requests: %+v", e.rb.reqs)
	}
	got, _ = e.audit.Query(AuditFilter{Action: "rollback-requested"}, 0, 0)
	if len(got) != 1 || got[0].Actor != "alice" || got[0].To != "v1" || got[0].Revision != "main@sha1:abc1234" || got[0].Result != "written" {
		t.Errorf("rollback audit entries: %+v", got)
	}

	// Signing out ends the session.
	_, page, _ := e.do(admin, http.MethodGet, "/", nil)
	if code, _, _ := e.do(admin, http.MethodPost, "/logout", url.Values{"csrf": {csrfOf(t, page)}}); code != http.StatusSeeOther {
		t.Errorf("logout: %d", code)
	}
	if code, _, _ := e.do(admin, http.MethodGet, "/", nil); code != http.StatusUnauthorized {
		t.Errorf("after logout: %d", code)
	}
}

func TestOverviewFiltersAndProblems(t *testing.T) {
	e := newEnv(t, 30, func(o *Options) { o.AnonymousRead = true })
	c := e.client()
	_, body, _ := e.do(c, http.MethodGet, "/", nil)
	if n := strings.Count(body, `<tr><th scope="row">`) + strings.Count(body, `<tr class="problem"><th scope="row">`); n != 30 {
		t.Errorf("%d model rows, want 30", n)
	}
	if n := strings.Count(body, `<td class="s-`); n != 90 {
		t.Errorf("%d cells, want 90", n)
	}
	// 2 of 30 models fail in staging (every 25th): the count says 2.
	if !strings.Contains(body, "2 problems") {
		t.Errorf("problem count missing:\n%.2000s", body)
	}
	if !strings.Contains(body, `href="https://github.com/acme/models/commit/0123456789abcdef0123456789abcdef01234567"`) {
		t.Errorf("no commit link for a GitHub repository")
	}
	_, body, _ = e.do(c, http.MethodGet, "/?state=problems", nil)
	if n := strings.Count(body, `<tr class="problem">`); n != 2 || strings.Count(body, `scope="row"`) != 2 {
		t.Errorf("problems filter shows %d problem rows of %d", n, strings.Count(body, `scope="row"`))
	}
	_, body, _ = e.do(c, http.MethodGet, "/?team=growth&q=model-000", nil)
	if n := strings.Count(body, `scope="row"`); n != 3 { // model-0001, -0004, -0007
		t.Errorf("team+name filter: %d rows, want 3", n)
	}
}

func TestAuditSearchPaginationAndExport(t *testing.T) {
	e := newEnv(t, 1, func(o *Options) { o.AnonymousRead = true })
	for i := range 120 {
		model := "churn"
		if i%3 == 0 {
			model = "fraud"
		}
		e.ctrl.RecordAudit(controller.AuditEntry{Actor: "ci", Model: model, Environment: "prod", Action: "set-alias", From: "v1", To: "v2", Result: "ok"})
	}
	e.ctrl.RecordAudit(controller.AuditEntry{Actor: "=cmd|' /C calc'!A0", Model: "fraud", Action: "pin", Result: "ok"})
	c := e.client()
	_, body, _ := e.do(c, http.MethodGet, "/audit?model=fraud", nil)
	if !strings.Contains(body, `<span id="audit-total">41</span>`) || strings.Count(body, `href="/audit/`) != 41 {
		t.Errorf("fraud filter: want 41 entries on one page:\n%.600s", body)
	}
	_, body, _ = e.do(c, http.MethodGet, "/audit", nil)
	if strings.Count(body, `href="/audit/`) != auditPageSize || !strings.Contains(body, `rel="next"`) || !strings.Contains(body, "page 1 of 3") {
		t.Errorf("first page not paginated")
	}
	// Newest first: the formula actor is the last entry written.
	first := regexp.MustCompile(`href="/audit/([0-9a-f]+)"`).FindStringSubmatch(body)
	code, entry, _ := e.do(c, http.MethodGet, "/audit/"+first[1], nil)
	if code != 200 || !strings.Contains(entry, "calc") {
		t.Errorf("entry link: %d\n%s", code, entry)
	}

	_, csvBody, h := e.do(c, http.MethodGet, "/audit?model=fraud&format=csv", nil)
	recs, err := csv.NewReader(strings.NewReader(csvBody)).ReadAll()
	if err != nil || len(recs) != 42 || recs[0][1] != "time" || !strings.HasPrefix(h.Get("Content-Type"), "text/csv") {
		t.Fatalf("CSV: %v, %d records", err, len(recs))
	}
	if recs[1][2] != "'=cmd|' /C calc'!A0" {
		t.Errorf("formula cell not neutralised: %q", recs[1][2])
	}
	_, jsonBody, _ := e.do(c, http.MethodGet, "/audit?q=set-alias&format=json", nil)
	var out struct{ Entries []AuditRecord }
	if err := json.Unmarshal([]byte(jsonBody), &out); err != nil || len(out.Entries) != 120 || out.Entries[0].ID == "" {
		t.Errorf("JSON export: %v, %d entries", err, len(out.Entries))
	}
}

func TestAuditLogIsBounded(t *testing.T) {
	a := NewAuditLog(10)
	for range 25 {
		b, _ := jsonLine(controller.AuditEntry{Time: time.Now(), Actor: "x", Action: "apply", Result: "ok"})
		// Split writes across line boundaries, as a buffered writer may.
		_, _ = a.Write(b[:5])
		_, _ = a.Write(b[5:])
	}
	if got, total := a.Query(AuditFilter{}, 0, 0); total != 10 || len(got) != 10 {
		t.Errorf("kept %d entries, want 10", total)
	}
	_, _ = a.Write([]byte(strings.Repeat("x", maxAuditLine+10)))
	if len(a.partial) != 0 {
		t.Errorf("an overlong partial line is kept (%d bytes)", len(a.partial))
	}
}

func TestModelPageCanaryChart(t *testing.T) {
	fx := newCanaryFixture(t, 4, 0, 1) // 4 looks at 5%, 4 looks at 20%
	e := newEnv(t, 1, func(o *Options) { o.AnonymousRead = true; o.Canaries = fx })
	_, body, _ := e.do(e.client(), http.MethodGet, "/models/model-0000", nil)
	// One circle per look plus the legend's.
	if n := strings.Count(body, `class="pt-canary"`) - 1; n != 8 {
		t.Errorf("chart has %d canary points, want 8 (one per look)", n)
	}
	if !strings.Contains(body, `data-looks="8"`) || !strings.Contains(body, `class="margin"`) || strings.Count(body, `class="step-band`) != 2 {
		t.Errorf("chart lacks looks, margin or 2 step bands")
	}
	if strings.Count(body, `<line class="band`) < 8 {
		t.Errorf("not every look has its ratio band")
	}

	// Without per-look records the chart falls back to one point per step.
	onlyStatus := struct{ Canaries }{fx}
	e2 := newEnv(t, 1, func(o *Options) { o.AnonymousRead = true; o.Canaries = onlyStatus })
	_, body, _ = e2.do(e2.client(), http.MethodGet, "/models/model-0000", nil)
	if n := strings.Count(body, `class="pt-canary"`) - 1; n != 2 {
		t.Errorf("status-only chart has %d points, want 2 (one per step)", n)
	}
}

func TestEventsOnlyOnChange(t *testing.T) {
	e := newEnv(t, 2, func(o *Options) { o.AnonymousRead = true })
	resp, err := http.Get(e.srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	events := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "event: ") {
				events <- sc.Text()
			}
		}
		close(events)
	}()
	select {
	case ev := <-events:
		t.Fatalf("an event without a change: %s", ev)
	case <-time.After(300 * time.Millisecond): // 15 polls
	}
	e.ctrl.setLive("model-0001", "prod", "v9", 9)
	select {
	case ev := <-events:
		if ev != "event: change" {
			t.Errorf("event %q", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event after a change")
	}
	select {
	case ev := <-events:
		t.Fatalf("a second event for one change: %s", ev)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestCommitURL(t *testing.T) {
	rev := "main@sha1:abc"
	for in, want := range map[string]string{
		"https://github.com/acme/models.git":  "https://github.com/acme/models/commit/abc",
		"git@github.com:acme/models.git":      "https://github.com/acme/models/commit/abc",
		"https://gitlab.com/acme/ml/models":   "https://gitlab.com/acme/ml/models/-/commit/abc",
		"https://git.internal/acme/models":    "",
		"http://127.0.0.1:9418/models.git":    "",
		"https://github.com.evil.example/a/b": "",
	} {
		if got := commitURL(in, rev); got != want {
			t.Errorf("commitURL(%q) = %q, want %q", in, got, want)
		}
	}
	if safeNext("//evil.example/") != "/" || safeNext("https://evil.example/") != "/" || safeNext("/audit?q=x") != "/audit?q=x" {
		t.Error("safeNext lets a redirect leave the site")
	}
}

// A page view asks the provider three questions (read, reconcile,
// rollback); within a session the answers are reused for decisionTTL, so
// live refreshes do not send three SubjectAccessReviews each.
func TestAuthorizationAnswersAreCachedPerSession(t *testing.T) {
	p := testProviders()[0].(*roleProvider)
	// The session cookie's Expires comes from this clock and the client's
	// cookie jar compares it with the real time: start from the real time.
	now := time.Now().UTC()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newEnv(t, 2, func(o *Options) { o.Providers = []apiauth.Provider{p}; o.Now = clock })
	c := e.login(adminToken)
	for range 3 {
		if code, _, _ := e.do(c, http.MethodGet, "/", nil); code != 200 {
			t.Fatalf("overview: %d", code)
		}
	}
	if p.authorizes != 3 {
		t.Errorf("%d authorizations for 3 page views, want 3 (cached)", p.authorizes)
	}
	mu.Lock()
	now = now.Add(decisionTTL + time.Second)
	mu.Unlock()
	e.do(c, http.MethodGet, "/", nil)
	if p.authorizes != 6 {
		t.Errorf("%d authorizations after the cache expired, want 6", p.authorizes)
	}
}

func TestAuditPreloadReadsTheTailOfABigFile(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "audit")
	if err != nil {
		t.Fatal(err)
	}
	// More than maxAuditPreload of old entries, then five recent ones, the
	// last without its newline.
	old, _ := jsonLine(controller.AuditEntry{Time: time.Unix(1, 0), Actor: "old", Action: "apply", Result: "ok", Error: strings.Repeat("x", 1000)})
	w := bufio.NewWriter(f)
	for n := 0; n <= maxAuditPreload; n += len(old) {
		w.Write(old)
	}
	for i := range 5 {
		b, _ := jsonLine(controller.AuditEntry{Time: time.Unix(int64(100+i), 0), Actor: "recent", Action: "apply", Result: "ok"})
		if i == 4 {
			b = b[:len(b)-1]
		}
		w.Write(b)
	}
	w.Flush()
	a := NewAuditLog(10)
	if err := a.Preload(f); err != nil {
		t.Fatal(err)
	}
	got, total := a.Query(AuditFilter{}, 0, 0)
	if total != 10 || got[0].Actor != "recent" || got[0].Time.Unix() != 104 || got[5].Actor != "old" {
		t.Errorf("preloaded %d entries, newest %+v", total, got[0])
	}
}
