// Package scanrecordtest registers model versions in a real MLflow and
// writes their artifacts where MLflow says they are, for the end-to-end
// tests of the scan, the gate and lineage.
package scanrecordtest

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/internal/scanrecord"
	"github.com/modelsync/modelsync/test/testenv"
)

// NewVersion registers a version of model (created when missing) from a
// new run, its source under the run's artifacts as mlflow.log_model puts
// it; it returns the version number.
func NewVersion(t testing.TB, c *mlflowclient.Client, experiment, model string) int {
	t.Helper()
	ctx := t.Context()
	exp, err := c.EnsureExperiment(ctx, experiment)
	if err != nil {
		t.Fatal(err)
	}
	run, err := c.CreateRun(ctx, mlflowclient.CreateRunRequest{ExperimentID: exp, RunName: "train"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetRegisteredModel(ctx, model); err != nil {
		if _, err := c.CreateRegisteredModel(ctx, mlflowclient.CreateRegisteredModelRequest{Name: model}); err != nil {
			t.Fatal(err)
		}
	}
	mv, err := c.CreateModelVersion(ctx, mlflowclient.CreateModelVersionRequest{Name: model, Source: run.Info.ArtifactURI + "/model", RunID: run.Info.RunID})
	if err != nil {
		t.Fatal(err)
	}
	return mv.Version
}

// Artifacts writes a version's files in the store behind srv (started with
// S3: store), where get-download-uri locates them. The returned function
// writes (or replaces) one more file.
func Artifacts(t testing.TB, c *mlflowclient.Client, srv *testenv.MLflow, store *testenv.S3, model string, version int, files map[string]string) func(path, body string) {
	t.Helper()
	ctx := t.Context()
	loc := &mlflowclient.Locator{Client: c, ArtifactsDestination: srv.ArtifactsDestination}
	uri, err := loc.ArtifactURI(ctx, model, version)
	if err != nil {
		t.Fatal(err)
	}
	where, err := scanrecord.ParseLocation(uri)
	if err != nil {
		t.Fatalf("%s: %v", uri, err)
	}
	raw := store.Client(ctx)
	put := func(path, body string) {
		t.Helper()
		if _, err := raw.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(where.Bucket), Key: aws.String(where.Prefix + "/" + path), Body: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	for path, body := range files {
		put(path, body)
	}
	return put
}
