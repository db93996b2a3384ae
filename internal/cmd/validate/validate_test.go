package validate

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelsync/modelsync/internal/cmdutil"
)

// copyExample copies manifests-example into a temporary directory.
func copyExample(t *testing.T) string {
	t.Helper()
	src, dst := "../../../manifests-example", t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func edit(t *testing.T, dir, file, old, new string) {
	t.Helper()
	p := filepath.Join(dir, file)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("test bug: %q not in %s", old, file)
	}
	if err := os.WriteFile(p, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, dir string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := Run(context.Background(), &Options{IO: cmdutil.IOStreams{Out: &out, ErrOut: io.Discard}, Dir: dir, Output: cmdutil.FormatText, Branch: "main"})
	return out.String(), err
}

// What used to pass validate and fail later is refused, all of it in one
// run, each at its file and line; the one sound model stays valid (issue 14).
func TestValidateRefusesWhatFailsLater(t *testing.T) {
	dir := copyExample(t)
	edit(t, dir, "modelsync.yaml", "archivedClass: GLACIER_IR", "archivedClass: GLACIERIR")
	edit(t, dir, "models/customer-churn-predictor/serving/base/kustomization.yaml", "  - inferenceservice.yaml\n", "  - inferenceservice.yaml\n  - monitoring.yaml\n")
	edit(t, dir, "models/fraud-detector-xgb/serving/base/inferenceservice.yaml", "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService", "apiVersion: apps/v1\nkind: Deployment")
	edit(t, dir, "models/llama2-7b-alpaca/serving/base/inferenceservice.yaml", "spec:\n", "spec:\n\t  x: 1\n")
	// A manifest problem and a serving problem of one model come together.
	edit(t, dir, "models/fraud-detector-xgb/model.yaml", "  owners:", "  ownrs: [x]\n  owners:")

	out, err := run(t, dir)
	if !errors.Is(err, cmdutil.ErrSilent) {
		t.Fatalf("err %v, want exit 1", err)
	}
	for _, want := range []string{
		`modelsync.yaml:25:20: defaults.lifecycle.archivedClass: expected an S3 storage class (`,
		`got "GLACIERIR" (did you mean GLACIER_IR?)`,
		`models/customer-churn-predictor/serving/base/kustomization.yaml:5:5: resources: "monitoring.yaml" names models/customer-churn-predictor/serving/base/monitoring.yaml, which does not exist (rendering for dev, staging, prod)`,
		`models/fraud-detector-xgb/model.yaml:`,
		`spec.ownrs: unknown field "ownrs"`,
		`models/fraud-detector-xgb/serving/base/inferenceservice.yaml:2:7: kind: expected an InferenceService (serving.kserve.io/v1beta1) or a kind listed in serving.extraKinds of modelsync.yaml, found Deployment "fraud-detector-xgb" (rendering for dev)`,
		`models/llama2-7b-alpaca/serving/base/inferenceservice.yaml:`,
		`invalid YAML: found character that cannot start any token`,
		"modelsync.yaml is invalid; 1 model(s) valid, 3 invalid.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// The example repository renders cleanly: no false alarms from the render.
func TestValidateExampleRendersCleanly(t *testing.T) {
	out, err := run(t, copyExample(t))
	if err != nil || out != "4 model(s) valid, 0 invalid.\n" {
		t.Fatalf("err %v out %q", err, out)
	}
}

// A slip of "releases" reads as a branch name; validate refuses it where
// modelsync.yaml says so and names the likely intent, instead of desired
// later dropping the environment for want of a branch (issue 14).
func TestValidateSourceTypo(t *testing.T) {
	dir := copyExample(t)
	edit(t, dir, "modelsync.yaml", "    source: releases\n", "    source: release\n")
	edit(t, dir, "modelsync.yaml", "allowedSources: [main]\n", "")
	out, err := run(t, dir)
	want := `modelsync.yaml:15:13: environments[2].source: expected "releases" or "main" (the branch modelsync.yaml is read from), got "release" (did you mean "releases"?); list other branches in allowedSources`
	if !errors.Is(err, cmdutil.ErrSilent) || !strings.Contains(out, want) {
		t.Fatalf("err %v, output:\n%s\nwant a line %s", err, out, want)
	}
}
