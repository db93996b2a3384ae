package serve_test

// Issue 12, bugs 3 and 4: a wait (artifacts still being restored from an
// archive class) must hold every action of that environment's change,
// including the registry's model-level audit, residency and archive tags;
// status must say `waiting` with the wait's reason, not `synced`; and the
// controller must look again soon after the restore ends, not at the
// resync.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/modelsync/modelsync/internal/controller"
	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/test/testenv"
)

// Tags the MLflow target writes on versions (internal/registry); spelled
// out here so the test reads MLflow as any user would.
const (
	tagEnvironments = "modelsync.environments"
	tagLifecycle    = "modelsync.lifecycle"
	tagArchivedAt   = "modelsync.archived_at"
	tagProdSince    = "modelsync.audit.prod.since"
	tagProdUntil    = "modelsync.audit.prod.until"
)

// restoreDelay is how long moto keeps a GLACIER restore in progress.
const restoreDelay = 20 * time.Second

func versionTags(t *testing.T, c *mlflowclient.Client, model string, v int) map[string]string {
	t.Helper()
	mv, err := c.GetModelVersion(context.Background(), model, v)
	if err != nil {
		t.Fatal(err)
	}
	return mv.Tags
}

// objectStates reads the class and restore header of every object under a
// prefix; readable is true when all of them can be read (STANDARD, or a
// finished restore).
func objectStates(t *testing.T, c *s3.Client, bucket, prefix string) (readable, restoring bool, detail string) {
	t.Helper()
	ctx := context.Background()
	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix + "/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Contents) == 0 {
		t.Fatalf("no objects under s3://%s/%s", bucket, prefix)
	}
	readable = true
	var parts []string
	for _, o := range out.Contents {
		h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: o.Key})
		if err != nil {
			t.Fatal(err)
		}
		class, restore := string(h.StorageClass), aws.ToString(h.Restore)
		parts = append(parts, fmt.Sprintf("%s %s restore=%q", aws.ToString(o.Key), class, restore))
		archived := class == string(types.StorageClassGlacier) || class == string(types.StorageClassDeepArchive)
		if archived && !strings.Contains(restore, `ongoing-request="false"`) {
			readable = false
		}
		if strings.Contains(restore, `ongoing-request="true"`) {
			restoring = true
		}
	}
	return readable, restoring, strings.Join(parts, "; ")
}

// A prod rollback to a version whose artifacts are in GLACIER, under the
// real serve binary with the MLflow and S3 targets on moto: until the
// restore ends, no alias or tag of that change is written and status says
// waiting; within a minute of the restore ending the change is complete,
// and the next plan has nothing to do.
func TestServeRestoreWaitHoldsRegistryActions(t *testing.T) {
	moto := testenv.NewMoto(t, testenv.MotoOptions{RestoreDelay: restoreDelay})
	ctx := context.Background()
	s3c := moto.Client(ctx)
	if err := moto.MakeBucket(ctx, "models", false); err != nil {
		t.Fatal(err)
	}
	f := newCrashFixture(t)
	const churn = "customer-churn-predictor"
	// churn v2 (prod's previous version) was archived 60 days ago: MLflow
	// says so and its files are in GLACIER. v3 serves prod.
	for v, class := range map[int]types.StorageClass{2: types.StorageClassGlacier, 3: types.StorageClassStandard} {
		for name, body := range map[string]string{"MLmodel": "flavors: {}\n", "model.pkl": strings.Repeat("w", 64<<10)} {
			if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("models"), Key: aws.String(fmt.Sprintf("%s/%d/%s", churn, v, name)),
				Body: strings.NewReader(body), StorageClass: class}); err != nil {
				t.Fatal(err)
			}
		}
	}
	archivedAt := time.Now().UTC().Add(-60 * 24 * time.Hour).Format(time.RFC3339)
	for k, v := range map[string]string{tagLifecycle: "archived", tagArchivedAt: archivedAt} {
		if err := f.admin.SetModelVersionTag(ctx, churn, 2, k, v); err != nil {
			t.Fatal(err)
		}
	}
	// Archived versions go to GLACIER (the example says GLACIER_IR, which
	// needs no restore).
	w := f.workdir(t)
	editFile(t, w, "modelsync.yaml", "archivedClass: GLACIER_IR", "archivedClass: GLACIER")
	w.Commit("archive to GLACIER")
	w.Push("main")

	env := append(f.env, "MODELSYNC_CACHE_DIR="+t.TempDir(), "AWS_ACCESS_KEY_ID="+moto.AccessKey, "AWS_SECRET_ACCESS_KEY="+moto.SecretKey,
		"AWS_REGION="+moto.Region, "AWS_EC2_METADATA_DISABLED=true")
	targetArgs := []string{"--s3", "--s3-endpoint", moto.Endpoint, "--s3-path-style"}
	// The resync stays at its default 10 minutes: only the controller's own
	// re-check of a waiting item can finish the change within the test.
	p := startServe(t, env, append([]string{"--repo", f.repo, "--interval", "1s", "--resync-interval", "10m", "--concurrency", "2"}, targetArgs...)...)
	f.waitSynced(t, "after the first pass")
	if _, restoring, detail := objectStates(t, s3c, "models", churn+"/2"); restoring {
		t.Fatalf("the first pass restored v2, which nothing uses; the test proves nothing: %s", detail)
	}
	before2, before3 := versionTags(t, f.admin, churn, 2), versionTags(t, f.admin, churn, 3)
	if strings.Contains(before2[tagEnvironments], "prod") || before2[tagProdSince] != "" || before3[tagProdUntil] != "" || !strings.Contains(before3[tagEnvironments], "prod") {
		t.Fatalf("before the rollback: v2 tags %v, v3 tags %v", before2, before3)
	}

	// Roll prod back to v2 through Git, as an operator would.
	pushed := time.Now()
	out, err := runModelsync(t, append(env, "GIT_AUTHOR_NAME=Erin Ops", "GIT_AUTHOR_EMAIL=erin@example.com"),
		"rollback", churn, "--env", "prod", "--to", "2", "--direct", "--reason", "incident 12", "--repo", f.repo)
	if err != nil {
		t.Fatalf("modelsync rollback: %v\n%s", err, out)
	}
	tag := regexp.MustCompile(`Tagged and pushed release (\S+)`).FindStringSubmatch(out)
	if tag == nil {
		t.Fatalf("rollback tagged no release:\n%s", out)
	}

	// While the restore runs: nothing of the prod change is written, and
	// status says waiting with the restore's reason.
	var (
		readableAt   time.Time
		sawRestoring bool
		statusSeen   int
		reported     = map[string]bool{}
	)
	violation := func(kind, format string, args ...any) {
		if !reported[kind] {
			reported[kind] = true
			t.Errorf("%.1fs after the rollback was pushed, before v2's files are readable: "+format, append([]any{time.Since(pushed).Seconds()}, args...)...)
		}
	}
	waitUntil(t, "v2's files to become readable", restoreDelay+60*time.Second, func() bool {
		readable, restoring, detail := objectStates(t, s3c, "models", churn+"/2")
		if readable {
			if !sawRestoring {
				t.Fatalf("v2's files became readable without a restore being seen: %s", detail)
			}
			readableAt = time.Now()
			return true
		}
		if !restoring {
			return false // the controller has not requested the restore yet
		}
		sawRestoring = true
		tags2, tags3 := versionTags(t, f.admin, churn, 2), versionTags(t, f.admin, churn, 3)
		if strings.Contains(tags2[tagEnvironments], "prod") {
			violation("env", "v2 is tagged %s=%q", tagEnvironments, tags2[tagEnvironments])
		}
		if tags2[tagProdSince] != "" {
			violation("since", "v2 is tagged %s=%s", tagProdSince, tags2[tagProdSince])
		}
		if tags3[tagProdUntil] != "" {
			violation("until", "v3, still serving prod, is tagged %s=%s (and %s=%q)", tagProdUntil, tags3[tagProdUntil], tagLifecycle, tags3[tagLifecycle])
		}
		aliases, err := f.admin.ReadAliases(ctx, churn)
		if err != nil {
			t.Fatal(err)
		}
		if aliases["prod"] != 3 {
			violation("alias", "the prod alias moved to v%d", aliases["prod"])
		}
		st, err := p.status(t)
		if err != nil {
			return false
		}
		// Only rows the controller looked at for the rollback count.
		if r, ok := row(st, churn, "prod"); ok && r.Desired == "v2" && r.LastAttempt.After(pushed) {
			statusSeen++
			if r.State != "waiting" || !strings.Contains(r.Message, "restore") {
				violation("status", "status of %s/prod is state=%q live=%q message=%q lastError=%q, want state \"waiting\" with the restore's reason",
					churn, r.State, r.Live, r.Message, r.LastError)
			}
		}
		return false
	})
	if statusSeen == 0 {
		t.Errorf("status never showed %s/prod planned for the rollback while the restore ran", churn)
	}

	// Within a minute of the restore ending the change is complete.
	done, detail := poll(time.Until(readableAt.Add(time.Minute)), func() (bool, string) {
		aliases, err := f.admin.ReadAliases(ctx, churn)
		if err != nil {
			t.Fatal(err)
		}
		tags2, tags3 := versionTags(t, f.admin, churn, 2), versionTags(t, f.admin, churn, 3)
		st, err := p.status(t)
		if err != nil {
			return false, err.Error()
		}
		r, _ := row(st, churn, "prod")
		ok := aliases["prod"] == 2 && strings.Contains(tags2[tagEnvironments], "prod") && tags2[tagProdSince] != "" && tags3[tagProdUntil] != "" &&
			r.State == controller.StateSynced && r.Live == "v2"
		return ok, fmt.Sprintf("prod alias v%d, v2 tags %v, v3 tags %v, status %s/%s live=%s", aliases["prod"], tags2, tags3, r.State, r.Message, r.Live)
	})
	plan := func(format string) (string, error) {
		return runModelsync(t, env, append([]string{"plan", "--repo", f.repo, "-o", format, "--detailed-exitcode=false"}, targetArgs...)...)
	}
	if !done {
		out, _ := plan("text")
		t.Fatalf("the rollback was not complete a minute after v2's files became readable (%.0fs after the push); last: %s\nmodelsync plan now:\n%s",
			time.Since(pushed).Seconds(), detail, out)
	}
	t.Logf("restore readable %.1fs after the push; change complete %.1fs after that", readableAt.Sub(pushed).Seconds(), time.Since(readableAt).Seconds())

	// The next plan has nothing to do, and nothing was ever taken for drift.
	out, err = plan("json")
	if err != nil {
		t.Fatalf("modelsync plan: %v\n%s", err, out)
	}
	var next struct {
		Summary struct{ Create, Update, Delete, Drift, Errors, Waits int }
	}
	if i := strings.Index(out, "{"); i < 0 {
		t.Fatalf("plan printed no JSON:\n%s", out)
	} else if err := json.NewDecoder(strings.NewReader(out[i:])).Decode(&next); err != nil {
		t.Fatalf("plan output: %v\n%s", err, out)
	}
	if s := next.Summary; s.Create+s.Update+s.Delete+s.Drift+s.Errors+s.Waits != 0 {
		t.Errorf("the plan after the rollback is not empty: %+v\n%s", next.Summary, out)
	}
	resp, err := http.Get(p.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`(?m)^modelsync_drift_detected_total (\S+)$`).FindSubmatch(metrics)
	if m == nil {
		t.Fatalf("/metrics lacks modelsync_drift_detected_total")
	}
	if n, _ := strconv.ParseFloat(string(m[1]), 64); n != 0 {
		t.Errorf("the controller applied %v action(s) it took for drift; the rollback came from Git", n)
	}
}
