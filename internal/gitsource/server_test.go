package gitsource_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/gitsource"
	"github.com/modelsync/modelsync/test/testenv"
)

// packs returns the pack files of a bare repository.
func packs(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "objects", "pack", "*.pack"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// packObjects counts the objects in one pack via its index.
func packObjects(t *testing.T, pack string) int {
	t.Helper()
	idx, err := os.Open(strings.TrimSuffix(pack, ".pack") + ".idx")
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	cmd := exec.Command("git", "show-index")
	cmd.Stdin = idx
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(out), "\n")
}

// newPacks syncs and returns the objects in packs the sync added.
func syncCountingObjects(t *testing.T, src *gitsource.Source) (gitsource.SyncResult, int) {
	t.Helper()
	before := packs(t, src.Dir())
	res := mustSync(t, src)
	n := 0
	for _, p := range packs(t, src.Dir()) {
		if !slices.Contains(before, p) {
			n += packObjects(t, p)
		}
	}
	return res, n
}

// pushModels seeds a served repository with many models and release tags.
func pushModels(t *testing.T, remote string) (*testenv.Workdir, string) {
	t.Helper()
	w := testenv.NewWorkdir(t, remote)
	seedModels(w)
	for _, m := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		w.WriteFile("models/m-"+m+"/model.yaml", "name: m-"+m+"\n")
		w.WriteFile("models/m-"+m+"/serving/kustomization.yaml", "resources: []\n")
	}
	w.WriteFile("models/churn/serving/isvc.yaml", bigYAML(0))
	head := w.Commit("many models")
	w.Tag("churn/v1.0.0", "annotated release")
	w.Tag("fraud/v2.0.0", "")
	w.Tag("fraud/v2.0", "")
	w.Push()
	return w, head
}

func TestSyncOverGitDaemon(t *testing.T) {
	g := testenv.NewGitServer(t)
	if _, err := g.NewBareRepo("models"); err != nil {
		t.Fatal(err)
	}
	w, head := pushModels(t, g.DaemonURL+"models.git")

	// Count TCP connections: the no-change path must open exactly one
	// (the ref advertisement) and never a second one for upload-pack.
	daemon, err := url.Parse(g.DaemonURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := testenv.NewTCPFaultProxy(daemon.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	src := openSource(t, "git://"+proxy.Addr+"/models.git", 0)

	res, objs := syncCountingObjects(t, src)
	if !res.Changed || res.Heads["main"] != head {
		t.Fatalf("clone: %+v", res)
	}
	if got := tagNames(res.Tags); !slices.Equal(got, []string{"churn/v1.0.0=" + head, "fraud/v2.0.0=" + head}) {
		t.Fatalf("tags: %v", got)
	}
	if len(res.BadTags) != 1 || !strings.Contains(res.BadTags[0].Error(), "fraud/v2.0") {
		t.Fatalf("bad tags: %v", res.BadTags)
	}
	if objs == 0 {
		t.Fatal("clone stored no objects")
	}
	conns := proxy.Connections()

	res, objs = syncCountingObjects(t, src)
	if res.Changed || objs != 0 {
		t.Fatalf("unchanged remote: changed=%v new objects=%d", res.Changed, objs)
	}
	if got := proxy.Connections() - conns; got != 1 {
		t.Fatalf("unchanged Sync opened %d connections, want 1 (ls-remote only)", got)
	}

	// Incremental: one commit touching two files transfers a handful of
	// objects (tag, commit, 5 trees, 2 blobs), not the repository.
	w.WriteFile("models/fraud/model.yaml", "name: fraud\nprod: 7\n")
	// A one-line change to a large file is where a server sends deltas.
	w.WriteFile("models/churn/serving/isvc.yaml", bigYAML(1))
	next := w.Commit("promote fraud")
	w.Tag("fraud/v2.1.0", "release")
	w.Push()
	conns = proxy.Connections()
	res, objs = syncCountingObjects(t, src)
	if got := proxy.Connections() - conns; got != 1 {
		t.Fatalf("changed Sync opened %d connections, want 1 (advertisement and fetch share a session)", got)
	}
	if !res.Changed || res.Heads["main"] != next {
		t.Fatalf("incremental: %+v", res)
	}
	if objs != 9 {
		t.Fatalf("incremental fetch stored %d objects, want the 9 new ones", objs)
	}
	if latest, ok := gitsourceLatest(res, "fraud"); !ok || latest != "fraud/v2.1.0" {
		t.Fatalf("latest fraud = %s", latest)
	}
	paths, err := src.ChangedPaths(head, next)
	if err != nil || !slices.Equal(paths, []string{"models/churn/serving/isvc.yaml", "models/fraud/model.yaml"}) {
		t.Fatalf("ChangedPaths = %v, %v", paths, err)
	}
	// The incremental pack is self-contained and the cache a valid repository.
	git(t, src.Dir(), "fsck", "--no-progress", "--strict")
	fsys, err := src.Tree(next)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := fs.ReadFile(fsys, "models/churn/serving/isvc.yaml"); err != nil || string(b) != bigYAML(1) {
		t.Fatalf("changed large file read back wrong (%d bytes, %v)", len(b), err)
	}
}

// bigYAML is a ~40 KiB manifest whose first line differs by rev.
func bigYAML(rev int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# rev %d\n", rev)
	for i := range 1000 {
		fmt.Fprintf(&b, "  env-%04d: value-%04d-abcdefghijklmnop\n", i, i)
	}
	return b.String()
}

func gitsourceLatest(res gitsource.SyncResult, model string) (string, bool) {
	var best string
	var found bool
	for _, tg := range res.Tags {
		if tg.Model == model {
			best, found = tg.Name, true // Tags are sorted by version
		}
	}
	return best, found
}

func TestSyncOverSmartHTTP(t *testing.T) {
	g := testenv.NewGitServer(t)
	if _, err := g.NewBareRepo("models"); err != nil {
		t.Fatal(err)
	}
	w, head := pushModels(t, g.AuthHTTPURL("models"))

	proxy, err := testenv.NewFaultProxy(g.HTTPURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	repoURL := proxy.URL + "/models.git"

	src, err := gitsource.Open(t.Context(), gitsource.Options{
		URL: repoURL, CacheDir: t.TempDir(),
		// A token with an explicit user, as a GitLab deploy token is used.
		Auth: gitsource.Auth{Username: g.Username, Token: g.Password},
	})
	if err != nil {
		t.Fatal(err)
	}
	res, objs := syncCountingObjects(t, src)
	if !res.Changed || res.Heads["main"] != head || len(res.Tags) != 2 || objs == 0 {
		t.Fatalf("clone over HTTP: %+v (%d objects)", res, objs)
	}
	if uploads := countRequests(proxy, http.MethodPost, "/models.git/git-upload-pack"); uploads != 1 {
		t.Fatalf("clone made %d upload-pack POSTs, want 1", uploads)
	}

	proxy.Reset()
	res, objs = syncCountingObjects(t, src)
	if res.Changed || objs != 0 {
		t.Fatalf("unchanged: changed=%v objects=%d", res.Changed, objs)
	}
	reqs := proxy.Requests()
	if len(reqs) != 1 || reqs[0].Method != http.MethodGet || reqs[0].Path != "/models.git/info/refs" || reqs[0].Status != http.StatusOK {
		t.Fatalf("unchanged Sync requests = %+v, want exactly one GET info/refs", reqs)
	}

	proxy.Reset()
	w.WriteFile("models/churn/model.yaml", "name: churn\nstaging: 4\n")
	next := w.Commit("stage churn")
	w.Push()
	res, objs = syncCountingObjects(t, src)
	if !res.Changed || res.Heads["main"] != next || objs == 0 || objs > 8 {
		t.Fatalf("incremental over HTTP: %+v (%d objects)", res, objs)
	}
	if reqs := proxy.Requests(); len(reqs) != 2 || countRequests(proxy, http.MethodGet, "/models.git/info/refs") != 1 ||
		countRequests(proxy, http.MethodPost, "/models.git/git-upload-pack") != 1 {
		t.Fatalf("incremental requests = %+v, want one GET info/refs and one upload-pack POST", reqs)
	}

	// Credentials embedded in the URL work and are not written to disk.
	embedded, err := url.Parse(repoURL)
	if err != nil {
		t.Fatal(err)
	}
	embedded.User = url.UserPassword(g.Username, g.Password)
	src2, err := gitsource.Open(t.Context(), gitsource.Options{URL: embedded.String(), CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if res := mustSync(t, src2); res.Heads["main"] != next {
		t.Fatalf("embedded credentials: %+v", res)
	}
	if src2.URL() != repoURL {
		t.Fatalf("URL() = %q, want %q", src2.URL(), repoURL)
	}
	cfg, err := os.ReadFile(filepath.Join(src2.Dir(), "config"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cfg), g.Password) {
		t.Fatal("cache config contains the password")
	}
}

func countRequests(p *testenv.FaultProxy, method, path string) int {
	n := 0
	for _, r := range p.Requests() {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

func TestSyncHTTPAuthFailure(t *testing.T) {
	g := testenv.NewGitServer(t)
	if _, err := g.NewBareRepo("models"); err != nil {
		t.Fatal(err)
	}
	pushModels(t, g.AuthHTTPURL("models"))
	repoURL := g.HTTPURL + "models.git"
	wrong := "wrong-" + g.Password

	embedded, _ := url.Parse(repoURL)
	embedded.User = url.UserPassword(g.Username, wrong)
	cases := []struct {
		name string
		opts gitsource.Options
	}{
		{"no credentials", gitsource.Options{URL: repoURL}},
		{"wrong password", gitsource.Options{URL: repoURL, Auth: gitsource.Auth{Username: g.Username, Password: wrong}}},
		{"wrong token", gitsource.Options{URL: repoURL, Auth: gitsource.Auth{Token: wrong}}},
		{"wrong password in URL", gitsource.Options{URL: embedded.String()}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.CacheDir = t.TempDir()
			src, err := gitsource.Open(t.Context(), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			_, err = src.Sync(t.Context())
			if !errors.Is(err, gitsource.ErrAuth) || gitsource.IsRetryable(err) {
				t.Fatalf("Sync = %v, want non-retryable ErrAuth", err)
			}
			msg := err.Error()
			if strings.Contains(msg, wrong) || strings.Contains(msg, g.Password) {
				t.Fatalf("error leaks the password: %s", msg)
			}
			if !strings.Contains(msg, repoURL) || !strings.Contains(msg, gitsource.EnvToken) {
				t.Fatalf("error %q does not name the URL and %s", msg, gitsource.EnvToken)
			}
		})
	}
}

func TestSyncTransientAndNotFound(t *testing.T) {
	g := testenv.NewGitServer(t)
	if _, err := g.NewBareRepo("models"); err != nil {
		t.Fatal(err)
	}
	_, head := pushModels(t, g.AuthHTTPURL("models"))
	auth := gitsource.Auth{Username: g.Username, Password: g.Password}

	proxy, err := testenv.NewFaultProxy(g.HTTPURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	src, err := gitsource.Open(t.Context(), gitsource.Options{URL: proxy.URL + "/models.git", CacheDir: t.TempDir(), Auth: auth})
	if err != nil {
		t.Fatal(err)
	}

	proxy.Inject(testenv.Fault{Status: http.StatusServiceUnavailable, Times: 1})
	if _, err := src.Sync(t.Context()); !gitsource.IsRetryable(err) || strings.Contains(err.Error(), g.Password) {
		t.Fatalf("503: %v, want retryable", err)
	}
	// Every connection reset (net/http itself retries a GET once on a
	// reused connection, so a single drop can go unnoticed).
	proxy.Inject(testenv.Fault{DropConnection: true})
	if _, err := src.Sync(t.Context()); !gitsource.IsRetryable(err) {
		t.Fatalf("dropped connection: %v, want retryable", err)
	}
	proxy.Reset()
	// The upload-pack POST fails after a good advertisement: still
	// retryable, and the next attempt completes the clone.
	proxy.Inject(testenv.Fault{Status: http.StatusBadGateway, Times: 1, Match: func(r *http.Request) bool { return r.Method == http.MethodPost }})
	if _, err := src.Sync(t.Context()); !gitsource.IsRetryable(err) {
		t.Fatalf("502 on upload-pack: %v, want retryable", err)
	}
	if res := mustSync(t, src); !res.Changed || res.Heads["main"] != head {
		t.Fatalf("retry after faults: %+v", res)
	}

	for name, u := range map[string]string{
		"http":   g.HTTPURL + "missing.git",
		"daemon": g.DaemonURL + "missing.git",
		"local":  filepath.Join(g.Root, "missing.git"),
	} {
		s, err := gitsource.Open(t.Context(), gitsource.Options{URL: u, CacheDir: t.TempDir(), Auth: auth})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Sync(t.Context()); !errors.Is(err, gitsource.ErrNotFound) || gitsource.IsRetryable(err) {
			t.Errorf("%s missing repository: %v, want ErrNotFound", name, err)
		}
	}

	// Nothing listens: connection refused is retryable.
	daemon, _ := url.Parse(g.DaemonURL)
	tcp, err := testenv.NewTCPFaultProxy(daemon.Host)
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := tcp.Addr
	if err := tcp.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := gitsource.Open(t.Context(), gitsource.Options{URL: "git://" + closedAddr + "/models.git", CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sync(t.Context()); !gitsource.IsRetryable(err) {
		t.Fatalf("connection refused: %v, want retryable", err)
	}
}

func TestPushTagOverHTTP(t *testing.T) {
	g := testenv.NewGitServer(t)
	if _, err := g.NewBareRepo("models"); err != nil {
		t.Fatal(err)
	}
	w, head := pushModels(t, g.AuthHTTPURL("models"))
	// The developer's remote carries no credentials; they come from Auth.
	w.Run("remote", "set-url", "origin", g.HTTPURL+"models.git")
	ws, err := gitsource.OpenWorkspace(w.Dir)
	if err != nil {
		t.Fatal(err)
	}
	tagger := gitsource.Signature{Name: "rel", Email: "rel@example.invalid"}
	if err := ws.CreateAnnotatedTag("churn/v1.1.0", "churn 1.1.0", tagger); err != nil {
		t.Fatal(err)
	}
	wrong := "nope-" + g.Password
	err = ws.PushTag(t.Context(), "origin", "churn/v1.1.0", gitsource.Auth{Username: g.Username, Password: wrong})
	if !errors.Is(err, gitsource.ErrAuth) || strings.Contains(err.Error(), wrong) {
		t.Fatalf("push with a wrong password = %v", err)
	}
	if err := ws.PushTag(t.Context(), "origin", "churn/v1.1.0", gitsource.Auth{Username: g.Username, Password: g.Password}); err != nil {
		t.Fatal(err)
	}
	src := openSourceAuth(t, g.HTTPURL+"models.git", gitsource.Auth{Username: g.Username, Password: g.Password})
	res := mustSync(t, src)
	found := false
	for _, tg := range res.Tags {
		found = found || (tg.Name == "churn/v1.1.0" && tg.Commit == head)
	}
	if !found {
		t.Fatalf("pushed tag not served: %v", tagNames(res.Tags))
	}
}

func openSourceAuth(t *testing.T, u string, auth gitsource.Auth) *gitsource.Source {
	t.Helper()
	src, err := gitsource.Open(t.Context(), gitsource.Options{URL: u, CacheDir: t.TempDir(), Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// A stalled pack download must not block readers of the cache: Sync holds
// the storage lock only around local work.
func TestReadersDoNotWaitForNetwork(t *testing.T) {
	g := testenv.NewGitServer(t)
	if _, err := g.NewBareRepo("models"); err != nil {
		t.Fatal(err)
	}
	w, head := pushModels(t, g.AuthHTTPURL("models"))
	proxy, err := testenv.NewFaultProxy(g.HTTPURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	src := openSourceAuth(t, proxy.URL+"/models.git", gitsource.Auth{Username: g.Username, Password: g.Password})
	mustSync(t, src)
	fsys, err := src.Tree(head)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteFile("models/churn/model.yaml", "name: churn\nprod: 9\n")
	w.Commit("prod churn")
	w.Push()

	arrived := make(chan struct{})
	var once sync.Once
	proxy.Inject(testenv.Fault{Latency: time.Hour, Match: func(r *http.Request) bool {
		if r.Method != http.MethodPost {
			return false
		}
		once.Do(func() { close(arrived) })
		return true
	}})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	syncErr := make(chan error, 1)
	go func() {
		_, err := src.Sync(ctx)
		syncErr <- err
	}()
	// The guards below only bound a hang; they do not measure speed.
	select {
	case <-arrived:
	case <-time.After(time.Minute):
		t.Fatal("Sync never requested the pack")
	}
	readDone := make(chan error, 1)
	go func() {
		if _, err := src.Branch("main"); err != nil {
			readDone <- err
			return
		}
		_, err := fs.ReadFile(fsys, "models/churn/model.yaml")
		readDone <- err
	}()
	select {
	case err := <-readDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("reading the cache blocked behind a stalled download")
	}
	cancel()
	if err := <-syncErr; !errors.Is(err, context.Canceled) || gitsource.IsRetryable(err) {
		t.Fatalf("cancelled Sync = %v, want context.Canceled, not retryable", err)
	}
	proxy.Reset()
	if res := mustSync(t, src); !res.Changed {
		t.Fatal("Sync after a cancelled download saw no change")
	}
}
