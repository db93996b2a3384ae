package scanrecord_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/modelsync/modelsync/internal/advisory"
	cmdscan "github.com/modelsync/modelsync/internal/cmd/scan"
	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/internal/scan"
	"github.com/modelsync/modelsync/internal/scanrecord"
	"github.com/modelsync/modelsync/internal/scanrecord/scanrecordtest"
	"github.com/modelsync/modelsync/policy"
	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/test/testenv"
)

// countingS3 counts object reads, so the test can say a reuse read none.
type countingS3 struct {
	*awss3.Client
	gets atomic.Int64
}

func (c *countingS3) GetObject(ctx context.Context, in *awss3.GetObjectInput, opts ...func(*awss3.Options)) (*awss3.GetObjectOutput, error) {
	c.gets.Add(1)
	return c.Client.GetObject(ctx, in, opts...)
}

// issue 16, points 3 and 4 against real MinIO and MLflow: a registered
// version (artifacts proxied as mlflow-artifacts:/ and stored in MinIO) is
// scanned end to end, the result tags appear, a second look reuses them
// without reading an artifact, and replacing an artifact after approval
// trips integrity.artifact_changed in the policy and the reconciler's
// verification.
func TestScanRegisteredVersionEndToEnd(t *testing.T) {
	minio := testenv.NewMinIO(t)
	srv := testenv.NewMLflow(t, testenv.MLflowOptions{Major: 3, S3: minio})
	ctx := t.Context()
	c, err := mlflowclient.New(mlflowclient.Config{TrackingURI: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	model := testenv.UniqueName("churn")
	version := scanrecordtest.NewVersion(t, c, testenv.UniqueName("exp"), model)
	loc := &mlflowclient.Locator{Client: c, ArtifactsDestination: srv.ArtifactsDestination}
	put := scanrecordtest.Artifacts(t, c, srv, minio, model, version, map[string]string{
		// A protocol-2 pickle of an empty dict, MLflow's dependency files.
		"model.pkl":        "\x80\x02}q\x00.",
		"requirements.txt": "mlflow==2.22.0\nscikit-learn==1.4.2\npandas\n",
		"conda.yaml":       "dependencies:\n- python=3.10.12\n- pip:\n  - scikit-learn==1.4.2\n",
		"MLmodel":          "flavors:\n  sklearn: {pickled_model: model.pkl}\n",
		// A payload beside it, so that the findings a reuse lists can be
		// compared with the scan's: os.system through STACK_GLOBAL.
		"extra/hook.pkl": "\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93\x8c\x02id\x85R.",
	})
	raw := minio.Client(ctx)

	s3c := &countingS3{Client: raw}
	now := time.Now()
	db := advisory.NewDB([]*advisory.Record{{ID: "GHSA-test-0001", Summary: "test advisory", DatabaseSpecific: map[string]any{"severity": "HIGH"},
		Affected: []advisory.Affected{{Package: advisory.Package{Ecosystem: "PyPI", Name: "Scikit_Learn"},
			Ranges: []advisory.Range{{Type: "ECOSYSTEM", Events: []advisory.Event{{Introduced: "1.0"}, {Fixed: "1.5.0"}}}}}}}})
	v := &scanrecord.Verifier{Registry: c, Locator: loc, S3: s3c, Checker: &advisory.Checker{DB: db}}
	sub := scanrecord.Subject{Model: model, Registered: model, Version: version, SpecDependencies: []string{"numpy==1.26.4"}}

	out, err := v.Ensure(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	if out.Reused || s3c.gets.Load() != 5 || out.Record.Result != scan.Dangerous {
		t.Fatalf("first scan: reused %v, %d reads, result %s; want a scan reading each of 5 objects once, dangerous", out.Reused, s3c.gets.Load(), out.Record.Result)
	}
	fresh := out
	got, err := c.GetModelVersion(ctx, model, version)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{scanrecord.TagResult, scanrecord.TagDigest, scanrecord.TagScanner, scanrecord.TagFindings, scanrecord.TagDependencies} {
		if got.Tags[k] == "" {
			t.Errorf("tag %s missing on the version: %v", k, got.Tags)
		}
	}
	if got.Tags[scanrecord.TagDigest] != out.Record.Digest || got.Tags[scanrecord.TagScanner] != scan.ScannerVersion {
		t.Errorf("tags %v", got.Tags)
	}
	deps := out.Record.Dependencies
	if deps == nil || len(deps.Vulnerabilities) != 1 || deps.Vulnerabilities[0].Package != "scikit-learn" || len(deps.Unpinned) != 1 {
		t.Fatalf("dependencies %+v", deps)
	}

	// A second look, as check and the reconciler make: listing only.
	before := s3c.gets.Load()
	out, err = v.Ensure(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	if !out.Reused || s3c.gets.Load() != before {
		t.Fatalf("second look: reused %v, %d artifact reads; want 0", out.Reused, s3c.gets.Load()-before)
	}
	// The reuse prints the same files and findings as the scan, in every
	// format, from the tags alone.
	for _, format := range []string{"text", "json", "sarif"} {
		var a, b strings.Builder
		if err := cmdscan.Print(&a, format, cmdscan.JSONReport{Verdict: fresh.Record.Result, Scanner: scan.ScannerVersion, Targets: []cmdscan.Target{cmdscan.TargetOf(sub, fresh)}}); err != nil {
			t.Fatal(err)
		}
		if err := cmdscan.Print(&b, format, cmdscan.JSONReport{Verdict: out.Record.Result, Scanner: scan.ScannerVersion, Targets: []cmdscan.Target{cmdscan.TargetOf(sub, out)}}); err != nil {
			t.Fatal(err)
		}
		if a.String() != b.String() || !strings.Contains(a.String(), "os.system") {
			t.Fatalf("%s: the reused result prints\n%s\nthe scan printed\n%s", format, b.String(), a.String())
		}
	}

	// First serve in prod records the digest.
	m := &reconciler.DesiredModel{Name: model, RegisteredModel: model}
	if err := v.VerifyServing(ctx, m, "prod", version); err != nil {
		t.Fatal(err)
	}
	approved := out.Record.Digest

	// The gate reads the tags and passes the security rules it should
	// (the high advisory aside, denied as configured).
	ev := evaluate(t, c, model, version, now)
	if ids := ruleIDs(ev.Denies); !ids["security.vulnerable_dependency"] || ids["security.not_scanned"] || ids["integrity.artifact_changed"] {
		t.Fatalf("denies before the replacement: %v", ids)
	}

	// Someone replaces the pickle after approval.
	put("model.pkl", "\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s.")
	err = v.VerifyServing(ctx, m, "prod", version)
	var ie *scanrecord.IntegrityError
	if !errors.As(err, &ie) || ie.Approved != approved || ie.Current == approved || ie.Environment != "prod" || ie.Version != version {
		t.Fatalf("after replacement: %v, want an IntegrityError naming both digests", err)
	}
	if !strings.Contains(err.Error(), approved) || !strings.Contains(err.Error(), ie.Current) {
		t.Errorf("error does not name both digests: %v", err)
	}
	ev = evaluate(t, c, model, version, now)
	if !ruleIDs(ev.Denies)["integrity.artifact_changed"] {
		t.Fatalf("integrity.artifact_changed did not fire: %+v", ev.Denies)
	}
}

// evaluate judges a PR promoting the version to prod: the documented
// example input with this version's registry tags in place of its own.
func evaluate(t *testing.T, c *mlflowclient.Client, model string, version int, now time.Time) policy.Result {
	t.Helper()
	raw, err := os.ReadFile("../../policy/testdata/input.example.json")
	if err != nil {
		t.Fatal(err)
	}
	var in policy.Input
	if err := json.Unmarshal(raw, &in); err != nil {
		t.Fatal(err)
	}
	mv, err := c.GetModelVersion(t.Context(), model, version)
	if err != nil {
		t.Fatal(err)
	}
	rv := in.Registry["churn"].Versions["4"]
	rv.Tags = mv.Tags
	in.Registry["churn"].Versions["4"] = rv
	in.Security = scanrecord.SecurityFacts(in.Registry)
	in.Now = now
	eng, err := policy.Load(t.Context(), policy.DefaultSource())
	if err != nil {
		t.Fatal(err)
	}
	res, err := eng.Evaluate(t.Context(), &in)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func ruleIDs(vs []policy.Violation) map[string]bool {
	out := map[string]bool{}
	for _, v := range vs {
		out[v.Rule] = true
	}
	return out
}
