// Package githubtest is a stand-in for the GitHub REST API on httptest,
// for tests and benchmarks only (GitHub cannot run on loopback). It serves
// the endpoints modelsync uses with GitHub's documented request and
// response formats: pulls (create, get, list, files, reviews), commit statuses
// (create, list), issue comments (list, create, update, delete) and App
// installation tokens. It records every call, and can fail chosen
// requests the way GitHub does when it is in trouble (Fail).
package githubtest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// PR is a pull request as the stand-in knows it.
type PR struct {
	Number  int
	State   string // open, closed
	Draft   bool
	Author  string
	BaseRef string
	BaseSHA string
	HeadRef string
	HeadSHA string
	Labels  []string
	Files   []string
	// Title and Body are a created pull request's (a PutPR one's title
	// defaults to "PR <number>").
	Title string
	Body  string
}

// Review is a pull request review.
type Review struct {
	ID          int64
	User        string
	State       string // APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED
	CommitID    string
	SubmittedAt time.Time
}

// Status is a commit status as posted.
type Status struct {
	SHA         string
	Context     string
	State       string
	Description string
	TargetURL   string
	ID          int64
}

// Comment is an issue comment.
type Comment struct {
	ID     int64
	Issue  int
	Body   string
	Edited int
}

// Call is one recorded request.
type Call struct {
	Method string
	Path   string
}

// Server is the stand-in. Owner and Repo name the only repository served.
type Server struct {
	*httptest.Server
	Owner, Repo string
	// Token is the bearer token a request must carry; App installation
	// tokens minted by the server are accepted too.
	Token string

	mu       sync.Mutex
	prs      map[int]*PR
	reviews  map[int][]Review
	statuses []Status
	comments []Comment
	calls    []Call
	nextID   int64
	minted   map[string]bool
	// hook runs before each request is served, outside the lock.
	hook func(*http.Request)
	// onStatus is called after a status is stored, outside the lock.
	onStatus func(Status)
	// RateRemaining is reported in X-RateLimit-Remaining.
	rateRemaining int
	// faults are failures to answer with instead of serving.
	faults []*Fault
}

// Fault makes matching requests fail the way GitHub does when it is in
// trouble (a 502 from its front end, a 503, a secondary rate limit).
type Fault struct {
	// Method and Path select the requests; Path is the request path
	// without the /api/v3 prefix or query, e.g.
	// /repos/acme/models/pulls/1/files.
	Method, Path string
	// Code is the status to answer with.
	Code int
	// Times is how many matching requests fail; negative means all,
	// zero none.
	Times int
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
	// Applied serves the request before answering with the failure, as
	// when GitHub's front end gives up on a request its back end went on
	// to complete: the client cannot tell whether it took effect.
	Applied bool
}

// Fail installs a fault; faults are checked in the order installed.
func (s *Server) Fail(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// faultFor returns the fault a request meets, using one of its times;
// called with s.mu held.
func (s *Server) faultFor(method, path string) *Fault {
	for _, f := range s.faults {
		if f.Method == method && f.Path == path && f.Times != 0 {
			if f.Times > 0 {
				f.Times--
			}
			return f
		}
	}
	return nil
}

// New starts a stand-in and stops it at cleanup.
func New(tb testing.TB, owner, repo, token string) *Server {
	s := &Server{Owner: owner, Repo: repo, Token: token, prs: map[int]*PR{}, reviews: map[int][]Review{},
		minted: map[string]bool{}, nextID: 1000, rateRemaining: 4999}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(s.Close)
	return s
}

// SetHook installs a function run before every request.
func (s *Server) SetHook(h func(*http.Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = h
}

// OnStatus installs a function called after every status write.
func (s *Server) OnStatus(f func(Status)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onStatus = f
}

// PutPR creates or replaces a pull request.
func (s *Server) PutPR(p PR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp := p
	s.prs[p.Number] = &cp
}

// SetHead moves a pull request's head, as a push to its branch does.
func (s *Server) SetHead(number int, sha string, files []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prs[number].HeadSHA = sha
	s.prs[number].Files = files
}

// AddReview records a review.
func (s *Server) AddReview(number int, r Review) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	r.ID = s.nextID
	if r.SubmittedAt.IsZero() {
		r.SubmittedAt = time.Date(2026, 1, 20, 10, 0, 0, 0, time.UTC).Add(time.Duration(len(s.reviews[number])) * time.Minute)
	}
	s.reviews[number] = append(s.reviews[number], r)
}

// Statuses returns the statuses posted on sha, oldest first.
func (s *Server) Statuses(sha string) []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Status
	for _, st := range s.statuses {
		if st.SHA == sha {
			out = append(out, st)
		}
	}
	return out
}

// ClearStatuses forgets the statuses of sha.
func (s *Server) ClearStatuses(sha string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.statuses[:0]
	for _, st := range s.statuses {
		if st.SHA != sha {
			kept = append(kept, st)
		}
	}
	s.statuses = kept
}

// Latest returns the newest status for a context on sha.
func (s *Server) Latest(sha, context string) (Status, bool) {
	sts := s.Statuses(sha)
	for i := len(sts) - 1; i >= 0; i-- {
		if strings.EqualFold(sts[i].Context, context) {
			return sts[i], true
		}
	}
	return Status{}, false
}

// Comments returns the comments of an issue, oldest first.
func (s *Server) Comments(issue int) []Comment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Comment
	for _, c := range s.comments {
		if c.Issue == issue {
			out = append(out, c)
		}
	}
	return out
}

// Calls returns the recorded requests.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	hook := s.hook
	s.mu.Unlock()
	if hook != nil {
		hook(r)
	}
	path := strings.TrimPrefix(r.URL.Path, "/api/v3")
	s.mu.Lock()
	s.calls = append(s.calls, Call{Method: r.Method, Path: path})
	s.rateRemaining--
	w.Header().Set("X-RateLimit-Limit", "5000")
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(max(s.rateRemaining, 0)))
	w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10))
	w.Header().Set("X-RateLimit-Used", strconv.Itoa(5000-s.rateRemaining))
	w.Header().Set("X-RateLimit-Resource", "core")
	fault := s.faultFor(r.Method, path)
	s.mu.Unlock()
	if fault != nil {
		if fault.Applied {
			s.route(httptest.NewRecorder(), r, path)
		}
		if fault.RetryAfter != "" {
			w.Header().Set("Retry-After", fault.RetryAfter)
		}
		writeJSON(w, fault.Code, map[string]string{"message": http.StatusText(fault.Code)})
		return
	}

	s.route(w, r, path)
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, path string) {
	if m, ok := match(path, "/app/installations/{id}/access_tokens"); ok && r.Method == http.MethodPost {
		s.installationToken(w, r, m)
		return
	}
	if !s.authorized(r) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
		return
	}
	prefix := "/repos/" + s.Owner + "/" + s.Repo
	rest, ok := strings.CutPrefix(path, prefix)
	if !ok {
		notFound(w)
		return
	}
	switch {
	case r.Method == http.MethodGet && rest == "/pulls":
		s.listPulls(w, r)
	case r.Method == http.MethodPost && rest == "/pulls":
		s.createPull(w, r)
	case r.Method == http.MethodGet && has(rest, "/pulls/{n}"):
		s.getPull(w, vars(rest, "/pulls/{n}"))
	case r.Method == http.MethodGet && has(rest, "/pulls/{n}/files"):
		s.listFiles(w, r, vars(rest, "/pulls/{n}/files"))
	case r.Method == http.MethodGet && has(rest, "/pulls/{n}/reviews"):
		s.listReviews(w, r, vars(rest, "/pulls/{n}/reviews"))
	case r.Method == http.MethodGet && has(rest, "/commits/{ref}/statuses"):
		s.listStatuses(w, r, vars(rest, "/commits/{ref}/statuses"))
	case r.Method == http.MethodPost && has(rest, "/statuses/{sha}"):
		s.createStatus(w, r, vars(rest, "/statuses/{sha}"))
	case r.Method == http.MethodGet && has(rest, "/issues/{n}/comments"):
		s.listComments(w, r, vars(rest, "/issues/{n}/comments"))
	case r.Method == http.MethodPost && has(rest, "/issues/{n}/comments"):
		s.createComment(w, r, vars(rest, "/issues/{n}/comments"))
	case r.Method == http.MethodPatch && has(rest, "/issues/comments/{id}"):
		s.editComment(w, r, vars(rest, "/issues/comments/{id}"))
	case r.Method == http.MethodDelete && has(rest, "/issues/comments/{id}"):
		s.deleteComment(w, vars(rest, "/issues/comments/{id}"))
	default:
		notFound(w)
	}
}

func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(h, "token ")
	}
	if !ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return (s.Token != "" && tok == s.Token) || s.minted[tok]
}

// installationToken mints a token for any well-formed App JWT. The JWT's
// signature is not verified: the stand-in checks the request's shape,
// GitHub checks keys.
func (s *Server) installationToken(w http.ResponseWriter, r *http.Request, m map[string]string) {
	jwt, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || strings.Count(jwt, ".") != 2 {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "A JSON web token could not be decoded"})
		return
	}
	s.mu.Lock()
	s.nextID++
	tok := fmt.Sprintf("ghs_installation%s_%d", m["id"], s.nextID)
	s.minted[tok] = true
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{
		"token":      tok,
		"expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		"permissions": map[string]string{
			"statuses": "write", "pull_requests": "write", "contents": "read",
		},
		"repository_selection": "selected",
	})
}

func (s *Server) prJSON(p *PR) map[string]any {
	repo := map[string]any{"id": 1, "name": s.Repo, "full_name": s.Owner + "/" + s.Repo, "owner": map[string]any{"login": s.Owner}}
	labels := []map[string]any{}
	for i, l := range p.Labels {
		labels = append(labels, map[string]any{"id": i + 1, "name": l})
	}
	return map[string]any{
		"url":      s.URL + "/repos/" + s.Owner + "/" + s.Repo + "/pulls/" + strconv.Itoa(p.Number),
		"id":       p.Number * 100,
		"number":   p.Number,
		"state":    p.State,
		"draft":    p.Draft,
		"title":    cmp.Or(p.Title, fmt.Sprintf("PR %d", p.Number)),
		"body":     p.Body,
		"html_url": s.URL + "/" + s.Owner + "/" + s.Repo + "/pull/" + strconv.Itoa(p.Number),
		"user":     map[string]any{"login": p.Author, "id": 7, "type": "User"},
		"labels":   labels,
		"head":     map[string]any{"label": s.Owner + ":" + p.HeadRef, "ref": p.HeadRef, "sha": p.HeadSHA, "repo": repo},
		"base":     map[string]any{"label": s.Owner + ":" + p.BaseRef, "ref": p.BaseRef, "sha": p.BaseSHA, "repo": repo},
	}
}

func (s *Server) getPull(w http.ResponseWriter, v map[string]string) {
	n, _ := strconv.Atoi(v["n"])
	s.mu.Lock()
	p, ok := s.prs[n]
	var body map[string]any
	if ok {
		body = s.prJSON(p)
	}
	s.mu.Unlock()
	if !ok {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// Creator is the login pull requests created through the API are
// authored by.
const Creator = "modelsync-bot"

// PRs returns the pull requests, by number.
func (s *Server) PRs() []PR {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []PR
	for _, p := range s.prs {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out
}

func (s *Server) listPulls(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		state = "open"
	}
	s.mu.Lock()
	var nums []int
	for n, p := range s.prs {
		if (state == "all" || p.State == state) && (q.Get("base") == "" || q.Get("base") == p.BaseRef) {
			nums = append(nums, n)
		}
	}
	sort.Ints(nums)
	items := make([]any, 0, len(nums))
	for _, n := range nums {
		items = append(items, s.prJSON(s.prs[n]))
	}
	s.mu.Unlock()
	writePage(w, r, items)
}

// createPull opens a pull request as POST /repos/{owner}/{repo}/pulls
// does: title, head and base are required (422 otherwise), a second open
// pull request for the same head and base is refused with 422, and the
// answer is 201 with the pull request. Head may be "owner:branch". Branches
// are not checked against any Git server.
func (s *Server) createPull(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Title string `json:"title"`
		Head  string `json:"head"`
		Base  string `json:"base"`
		Body  string `json:"body"`
		Draft bool   `json:"draft"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "Problems parsing JSON"})
		return
	}
	for field, v := range map[string]string{"title": in.Title, "head": in.Head, "base": in.Base} {
		if v == "" {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed",
				"errors": []map[string]string{{"resource": "PullRequest", "field": field, "code": "missing_field"}}})
			return
		}
	}
	head := strings.TrimPrefix(in.Head, s.Owner+":")
	s.mu.Lock()
	n := 1
	for num, p := range s.prs {
		if p.State == "open" && p.HeadRef == head && p.BaseRef == in.Base {
			s.mu.Unlock()
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed",
				"errors": []map[string]string{{"resource": "PullRequest", "code": "custom", "message": "A pull request already exists for " + s.Owner + ":" + head + "."}}})
			return
		}
		n = max(n, num+1)
	}
	p := &PR{Number: n, State: "open", Draft: in.Draft, Author: Creator, BaseRef: in.Base, HeadRef: head, Title: in.Title, Body: in.Body}
	s.prs[n] = p
	body := s.prJSON(p)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, body)
}

func (s *Server) listFiles(w http.ResponseWriter, r *http.Request, v map[string]string) {
	n, _ := strconv.Atoi(v["n"])
	s.mu.Lock()
	p, ok := s.prs[n]
	var items []any
	if ok {
		for i, f := range p.Files {
			items = append(items, map[string]any{"sha": fmt.Sprintf("%040x", i+1), "filename": f, "status": "modified",
				"additions": 1, "deletions": 1, "changes": 2})
		}
	}
	s.mu.Unlock()
	if !ok {
		notFound(w)
		return
	}
	writePage(w, r, items)
}

func (s *Server) listReviews(w http.ResponseWriter, r *http.Request, v map[string]string) {
	n, _ := strconv.Atoi(v["n"])
	s.mu.Lock()
	var items []any
	for _, rv := range s.reviews[n] {
		items = append(items, map[string]any{"id": rv.ID, "user": map[string]any{"login": rv.User, "type": "User"},
			"body": "", "state": rv.State, "commit_id": rv.CommitID, "submitted_at": rv.SubmittedAt.UTC().Format(time.RFC3339),
			"author_association": "MEMBER"})
	}
	_, ok := s.prs[n]
	s.mu.Unlock()
	if !ok {
		notFound(w)
		return
	}
	writePage(w, r, items)
}

func statusJSON(st Status) map[string]any {
	return map[string]any{"id": st.ID, "state": st.State, "description": st.Description, "target_url": st.TargetURL,
		"context": st.Context, "created_at": "2026-01-20T10:00:00Z", "updated_at": "2026-01-20T10:00:00Z",
		"creator": map[string]any{"login": "modelsync[bot]", "type": "Bot"}}
}

func (s *Server) listStatuses(w http.ResponseWriter, r *http.Request, v map[string]string) {
	s.mu.Lock()
	var items []any
	// Newest first, as GitHub lists them.
	for i := len(s.statuses) - 1; i >= 0; i-- {
		if s.statuses[i].SHA == v["ref"] {
			items = append(items, statusJSON(s.statuses[i]))
		}
	}
	s.mu.Unlock()
	writePage(w, r, items)
}

func (s *Server) createStatus(w http.ResponseWriter, r *http.Request, v map[string]string) {
	var in struct {
		State       string `json:"state"`
		TargetURL   string `json:"target_url"`
		Description string `json:"description"`
		Context     string `json:"context"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "Problems parsing JSON"})
		return
	}
	switch in.State {
	case "pending", "success", "failure", "error":
	default:
		validationFailed(w, "state")
		return
	}
	if utf8.RuneCountInString(in.Description) > 140 || len(in.Context) > 255 {
		validationFailed(w, "description")
		return
	}
	if in.Context == "" {
		in.Context = "default"
	}
	s.mu.Lock()
	s.nextID++
	st := Status{SHA: v["sha"], Context: in.Context, State: in.State, Description: in.Description, TargetURL: in.TargetURL, ID: s.nextID}
	s.statuses = append(s.statuses, st)
	cb := s.onStatus
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, statusJSON(st))
	if cb != nil {
		cb(st)
	}
}

func (s *Server) commentJSON(c Comment) map[string]any {
	return map[string]any{"id": c.ID, "body": c.Body, "user": map[string]any{"login": "modelsync[bot]", "type": "Bot"},
		"html_url":   fmt.Sprintf("%s/%s/%s/pull/%d#issuecomment-%d", s.URL, s.Owner, s.Repo, c.Issue, c.ID),
		"created_at": "2026-01-20T10:00:00Z", "updated_at": "2026-01-20T10:00:00Z"}
}

func (s *Server) listComments(w http.ResponseWriter, r *http.Request, v map[string]string) {
	n, _ := strconv.Atoi(v["n"])
	var items []any
	for _, c := range s.Comments(n) {
		items = append(items, s.commentJSON(c))
	}
	writePage(w, r, items)
}

func readBody(w http.ResponseWriter, r *http.Request) (string, bool) {
	var in struct {
		Body *string `json:"body"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Body == nil {
		validationFailed(w, "body")
		return "", false
	}
	if utf8.RuneCountInString(*in.Body) > 65536 {
		validationFailed(w, "body")
		return "", false
	}
	return *in.Body, true
}

func (s *Server) createComment(w http.ResponseWriter, r *http.Request, v map[string]string) {
	n, _ := strconv.Atoi(v["n"])
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	s.nextID++
	c := Comment{ID: s.nextID, Issue: n, Body: body}
	s.comments = append(s.comments, c)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, s.commentJSON(c))
}

func (s *Server) editComment(w http.ResponseWriter, r *http.Request, v map[string]string) {
	id, _ := strconv.ParseInt(v["id"], 10, 64)
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	var out *Comment
	for i := range s.comments {
		if s.comments[i].ID == id {
			s.comments[i].Body = body
			s.comments[i].Edited++
			out = &s.comments[i]
		}
	}
	var c Comment
	if out != nil {
		c = *out
	}
	s.mu.Unlock()
	if out == nil {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, s.commentJSON(c))
}

func (s *Server) deleteComment(w http.ResponseWriter, v map[string]string) {
	id, _ := strconv.ParseInt(v["id"], 10, 64)
	s.mu.Lock()
	found := false
	kept := s.comments[:0]
	for _, c := range s.comments {
		if c.ID == id {
			found = true
			continue
		}
		kept = append(kept, c)
	}
	s.comments = kept
	s.mu.Unlock()
	if !found {
		notFound(w)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// writePage serves one page of items with per_page/page and a Link header,
// as GitHub paginates.
func writePage(w http.ResponseWriter, r *http.Request, items []any) {
	per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	if per <= 0 || per > 100 {
		per = 30
	}
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	if page <= 0 {
		page = 1
	}
	start := min((page-1)*per, len(items))
	end := min(start+per, len(items))
	if end < len(items) {
		u := *r.URL
		q := u.Query()
		q.Set("page", strconv.Itoa(page+1))
		u.RawQuery = q.Encode()
		u.Scheme, u.Host = "http", r.Host
		w.Header().Set("Link", fmt.Sprintf("<%s>; rel=\"next\"", (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawQuery: u.RawQuery}).String()))
	}
	out := items[start:end]
	if out == nil {
		out = []any{}
	}
	writeJSON(w, http.StatusOK, out)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func notFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
}

func validationFailed(w http.ResponseWriter, field string) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed",
		"errors": []map[string]string{{"resource": "Status", "field": field, "code": "invalid"}}})
}

// has reports whether path matches pattern, where {x} matches one segment.
func has(path, pattern string) bool { _, ok := match(path, pattern); return ok }

func vars(path, pattern string) map[string]string { m, _ := match(path, pattern); return m }

func match(path, pattern string) (map[string]string, bool) {
	ps, qs := strings.Split(strings.Trim(path, "/"), "/"), strings.Split(strings.Trim(pattern, "/"), "/")
	if len(ps) != len(qs) {
		return nil, false
	}
	m := map[string]string{}
	for i, q := range qs {
		if strings.HasPrefix(q, "{") && strings.HasSuffix(q, "}") {
			v, err := url.PathUnescape(ps[i])
			if err != nil || v == "" {
				return nil, false
			}
			m[q[1:len(q)-1]] = v
			continue
		}
		if ps[i] != q {
			return nil, false
		}
	}
	return m, true
}
