package testenv

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// GitServer serves bare repositories under Root over git:// (git daemon,
// anonymous, push enabled) and smart HTTP (git http-backend behind a Go
// server that requires basic auth). A repo created with NewBareRepo("x") is
// DaemonURL+"x.git" and HTTPURL+"x.git".
type GitServer struct {
	Root      string
	DaemonURL string // git://127.0.0.1:<port>/
	HTTPURL   string // http://127.0.0.1:<port>/
	Username  string
	Password  string
	// ReadyIn is how long the daemon took to accept connections.
	ReadyIn time.Duration

	gitPath string
	daemon  *proc
	srv     *http.Server
	srvDone chan struct{}
	logDir  string
}

// gitEnv keeps the machine's and the user's git configuration out of both
// servers and clients so results do not depend on who runs the tests.
func gitEnv() []string {
	return []string{
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=",
		"SSH_ASKPASS=",
	}
}

// StartGitServer starts git daemon and a smart-HTTP server on loopback.
func StartGitServer(ctx context.Context, logDir string) (*GitServer, error) {
	gitPath, err := pathTool("git", "git")
	if err != nil {
		return nil, err
	}
	execPath, err := exec.Command(gitPath, "--exec-path").Output()
	if err != nil {
		return nil, &NotInstalledError{What: "git exec path", Step: "git", Err: err}
	}
	for _, helper := range []string{"git-http-backend", "git-daemon"} {
		if _, err := os.Stat(filepath.Join(strings.TrimSpace(string(execPath)), helper)); err != nil {
			return nil, &NotInstalledError{What: helper, Step: "git", Err: err}
		}
	}
	logDir, err = ensureLogDir(logDir, "git")
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp("", "modelsync-git-")
	if err != nil {
		return nil, fmt.Errorf("testenv: git root: %w", err)
	}
	g := &GitServer{
		Root:     root,
		Username: "modelsync",
		Password: randomHex(12),
		gitPath:  gitPath,
		logDir:   logDir,
	}

	timer := startTimer()
	daemon, err := startWithRetry(func() (*proc, error) {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		p, err := startProc(procSpec{
			name: "git-daemon",
			path: gitPath,
			args: []string{
				"daemon", "--reuseaddr", "--verbose", "--informative-errors",
				"--listen=127.0.0.1", "--port=" + strconv.Itoa(port),
				"--base-path=" + root, "--export-all", "--enable=receive-pack",
				root,
			},
			env:    gitEnv(),
			logDir: logDir,
		})
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := waitReady(ctx, p, 30*time.Second, tcpReady(addr)); err != nil {
			_ = p.Close()
			return nil, err
		}
		g.DaemonURL = "git://" + addr + "/"
		return p, nil
	})
	if err != nil {
		os.RemoveAll(root)
		return nil, err
	}
	g.daemon = daemon
	g.ReadyIn = timer.elapsed()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = g.Close()
		return nil, fmt.Errorf("testenv: git http listener: %w", err)
	}
	g.HTTPURL = "http://" + l.Addr().String() + "/"
	g.srv = &http.Server{Handler: http.HandlerFunc(g.serveHTTP), ReadHeaderTimeout: 10 * time.Second}
	g.srvDone = make(chan struct{})
	go func() {
		defer close(g.srvDone)
		_ = g.srv.Serve(l)
	}()
	return g, nil
}

func (g *GitServer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok ||
		subtle.ConstantTimeCompare([]byte(user), []byte(g.Username)) != 1 ||
		subtle.ConstantTimeCompare([]byte(pass), []byte(g.Password)) != 1 {
		w.Header().Set("WWW-Authenticate", `Basic realm="modelsync-test-git"`)
		http.Error(w, "authentication required", http.StatusUnauthorized)
		return
	}
	// net/http/cgi does not derive REMOTE_USER from the Authorization
	// header; http-backend wants it to allow receive-pack.
	h := &cgi.Handler{
		Path: g.gitPath,
		Args: []string{"http-backend"},
		Dir:  g.Root,
		Env: append(gitEnv(),
			"PATH="+os.Getenv("PATH"),
			"GIT_PROJECT_ROOT="+g.Root,
			"GIT_HTTP_EXPORT_ALL=1",
			"REMOTE_USER="+user,
		),
		Stderr: os.Stderr,
	}
	h.ServeHTTP(w, r)
}

// NewBareRepo creates Root/<name>.git (name may contain '/') and returns its
// path. The branch HEAD points to is main.
func (g *GitServer) NewBareRepo(name string) (string, error) {
	if name == "" || strings.Contains(name, "..") || strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("testenv: bare repo name %q: want a relative name without '..'", name)
	}
	dir := filepath.Join(g.Root, name+".git")
	if _, err := os.Stat(dir); err == nil {
		return "", fmt.Errorf("testenv: bare repo %q already exists", name)
	}
	for _, args := range [][]string{
		{"init", "--quiet", "--bare", "--initial-branch=main", dir},
		{"-C", dir, "config", "http.receivepack", "true"},
		// Shallow and by-commit fetches (go-git, partial clones) need these.
		{"-C", dir, "config", "uploadpack.allowReachableSHA1InWant", "true"},
		{"-C", dir, "config", "uploadpack.allowFilter", "true"},
	} {
		cmd := exec.Command(g.gitPath, args...)
		cmd.Env = append(os.Environ(), gitEnv()...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("testenv: git %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	return dir, nil
}

// AuthHTTPURL is HTTPURL+name+".git" with the credentials embedded, for git
// CLI pushes and clones from tests. Never log it.
func (g *GitServer) AuthHTTPURL(name string) string {
	u, err := url.Parse(g.HTTPURL + name + ".git")
	if err != nil {
		return ""
	}
	u.User = url.UserPassword(g.Username, g.Password)
	return u.String()
}

// Close stops both servers and deletes Root.
func (g *GitServer) Close() error {
	var errs []error
	if g.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := g.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("testenv: git http shutdown: %w", err))
			_ = g.srv.Close()
		}
		cancel()
		<-g.srvDone
	}
	if g.daemon != nil {
		errs = append(errs, g.daemon.Close())
	}
	errs = append(errs, os.RemoveAll(g.Root))
	return errors.Join(errs...)
}

// logPaths lists the server logs, for dumping when a test fails.
func (g *GitServer) logPaths() []string {
	if g.daemon == nil {
		return nil
	}
	return []string{g.daemon.LogPath}
}

// NewGitServer starts a GitServer for one test and stops it at cleanup.
func NewGitServer(tb testing.TB) *GitServer {
	tb.Helper()
	RequireE2E(tb)
	g, err := StartGitServer(tbContext(tb), tbLogDir(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tbCleanup(tb, g.Close, g.logPaths)
	return g
}

// Workdir is a git working copy driven through the git CLI, with a fixed
// identity and clock so commit ids are the same on every run.
type Workdir struct {
	Dir string
	tb  testing.TB
	// tick advances the commit clock by a second per commit or tag, so
	// history order is unambiguous while ids stay reproducible.
	tick int
}

// workdirEpoch is the first commit's date.
const workdirEpoch = 1700000000

// NewWorkdir clones remoteURL into a fresh directory, or inits an empty
// repository on branch main when remoteURL is "". An empty remote clones fine
// and the first Commit creates main.
func NewWorkdir(tb testing.TB, remoteURL string) *Workdir {
	tb.Helper()
	w := &Workdir{Dir: filepath.Join(tb.TempDir(), "work"), tb: tb}
	if remoteURL == "" {
		w.git(filepath.Dir(w.Dir), "init", "--quiet", "--initial-branch=main", w.Dir)
	} else {
		w.git(filepath.Dir(w.Dir), "clone", "--quiet", remoteURL, w.Dir)
		// An empty remote leaves HEAD on whatever the client guessed.
		if _, err := w.gitOut(w.Dir, "rev-parse", "--verify", "--quiet", "HEAD^{commit}"); err != nil {
			w.git(w.Dir, "symbolic-ref", "HEAD", "refs/heads/main")
		}
	}
	return w
}

func (w *Workdir) env() []string {
	date := strconv.Itoa(workdirEpoch+w.tick) + " +0000"
	return append(gitEnv(),
		"GIT_AUTHOR_NAME=modelsync test",
		"GIT_AUTHOR_EMAIL=test@modelsync.invalid",
		"GIT_AUTHOR_DATE="+date,
		"GIT_COMMITTER_NAME=modelsync test",
		"GIT_COMMITTER_EMAIL=test@modelsync.invalid",
		"GIT_COMMITTER_DATE="+date,
		"LC_ALL=C",
	)
}

// gitOut runs git in dir and returns its trimmed stdout.
func (w *Workdir) gitOut(dir string, args ...string) (string, error) {
	full := append([]string{
		"-c", "init.defaultBranch=main",
		"-c", "credential.helper=",
		"-c", "advice.detachedHead=false",
		"-c", "commit.gpgSign=false",
		"-c", "tag.gpgSign=false",
	}, args...)
	cmd := exec.Command("git", full...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), w.env()...)
	var stdout, stderr strings.Builder
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s in %s: %w\n%s", redactArgs(args), dir, err, redact(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// git is gitOut that fails the test on error.
func (w *Workdir) git(dir string, args ...string) string {
	w.tb.Helper()
	out, err := w.gitOut(dir, args...)
	if err != nil {
		w.tb.Fatal(err)
	}
	return out
}

// redactArgs hides credentials embedded in URLs before an error is printed.
func redactArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = redact(a)
	}
	return strings.Join(out, " ")
}

// redact replaces the user-info of any URL in s.
func redact(s string) string {
	fields := strings.Fields(s)
	for _, f := range fields {
		u, err := url.Parse(strings.Trim(f, `'"`))
		if err != nil || u.User == nil {
			continue
		}
		if _, has := u.User.Password(); has {
			s = strings.ReplaceAll(s, u.User.String()+"@", u.User.Username()+":xxxxx@")
		}
	}
	return s
}

// Run runs any git command in the working copy and returns its trimmed stdout.
func (w *Workdir) Run(args ...string) string {
	w.tb.Helper()
	return w.git(w.Dir, args...)
}

// WriteFile writes content to rel, creating parent directories.
func (w *Workdir) WriteFile(rel, content string) {
	w.tb.Helper()
	p := filepath.Join(w.Dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		w.tb.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		w.tb.Fatal(err)
	}
}

// Remove deletes rel (a file or a whole directory) from the working copy.
func (w *Workdir) Remove(rel string) {
	w.tb.Helper()
	if err := os.RemoveAll(filepath.Join(w.Dir, filepath.FromSlash(rel))); err != nil {
		w.tb.Fatal(err)
	}
}

// Commit stages everything and commits it (empty commits allowed) and
// returns the new commit id.
func (w *Workdir) Commit(msg string) string {
	w.tb.Helper()
	w.git(w.Dir, "add", "--all")
	w.git(w.Dir, "commit", "--quiet", "--allow-empty", "--no-verify", "-m", msg)
	w.tick++
	return w.git(w.Dir, "rev-parse", "HEAD")
}

// Tag tags HEAD: annotated when msg is not empty, lightweight otherwise.
func (w *Workdir) Tag(name, msg string) {
	w.tb.Helper()
	if msg == "" {
		w.git(w.Dir, "tag", name)
		return
	}
	w.git(w.Dir, "tag", "--annotate", "--message", msg, name)
	w.tick++
}

// Push pushes refspecs to origin; with none, it pushes the current branch
// and all tags.
func (w *Workdir) Push(refspecs ...string) {
	w.tb.Helper()
	if len(refspecs) == 0 {
		w.git(w.Dir, "push", "--quiet", "--tags", "origin", "HEAD")
		return
	}
	w.git(w.Dir, append([]string{"push", "--quiet", "origin"}, refspecs...)...)
}
