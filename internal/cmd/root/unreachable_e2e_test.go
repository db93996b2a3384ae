package root

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelsync/modelsync/test/testenv"
)

// refusedPort returns a loopback port nothing listens on.
func refusedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// blackhole accepts connections and never answers, as a server behind a
// dropped route or a hung process does.
func blackhole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	return l.Addr().String()
}

func kubeconfig(t *testing.T, server string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: %q, insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: kube-token-not-to-print}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`, server)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestUnreachableEndpointsFailFastAndTruthfully: plan against an MLflow
// port that refuses connections and against a Kubernetes API server that
// refuses or never answers fails within the connect timeout (10 s by
// default), names the endpoint without its credentials and the cause, and
// never says "No changes" for the target it could not observe. The time to
// the first error is printed (go test -v); the bound is a generous
// regression guard, not a timing test.
func TestUnreachableEndpointsFailFastAndTruthfully(t *testing.T) {
	testenv.RequireE2E(t)
	dir := exampleRepo(t)
	mlflowRefused := refusedPort(t)
	cases := []struct {
		name    string
		env     map[string]string
		args    []string
		want    []string
		secrets []string
	}{
		{
			name: "mlflow refused",
			env:  map[string]string{"MLFLOW_TRACKING_URI": "http://ci:mlflow-pass-not-to-print@" + mlflowRefused},
			args: []string{"plan", "--repo", dir},
			want: []string{"http://" + mlflowRefused, "connection refused", "Target mlflow could not be observed",
				"plan incomplete: target mlflow could not be observed"},
			secrets: []string{"mlflow-pass-not-to-print"},
		},
		{
			name: "kube refused",
			args: []string{"plan", "--repo", dir, "--kserve", "--target", "kserve", "--kubeconfig", kubeconfig(t, "https://"+refusedPort(t))},
			want: []string{"kubernetes API server https://127.0.0.1:", "connection refused", "Target kserve could not be observed",
				"plan incomplete: target kserve could not be observed"},
			secrets: []string{"kube-token-not-to-print"},
		},
		{
			name: "kube blackholed",
			args: []string{"plan", "--repo", dir, "--kserve", "--target", "kserve", "--kubeconfig", kubeconfig(t, "https://"+blackhole(t))},
			want: []string{"kubernetes API server https://127.0.0.1:", "no answer within 10s", "Target kserve could not be observed",
				"plan incomplete: target kserve could not be observed"},
			secrets: []string{"kube-token-not-to-print"},
		},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			env := map[string]string{"MODELSYNC_CACHE_DIR": t.TempDir(), "MLFLOW_TRACKING_URI": "http://" + mlflowRefused}
			for k, v := range tc.env {
				env[k] = v
			}
			start := time.Now()
			code, out, errOut := run(t, env, tc.args...)
			took := time.Since(start)
			t.Logf("%s: time to first error %s (exit %d)", tc.name, took.Round(10*time.Millisecond), code)
			all := out + errOut
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if strings.Contains(all, "No changes. Live state matches Git.") {
				t.Errorf("a target that could not be observed is summarised as in sync:\n%s", all)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
			for _, s := range tc.secrets {
				if strings.Contains(all, s) {
					t.Errorf("output shows a credential:\n%s", all)
				}
			}
			if took > 30*time.Second {
				t.Errorf("took %s to report an unreachable endpoint; want about 10s (guard: 30s)", took)
			}
		})
	}
}
