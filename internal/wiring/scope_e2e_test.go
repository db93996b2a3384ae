package wiring_test

// Issue 12, bug 1 at the reconciler level: a desired state that covers one
// model must not plan anything (delete, archive, transition, wait) for a
// model outside it, at any target. The controller plans one model at a
// time with such a state, carrying the repository's Config with Prune set.

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/internal/repo"
	"github.com/modelsync/modelsync/internal/wiring"
	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/test/fixture"
	"github.com/modelsync/modelsync/test/testenv"
)

// oneModelOf is the desired state the controller plans one model with: the
// repository's revision and Config (Prune included), scoped to that model.
func oneModelOf(d *reconciler.DesiredState, m reconciler.DesiredModel) *reconciler.DesiredState {
	return d.Subset(m.Name)
}

// Every target (MLflow, KServe, S3) first applies the whole example
// repository with prune: true; then each model planned alone must yield
// actions, errors and waits for that model only.
func TestOneModelStatePlansNothingForOtherModels(t *testing.T) {
	kube := testenv.NewKube(t)
	ml := testenv.NewMLflow(t, testenv.MLflowOptions{Major: 3})
	moto := testenv.NewMoto(t, testenv.MotoOptions{})
	ctx := context.Background()
	admin, err := mlflowclient.New(mlflowclient.Config{TrackingURI: ml.URL})
	if err != nil {
		t.Fatal(err)
	}
	fixture.RegisterExample(t, admin, fixture.RegisterOptions{})
	// Every version's files, where the registered versions say they are
	// (s3://models/<model>/<version>).
	if err := moto.MakeBucket(ctx, "models", false); err != nil {
		t.Fatal(err)
	}
	s3c := moto.Client(ctx)
	for model, n := range fixture.ExampleVersions {
		for v := 1; v <= n; v++ {
			key := fmt.Sprintf("%s/%d/MLmodel", model, v)
			if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("models"), Key: aws.String(key), Body: strings.NewReader("flavors: {}\n")}); err != nil {
				t.Fatal(err)
			}
		}
	}

	dir := fixture.ExampleRepo(t)
	cfgPath := filepath.Join(dir, "modelsync.yaml")
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\nprune: false\n") {
		t.Fatalf("modelsync.yaml of the example has no \"prune: false\" to turn on:\n%s", b)
	}
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(string(b), "\nprune: false\n", "\nprune: true\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	commit := exec.Command("git", "-C", dir, "commit", "-qam", "prune: true")
	commit.Env = append(os.Environ(), "GIT_AUTHOR_NAME=T", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=T", "GIT_COMMITTER_EMAIL=t@example.com",
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	if out, err := commit.CombinedOutput(); err != nil {
		t.Fatalf("git commit: %v\n%s", err, out)
	}
	snap, err := repo.Open(ctx, repo.Options{URL: dir, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	d, err := reconciler.ComputeDesired(snap, "main")
	if err != nil {
		t.Fatal(err)
	}
	if !d.Config.Prune || len(d.Models) < 3 || len(d.Errors) > 0 {
		t.Fatalf("desired state: prune %v, %d models, errors %v", d.Config.Prune, len(d.Models), d.Errors)
	}

	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": moto.AccessKey, "AWS_SECRET_ACCESS_KEY": moto.SecretKey, "AWS_REGION": moto.Region, "AWS_EC2_METADATA_DISABLED": "true"} {
		t.Setenv(k, v)
	}
	f := wiring.New(cmdutil.IOStreams{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard}, os.Getenv, "")
	f.Flags = cmdutil.TargetFlags{MLflowURI: ml.URL, KServe: true, Kubeconfig: kube.KubeconfigPath, S3: true, S3Endpoint: moto.Endpoint, S3PathStyle: true}
	targets, err := f.Targets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wiring.CloseTargets(targets) })
	var names []string
	for _, tg := range targets {
		names = append(names, tg.Name())
	}
	if len(targets) != 3 {
		t.Fatalf("targets %v, want MLflow, KServe and S3", names)
	}

	// The whole repository, applied: every model has live state at every
	// target for a wrong scope to delete, archive or move.
	full, err := reconciler.BuildPlan(ctx, d, targets)
	if err != nil {
		t.Fatal(err)
	}
	if len(full.Errors()) > 0 || !full.HasChanges() {
		t.Fatalf("first plan of the whole repository: %d actions, errors %v", len(full.Actions()), full.Errors())
	}
	res, err := reconciler.Apply(ctx, full, targets, reconciler.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Fatalf("applying the whole repository failed: %+v", res.Failed)
	}

	var bad []string
	for _, m := range d.Models {
		p, err := reconciler.BuildPlan(ctx, oneModelOf(d, m), targets)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range p.Actions() {
			if a.Model != "" && a.Model != m.Name {
				bad = append(bad, fmt.Sprintf("planning %s alone: %s %s %s/%s %s (%s -> %s) %s", m.Name, a.Target, a.Kind, a.Model, a.Environment, a.Resource, a.From, a.To, a.Reason))
			}
		}
		for _, e := range p.Errors() {
			if e.Model != m.Name {
				bad = append(bad, fmt.Sprintf("planning %s alone: error %s", m.Name, e.Error()))
			}
		}
		for _, w := range p.Waits() {
			if w.Model != m.Name {
				bad = append(bad, fmt.Sprintf("planning %s alone: wait %s/%s at %s: %s", m.Name, w.Model, w.Environment, w.Target, w.Reason))
			}
		}
	}
	if len(bad) > 0 {
		t.Fatalf("a one-model desired state planned for other models (targets %v):\n  %s", names, strings.Join(bad, "\n  "))
	}
}
