package github

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	gh "github.com/google/go-github/v60/github"

	"github.com/modelsync/modelsync/internal/github/prcheck"
	"github.com/modelsync/modelsync/internal/prverdict"
	"github.com/modelsync/modelsync/internal/release"
	"github.com/modelsync/modelsync/policy"
)

// StatusContext is the required check's name. It has no variable part so
// branch protection can require it in advance.
const StatusContext = "modelsync/policy"

// CommentMarker identifies modelsync's plan comment on a pull request.
const CommentMarker = "<!-- modelsync:plan -->"

// maxEngines is how many compiled policy revisions a gate keeps.
const maxEngines = 8

// MaxCommentLength is GitHub's limit on a comment body.
const MaxCommentLength = 65536

// Hooks are called for pushes that concern the reconciler. They must
// return quickly and be idempotent: GitHub may send both a push and a
// create event for one tag, and redeliver either.
type Hooks struct {
	// Reconcile is called after a push to the base branch.
	Reconcile func(ctx context.Context, branch, sha string)
	// Rollout is called when a release tag <model>/vX.Y.Z is pushed.
	Rollout func(ctx context.Context, model, tag string)
}

// GateOptions configure NewGate.
type GateOptions struct {
	Client *Client
	// Repository is the models repository on GitHub; events about other
	// repositories are ignored.
	Repository RepoRef
	// Sync fetches the models repository and returns its current state.
	Sync func(ctx context.Context) (prcheck.Repository, error)
	// FetchPull, when set, downloads a pull request's head commit when the
	// synced branches do not contain it (a pull request from a fork, whose
	// branch lives in another repository). nil: such pull requests get an
	// error status.
	FetchPull func(ctx context.Context, number int) error
	// LoadPolicy compiles a bundle; nil means prcheck.LoadPolicy.
	LoadPolicy func(context.Context, policy.Source) (prcheck.Evaluator, error)
	// Registry supplies registry facts; nil means none.
	Registry prcheck.RegistryFacts
	Hooks    Hooks
	Logger   *slog.Logger
	// TargetURL is linked from every status, e.g. the dashboard.
	TargetURL string
	// Timeout bounds one evaluation; zero means two minutes.
	Timeout time.Duration
	// Concurrency bounds how many pull requests are evaluated at once (a
	// base push re-checks every open one); zero means 4.
	Concurrency int
	// Now returns the evaluation time; nil means time.Now.
	Now func() time.Time
	// Verdicts, when set, keeps each posted verdict under the models the
	// pull request touches (the dashboard's model page shows them).
	Verdicts *prverdict.Log
}

// Gate evaluates pull requests of one repository and reports the results
// on GitHub. Evaluations of one pull request run one at a time, and a
// newer request cancels the one in progress.
type Gate struct {
	opts GateOptions
	log  *slog.Logger

	wg sync.WaitGroup
	// root is canceled by Close and parents all work.
	root context.Context
	stop context.CancelFunc

	mu  sync.Mutex
	prs map[int]*prRun
	// engines caches compiled policies by source and base revision; order
	// lists the keys oldest first.
	engines map[string]prcheck.Evaluator
	order   []string
	// tags remembers release tags already rolled out, keyed by repository
	// and tag (tagKey); guarded by mu.
	tags  *lru
	slots chan struct{}
}

// prRun serializes the evaluations of one pull request.
type prRun struct {
	run    sync.Mutex // held while evaluating
	gen    uint64     // latest scheduled generation; guarded by Gate.mu
	cancel context.CancelFunc
	// waiters are told the outcome of the evaluation that judges the pull
	// request as of their request: the latest scheduled one, since it
	// supersedes the earlier ones. Guarded by Gate.mu.
	waiters []func(error)
}

// NewGate checks the options and returns a gate.
func NewGate(opts GateOptions) (*Gate, error) {
	if opts.Client == nil || opts.Sync == nil {
		return nil, errors.New("github gate: a client and a repository sync are required")
	}
	if opts.Repository.Owner == "" || opts.Repository.Name == "" {
		return nil, errors.New("github gate: repository owner/name is required")
	}
	if opts.LoadPolicy == nil {
		opts.LoadPolicy = prcheck.LoadPolicy
	}
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	root, stop := context.WithCancel(context.Background())
	return &Gate{opts: opts, log: log.With("repository", opts.Repository.String()), prs: map[int]*prRun{},
		engines: map[string]prcheck.Evaluator{}, tags: newLRU(1024), root: root, stop: stop,
		slots: make(chan struct{}, opts.Concurrency)}, nil
}

// Wait blocks until all scheduled work has finished.
func (g *Gate) Wait() { g.wg.Wait() }

// Close cancels all work in progress and waits for it to end.
func (g *Gate) Close() {
	g.stop()
	g.wg.Wait()
}

func (g *Gate) ours(full string) bool {
	return strings.EqualFold(full, g.opts.Repository.String())
}

// HandleEvent implements EventHandler. Payloads are only hints: which pull
// request to look at. Its state is read again from GitHub and Git. The
// delivery is detached and ends when all the work it started has: it
// fails, so GitHub's redelivery is processed, when an evaluation it asked
// for did not complete.
func (g *Gate) HandleEvent(_ context.Context, ev Event) error {
	ctx := g.root
	if ctx.Err() != nil {
		return errors.New("github gate: shutting down")
	}
	work := newOutcome(ev.Detach())
	defer work.seal()
	switch p := ev.Payload.(type) {
	case *gh.PullRequestEvent:
		if !g.ours(p.GetRepo().GetFullName()) {
			return nil
		}
		switch p.GetAction() {
		case "opened", "synchronize", "reopened", "ready_for_review":
			g.schedule(p.GetNumber(), work.add())
		case "edited":
			// A retargeted pull request is judged against its new base.
			if p.GetChanges().GetBase() != nil {
				g.schedule(p.GetNumber(), work.add())
			}
		}
	case *gh.PullRequestReviewEvent:
		if !g.ours(p.GetRepo().GetFullName()) {
			return nil
		}
		switch p.GetAction() {
		case "submitted", "dismissed":
			g.schedule(p.GetPullRequest().GetNumber(), work.add())
		}
	case *gh.PushEvent:
		repo := p.GetRepo().GetFullName()
		if !g.ours(repo) {
			return nil
		}
		ref := p.GetRef()
		if p.GetDeleted() {
			// A tag pushed again after its deletion is a new release.
			if tag, ok := strings.CutPrefix(ref, "refs/tags/"); ok {
				g.forgetTag(repo, tag)
			}
			return nil
		}
		if branch, ok := strings.CutPrefix(ref, "refs/heads/"); ok {
			if branch == p.GetRepo().GetDefaultBranch() {
				g.basePushed(ctx, branch, p.GetAfter(), work)
			}
			return nil
		}
		if tag, ok := strings.CutPrefix(ref, "refs/tags/"); ok {
			g.tagPushed(ctx, repo, tag, work)
		}
	case *gh.CreateEvent:
		if repo := p.GetRepo().GetFullName(); g.ours(repo) && p.GetRefType() == "tag" {
			g.tagPushed(ctx, repo, p.GetRef(), work)
		}
	}
	return nil
}

// basePushed re-checks every open pull request into the branch: a base
// move changes what they would merge into but fires no event of their own.
func (g *Gate) basePushed(ctx context.Context, branch, sha string, work *outcome) {
	if h := g.opts.Hooks.Reconcile; h != nil {
		done := work.add()
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			h(ctx, branch, sha)
			done(nil)
		}()
	}
	done := work.add()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		lctx, cancel := context.WithTimeout(ctx, g.opts.Timeout)
		defer cancel()
		prs, err := g.opts.Client.ListOpenPullRequests(lctx, g.opts.Repository, branch)
		if err != nil {
			g.log.Error("listing open pull requests after a base push", "branch", branch, "err", err)
			done(fmt.Errorf("re-checking pull requests into %s: %w", branch, err))
			return
		}
		for _, n := range prs {
			g.schedule(n, work.add())
		}
		done(nil)
	}()
}

// tagKey names a release tag per repository, so that events about one
// repository never touch another's entries.
func tagKey(repo, tag string) string { return strings.ToLower(repo) + "\x00" + tag }

func (g *Gate) forgetTag(repo, tag string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.tags.remove(tagKey(repo, tag))
}

func (g *Gate) tagPushed(ctx context.Context, repo, name string, work *outcome) {
	t, err := release.ParseTag(name)
	if err != nil {
		return
	}
	h := g.opts.Hooks.Rollout
	if h == nil {
		return
	}
	// GitHub sends both a push and a create event for one tag.
	key := tagKey(repo, t.Name)
	g.mu.Lock()
	seen := g.tags.contains(key)
	g.tags.add(key)
	g.mu.Unlock()
	if seen {
		return
	}
	done := work.add()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		h(ctx, t.Model, t.Name)
		done(nil)
	}()
}

// Schedule queues an evaluation of a pull request and cancels the one in
// progress, whose result would be superseded.
func (g *Gate) Schedule(number int) { g.schedule(number, nil) }

// schedule is Schedule telling done, when not nil, the outcome of the
// evaluation that judges the pull request as of this request: this one,
// or a later one that superseded it.
func (g *Gate) schedule(number int, done func(error)) {
	g.mu.Lock()
	st := g.prs[number]
	if st == nil {
		st = &prRun{}
		g.prs[number] = st
	}
	st.gen++
	gen := st.gen
	if st.cancel != nil {
		st.cancel()
	}
	if done != nil {
		st.waiters = append(st.waiters, done)
	}
	g.mu.Unlock()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		st.run.Lock()
		defer st.run.Unlock()
		g.mu.Lock()
		if st.gen != gen {
			// A newer request arrived while this one waited.
			g.mu.Unlock()
			return
		}
		ctx, cancel := context.WithTimeout(g.root, g.opts.Timeout)
		st.cancel = cancel
		g.mu.Unlock()
		var result error
		defer func() {
			cancel()
			g.mu.Lock()
			if st.gen != gen {
				// Superseded: the newer evaluation tells the waiters.
				g.mu.Unlock()
				return
			}
			// Nothing newer is queued: drop the entry so the map does not
			// grow with every pull request ever seen.
			delete(g.prs, number)
			waiters := st.waiters
			st.waiters = nil
			g.mu.Unlock()
			for _, w := range waiters {
				w(result)
			}
		}()
		select {
		case g.slots <- struct{}{}:
			defer func() { <-g.slots }()
		case <-ctx.Done():
			result = fmt.Errorf("pull request #%d: not evaluated: %w", number, ctx.Err())
			return
		}
		if err := g.Evaluate(ctx, number); err != nil {
			result = fmt.Errorf("pull request #%d: %w", number, err)
			if errors.Is(ctx.Err(), context.Canceled) {
				g.log.Info("pull request evaluation superseded", "pr", number)
				return
			}
			g.log.Error("pull request evaluation failed", "pr", number, "err", err)
		}
	}()
}

// outcome gathers the results of the work one delivery started and ends
// the delivery once all of it has ended, with the joined errors.
type outcome struct {
	mu     sync.Mutex
	open   int
	sealed bool
	errs   []error
	finish func(error)
}

func newOutcome(finish func(error)) *outcome { return &outcome{finish: finish} }

// add registers one more piece of work and returns the function that ends
// it; only its first call counts.
func (o *outcome) add() func(error) {
	o.mu.Lock()
	o.open++
	o.mu.Unlock()
	var once sync.Once
	return func(err error) {
		once.Do(func() {
			o.mu.Lock()
			o.open--
			if err != nil {
				o.errs = append(o.errs, err)
			}
			o.endLocked()
		})
	}
}

// seal says no more work will be added by the caller itself (work may
// still add more); the delivery ends when the last piece does.
func (o *outcome) seal() {
	o.mu.Lock()
	o.sealed = true
	o.endLocked()
}

// endLocked is called with o.mu held and releases it.
func (o *outcome) endLocked() {
	if !o.sealed || o.open > 0 || o.finish == nil {
		o.mu.Unlock()
		return
	}
	finish := o.finish
	o.finish = nil
	err := errors.Join(o.errs...)
	o.mu.Unlock()
	finish(err)
}

// Evaluate judges the pull request's current head and posts the result.
func (g *Gate) Evaluate(ctx context.Context, number int) error {
	c, repo := g.opts.Client, g.opts.Repository
	pr, err := c.GetPullRequest(ctx, repo, number)
	if err != nil {
		return err
	}
	if pr.State != "open" {
		return nil
	}
	log := g.log.With("pr", number, "head", pr.HeadSHA)
	current, err := c.LatestStatuses(ctx, repo, pr.HeadSHA)
	if err != nil {
		return err
	}
	pending := Status{Context: StatusContext, State: "pending", Description: "modelsync is evaluating the policy", TargetURL: g.opts.TargetURL}
	if err := g.writeStatus(ctx, pr.HeadSHA, current, pending); err != nil {
		return err
	}
	rep, evalErr := g.judge(ctx, pr)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// Re-read the head: a result for a commit that is no longer the head
	// would be attached to the wrong commit's check, so it is dropped.
	now, err := c.GetPullRequest(ctx, repo, number)
	if err != nil {
		return err
	}
	if now.HeadSHA != pr.HeadSHA {
		log.Info("head moved during evaluation; result dropped", "new_head", now.HeadSHA)
		return nil
	}
	if evalErr != nil && rep == nil {
		// Nothing could be judged: say so on the required check. The
		// error text carries no credentials (Git and API errors are
		// scrubbed where they are made).
		st := Status{Context: StatusContext, State: "error", Description: "modelsync could not evaluate: " + evalErr.Error(), TargetURL: g.opts.TargetURL}
		if err := g.writeStatus(ctx, pr.HeadSHA, current, st); err != nil {
			return err
		}
		return evalErr
	}
	sts := g.statuses(rep)
	for _, st := range sts {
		if err := g.writeStatus(ctx, pr.HeadSHA, current, st); err != nil {
			return err
		}
	}
	g.recordVerdict(pr, rep, sts[0])
	if err := g.upsertComment(ctx, number, prcheck.Markdown(rep)); err != nil {
		return err
	}
	log.Info("pull request evaluated", "passed", rep.Passed(), "denies", len(rep.Result.Denies), "warnings", len(rep.Result.Warnings))
	return evalErr
}

// recordVerdict keeps the posted overall status under every model the
// report speaks of. A failed write is logged: the status on GitHub is the
// verdict of record, this copy only shows it on the dashboard.
func (g *Gate) recordVerdict(pr PullRequest, rep *prcheck.Report, overall Status) {
	if g.opts.Verdicts == nil {
		return
	}
	v := prverdict.Verdict{PR: pr.Number, HeadSHA: pr.HeadSHA, State: overall.State, Description: Truncate(overall.Description, MaxStatusDescription),
		Models: reportModels(rep), Time: g.opts.Now().UTC()}
	for _, d := range rep.Result.Denies {
		v.Denies = append(v.Denies, prverdict.Denial{Rule: d.Rule, Message: d.Message, Model: d.Model, Environment: d.Environment})
	}
	if err := g.opts.Verdicts.Record(v); err != nil {
		g.log.Warn("keeping the pull request verdict for the dashboard failed", "pr", pr.Number, "error", err)
	}
}

// reportModels lists the models a report concerns, in first-seen order:
// those the pull request changes, then those a rule or plan error names.
func reportModels(rep *prcheck.Report) []string {
	var out []string
	seen := map[string]bool{}
	add := func(m string) {
		if m != "" && !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	for _, c := range rep.Changes {
		add(c.Model)
	}
	for _, vs := range [][]policy.Violation{rep.Result.Denies, rep.Result.Warnings} {
		for _, v := range vs {
			add(v.Model)
		}
	}
	for _, e := range rep.PlanErrors {
		add(e.Model)
	}
	return out
}

// judge reads the repository and the reviews and evaluates the policy. A
// report with Error set means the evaluation failed closed.
func (g *Gate) judge(ctx context.Context, pr PullRequest) (*prcheck.Report, error) {
	c, repo := g.opts.Client, g.opts.Repository
	r, err := g.opts.Sync(ctx)
	if err != nil {
		return nil, fmt.Errorf("syncing the models repository: %w", err)
	}
	base, err := r.BranchHead(pr.BaseRef)
	if err != nil {
		return nil, fmt.Errorf("base branch %s: %w", pr.BaseRef, err)
	}
	if _, err := r.Commit(pr.HeadSHA); err != nil {
		if g.opts.FetchPull == nil {
			return nil, fmt.Errorf("head %s of pull request #%d is not in the models repository: %w", pr.HeadSHA, pr.Number, err)
		}
		if ferr := g.opts.FetchPull(ctx, pr.Number); ferr != nil {
			// Short and in this order: a status description keeps 140 characters.
			return nil, fmt.Errorf("pull request #%d: head %.12s is on no branch and fetching refs/pull/%d/head failed: %w", pr.Number, pr.HeadSHA, pr.Number, ferr)
		}
		if _, err := r.Commit(pr.HeadSHA); err != nil {
			// The pull request moved on between GitHub's answer and the
			// fetch; the event for the new head evaluates it.
			return nil, fmt.Errorf("pull request #%d: head %.12s is not in refs/pull/%d/head either: %w", pr.Number, pr.HeadSHA, pr.Number, err)
		}
	}
	refs := prcheck.Refs{BaseBranch: pr.BaseRef, BaseRef: pr.BaseRef, HeadRef: pr.HeadRef, BaseSHA: base.Hash, HeadSHA: pr.HeadSHA}
	cmp, err := prcheck.Compare(ctx, r, refs)
	if err != nil {
		return nil, fmt.Errorf("pull request #%d: %w", pr.Number, err)
	}
	ev, err := g.engine(ctx, r, refs)
	if err != nil {
		return nil, err
	}
	reviews, err := c.ListReviews(ctx, repo, pr.Number)
	if err != nil {
		return nil, err
	}
	files, err := c.ListFiles(ctx, repo, pr.Number)
	if err != nil {
		return nil, err
	}
	req := prcheck.Request{
		PR:      policy.PullRequest{Number: pr.Number, Author: pr.Author, Labels: pr.Labels, ChangedFiles: files},
		Reviews: reviews,
		Now:     g.opts.Now().UTC(),
	}
	if g.opts.Registry != nil {
		if req.Registry, err = g.opts.Registry.Facts(ctx, cmp, req.Now); err != nil {
			return nil, fmt.Errorf("registry facts for pull request #%d: %w", pr.Number, err)
		}
	}
	// A PR whose files (per GitHub) touch policy/ is flagged even if the
	// Git diff against the current base no longer shows it.
	for _, f := range files {
		if f == prcheck.PolicyDir || strings.HasPrefix(f, prcheck.PolicyDir+"/") {
			cmp.PolicyChanged = true
		}
	}
	return prcheck.Evaluate(ctx, cmp, ev, req)
}

// engine returns the compiled policy of the base commit, compiling it the
// first time that base is seen.
func (g *Gate) engine(ctx context.Context, r prcheck.Repository, refs prcheck.Refs) (prcheck.Evaluator, error) {
	src, err := prcheck.PolicySource(r, refs)
	if err != nil {
		return nil, err
	}
	key := src.String() + "@" + refs.BaseSHA
	g.mu.Lock()
	ev, ok := g.engines[key]
	g.mu.Unlock()
	if ok {
		return ev, nil
	}
	ev, err = g.opts.LoadPolicy(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("policy %s at %s: %w", src, refs.BaseSHA, err)
	}
	g.mu.Lock()
	// A few revisions are kept (several base branches may be in use); the
	// oldest go as the base branches move, so memory stays bounded.
	if _, ok := g.engines[key]; !ok {
		g.engines[key] = ev
		g.order = append(g.order, key)
		for len(g.order) > maxEngines {
			delete(g.engines, g.order[0])
			g.order = g.order[1:]
		}
	}
	g.mu.Unlock()
	return ev, nil
}

// statuses turns a report into the overall status and one per affected
// environment.
func (g *Gate) statuses(rep *prcheck.Report) []Status {
	overall := Status{Context: StatusContext, TargetURL: g.opts.TargetURL}
	switch {
	case rep.Error != "" || rep.Result.Failed:
		overall.State = "error"
		overall.Description = "Policy could not be evaluated (fails closed): " + firstLine(rep.Error)
	case rep.Passed():
		overall.State = "success"
		overall.Description = fmt.Sprintf("Policy passed: %s, %s", prcheck.Plural(len(rep.Changes)+len(rep.ConfigChanges), "change"), prcheck.Plural(len(rep.Result.Warnings), "warning"))
	default:
		overall.State = "failure"
		overall.Description = fmt.Sprintf("%s: %s", prcheck.Plural(len(rep.Result.Denies), "policy violation"), ruleList(rep.Result.Denies))
	}
	out := []Status{overall}
	// An environment whose modelsync.yaml settings change gets its own
	// status as one whose models change does.
	for _, env := range rep.Environments() {
		st := Status{Context: StatusContext + "/" + env, TargetURL: g.opts.TargetURL}
		var denies []policy.Violation
		for _, d := range rep.Result.Denies {
			if d.Environment == env || d.Environment == "" {
				denies = append(denies, d)
			}
		}
		switch {
		case overall.State == "error":
			st.State, st.Description = "error", overall.Description
		case len(denies) == 0:
			st.State, st.Description = "success", "Policy passed for "+env
		default:
			st.State = "failure"
			st.Description = fmt.Sprintf("%s: %s: %s", env, prcheck.Plural(len(denies), "violation"), ruleList(denies))
		}
		out = append(out, st)
	}
	return out
}

func ruleList(vs []policy.Violation) string {
	seen := map[string]bool{}
	var rules []string
	for _, v := range vs {
		if !seen[v.Rule] {
			seen[v.Rule] = true
			rules = append(rules, v.Rule)
		}
	}
	return strings.Join(rules, ", ")
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// writeStatus posts st unless the commit already shows the same state and
// description for that context; current is updated with what was written.
func (g *Gate) writeStatus(ctx context.Context, sha string, current map[string]Status, st Status) error {
	st.Description = Truncate(st.Description, MaxStatusDescription)
	key := strings.ToLower(st.Context)
	if cur, ok := current[key]; ok && cur.State == st.State && cur.Description == st.Description && cur.TargetURL == st.TargetURL {
		return nil
	}
	if err := g.opts.Client.CreateStatus(ctx, g.opts.Repository, sha, st); err != nil {
		return err
	}
	current[key] = st
	return nil
}

// upsertComment keeps one plan comment (or, when too long, a series of
// marked comments) per pull request, editing it in place. Creating a
// comment is the one write the client does not repeat after a transient
// failure, since GitHub may have created it; the whole sync is repeated
// instead, which finds such a comment and keeps it.
func (g *Gate) upsertComment(ctx context.Context, number int, body string) error {
	parts := SplitComment(body)
	policy := g.opts.Client.retry
	for attempt := 1; ; attempt++ {
		err := g.syncComments(ctx, number, parts)
		if err == nil || !errors.Is(err, errCreateUnknown) || attempt >= policy.Attempts {
			return err
		}
		g.log.Info("creating the plan comment failed; syncing the comments again", "pr", number, "err", err)
		if err := sleep(ctx, policy.backoff(attempt)); err != nil {
			return err
		}
	}
}

// errCreateUnknown marks a comment creation that may have taken effect.
var errCreateUnknown = errors.New("plan comment may or may not have been created")

// syncComments makes the marked comments of a pull request the parts.
func (g *Gate) syncComments(ctx context.Context, number int, parts []string) error {
	c, repo := g.opts.Client, g.opts.Repository
	existing, err := c.ListComments(ctx, repo, number)
	if err != nil {
		return err
	}
	var ours []Comment
	for _, cm := range existing {
		if strings.Contains(cm.Body, CommentMarker) {
			ours = append(ours, cm)
		}
	}
	for i, p := range parts {
		if i < len(ours) {
			if ours[i].Body == p {
				continue
			}
			if err := c.EditComment(ctx, repo, ours[i].ID, p); err != nil {
				return err
			}
			continue
		}
		if _, err := c.CreateComment(ctx, repo, number, p); err != nil {
			if OutcomeUnknown(err) {
				return fmt.Errorf("%w: %w", errCreateUnknown, err)
			}
			return err
		}
	}
	for _, cm := range ours[min(len(parts), len(ours)):] {
		if err := c.DeleteComment(ctx, repo, cm.ID); err != nil {
			return err
		}
	}
	return nil
}

// SplitComment cuts a body into comments of at most MaxCommentLength
// characters, each starting with the marker, splitting at line ends where
// possible.
func SplitComment(body string) []string {
	header := func(i, n int) string {
		if n == 1 {
			return CommentMarker + "\n"
		}
		return fmt.Sprintf("%s\n<!-- modelsync:plan part %d/%d -->\n_(part %d of %d)_\n\n", CommentMarker, i, n, i, n)
	}
	if len([]rune(header(1, 1)+body)) <= MaxCommentLength {
		return []string{header(1, 1) + body}
	}
	// Reserve room for the longest header (up to 9999 parts).
	room := MaxCommentLength - len([]rune(header(9999, 9999)))
	var chunks []string
	rs := []rune(body)
	for len(rs) > 0 {
		n := min(room, len(rs))
		if n < len(rs) {
			// Prefer to cut after a newline in the second half of the chunk.
			for j := n - 1; j > n/2; j-- {
				if rs[j] == '\n' {
					n = j + 1
					break
				}
			}
		}
		chunks = append(chunks, string(rs[:n]))
		rs = rs[n:]
	}
	out := make([]string, len(chunks))
	for i, ch := range chunks {
		out[i] = header(i+1, len(chunks)) + ch
	}
	return out
}
