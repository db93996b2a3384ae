package gitsource

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelsync/modelsync/test/testenv"
)

// gatedServer is a reverse proxy to a real Git server that counts the
// requests of each kind and can hold one kind until released.
type gatedServer struct {
	URL string

	mu    sync.Mutex
	count map[string]int
	hold  map[string]chan struct{} // request kind -> released when closed
	held  chan string              // receives the kind of each held request
}

// Request kinds: the ref advertisement and the pack negotiation.
const (
	kindAdvertise = "GET info/refs"
	kindNegotiate = "POST git-upload-pack"
)

func newGatedServer(t *testing.T, target string) *gatedServer {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedServer{count: map[string]int{}, hold: map[string]chan struct{}{}, held: make(chan string, 16)}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The advertisement is GET <repo>/info/refs, the negotiation
		// POST <repo>/git-upload-pack.
		kind := r.Method + " " + r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		if strings.HasSuffix(r.URL.Path, "/info/refs") {
			kind = r.Method + " info/refs"
		}
		g.mu.Lock()
		g.count[kind]++
		gate := g.hold[kind]
		delete(g.hold, kind) // hold only the next request of the kind
		g.mu.Unlock()
		if gate != nil {
			g.held <- kind
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	g.URL = srv.URL
	return g
}

// holdNext makes the next request of kind wait until the returned function
// is called.
func (g *gatedServer) holdNext(kind string) (release func()) {
	ch := make(chan struct{})
	g.mu.Lock()
	g.hold[kind] = ch
	g.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

func (g *gatedServer) counts() (advertise, negotiate int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.count[kindAdvertise], g.count[kindNegotiate]
}

func (g *gatedServer) reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.count = map[string]int{}
}

// waitHeld fails the test unless a held request of kind arrives.
func (g *gatedServer) waitHeld(t *testing.T, kind string) {
	t.Helper()
	select {
	case got := <-g.held:
		if got != kind {
			t.Fatalf("held %s, want %s", got, kind)
		}
	case <-time.After(time.Minute):
		t.Fatalf("no %s arrived", kind)
	}
}

// waiters reports how many callers wait for the running and the queued
// fetch.
func waiters(s *Source) (running, queued int) {
	s.flightMu.Lock()
	defer s.flightMu.Unlock()
	if s.running != nil {
		running = s.running.waiters
	}
	if s.queued != nil {
		queued = s.queued.waiters
	}
	return running, queued
}

// waitFor polls cond; it bounds a hang, it does not measure speed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// servedRepo is a repository on a real Git server behind a gatedServer,
// with one commit on main, and a Source mirroring it.
func servedRepo(t *testing.T) (*testenv.Workdir, *gatedServer, *Source, string) {
	t.Helper()
	g := testenv.NewGitServer(t)
	if _, err := g.NewBareRepo("models"); err != nil {
		t.Fatal(err)
	}
	w := testenv.NewWorkdir(t, g.AuthHTTPURL("models"))
	w.WriteFile("models/churn/model.yaml", "name: churn\n")
	head := w.Commit("seed")
	w.Push()
	gs := newGatedServer(t, g.HTTPURL)
	src, err := Open(t.Context(), Options{URL: gs.URL + "/models.git", CacheDir: t.TempDir(), Auth: Auth{Username: g.Username, Password: g.Password}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return w, gs, src, head
}

type syncOutcome struct {
	res SyncResult
	err error
}

// Callers that arrive while a fetch waits for the ref advertisement share
// that fetch: one advertisement, one negotiation, one result for all.
func TestConcurrentSyncsShareOneFetch(t *testing.T) {
	_, gs, src, head := servedRepo(t)
	const n = 8
	release := gs.holdNext(kindAdvertise)
	defer release()
	out := make(chan syncOutcome, n)
	for range n {
		go func() {
			res, err := src.Sync(t.Context())
			out <- syncOutcome{res, err}
		}()
	}
	gs.waitHeld(t, kindAdvertise)
	waitFor(t, "every caller to join the fetch", func() bool { r, _ := waiters(src); return r == n })
	release()
	for range n {
		o := <-out
		if o.err != nil {
			t.Fatal(o.err)
		}
		if !o.res.Changed || o.res.Heads["main"] != head {
			t.Fatalf("result = %+v, want main at %.12s, changed", o.res, head)
		}
	}
	if adv, neg := gs.counts(); adv != 1 || neg != 1 {
		t.Fatalf("%d callers made %d advertisements and %d negotiations, want 1 and 1", n, adv, neg)
	}
}

// A caller arriving after a fetch has read the refs would get refs older
// than its call from it: it waits for the next fetch, which starts when the
// current one ends and is shared by every such caller.
func TestSyncAfterAdvertisementWaitsForNextFetch(t *testing.T) {
	w, gs, src, first := servedRepo(t)
	release := gs.holdNext(kindNegotiate)
	defer release()
	early := make(chan syncOutcome, 1)
	go func() {
		res, err := src.Sync(t.Context())
		early <- syncOutcome{res, err}
	}()
	gs.waitHeld(t, kindNegotiate) // the advertisement is read: main is at first

	w.WriteFile("models/churn/model.yaml", "name: churn\nrev: 2\n")
	second := w.Commit("rev 2")
	w.Push()
	const late = 3
	out := make(chan syncOutcome, late)
	for range late {
		go func() {
			res, err := src.Sync(t.Context())
			out <- syncOutcome{res, err}
		}()
	}
	waitFor(t, "the late callers to queue", func() bool { _, q := waiters(src); return q == late })
	release()

	if o := <-early; o.err != nil || o.res.Heads["main"] != first {
		t.Fatalf("early caller: %+v, %v; want main at %.12s", o.res.Heads, o.err, first)
	}
	for range late {
		if o := <-out; o.err != nil || o.res.Heads["main"] != second {
			t.Fatalf("late caller: %+v, %v; want main at %.12s", o.res.Heads, o.err, second)
		}
	}
	if adv, neg := gs.counts(); adv != 2 || neg != 2 {
		t.Fatalf("%d advertisements and %d negotiations, want 2 and 2 (one fetch per generation of callers)", adv, neg)
	}
}

// A caller that gives up leaves the fetch; when nobody waits any more the
// fetch is canceled, and the next Sync starts a fresh one that succeeds.
func TestAbandonedFetchIsCanceled(t *testing.T) {
	_, gs, src, head := servedRepo(t)
	release := gs.holdNext(kindNegotiate)
	defer release()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := src.Sync(ctx)
		errc <- err
	}()
	gs.waitHeld(t, kindNegotiate)
	cancel()
	if err := <-errc; err == nil || ctx.Err() == nil {
		t.Fatalf("canceled Sync = %v", err)
	}
	// The held request ends with its client; the fetch ends with it.
	waitFor(t, "the abandoned fetch to end", func() bool {
		src.flightMu.Lock()
		defer src.flightMu.Unlock()
		return src.running == nil
	})
	res, err := src.Sync(t.Context())
	if err != nil || res.Heads["main"] != head {
		t.Fatalf("Sync after an abandoned fetch: %+v, %v", res.Heads, err)
	}
}

// FetchRef and Sync both write the cache; run together against a server
// whose branch and pull request ref keep moving, they neither fail nor
// leave the cache inconsistent, and each finds the commits it fetched.
func TestSyncConcurrentWithFetchRef(t *testing.T) {
	w, gs, src, _ := servedRepo(t)
	if _, err := src.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	w.Run("checkout", "--quiet", "-b", "fork")
	w.WriteFile("models/churn/model.yaml", "name: churn\nfork: 0\n")
	w.Commit("fork 0")
	w.Push("HEAD:refs/pull/1/head")
	w.Run("checkout", "--quiet", "main")
	gs.reset()

	const rounds = 10
	var wg sync.WaitGroup
	errs := make(chan error, 4*rounds)
	stop := make(chan struct{})
	for _, op := range []func() error{
		func() error { _, err := src.Sync(t.Context()); return err },
		func() error { _, err := src.FetchRef(t.Context(), "refs/pull/1/head"); return err },
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := op(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var mainHead, pullHead string
	for i := range rounds {
		w.WriteFile("models/churn/model.yaml", "name: churn\nrev: "+string(rune('a'+i))+"\n")
		mainHead = w.Commit("main")
		w.Push("HEAD:main")
		w.Run("checkout", "--quiet", "fork")
		w.WriteFile("models/churn/model.yaml", "name: churn\nfork: "+string(rune('a'+i))+"\n")
		pullHead = w.Commit("fork")
		w.Push("--force", "HEAD:refs/pull/1/head")
		w.Run("checkout", "--quiet", "main")
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if adv, _ := gs.counts(); adv < rounds {
		t.Fatalf("only %d requests reached the server while %d pushes happened; the test did not overlap them", adv, rounds)
	}

	res, err := src.Sync(t.Context())
	if err != nil || res.Heads["main"] != mainHead {
		t.Fatalf("final Sync: %+v, %v; want main at %.12s", res.Heads, err, mainHead)
	}
	got, err := src.FetchRef(t.Context(), "refs/pull/1/head")
	if err != nil || got != pullHead {
		t.Fatalf("final FetchRef = %.12s, %v; want %.12s", got, err, pullHead)
	}
	for _, h := range []string{mainHead, pullHead} {
		if _, err := src.Tree(h); err != nil {
			t.Fatal(err)
		}
	}
	fsck := exec.Command("git", "-C", src.Dir(), "fsck", "--no-dangling", "--no-progress")
	if out, err := fsck.CombinedOutput(); err != nil {
		t.Fatalf("git fsck of the cache: %v\n%s", err, out)
	}
}
