package root

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/test/fixture"
	"github.com/modelsync/modelsync/test/testenv"
)

// The README's flow against a real MLflow: plan shows the changes (exit 2),
// apply performs them, a second plan is empty (exit 0), lineage reads back
// what was deployed.
func TestPlanApplyLineageAgainstMLflow(t *testing.T) {
	srv := testenv.NewMLflow(t, testenv.MLflowOptions{Major: 3})
	admin, err := mlflowclient.New(mlflowclient.Config{TrackingURI: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	fixture.RegisterExample(t, admin, fixture.RegisterOptions{WithRuns: true})
	dir := exampleRepo(t)
	env := map[string]string{"MODELSYNC_CACHE_DIR": t.TempDir(), "MLFLOW_TRACKING_URI": srv.URL}

	code, out, errOut := run(t, env, "plan", "--repo", dir)
	if code != 2 {
		t.Fatalf("plan exit %d, want 2 (changes)\n%s%s", code, out, errOut)
	}
	flat := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{
		"+ customer-churn-predictor prod mlflow set-alias alias prod v3",
		"+ llama2-7b-alpaca prod mlflow set-alias alias prod-canary v4",
		"~ llama2-7b-alpaca - mlflow tag-version version 4 none -> dev,staging,prod:canary",
		"~ sentiment-bert-legacy - mlflow archive-version version 3 active -> archived",
		"Plan: 8 to create, 9 to change, 0 to delete.",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	code, out, errOut = run(t, env, "apply", "--repo", dir)
	if code != 0 || !strings.Contains(out, "failed 0") && !strings.Contains(out, "0 failed") {
		t.Fatalf("apply exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = run(t, env, "plan", "--repo", dir)
	if code != 0 || !strings.Contains(out, "No changes. Live state matches Git.") {
		t.Fatalf("second plan exit %d:\n%s", code, out)
	}
	aliases, err := admin.ReadAliases(context.Background(), "llama2-7b-alpaca")
	if err != nil || aliases["prod"] != 3 || aliases["prod-canary"] != 4 || aliases["dev"] != 4 || aliases["staging"] != 4 {
		t.Fatalf("llama aliases %v %v", aliases, err)
	}

	code, out, errOut = run(t, env, "lineage", "customer-churn-predictor", "3", "-o", "json")
	if code != 0 {
		t.Fatalf("lineage exit %d: %s", code, errOut)
	}
	var l struct {
		Aliases     []string
		ArtifactURI string
		Metrics     map[string]float64
		Params      map[string]string
		Datasets    map[string]string
		Deployment  struct{ Revision, Environments, DeployedBy string }
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatal(err)
	}
	if l.ArtifactURI != "s3://models/customer-churn-predictor/3" || l.Metrics["accuracy"] != 0.88 || l.Params["max_depth"] != "6" ||
		!strings.HasPrefix(l.Deployment.Revision, "customer-churn-predictor/v1.1.0@sha1:") || l.Deployment.Environments != "prod" ||
		l.Deployment.DeployedBy != "Bob Data <bob@example.com>" || l.Datasets["run:dataset"] != "customer-activity@2024-06-30" || fmt.Sprint(l.Aliases) != "[prod]" {
		t.Fatalf("lineage = %+v", l)
	}
}

// apply with MLflow and KServe: the example's InferenceServices appear in the
// environment namespaces with storageUri from the registry, and --wait
// reports the failing condition when an InferenceService is not Healthy.
// No KServe controller runs here; the test writes status as KServe would.
func TestApplyKServeAgainstRealAPIServer(t *testing.T) {
	srv := testenv.NewMLflow(t, testenv.MLflowOptions{Major: 3})
	kube := testenv.NewKube(t)
	admin, err := mlflowclient.New(mlflowclient.Config{TrackingURI: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	fixture.RegisterExample(t, admin, fixture.RegisterOptions{WithRuns: true})
	dir := exampleRepo(t)
	env := map[string]string{"MODELSYNC_CACHE_DIR": t.TempDir(), "MLFLOW_TRACKING_URI": srv.URL}
	code, out, errOut := run(t, env, "apply", "--repo", dir, "--kserve", "--kubeconfig", kube.KubeconfigPath, "--target", "kserve")
	if code != 0 {
		t.Fatalf("apply exit %d\n%s%s", code, out, errOut)
	}
	dyn := dynamic.NewForConfigOrDie(kube.RESTConfig)
	isvc, err := dyn.Resource(testenv.InferenceServiceGVR()).Namespace("models-prod").Get(context.Background(), "llama2-7b-alpaca", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	uri, _, _ := unstructured.NestedString(isvc.Object, "spec", "predictor", "model", "storageUri")
	pct, _, _ := unstructured.NestedInt64(isvc.Object, "spec", "predictor", "canaryTrafficPercent")
	if isvc.GetLabels()["modelsync.dev/model"] != "llama2-7b-alpaca" || !strings.HasPrefix(uri, "s3://models/llama2-7b-alpaca/") {
		t.Fatalf("prod llama: labels %v storageUri %q", isvc.GetLabels(), uri)
	}
	// A brand-new object gets the stable version first; KServe sends a
	// first revision 100% whatever the percentage says.
	if uri != "s3://models/llama2-7b-alpaca/3" && pct != 20 {
		t.Fatalf("prod llama: storageUri %q canaryTrafficPercent %d", uri, pct)
	}
	code, out, _ = run(t, env, "plan", "--repo", dir, "--kserve", "--kubeconfig", kube.KubeconfigPath, "--target", "kserve")
	if code != 0 && code != 2 {
		t.Fatalf("plan after apply exit %d:\n%s", code, out)
	}

	// Status as KServe would write it for a model that failed to load.
	churn, err := dyn.Resource(testenv.InferenceServiceGVR()).Namespace("models-dev").Get(context.Background(), "customer-churn-predictor", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	unstructured.SetNestedField(churn.Object, map[string]any{
		"conditions": []any{
			map[string]any{"type": "PredictorReady", "status": "False", "reason": "ModelLoadFailed", "message": "failed to load model from s3://models/customer-churn-predictor/5"},
			map[string]any{"type": "Ready", "status": "False", "reason": "ModelLoadFailed", "message": "failed to load model from s3://models/customer-churn-predictor/5"},
		},
		"modelStatus": map[string]any{"transitionStatus": "BlockedByFailedLoad", "states": map[string]any{"activeModelState": "", "targetModelState": "FailedToLoad"}},
	}, "status")
	if _, err := dyn.Resource(testenv.InferenceServiceGVR()).Namespace("models-dev").UpdateStatus(context.Background(), churn, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Move dev to another version so apply touches it, then wait.
	git(t, dir, "checkout", "-q", "main")
	churnFile := dir + "/models/customer-churn-predictor/model.yaml"
	b, _ := os.ReadFile(churnFile)
	os.WriteFile(churnFile, []byte(strings.Replace(string(b), "      version: 5", "      version: 4", 1)), 0o644)
	git(t, dir, "commit", "-qam", "dev back to v4")
	code, out, errOut = run(t, env, "apply", "--repo", dir, "--kserve", "--kubeconfig", kube.KubeconfigPath, "--target", "kserve", "--wait", "--timeout", "3s")
	if code != 1 || !strings.Contains(errOut+out, "ModelLoadFailed") {
		t.Fatalf("apply --wait exit %d, want 1 naming ModelLoadFailed:\n%s%s", code, out, errOut)
	}
}

// The S3 target and the cost report on MinIO: artifacts of the example's
// versions are found through MLflow's download URIs, referenced versions stay
// STANDARD, and `cost` prices what is there.
func TestApplyS3AndCostAgainstMinIO(t *testing.T) {
	minio := testenv.NewMinIO(t)
	srv := testenv.NewMLflow(t, testenv.MLflowOptions{Major: 3})
	admin, err := mlflowclient.New(mlflowclient.Config{TrackingURI: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := minio.MakeBucket(ctx, "models", false); err != nil {
		t.Fatal(err)
	}
	s3c := minio.Client(ctx)
	for name, versions := range map[string]int{"customer-churn-predictor": 5, "llama2-7b-alpaca": 4, "fraud-detector-xgb": 2, "sentiment-bert-legacy": 3} {
		for v := 1; v <= versions; v++ {
			key := fmt.Sprintf("%s/%d/model.bin", name, v)
			if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("models"), Key: aws.String(key), Body: strings.NewReader(strings.Repeat("w", 1024*v))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	fixture.RegisterExample(t, admin, fixture.RegisterOptions{WithRuns: true}) // sources are s3://models/<model>/<version>
	dir := exampleRepo(t)
	t.Setenv("AWS_ACCESS_KEY_ID", minio.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", minio.SecretKey)
	t.Setenv("AWS_REGION", minio.Region)
	env := map[string]string{"MODELSYNC_CACHE_DIR": t.TempDir(), "MLFLOW_TRACKING_URI": srv.URL}
	s3flags := []string{"--s3", "--s3-endpoint", minio.Endpoint, "--s3-path-style"}
	code, out, errOut := run(t, env, append([]string{"apply", "--repo", dir}, s3flags...)...)
	if code != 0 {
		t.Fatalf("apply exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = run(t, env, append([]string{"cost", "--repo", dir, "-o", "json"}, s3flags...)...)
	if code != 0 {
		t.Fatalf("cost exit %d\n%s%s", code, out, errOut)
	}
	var rep struct {
		Rows []struct {
			Model    string
			Versions []int
			Class    string
			Bytes    int64
		}
		Total struct{ Bytes int64 }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var churn3 bool
	for _, r := range rep.Rows {
		if r.Model == "customer-churn-predictor" && fmt.Sprint(r.Versions) == "[3]" && r.Class == "STANDARD" && r.Bytes == 3*1024 {
			churn3 = true
		}
	}
	if !churn3 || rep.Total.Bytes == 0 {
		t.Fatalf("cost report lacks churn v3 in STANDARD:\n%s", out)
	}
}
