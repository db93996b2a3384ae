package serve_test

import (
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelsync/modelsync/test/testenv"
)

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestFailingRunsLeakNoSecrets runs `serve` and `desired` against Git
// addresses with a password in them, for every scheme, where the fetch
// fails (wrong password, missing repository, nothing listening), and greps
// everything the runs left behind for the passwords: stdout and stderr,
// the status API, the audit log, and every file under the clone cache and
// the state directory (the cache's Git config is where an SSH password
// used to land).
func TestFailingRunsLeakNoSecrets(t *testing.T) {
	testenv.RequireE2E(t)
	g := testenv.NewGitServer(t)
	if _, err := g.NewBareRepo("models"); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimSuffix(strings.TrimPrefix(g.HTTPURL, "http://"), "/")
	const (
		wrongPW  = "WrongPW-7f3a9c"
		sshPW    = "SshPW-0b5e21"
		scpPW    = "ScpPW-9d4c77"
		daemonPW = "DaemonPW-1a2b3c"
		mlflowPW = "MlflowPW-4e6f80"
	)
	closed := closedPort(t)
	daemon := strings.TrimSuffix(strings.TrimPrefix(g.DaemonURL, "git://"), "/")
	cases := []struct {
		name, url string
		secrets   []string
	}{
		// The server's real password, on a repository that is not there.
		{"http-not-found", "http://" + g.Username + ":" + g.Password + "@" + host + "/missing.git", []string{g.Password}},
		{"http-wrong-password", "http://" + g.Username + ":" + wrongPW + "@" + host + "/models.git", []string{wrongPW}},
		{"ssh-unreachable", "ssh://git:" + sshPW + "@" + closed + "/models.git", []string{sshPW}},
		{"scp-unreachable", "git:" + scpPW + "@127.0.0.1:models.git", []string{scpPW}},
		{"git-daemon-not-found", "git://u:" + daemonPW + "@" + daemon + "/missing.git", []string{daemonPW}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// startServe gives the process testAPIToken: it is a secret too.
			secrets := append([]string{mlflowPW, testAPIToken}, tc.secrets...)
			dir := t.TempDir()
			cache, state, audit := filepath.Join(dir, "cache"), filepath.Join(dir, "state"), filepath.Join(dir, "audit.log")
			env := append(os.Environ(),
				"MLFLOW_TRACKING_URI=http://mlflow:"+mlflowPW+"@"+closed,
				"SSH_AUTH_SOCK=", "GIT_TERMINAL_PROMPT=0")
			p := startServe(t, env, "--repo", tc.url, "--cache-dir", cache, "--state-dir", state, "--audit-log", audit, "--interval", "1s")
			deadline := time.Now().Add(60 * time.Second)
			var logText string
			for {
				b, _ := os.ReadFile(p.log)
				logText = string(b)
				if strings.Count(logText, `"fetch failed"`) >= 2 || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if !strings.Contains(logText, `"fetch failed"`) {
				t.Fatalf("serve did not report a failed fetch within a minute:\n%s", logText)
			}
			req, err := http.NewRequest(http.MethodGet, p.url+"/api/v1/status", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+testAPIToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			status, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(status), "fetchError") {
				t.Fatalf("GET /api/v1/status: %s %s", resp.Status, status)
			}
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(30 * time.Second):
				t.Fatal("serve did not stop on SIGTERM")
			}
			b, _ := os.ReadFile(p.log)
			outputs := map[string]string{"serve stdout and stderr": string(b), "GET /api/v1/status": string(status)}

			// The one-shot commands print the same errors their own way.
			desired := exec.Command(binary(t), "desired", "--repo", tc.url, "--cache-dir", cache)
			desired.Env = env
			out, err := desired.CombinedOutput()
			if err == nil {
				t.Fatalf("desired succeeded against %s:\n%s", tc.name, out)
			}
			outputs["desired output"] = string(out)

			for _, root := range []string{cache, state} {
				_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
					if err != nil || d.IsDir() {
						return nil
					}
					b, err := os.ReadFile(path)
					if err != nil {
						t.Errorf("read %s: %v", path, err)
						return nil
					}
					outputs[path] = string(b)
					return nil
				})
			}
			if b, err := os.ReadFile(audit); err == nil {
				outputs[audit] = string(b)
			}
			if !strings.Contains(outputs["GET /api/v1/status"]+outputs["serve stdout and stderr"], "fetching ") {
				t.Errorf("the failure does not name the repository:\n%s", outputs["serve stdout and stderr"])
			}
			var files int
			for where, text := range outputs {
				if strings.HasPrefix(where, cache) {
					files++
				}
				for _, s := range secrets {
					if strings.Contains(text, s) {
						t.Errorf("%s holds secret %q:\n%s", where, s, text)
					}
				}
			}
			if files == 0 {
				t.Error("the run left no file in the clone cache: nothing was checked there")
			}
		})
	}
}
