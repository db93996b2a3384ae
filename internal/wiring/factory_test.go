package wiring_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"k8s.io/client-go/rest"

	"github.com/modelsync/modelsync/internal/cmd/root"
	"github.com/modelsync/modelsync/internal/cmdutil"
	ghub "github.com/modelsync/modelsync/internal/github"
	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/internal/wiring"
	"github.com/modelsync/modelsync/reconciler"
)

func newFactory(env map[string]string) (*wiring.Factory, *bytes.Buffer, *bytes.Buffer) {
	var out, errOut bytes.Buffer
	f := wiring.New(cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut},
		func(k string) string { return env[k] }, "test")
	return f, &out, &errOut
}

// Asking twice returns the same client: the second call finds the first
// build's result.
func TestClientsAreBuiltOnce(t *testing.T) {
	f, _, _ := newFactory(map[string]string{"MLFLOW_TRACKING_URI": "http://127.0.0.1:1"})
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	writeKubeconfig(t, kubeconfig)
	f.Flags.Kubeconfig = kubeconfig
	f.Flags.S3Endpoint, f.Flags.S3PathStyle = "http://127.0.0.1:1", true

	m1, err := f.MLflow()
	if err != nil {
		t.Fatal(err)
	}
	// Flags changed after the first build do not rebuild: one client per
	// process, whoever asks.
	f.Flags.MLflowURI = "http://127.0.0.1:2"
	if m2, _ := f.MLflow(); m2 != m1 || m2.TrackingURI() != "http://127.0.0.1:1" {
		t.Fatalf("second MLflow() = %p %s, want the first %p", m2, m2.TrackingURI(), m1)
	}
	k1, err := f.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	if k2, _ := f.KubeConfig(); k2 != k1 {
		t.Fatal("kubeconfig loaded twice")
	}
	s1, err := f.S3(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if s2, _ := f.S3(t.Context()); s2 != s1 {
		t.Fatal("S3 client built twice")
	}
	l1, err := f.Locator()
	if err != nil {
		t.Fatal(err)
	}
	if l2, _ := f.Locator(); l2 != l1 || l1.Client != m1 {
		t.Fatal("locator built twice or on another MLflow client")
	}
}

// Every target that needs MLflow (the registry target, the locator of
// KServe and S3, S3's version lister) gets the one client.
func TestTargetsShareOneMLflowClient(t *testing.T) {
	f, _, _ := newFactory(map[string]string{"MLFLOW_TRACKING_URI": "http://127.0.0.1:1"})
	f.Flags.S3, f.Flags.S3Endpoint, f.Flags.S3PathStyle = true, "http://127.0.0.1:1", true
	builds := 0
	inner := f.MLflow
	var first *mlflowclient.Client
	f.MLflow = func() (*mlflowclient.Client, error) {
		builds++
		c, err := inner()
		if first == nil {
			first = c
		} else if c != first {
			t.Error("a second MLflow client was built")
		}
		return c, err
	}
	targets, err := f.Targets(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer wiring.CloseTargets(targets)
	var names []string
	for _, tg := range targets {
		names = append(names, tg.Name())
	}
	if strings.Join(names, ",") != "mlflow,s3" || builds == 0 {
		t.Fatalf("targets %v, MLflow asked %d times", names, builds)
	}
	if _, ok := reconciler.As[reconciler.StorageReporter](targets[1]); !ok {
		t.Fatal("the s3 target does not report storage through the adapter")
	}
}

func TestClientErrorsAreReturned(t *testing.T) {
	f, _, _ := newFactory(map[string]string{})
	if _, err := f.MLflow(); !errors.Is(err, wiring.ErrNoMLflow) {
		t.Fatalf("MLflow() err = %v, want ErrNoMLflow", err)
	}
	// The error is remembered like a client would be.
	if _, err := f.MLflow(); !errors.Is(err, wiring.ErrNoMLflow) {
		t.Fatalf("second MLflow() err = %v", err)
	}
	if _, err := f.Targets(t.Context()); !errors.Is(err, wiring.ErrNoTargets) {
		t.Fatalf("Targets() err = %v, want ErrNoTargets", err)
	}
	f.Flags.Kubeconfig = filepath.Join(t.TempDir(), "missing")
	if _, err := f.KubeConfig(); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("KubeConfig() err = %v, want one naming the file", err)
	}
	if _, err := f.GitHub(); err == nil || !strings.Contains(err.Error(), "no credentials") {
		t.Fatalf("GitHub() err = %v, want no credentials", err)
	}

	g, _, _ := newFactory(map[string]string{cmdutil.EnvGitHubToken: "t", cmdutil.EnvGitHubAppID: "1"})
	if _, err := g.GitHub(); err == nil || !strings.Contains(err.Error(), "use one") {
		t.Fatalf("GitHub() with a token and an App: %v", err)
	}
}

// A cancelled context does not poison the S3 client: the next caller
// builds it.
func TestS3BuildCutShortIsRetried(t *testing.T) {
	f, _, _ := newFactory(map[string]string{})
	f.Flags.S3Endpoint = "http://127.0.0.1:1"
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _ = f.S3(ctx) // may or may not fail; either way nothing sticks
	if c, err := f.S3(t.Context()); err != nil || c == nil {
		t.Fatalf("S3() after a cancelled build: %v", err)
	}
}

// Commands that need no client build none: the funcs are replaced by ones
// that fail the test when called.
func TestCommandsWithoutTargetsBuildNoClient(t *testing.T) {
	for _, args := range [][]string{
		{"validate", "../../manifests-example"},
		{"cost", "--estimate", "10x1GiB"},
		{"version"},
	} {
		t.Run(args[0], func(t *testing.T) {
			f, out, errOut := newFactory(map[string]string{"MLFLOW_TRACKING_URI": "http://127.0.0.1:1"})
			f.MLflow = func() (*mlflowclient.Client, error) { t.Error("MLflow client built"); return nil, errors.New("no") }
			f.KubeConfig = func() (*rest.Config, error) { t.Error("kubeconfig loaded"); return nil, errors.New("no") }
			f.S3 = func(context.Context) (*awss3.Client, error) { t.Error("S3 client built"); return nil, errors.New("no") }
			f.GitHub = func() (*ghub.Client, error) { t.Error("GitHub client built"); return nil, errors.New("no") }
			f.Locator = func() (*mlflowclient.Locator, error) { t.Error("locator built"); return nil, errors.New("no") }
			if code := root.Main(t.Context(), f, args); code != 0 {
				t.Fatalf("exit %d: %s %s", code, out, errOut)
			}
		})
	}
}

func writeKubeconfig(t *testing.T, path string) {
	t.Helper()
	const cfg = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: u
  user: {token: t}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Addresses whose clients would print their userinfo in errors refuse
// credentials, and the refusal does not repeat them.
func TestEndpointsWithCredentialsAreRefused(t *testing.T) {
	const secret = "s3cretPW"
	f, _, _ := newFactory(map[string]string{cmdutil.EnvGitHubToken: "t", cmdutil.EnvGitHubAPIURL: "https://bot:" + secret + "@ghe.example/api/v3"})
	_, err := f.GitHub()
	if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "https://ghe.example/api/v3") {
		t.Fatalf("GitHub() with credentials in the API URL: %v", err)
	}
	f.Flags.S3Endpoint = "http://minio:" + secret + "@127.0.0.1:9000"
	_, err = f.S3(t.Context())
	if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "http://127.0.0.1:9000") {
		t.Fatalf("S3() with credentials in the endpoint: %v", err)
	}
}
