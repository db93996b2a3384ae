package testenv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// tailLines is how much of a server log goes into a startup error or a
// failed test's output: enough for a stack trace, short enough to read.
const tailLines = 60

// procSpec describes one server process to start.
type procSpec struct {
	name   string   // short name, used for the log file
	path   string   // executable
	args   []string // arguments
	env    []string // added to the test binary's environment (later entries win)
	dir    string   // working directory; "" keeps the test binary's
	logDir string   // where <name>-*.log goes
	// cred, when set, runs the process as that user (PostgreSQL refuses to
	// run as root, and the tests may).
	cred *syscall.Credential
}

// proc is a started server process that leads its own process group, so
// that Close can take down every helper it forks (gunicorn and uvicorn
// workers, git daemon's per-connection children) in one signal.
type proc struct {
	name    string
	LogPath string
	cmd     *exec.Cmd
	pgid    int
	done    chan struct{} // closed when the leader has been reaped
	waitErr error         // valid after done is closed

	// guard is the write end of a pipe whose read end is the watchdog's stdin.
	// When the test binary dies in any way (panic, timeout, SIGKILL) the
	// kernel closes guard, the watchdog reads EOF and kills the group.
	// Pdeathsig alone only reaches the direct child, not its workers.
	guard    *os.File
	watchdog *exec.Cmd
	wdDone   chan struct{}

	closeOnce sync.Once
	closeErr  error
}

func startProc(spec procSpec) (*proc, error) {
	if err := os.MkdirAll(spec.logDir, 0o755); err != nil {
		return nil, fmt.Errorf("testenv: %s: log dir: %w", spec.name, err)
	}
	logFile, err := os.CreateTemp(spec.logDir, spec.name+"-*.log")
	if err != nil {
		return nil, fmt.Errorf("testenv: %s: log file: %w", spec.name, err)
	}
	defer logFile.Close() // the children hold their own copies of the descriptor

	cmd := exec.Command(spec.path, spec.args...)
	cmd.Dir = spec.dir
	cmd.Env = append(os.Environ(), spec.env...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: spec.cred}
	fmt.Fprintf(logFile, "# testenv: %s %s\n", spec.path, strings.Join(spec.args, " "))
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("testenv: start %s: %w", spec.name, err)
	}
	p := &proc{
		name:    spec.name,
		LogPath: logFile.Name(),
		cmd:     cmd,
		pgid:    cmd.Process.Pid,
		done:    make(chan struct{}),
		wdDone:  make(chan struct{}),
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()

	pr, pw, err := os.Pipe()
	if err != nil {
		p.killGroup()
		<-p.done
		return nil, fmt.Errorf("testenv: %s: watchdog pipe: %w", spec.name, err)
	}
	wd := exec.Command("/bin/sh", "-c", `read _; kill -9 -"$1"`, "testenv-watchdog", strconv.Itoa(p.pgid))
	wd.Stdin = pr
	// No Pdeathsig here: the watchdog must outlive the test binary long
	// enough to read EOF and kill the group.
	wd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: p.pgid}
	err = wd.Start()
	pr.Close()
	if err != nil {
		pw.Close()
		p.killGroup()
		<-p.done
		return nil, fmt.Errorf("testenv: %s: watchdog (server exited at once?): %w\n%s", spec.name, err, p.tail())
	}
	p.guard = pw
	p.watchdog = wd
	go func() {
		_ = wd.Wait()
		close(p.wdDone)
	}()
	return p, nil
}

func (p *proc) killGroup() {
	_ = syscall.Kill(-p.pgid, syscall.SIGKILL)
}

// exited reports whether the leader process is gone.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// shutdown sends sig to the leader alone, for servers whose clean shutdown
// is worth waiting for, and reports whether it exited within timeout. Close
// still has to be called: it reaps whatever is left of the group.
func (p *proc) shutdown(sig syscall.Signal, timeout time.Duration) bool {
	if p.exited() {
		return true
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Close kills the whole process group and waits until no member is left.
// The data is throwaway, so there is no graceful shutdown to wait for.
func (p *proc) Close() error {
	p.closeOnce.Do(func() {
		p.killGroup()
		<-p.done
		if p.guard != nil {
			p.guard.Close()
			<-p.wdDone
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			left := groupPids(p.pgid)
			if len(left) == 0 {
				return
			}
			if time.Now().After(deadline) {
				p.closeErr = fmt.Errorf("testenv: %s: processes %v survived SIGKILL", p.name, left)
				return
			}
			p.killGroup()
			time.Sleep(20 * time.Millisecond)
		}
	})
	return p.closeErr
}

// groupPids lists live (non-zombie) processes in process group pgid.
func groupPids(pgid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		state, pg, ok := procStat(pid)
		if ok && pg == pgid && state != 'Z' && state != 'X' {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procStat reads the state and process group of pid from /proc/<pid>/stat.
func procStat(pid int) (state byte, pgid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// The command name is in parentheses and may contain spaces; fields
	// after the last ')' are: state ppid pgrp ...
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 3 {
		return 0, 0, false
	}
	pg, err := strconv.Atoi(f[2])
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], pg, true
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && state != 'Z' && state != 'X'
}

func (p *proc) tail() string { return logTail(p.LogPath, tailLines) }

// logTail returns the last n lines of a log file, framed so it stands out in
// test output.
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log %s: %v)", path, err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return fmt.Sprintf("----- last %d lines of %s -----\n%s\n----- end of %s -----",
		len(lines), path, strings.Join(lines, "\n"), filepath.Base(path))
}

// errAddrInUse marks a start that lost the race for its port; callers pick
// new ports and try again.
var errAddrInUse = errors.New("address already in use")

// waitReady polls check until it succeeds, the process exits, or ctx ends.
// Polling starts fast and backs off, because most servers are up within a
// second or two once their binaries are cached.
func waitReady(ctx context.Context, p *proc, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	interval := 20 * time.Millisecond
	var last error
	for {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		last = check(cctx)
		ccancel()
		if last == nil {
			return nil
		}
		if p.exited() {
			tail := p.tail()
			if strings.Contains(strings.ToLower(tail), "address already in use") {
				return fmt.Errorf("testenv: %s exited during startup: %w\n%s", p.name, errAddrInUse, tail)
			}
			return fmt.Errorf("testenv: %s exited during startup (%v); last readiness error: %v\n%s", p.name, p.waitErr, last, tail)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testenv: %s not ready after %s: %w (last readiness error: %v)\n%s", p.name, timeout, ctx.Err(), last, p.tail())
		case <-p.done:
		case <-time.After(interval):
		}
		if interval < 250*time.Millisecond {
			interval = interval * 3 / 2
		}
	}
}

// launch starts spec and waits until ready answers. On failure it stops the
// process and removes dataDir, so the next attempt of startWithRetry (or the
// caller's error) leaves nothing behind.
func launch(ctx context.Context, spec procSpec, dataDir string, timeout time.Duration, ready func(context.Context) error) (*proc, error) {
	p, err := startProc(spec)
	if err != nil {
		os.RemoveAll(dataDir)
		return nil, err
	}
	if err := waitReady(ctx, p, timeout, ready); err != nil {
		_ = p.Close()
		os.RemoveAll(dataDir)
		return nil, err
	}
	return p, nil
}

// startWithRetry runs start up to three times while it fails only because a
// port picked by freePort was taken by someone else in the meantime.
func startWithRetry[T any](start func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for range 3 {
		v, err = start()
		if err == nil || !errors.Is(err, errAddrInUse) {
			return v, err
		}
	}
	return v, err
}

// freePort asks the kernel for an unused loopback port. The port is released
// before the server binds it, hence startWithRetry.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("testenv: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// freePorts returns n distinct free ports.
func freePorts(n int) ([]int, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("testenv: free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// tcpReady is a readiness check that only needs the port to accept.
func tcpReady(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// ensureLogDir returns logDir, or a fresh directory that is kept after the
// run so a failing TestMain can point at it.
func ensureLogDir(logDir, name string) (string, error) {
	if logDir != "" {
		return logDir, os.MkdirAll(logDir, 0o755)
	}
	d, err := os.MkdirTemp("", "modelsync-"+name+"-logs-")
	if err != nil {
		return "", fmt.Errorf("testenv: %s log dir: %w", name, err)
	}
	return d, nil
}

// randomHex returns n random bytes hex-encoded, for passwords and names.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("testenv: crypto/rand: %v", err))
	}
	return hex.EncodeToString(b)
}

// UniqueName returns prefix plus a random suffix, for registered models,
// buckets and namespaces that must not collide between tests sharing a
// server. The result is lower-case and DNS-label safe when prefix is.
func UniqueName(prefix string) string {
	if prefix == "" {
		prefix = "t"
	}
	return prefix + "-" + randomHex(5)
}

// readyTimer measures how long a server took from exec to ready.
type readyTimer struct{ start time.Time }

func startTimer() readyTimer                { return readyTimer{start: time.Now()} }
func (r readyTimer) elapsed() time.Duration { return time.Since(r.start) }

// tbContext bounds a launcher's startup by the test's own context.
func tbContext(tb testing.TB) context.Context { return tb.Context() }

// tbLogDir is a log directory for one test's servers: removed when the test
// passes, kept (and named in the output) when it fails.
func tbLogDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "modelsync-testenv-logs-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("testenv: server logs kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

// tbCleanup closes a server at the end of the test, first printing the tail
// of its logs if the test failed.
func tbCleanup(tb testing.TB, closeFn func() error, logs func() []string) {
	tb.Cleanup(func() {
		if tb.Failed() {
			for _, p := range logs() {
				tb.Log(logTail(p, tailLines))
			}
		}
		if err := closeFn(); err != nil {
			tb.Error(err)
		}
	})
}
