package check_test

import (
	"context"
	"strings"
	"testing"

	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/internal/scan"
	"github.com/modelsync/modelsync/internal/scanrecord"
	"github.com/modelsync/modelsync/internal/scanrecord/scanrecordtest"
	"github.com/modelsync/modelsync/test/testenv"
)

// The gate and a version that was never scanned, against real MinIO and
// MLflow: check denies it with security.not_scanned and names the command
// to run; check --scan scans it (here finding a payload, which the gate
// then denies as dangerous), records the result on the version, and a
// second check --scan reuses the record.
func TestCheckScanUnscannedVersion(t *testing.T) {
	minio := testenv.NewMinIO(t)
	srv := testenv.NewMLflow(t, testenv.MLflowOptions{Major: 3, S3: minio})
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": minio.AccessKey, "AWS_SECRET_ACCESS_KEY": minio.SecretKey, "AWS_REGION": minio.Region, "AWS_EC2_METADATA_DISABLED": "true"} {
		t.Setenv(k, v)
	}
	ctx := context.Background()
	c, err := mlflowclient.New(mlflowclient.Config{TrackingURI: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	const model = "customer-churn-predictor"
	for i := 1; i <= 4; i++ {
		scanrecordtest.NewVersion(t, c, "churn-training", model)
	}
	if err := c.SetAlias(ctx, model, "prod", 3); err != nil {
		t.Fatal(err)
	}
	scanrecordtest.Artifacts(t, c, srv, minio, model, 4, map[string]string{
		"MLmodel":   "flavors:\n  sklearn: {pickled_model: model.pkl}\n",
		"model.pkl": "\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.",
	})

	dir := exampleRepo(t)
	promoteBranch(t, dir, "promote")
	args := []string{"--repo", dir, "--base", "main", "--head", "promote", "--mlflow-uri", srv.URL}

	code, out, stderr := runCheck(t, args...)
	if code != 1 || !strings.Contains(out, "[security.not_scanned]") {
		t.Fatalf("unscanned v4: exit %d, want a security.not_scanned deny\n%s\n%s", code, out, stderr)
	}
	for _, want := range []string{"`modelsync scan " + model + " 4`", "`modelsync check --scan`"} {
		if !strings.Contains(out, want) {
			t.Errorf("the deny does not say what to run (%s):\n%s", want, out)
		}
	}

	scanArgs := append(args, "--scan", "--s3-endpoint", minio.Endpoint, "--s3-path-style", "--artifacts-destination", srv.ArtifactsDestination)
	code, out, stderr = runCheck(t, scanArgs...)
	if code != 1 || strings.Contains(out, "security.not_scanned") || !strings.Contains(out, "[security.dangerous_artifact]") || !strings.Contains(out, "posix.system") {
		t.Fatalf("check --scan: exit %d; want v4 scanned and denied as dangerous, not as unscanned\n%s\n%s", code, out, stderr)
	}
	if !strings.Contains(stderr, "scan: "+model+" v4: dangerous (scanned now)") {
		t.Errorf("check --scan does not say it scanned v4:\n%s", stderr)
	}
	mv, err := c.GetModelVersion(ctx, model, 4)
	if err != nil {
		t.Fatal(err)
	}
	if mv.Tags[scanrecord.TagResult] != string(scan.Dangerous) || mv.Tags[scanrecord.TagScanner] != scan.ScannerVersion {
		t.Fatalf("the scan was not recorded on v4: %v", mv.Tags)
	}

	_, _, stderr = runCheck(t, scanArgs...)
	if !strings.Contains(stderr, "scan: "+model+" v4: dangerous (scan record reused, no artifact read)") {
		t.Errorf("a second check --scan scanned again:\n%s", stderr)
	}
}
