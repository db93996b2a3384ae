// Command demo runs modelsync end to end on this machine: a real
// kube-apiserver with the KServe CRD, MLflow with its artifacts in MinIO, a
// Git server holding the example models repository with release tags, and
// `modelsync serve` reconciling all of it. It then promotes a model with a
// commit and a release tag and shows the MLflow aliases, InferenceServices
// and storage classes follow, ending with `modelsync status`.
//
//	make demo            (builds bin/modelsync, then go run ./test/demo)
//
// No KServe controller runs here, so InferenceServices are created but
// nothing serves them; their health reads Missing or Progressing.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/test/testenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// demo holds the running stack.
type demo struct {
	work     string
	bin      string
	kube     *testenv.Kube
	minio    *testenv.S3
	mlflow   *testenv.MLflow
	git      *testenv.GitServer
	client   *mlflowclient.Client
	repoURL  string
	checkout string
	server   string
	// apiToken is this run's controller API token: serve accepts it as
	// $MODELSYNC_API_TOKEN and status sends it from the same variable.
	apiToken string
}

func step(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}

func run(ctx context.Context) (err error) {
	bin, err := filepath.Abs("bin/modelsync")
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s: build it first (make demo does)", bin)
	}
	work, err := os.MkdirTemp("", "modelsync-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	defer func() {
		// On failure show what modelsync said before the logs go away.
		if err == nil {
			return
		}
		if b, rerr := os.ReadFile(filepath.Join(work, "serve.log")); rerr == nil {
			lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
			fmt.Fprintf(os.Stderr, "---- last lines of modelsync serve's log ----\n%s\n", strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	}()
	logs := filepath.Join(work, "logs")
	d := &demo{work: work, bin: bin}

	step("starting kube-apiserver + etcd (KServe CRD), MinIO, MLflow 3 (artifacts in MinIO) and a Git server")
	if d.kube, err = testenv.StartKube(ctx, logs); err != nil {
		return err
	}
	defer d.kube.Close()
	if d.minio, err = testenv.StartMinIO(ctx, logs); err != nil {
		return err
	}
	defer d.minio.Close()
	if d.mlflow, err = testenv.StartMLflow(ctx, testenv.MLflowOptions{Major: 3, S3: d.minio, Bucket: "mlflow", LogDir: logs}); err != nil {
		return err
	}
	defer d.mlflow.Close()
	if d.git, err = testenv.StartGitServer(ctx, logs); err != nil {
		return err
	}
	defer d.git.Close()
	fmt.Printf("    kube-apiserver  %s\n    MinIO           %s\n    MLflow          %s\n    Git             %s\n", d.kube.RESTConfig.Host, d.minio.Endpoint, d.mlflow.URL, d.git.HTTPURL)
	if d.client, err = mlflowclient.New(mlflowclient.Config{TrackingURI: d.mlflow.URL, Username: d.mlflow.Username, Password: d.mlflow.Password}); err != nil {
		return err
	}

	step("creating the example models repository with release tags and pushing it")
	if err := d.makeRepo(); err != nil {
		return err
	}
	step("registering the example versions in MLflow, each with a small artifact in MinIO and a run with metrics")
	if err := d.register(ctx); err != nil {
		return err
	}

	step("starting modelsync serve")
	srv, err := d.serve(ctx)
	if err != nil {
		return err
	}
	defer srv.stop()
	if err := d.waitSynced(ctx, "initial sync"); err != nil {
		return err
	}
	if err := d.show(ctx); err != nil {
		return err
	}

	step("promoting customer-churn-predictor: staging v4 -> v5 on main, and prod v3 -> v4 with release tag v1.2.0")
	if err := d.promote(); err != nil {
		return err
	}
	if err := d.modelsync("reconcile", "customer-churn-predictor", "--server", d.server); err != nil {
		return err
	}
	if err := d.waitFor(ctx, "prod alias at v4", func() (bool, error) {
		a, err := d.client.ReadAliases(ctx, "customer-churn-predictor")
		return a["prod"] == 4 && a["staging"] == 5, err
	}); err != nil {
		return err
	}
	if err := d.waitFor(ctx, "v3's artifacts archived to REDUCED_REDUNDANCY", func() (bool, error) {
		class, err := d.class(ctx, "customer-churn-predictor", 3)
		return class == "REDUCED_REDUNDANCY", err
	}); err != nil {
		return err
	}
	if err := d.show(ctx); err != nil {
		return err
	}
	step("modelsync status")
	if err := d.modelsync("status", "--server", d.server); err != nil {
		return err
	}
	if os.Getenv("MODELSYNC_DEMO_HOLD") == "1" {
		step("holding the stack for the dashboard at %s/ until Ctrl-C", d.server)
		<-ctx.Done()
	}
	return nil
}

func (d *demo) gitCmd(dir string, args ...string) error {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Demo", "GIT_AUTHOR_EMAIL=demo@example.com", "GIT_COMMITTER_NAME=Demo", "GIT_COMMITTER_EMAIL=demo@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (d *demo) makeRepo() error {
	d.checkout = filepath.Join(d.work, "models")
	if out, err := exec.Command("test/scripts/example-repo.sh", d.checkout).CombinedOutput(); err != nil {
		return fmt.Errorf("example-repo.sh: %v\n%s", err, out)
	}
	// MinIO offers STANDARD and REDUCED_REDUNDANCY; archive quickly so the
	// demo shows a class change within a minute.
	cfgPath := filepath.Join(d.checkout, "modelsync.yaml")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		return err
	}
	cfg = bytes.Replace(cfg, []byte("    archivedClass: GLACIER_IR\n    archiveAfter: 30d\n"), []byte("    archivedClass: REDUCED_REDUNDANCY\n    archiveAfter: 20s\n"), 1)
	cfg = bytes.Replace(cfg, []byte("    rollbackWindow: 7d\n"), []byte("    rollbackWindow: 10s\n"), 1)
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		return err
	}
	if err := d.gitCmd(d.checkout, "commit", "-qam", "Demo: MinIO storage classes, short archive times"); err != nil {
		return err
	}
	if _, err := d.git.NewBareRepo("models"); err != nil {
		return err
	}
	d.repoURL = d.git.HTTPURL + "models.git"
	if err := d.gitCmd(d.checkout, "remote", "add", "origin", d.git.AuthHTTPURL("models")); err != nil {
		return err
	}
	return d.gitCmd(d.checkout, "push", "-q", "origin", "main", "--tags")
}

var exampleVersions = map[string]int{"customer-churn-predictor": 5, "llama2-7b-alpaca": 4, "fraud-detector-xgb": 2, "sentiment-bert-legacy": 3}

func (d *demo) register(ctx context.Context) error {
	s3c := d.minio.Client(ctx)
	if err := d.minio.MakeBucket(ctx, "models", false); err != nil {
		return err
	}
	exp, err := d.client.EnsureExperiment(ctx, "modelsync-demo")
	if err != nil {
		return err
	}
	names := make([]string, 0, len(exampleVersions))
	for n := range exampleVersions {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, err := d.client.CreateRegisteredModel(ctx, mlflowclient.CreateRegisteredModelRequest{Name: name}); err != nil {
			return err
		}
		for v := 1; v <= exampleVersions[name]; v++ {
			prefix := fmt.Sprintf("%s/%d", name, v)
			body, _ := json.Marshal(map[string]any{"model": name, "version": v, "weights": strings.Repeat("0.1,", 256)})
			for key, data := range map[string][]byte{prefix + "/MLmodel": []byte("flavors: {}\n"), prefix + "/model.json": body} {
				if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("models"), Key: aws.String(key), Body: bytes.NewReader(data), ContentType: aws.String("application/octet-stream")}); err != nil {
					return err
				}
			}
			r, err := d.client.CreateRun(ctx, mlflowclient.CreateRunRequest{ExperimentID: exp})
			if err != nil {
				return err
			}
			acc := 0.86 + float64(v)/100
			metrics := []mlflowclient.Metric{{Key: "accuracy", Value: mlflowclient.Float(acc), Timestamp: 1}, {Key: "precision", Value: mlflowclient.Float(acc - 0.02), Timestamp: 1},
				{Key: "recall", Value: mlflowclient.Float(acc - 0.01), Timestamp: 1}, {Key: "f1", Value: mlflowclient.Float(acc - 0.015), Timestamp: 1}}
			if err := d.client.LogBatch(ctx, r.Info.RunID, metrics, map[string]string{"version": fmt.Sprint(v)}, nil); err != nil {
				return err
			}
			if _, err := d.client.CreateModelVersion(ctx, mlflowclient.CreateModelVersionRequest{Name: name, Source: "s3://models/" + prefix, RunID: r.Info.RunID}); err != nil {
				return err
			}
		}
		fmt.Printf("    %s: versions 1..%d\n", name, exampleVersions[name])
	}
	return nil
}

type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *process) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (d *demo) env() []string {
	return append(os.Environ(),
		"MLFLOW_TRACKING_URI="+d.mlflow.URL,
		"MLFLOW_TRACKING_USERNAME="+d.mlflow.Username,
		"MLFLOW_TRACKING_PASSWORD="+d.mlflow.Password,
		"MODELSYNC_GIT_USERNAME="+d.git.Username,
		"MODELSYNC_GIT_PASSWORD="+d.git.Password,
		"MODELSYNC_CACHE_DIR="+filepath.Join(d.work, "cache"),
		"AWS_ACCESS_KEY_ID="+d.minio.AccessKey,
		"AWS_SECRET_ACCESS_KEY="+d.minio.SecretKey,
		"AWS_REGION="+d.minio.Region,
		"MODELSYNC_API_TOKEN="+d.apiToken,
	)
}

func (d *demo) serve(ctx context.Context) (*process, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	probePort, err := freePort()
	if err != nil {
		return nil, err
	}
	d.server = fmt.Sprintf("http://127.0.0.1:%d", port)
	tok := make([]byte, 24)
	if _, err := rand.Read(tok); err != nil {
		return nil, err
	}
	d.apiToken = hex.EncodeToString(tok)
	logFile, err := os.Create(filepath.Join(d.work, "serve.log"))
	if err != nil {
		return nil, err
	}
	args := []string{"serve", "--only", "controller", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--probe-listen", fmt.Sprintf("127.0.0.1:%d", probePort),
		"--repo", d.repoURL, "--interval", "10s", "--resync-interval", "15s",
		"--kserve", "--kubeconfig", d.kube.KubeconfigPath,
		"--s3", "--s3-endpoint", d.minio.Endpoint, "--s3-path-style",
		"--state-dir", filepath.Join(d.work, "state"), "--dashboard-rollback", "direct"}
	fmt.Printf("    modelsync %s\n    (logs: %s)\n", strings.Join(args, " "), logFile.Name())
	cmd := exec.Command(d.bin, args...)
	cmd.Env = d.env()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logFile.Close(); close(p.done) }()
	err = d.waitFor(ctx, "modelsync serve ready", func() (bool, error) {
		select {
		case <-p.done:
			return false, errors.New("modelsync serve exited; see " + logFile.Name())
		default:
		}
		resp, err := http.Get(d.server + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		p.stop()
		return nil, err
	}
	// The dashboard takes the API token on its sign-in page; it goes to a
	// private file, not to the terminal.
	tokenFile := filepath.Join(d.work, "api-token")
	if err := os.WriteFile(tokenFile, []byte(d.apiToken+"\n"), 0o600); err != nil {
		p.stop()
		return nil, err
	}
	fmt.Printf("    dashboard       %s/  (sign in with the token in %s)\n", d.server, tokenFile)
	return p, nil
}

func (d *demo) modelsync(args ...string) error {
	cmd := exec.Command(d.bin, args...)
	cmd.Env = d.env()
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

func (d *demo) waitFor(ctx context.Context, what string, ok func() (bool, error)) error {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		done, err := ok()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if done {
			fmt.Printf("    %s\n", what)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s", what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// waitSynced polls MLflow until every example alias exists. The llama
// canary waits for KServe to report v3 rolled out in prod; with no KServe
// controller here, the demo writes that status the way KServe would.
func (d *demo) waitSynced(ctx context.Context, what string) error {
	err := d.waitFor(ctx, what+": customer-churn-predictor's aliases are set", func() (bool, error) {
		a, err := d.client.ReadAliases(ctx, "customer-churn-predictor")
		return a["prod"] == 3 && a["staging"] == 4 && a["dev"] == 5, err
	})
	if err != nil {
		return err
	}
	step("llama2-7b-alpaca's prod (v3, canary v4 at 20%%) waits until KServe has rolled out v3; writing that status as KServe would")
	dyn := dynamic.NewForConfigOrDie(d.kube.RESTConfig)
	isvcs := dyn.Resource(testenv.InferenceServiceGVR()).Namespace("models-prod")
	var obj *unstructured.Unstructured
	if err := d.waitFor(ctx, "InferenceService models-prod/llama2-7b-alpaca applied with v3", func() (bool, error) {
		o, err := isvcs.Get(ctx, "llama2-7b-alpaca", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		obj = o
		return err == nil, err
	}); err != nil {
		return err
	}
	ready := map[string]any{"type": "Ready", "status": "True"}
	predictorReady := map[string]any{"type": "PredictorReady", "status": "True"}
	_ = unstructured.SetNestedField(obj.Object, map[string]any{
		"conditions":  []any{predictorReady, ready},
		"modelStatus": map[string]any{"transitionStatus": "UpToDate", "states": map[string]any{"activeModelState": "Loaded", "targetModelState": "Loaded"}},
		"components": map[string]any{"predictor": map[string]any{
			"latestCreatedRevision": "llama2-7b-alpaca-predictor-00001", "latestReadyRevision": "llama2-7b-alpaca-predictor-00001",
			"latestRolledoutRevision": "llama2-7b-alpaca-predictor-00001",
			"traffic":                 []any{map[string]any{"revisionName": "llama2-7b-alpaca-predictor-00001", "percent": int64(100), "latestRevision": true}},
		}},
	}, "status")
	if _, err := isvcs.UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
		return err
	}
	if err := d.modelsync("reconcile", "llama2-7b-alpaca", "--env", "prod", "--server", d.server); err != nil {
		return err
	}
	return d.waitFor(ctx, "llama2-7b-alpaca prod alias at v3, prod-canary at v4, canaryTrafficPercent 20", func() (bool, error) {
		b, err := d.client.ReadAliases(ctx, "llama2-7b-alpaca")
		if err != nil || b["prod"] != 3 {
			return false, err
		}
		o, err := isvcs.Get(ctx, "llama2-7b-alpaca", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		pct, _, _ := unstructured.NestedInt64(o.Object, "spec", "predictor", "canaryTrafficPercent")
		return b["prod-canary"] == 4 && pct == 20, nil
	})
}

func (d *demo) promote() error {
	f := filepath.Join(d.checkout, "models/customer-churn-predictor/model.yaml")
	b, err := os.ReadFile(f)
	if err != nil {
		return err
	}
	s := strings.Replace(string(b), "    staging:\n      version: 4", "    staging:\n      version: 5", 1)
	s = strings.Replace(s, "    prod:\n      version: 3", "    prod:\n      version: 4", 1)
	if err := os.WriteFile(f, []byte(s), 0o644); err != nil {
		return err
	}
	if err := d.gitCmd(d.checkout, "commit", "-qam", "Promote customer-churn-predictor: staging v5, prod v4"); err != nil {
		return err
	}
	if err := d.gitCmd(d.checkout, "tag", "-a", "customer-churn-predictor/v1.2.0", "-m", "Release customer-churn-predictor v1.2.0"); err != nil {
		return err
	}
	return d.gitCmd(d.checkout, "push", "-q", "origin", "main", "--tags")
}

func (d *demo) class(ctx context.Context, model string, v int) (string, error) {
	out, err := d.minio.Client(ctx).HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("models"), Key: aws.String(fmt.Sprintf("%s/%d/model.json", model, v))})
	if err != nil {
		return "", err
	}
	if out.StorageClass == "" {
		return "STANDARD", nil
	}
	return string(out.StorageClass), nil
}

// show prints the aliases, InferenceServices and storage classes.
func (d *demo) show(ctx context.Context) error {
	fmt.Println("\n    MLflow aliases:")
	for _, name := range []string{"customer-churn-predictor", "llama2-7b-alpaca", "fraud-detector-xgb"} {
		a, err := d.client.ReadAliases(ctx, name)
		if err != nil {
			return err
		}
		keys := make([]string, 0, len(a))
		for k := range a {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s=v%d", k, a[k]))
		}
		fmt.Printf("      %-26s %s\n", name, strings.Join(parts, " "))
	}
	fmt.Println("\n    InferenceServices:")
	dyn := dynamic.NewForConfigOrDie(d.kube.RESTConfig)
	for _, ns := range []string{"models-dev", "models-staging", "models-prod"} {
		list, err := dyn.Resource(testenv.InferenceServiceGVR()).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, o := range list.Items {
			uri, _, _ := unstructured.NestedString(o.Object, "spec", "predictor", "model", "storageUri")
			pct, found, _ := unstructured.NestedInt64(o.Object, "spec", "predictor", "canaryTrafficPercent")
			canary := ""
			if found {
				canary = fmt.Sprintf("  canaryTrafficPercent=%d", pct)
			}
			fmt.Printf("      %-15s %-26s %s%s\n", ns, o.GetName(), uri, canary)
		}
	}
	fmt.Println("\n    Storage classes of customer-churn-predictor artifacts:")
	for v := 1; v <= exampleVersions["customer-churn-predictor"]; v++ {
		c, err := d.class(ctx, "customer-churn-predictor", v)
		if err != nil {
			return err
		}
		fmt.Printf("      v%d  %s\n", v, c)
	}
	return nil
}
