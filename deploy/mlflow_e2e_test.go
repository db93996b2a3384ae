package deploy

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/modelsync/modelsync/test/testenv"
)

// The example with components/mlflow, applied to a real kube-apiserver
// (strict field validation) with the Secrets created as deploy/README.md
// says, and the real MLflow 3 server run as its Deployment says (args,
// environment from the ConfigMap and Secrets, the auth config from the
// Secret volume) on PostgreSQL and MinIO: /health answers anonymous probes,
// the API wants basic auth, the Service's name passes MLflow's Host check
// (any other name does not), registry writes land in PostgreSQL and
// artifact uploads in the configured S3 bucket.
func TestMLflowComponentRunsAsDeployed(t *testing.T) {
	testenv.RequireE2E(t)
	ctx := t.Context()
	objs := render(t, mlflowExample)
	kube := testenv.NewKube(t)
	cs := kubernetes.NewForConfigOrDie(kube.RESTConfig)
	dyn := dynamic.NewForConfigOrDie(kube.RESTConfig)
	// The overlay's RoleBindings live in the environment namespaces, which
	// the operator pre-creates.
	var pre []*unstructured.Unstructured
	for _, ns := range exampleNamespaces(t) {
		n := &unstructured.Unstructured{}
		n.SetAPIVersion("v1")
		n.SetKind("Namespace")
		n.SetName(ns)
		pre = append(pre, n)
	}
	applyAll(t, kube, dyn, append(pre, objs...))

	// The servers the Secrets point at.
	pg := testenv.NewPostgres(t, testenv.PostgresOptions{})
	if err := pg.CreateDatabase(ctx, "mlflow_auth"); err != nil {
		t.Fatal(err)
	}
	mlflowBin, err := testenv.MLflowBin(3)
	if err != nil {
		t.Fatal(err)
	}
	// An empty database is migrated by the server itself at start, which
	// costs minutes on a loaded machine; the test seeds the same schema.
	if err := pg.SeedMLflowSchema(ctx, mlflowBin, pg.Database); err != nil {
		t.Fatal(err)
	}
	store := testenv.NewMinIO(t)
	cms := map[string]string{}
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" && o.GetNamespace() == "mlflow" {
			data, _, _ := unstructured.NestedStringMap(o.Object, "data")
			for k, v := range data {
				cms[k] = v
			}
		}
	}
	bucket, prefix, _ := strings.Cut(strings.TrimPrefix(cms["artifactsDestination"], "s3://"), "/")
	if err := store.MakeBucket(ctx, bucket, false); err != nil {
		t.Fatal(err)
	}
	adminPassword := "test-" + testenv.UniqueName("pw")
	ini := fmt.Sprintf("[mlflow]\ndefault_permission = READ\ndatabase_uri = %s\nadmin_username = admin\nadmin_password = %s\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
		pg.SQLAlchemyURI("mlflow_auth"), adminPassword)
	for name, data := range map[string]map[string]string{
		"mlflow-db":   {"MLFLOW_BACKEND_STORE_URI": pg.SQLAlchemyURI("")},
		"mlflow-s3":   {"AWS_ACCESS_KEY_ID": store.AccessKey, "AWS_SECRET_ACCESS_KEY": store.SecretKey, "MLFLOW_S3_ENDPOINT_URL": store.Endpoint},
		"mlflow-auth": {"basic_auth.ini": ini, "MLFLOW_FLASK_SERVER_SECRET_KEY": testenv.UniqueName("key")},
	} {
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "mlflow"}, StringData: data}
		if _, err := cs.CoreV1().Secrets("mlflow").Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	dep := find(objs, "Deployment", "mlflow", "mlflow")
	stored, err := dyn.Resource(deploymentsResource).Namespace("mlflow").Get(ctx, "mlflow", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The image's entrypoint is MLflow's CLI; here it is the pinned venv's.
	if cmd, _, _ := unstructured.NestedStringSlice(container(t, stored), "command"); !slices.Equal(cmd, []string{"mlflow"}) {
		t.Fatalf("command %v, want [mlflow]", cmd)
	}
	cs0 := stored.DeepCopy()
	cs0Containers, _, _ := unstructured.NestedSlice(cs0.Object, "spec", "template", "spec", "containers")
	delete(cs0Containers[0].(map[string]any), "command")
	_ = unstructured.SetNestedSlice(cs0.Object, cs0Containers, "spec", "template", "spec", "containers")
	p := newPod(t, ctx, cs, cs0, find(objs, "Service", "mlflow", "mlflow"), "/nonexistent")
	auth := filepath.Join(p.root, "volumes", "auth")
	if err := os.WriteFile(filepath.Join(auth, "basic_auth.ini"), []byte(ini), 0o400); err != nil {
		t.Fatal(err)
	}
	// Loopback only, on the container port's stand-in: the rendered args
	// bind every interface on 5000, as a pod must.
	port := p.ports[p.containerPort(t, "http")]
	args := slices.Clone(p.args)
	for i, a := range args {
		switch a {
		case "--host=0.0.0.0":
			args[i] = "--host=127.0.0.1"
		case "--port=5000":
			args[i] = "--port=" + strconv.Itoa(port)
		case "--workers=" + cms["workers"]:
			// One worker keeps the test's memory and start time down.
			args[i] = "--workers=1"
		}
	}
	// The image has MLflow and its Python on PATH; the venv stands in.
	// newPod makes HOME an empty working directory; the container sets
	// its HOME to the "home" emptyDir.
	env := append(slices.Clone(p.env), "PATH="+filepath.Dir(mlflowBin)+":/usr/bin:/bin",
		"HOME="+filepath.Join(p.root, "volumes", "home"))
	logPath := filepath.Join(p.root, "mlflow.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(mlflowBin, args...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = env, p.workdir, logf, logf
	// MLflow forks its web server's workers: a group of their own, killed
	// together.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("mlflow log:\n%s", tailText(string(b), 60))
		}
	})

	base := p.serviceURL(t, "http")
	svcHost := "mlflow.mlflow.svc:5000"
	call := func(method, path, host string, user bool, body string) (int, string) {
		req, err := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if user {
			req.SetBasicAuth("admin", adminPassword)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		return resp.StatusCode, string(b)
	}
	// The probes: what the kubelet asks, with the pod IP as Host.
	probe, _, _ := unstructured.NestedString(container(t, dep), "readinessProbe", "httpGet", "path")
	deadline := time.Now().Add(5 * time.Minute) // the startup probe's budget
	for {
		code, _ := call(http.MethodGet, probe, "10.1.2.3:5000", false, "")
		if code == http.StatusOK {
			break
		}
		select {
		case <-done:
			t.Fatal("mlflow exited before its readiness probe passed")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("readiness probe %s not 200 within the startup probe's 5 minutes (last %d)", probe, code)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// The auth app creates the admin just after /health answers.
	var code int
	var body string
	for range 120 {
		if code, body = call(http.MethodGet, "/api/2.0/mlflow/registered-models/search?max_results=1", svcHost, true, ""); code == http.StatusOK {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if code != http.StatusOK {
		t.Fatalf("admin search via %s: %d %s", svcHost, code, body)
	}
	if code, _ := call(http.MethodGet, "/api/2.0/mlflow/registered-models/search", svcHost, false, ""); code != http.StatusUnauthorized {
		t.Errorf("anonymous search: %d, want 401", code)
	}
	if code, _ := call(http.MethodGet, "/api/2.0/mlflow/registered-models/search", "mlflow.example.invalid", true, ""); code == http.StatusOK {
		t.Error("a Host outside allowedHosts was served")
	}
	name := testenv.UniqueName("component")
	if code, body := call(http.MethodPost, "/api/2.0/mlflow/registered-models/create", svcHost, true, `{"name":"`+name+`"}`); code != http.StatusOK {
		t.Fatalf("create model: %d %s", code, body)
	}
	if rows, err := pg.Query(ctx, "", "select count(*) from registered_models where name = '"+name+"'"); err != nil || rows != "1" {
		t.Fatalf("model in PostgreSQL: %q, %v", rows, err)
	}
	if code, body := call(http.MethodPut, "/api/2.0/mlflow-artifacts/artifacts/models/churn/MLmodel", svcHost, true, "flavors: {}\n"); code != http.StatusOK {
		t.Fatalf("artifact upload: %d %s", code, body)
	}
	key := strings.TrimSuffix(prefix, "/") + "/models/churn/MLmodel"
	obj, err := store.Client(ctx).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("artifact not in s3://%s/%s: %v", bucket, key, err)
	}
	got, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	if string(got) != "flavors: {}\n" {
		t.Fatalf("artifact content %q", got)
	}
	// Nothing was written outside the volumes: the root filesystem is
	// read-only in the pod.
	if entries, _ := os.ReadDir(p.workdir); len(entries) > 0 {
		t.Errorf("wrote outside its volumes (read-only root filesystem): %v", entries)
	}
}

func tailText(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

var deploymentsResource = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
