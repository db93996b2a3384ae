package testenv

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitGone polls until none of pids is alive.
func waitGone(t *testing.T, pids []int) {
	t.Helper()
	err := poll(context.Background(), 15*time.Second, func(context.Context) error {
		for _, pid := range pids {
			if processAlive(pid) {
				return fmt.Errorf("pid %d still alive", pid)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCloseLeavesNoProcessBehind(t *testing.T) {
	RequireE2E(t)
	ctx := context.Background()
	logDir := t.TempDir()

	// MLflow 2 runs mlflow -> gunicorn master -> worker: a whole tree.
	m, err := StartMLflow(ctx, MLflowOptions{Major: 2, LogDir: logDir})
	if err != nil {
		t.Fatal(err)
	}
	g, err := StartGitServer(ctx, logDir)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	// A git:// clone makes the daemon fork; the child is in the group too.
	if _, err := g.NewBareRepo("r"); err != nil {
		t.Fatal(err)
	}
	NewWorkdir(t, g.DaemonURL+"r.git")
	mo, err := StartMoto(ctx, logDir, MotoOptions{})
	if err != nil {
		m.Close()
		g.Close()
		t.Fatal(err)
	}

	var pids []int
	for name, p := range map[string]*proc{"mlflow": m.proc, "git": g.daemon, "moto": mo.proc} {
		group := groupPids(p.pgid)
		t.Logf("%s process group %d: %v", name, p.pgid, group)
		if len(group) == 0 {
			t.Fatalf("%s: no live process in group %d", name, p.pgid)
		}
		pids = append(pids, group...)
	}
	if len(groupPids(m.proc.pgid)) < 3 {
		t.Fatalf("mlflow 2 group %v: expected the CLI, gunicorn and a worker (plus the watchdog)", groupPids(m.proc.pgid))
	}
	for _, c := range []func() error{m.Close, g.Close, mo.Close} {
		if err := c(); err != nil {
			t.Error(err)
		}
	}
	// Close waits for the group itself; check every pid seen anyway.
	for _, pid := range pids {
		if processAlive(pid) {
			t.Errorf("pid %d survived Close", pid)
		}
	}
	for _, dir := range []string{m.dataDir, g.Root, mo.dataDir} {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("data dir %s left behind (%v)", dir, err)
		}
	}
}

// TestGroupDiesWithTestBinary kills a test binary that started a server whose
// own children are not direct children of the test binary (Pdeathsig does
// not reach them) and checks that the watchdog takes the whole group down.
func TestGroupDiesWithTestBinary(t *testing.T) {
	if os.Getenv("TESTENV_HELPER_PROCESS") == "1" {
		p, err := startProc(procSpec{
			name:   "tree",
			path:   "/bin/sh",
			args:   []string{"-c", "sleep 300 & sleep 300 & wait"},
			logDir: t.TempDir(),
		})
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		// Wait until both grandchildren exist, then report the group.
		for len(groupPids(p.pgid)) < 4 {
			time.Sleep(10 * time.Millisecond)
		}
		fmt.Println("PIDS", strings.Trim(fmt.Sprint(groupPids(p.pgid)), "[]"))
		select {} // until killed
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestGroupDiesWithTestBinary$")
	cmd.Env = append(os.Environ(), "TESTENV_HELPER_PROCESS=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var pids []int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "PIDS "); ok {
			for _, f := range strings.Fields(rest) {
				pid, err := strconv.Atoi(f)
				if err != nil {
					t.Fatal(err)
				}
				pids = append(pids, pid)
			}
			break
		}
		if strings.HasPrefix(line, "ERR") {
			t.Fatal(line)
		}
	}
	if len(pids) < 4 {
		t.Fatalf("helper reported %v, want shell, two sleeps and the watchdog", pids)
	}
	// SIGKILL: no deferred Close, no cleanup, exactly like a timed-out binary.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitGone(t, pids)
}
