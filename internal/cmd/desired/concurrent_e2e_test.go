package desired_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/modelsync/modelsync/test/fixture"
	"github.com/modelsync/modelsync/test/testenv"
)

// TestConcurrentProcessesShareOneCache starts three `modelsync desired`
// processes at once on one empty clone cache, twenty times, against the
// example repository served by git daemon and by git http-backend. Every
// process must succeed and print the same desired state: the cache is
// shared between processes by a file lock, so none sees another's
// half-installed pack or refs.
func TestConcurrentProcessesShareOneCache(t *testing.T) {
	testenv.RequireE2E(t)
	bin := filepath.Join(t.TempDir(), "modelsync")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/modelsync/modelsync/cmd/modelsync").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	g := testenv.NewGitServer(t)
	if _, err := g.NewBareRepo("models"); err != nil {
		t.Fatal(err)
	}
	dir := fixture.ExampleRepo(t)
	push := exec.Command("git", "-C", dir, "push", "--quiet", g.AuthHTTPURL("models"), "main", "--tags")
	push.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1")
	if out, err := push.CombinedOutput(); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	env := append(os.Environ(), "MODELSYNC_GIT_USERNAME="+g.Username, "MODELSYNC_GIT_PASSWORD="+g.Password)
	const procs, rounds = 3, 20
	for _, remote := range []struct{ name, url string }{
		{"daemon", g.DaemonURL + "models.git"},
		{"http", g.HTTPURL + "models.git"},
	} {
		t.Run(remote.name, func(t *testing.T) {
			failures := 0
			for round := range rounds {
				cache := filepath.Join(t.TempDir(), "cache")
				outs := make([]string, procs)
				errs := make([]error, procs)
				var wg sync.WaitGroup
				for i := range procs {
					wg.Go(func() {
						cmd := exec.Command(bin, "desired", "--repo", remote.url, "--cache-dir", cache, "-o", "json")
						cmd.Env = env
						out, err := cmd.CombinedOutput()
						outs[i], errs[i] = string(out), err
					})
				}
				wg.Wait()
				for i := range procs {
					if errs[i] != nil {
						failures++
						t.Errorf("round %d, process %d: %v\n%s", round, i, errs[i], outs[i])
					} else if outs[i] != outs[0] {
						t.Errorf("round %d: process %d printed another desired state:\n%s\nprocess 0:\n%s", round, i, outs[i], outs[0])
					}
				}
				if !strings.Contains(outs[0], "customer-churn-predictor") {
					t.Errorf("round %d: desired state without the example's models:\n%s", round, outs[0])
				}
			}
			if failures > 0 {
				t.Log(fmt.Sprintf("%d of %d processes failed", failures, procs*rounds))
			}
		})
	}
}
