package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type serveConfig struct {
	dir, bin, gitURL, mlflowURL string
	models, concurrency, passes int
	gitCacheMiB                 int64
}

// serveResync measures the shipped binary: `modelsync serve` with the
// MLflow target, resyncing every model and environment on each fetch
// (--resync-interval below --interval), for passes full passes. Its own log
// line "desired state computed" with queued=0 marks a finished no-op pass
// (triage recorded every key as synced), so nothing polls the measured
// process. Peak RSS and CPU time come from /proc.
func serveResync(cfg serveConfig) error {
	models, concurrency, passes := cfg.models, cfg.concurrency, cfg.passes
	bin := cfg.bin
	if bin == "" {
		bin = filepath.Join(cfg.dir, "modelsync")
		fmt.Println("\nbuilding modelsync for the serve measurement...")
		build := exec.Command("go", "build", "-o", bin, "github.com/modelsync/modelsync/cmd/modelsync")
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building modelsync (run the bench inside the module): %w", err)
		}
	}
	cmd := exec.Command(bin, "serve", "--only", "controller", "--repo", cfg.gitURL, "--cache-dir", filepath.Join(cfg.dir, "cache-serve"),
		"--listen", "127.0.0.1:0", "--mlflow-uri", cfg.mlflowURL, "--concurrency", strconv.Itoa(concurrency),
		"--interval", "1s", "--resync-interval", "1ms", "--git-cache-mib", strconv.FormatInt(cfg.gitCacheMiB, 10))
	cmd.Stdout = io.Discard // the audit log; a no-op pass writes none
	logs, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	anon := watchAnon(pid)
	defer anon.halt()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_, _ = io.Copy(io.Discard, logs)
		_ = cmd.Wait()
	}()
	var (
		firstWall time.Duration
		cpu       []time.Duration // process CPU time when each pass was logged
	)
	sc := bufio.NewScanner(logs)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for len(cpu) < passes && sc.Scan() {
		var line struct {
			Msg    string `json:"msg"`
			Full   bool   `json:"full"`
			Queued int    `json:"queued"`
			Errors int    `json:"errors"`
			Error  string `json:"error"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		switch {
		case line.Msg == "fetch failed":
			return fmt.Errorf("modelsync serve: fetch failed: %s", line.Error)
		case line.Msg != "desired state computed" || !line.Full:
			continue
		case line.Queued != 0 || line.Errors != 0:
			return fmt.Errorf("modelsync serve: pass %d queued %d keys (%d errors); MLflow is not converged", len(cpu)+1, line.Queued, line.Errors)
		}
		t, err := procCPU(pid)
		if err != nil {
			return err
		}
		if len(cpu) == 0 {
			firstWall = time.Since(t0)
		}
		cpu = append(cpu, t)
	}
	if len(cpu) < passes {
		return fmt.Errorf("modelsync serve stopped after %d of %d passes: %v", len(cpu), passes, sc.Err())
	}
	mem, err := anon.memory(pid)
	if err != nil {
		return err
	}
	fmt.Printf("\nmodelsync serve (the shipped binary), no-op resync of %d models x 3 environments (%d workers), %d full passes:\n", models, concurrency, passes)
	fmt.Printf("  first pass (start + clone + desired + plan): wall %v  CPU %v\n", firstWall.Round(time.Millisecond), cpu[0].Round(time.Millisecond))
	for i := 1; i < len(cpu); i++ {
		fmt.Printf("  resync pass %d (fetch + plan): CPU %v\n", i+1, (cpu[i] - cpu[i-1]).Round(time.Millisecond))
	}
	fmt.Printf("  peak RSS %s\n", mem)
	return nil
}

// procCPU is the user + system time of a process, from /proc/<pid>/stat.
func procCPU(pid string) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the parenthesised command name; utime and stime are
	// the 14th and 15th fields of the line, in clock ticks.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, errors.New("/proc/" + pid + "/stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("/proc/" + pid + "/stat: too few fields")
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%s/stat: %w", pid, err)
		}
		ticks += n
	}
	// USER_HZ is 100 on every Linux architecture Go supports.
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}
