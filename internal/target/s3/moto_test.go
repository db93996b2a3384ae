package s3

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/storageclass"
	"github.com/modelsync/modelsync/internal/storagecost"
	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/test/testenv"
)

// motoVersion stores one version's files on moto and registers the version
// under the model's registered name.
func motoVersion(t *testing.T, c *s3.Client, reg *registry, bucket, name string, v reconciler.RegistryVersion, files map[string][]byte) {
	t.Helper()
	prefix := "runs/" + name + "/v" + string(rune('0'+v.Version)) + "/artifacts/model"
	reg.add(name+"-registered", v, "s3://"+bucket+"/"+prefix)
	for name, body := range files {
		putObject(t, c, bucket, prefix+"/"+name, body)
	}
}

func motoKey(model string, v int, name string) string {
	return "runs/" + model + "/v" + string(rune('0'+v)) + "/artifacts/model/" + name
}

func TestMotoGlacierIRArchiveNeedsNoRestore(t *testing.T) {
	srv := testenv.NewMoto(t, testenv.MotoOptions{})
	c := srv.Client(t.Context())
	if err := srv.MakeBucket(t.Context(), "models", false); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	reg := newRegistry()
	files := map[string][]byte{"MLmodel": randomBytes(300, 1), "model.pkl": randomBytes(300<<10, 2)}
	motoVersion(t, c, reg, "models", "churn", reconciler.RegistryVersion{Version: 1, Created: now.Add(-45 * day)}, files)
	motoVersion(t, c, reg, "models", "churn", reconciler.RegistryVersion{Version: 2, Created: now.Add(-10 * day)}, files)
	tg, err := New(Config{Client: c, Locator: reg, Versions: reg, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}

	d := desiredState(model("churn", lifecycle(), env("prod", 2)))
	p := buildPlan(t, tg, d)
	if got := kinds(p); !reflect.DeepEqual(got, []string{KindTransition + " s3://models/runs/churn/v1/artifacts/model STANDARD→GLACIER_IR"}) {
		t.Fatalf("plan = %v", got)
	}
	applyAll(t, tg, p)
	for name := range files {
		if got := classOf(t, c, "models", motoKey("churn", 1, name)); got != storageclass.GlacierIR {
			t.Errorf("v1 %s: %s", name, got)
		}
	}
	// GLACIER_IR is readable as it is.
	if !bytes.Equal(getBody(t, c, "models", motoKey("churn", 1, "model.pkl")), files["model.pkl"]) {
		t.Error("archived content differs")
	}

	// Rolling back to v1 copies straight back: no restore, no wait.
	d = desiredState(model("churn", lifecycle(), env("prod", 1)))
	tp := tg.Plan(d, mustObserve(t, tg, d))
	if len(tp.Waits) != 0 || len(tp.Actions) != 1 || tp.Actions[0].Kind != KindTransition || tp.Actions[0].To != storageclass.Standard {
		t.Fatalf("rollback plan = %+v", tp)
	}
	// The cost report shows what leaving GLACIER_IR after minutes costs:
	// nearly the whole 90-day minimum.
	usage, errs, err := tg.StorageUsage(t.Context(), d)
	if err != nil || len(errs) > 0 {
		t.Fatalf("storage usage: %v %v", err, errs)
	}
	report := storagecost.DefaultPriceTable().Report(now, usage...)
	if len(report.Changes) != 1 || report.Changes[0].From != storageclass.GlacierIR || report.Changes[0].To != storageclass.Standard || report.EarlyDeletion <= 0 {
		t.Errorf("cost report changes = %+v", report.Changes)
	}
	wantEarly := 0.0
	for _, body := range files {
		wantEarly += float64(max(int64(len(body)), 128*1024)) / storagecost.BillingGB * 0.004 * 3 // ≈ 90 of 90 days
	}
	if math.Abs(report.EarlyDeletion-wantEarly) > wantEarly*0.01 {
		t.Errorf("early deletion $%.8f, want about $%.8f", report.EarlyDeletion, wantEarly)
	}
	applyAll(t, tg, buildPlan(t, tg, d))
	for name, body := range files {
		k := motoKey("churn", 1, name)
		if got := classOf(t, c, "models", k); got != storageclass.Standard || !bytes.Equal(getBody(t, c, "models", k), body) {
			t.Errorf("v1 %s after rollback: %s", name, got)
		}
	}
}

func mustObserve(t *testing.T, tg *Target, d *reconciler.DesiredState) *Observation {
	t.Helper()
	obs, err := tg.Observe(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	return obs
}

func TestMotoGlacierRollbackWaitsForRestore(t *testing.T) {
	srv := testenv.NewMoto(t, testenv.MotoOptions{RestoreDelay: 15 * time.Second})
	c := srv.Client(t.Context())
	if err := srv.MakeBucket(t.Context(), "models", false); err != nil {
		t.Fatal(err)
	}
	start := time.Now().UTC().Truncate(time.Second)
	clk := &clock{t: start}
	reg := newRegistry()
	files := map[string][]byte{"MLmodel": randomBytes(500, 3), "model.pkl": randomBytes(2<<20, 4)}
	motoVersion(t, c, reg, "models", "fraud", reconciler.RegistryVersion{Version: 1, Created: start.Add(-60 * day)}, files)
	motoVersion(t, c, reg, "models", "fraud", reconciler.RegistryVersion{Version: 2, Created: start.Add(-20 * day)}, files)
	putObject(t, c, "models", motoKey("fraud", 1, "model.pkl"), files["model.pkl"], func(in *s3.PutObjectInput) {
		in.Tagging = aws.String("owner=risk")
	})
	l := lifecycle(func(l *manifest.Lifecycle) { l.ArchivedClass = storageclass.Glacier })
	tg, err := New(Config{Client: c, Locator: reg, Versions: reg, Now: clk.Now, RestoreDays: 2})
	if err != nil {
		t.Fatal(err)
	}
	applyAll(t, tg, buildPlan(t, tg, desiredState(model("fraud", l, env("prod", 2), env("staging", 2)))))
	for name := range files {
		if got := classOf(t, c, "models", motoKey("fraud", 1, name)); got != storageclass.Glacier {
			t.Fatalf("v1 %s: %s, want GLACIER", name, got)
		}
	}

	// prod rolls back to v1; staging stays on v2.
	reg.add("fraud-registered", reconciler.RegistryVersion{Version: 2, Created: start.Add(-20 * day), LastUsed: start}, "s3://models/runs/fraud/v2/artifacts/model")
	d := desiredState(model("fraud", l, env("prod", 1), env("staging", 2)))
	p := buildPlan(t, tg, d)
	if got := kinds(p); !reflect.DeepEqual(got, []string{KindRestore + " s3://models/runs/fraud/v1/artifacts/model GLACIER→readable for 2d (Standard tier), then STANDARD"}) {
		t.Fatalf("plan = %v", got)
	}
	if ws := p.Waits(); len(ws) != 1 || ws[0].Environment != "prod" || !strings.Contains(ws[0].Reason, "waiting for restore (tier Standard, requested by this plan) of 2 of 2 objects") {
		t.Fatalf("waits = %+v", ws)
	}
	if r := Ready(p); r.Readable("fraud", 1) || !r.Readable("fraud", 2) {
		t.Fatalf("readiness = %v", r.NotReadable())
	}

	// Copying before the restore is refused with a retryable error.
	early := p.Actions()[0]
	early.Kind = KindTransition
	if err := tg.Apply(t.Context(), early); !IsRetryable(err) || !errors.As(err, new(*NotRestoredError)) {
		t.Fatalf("copy before restore: %v", err)
	}

	clk.Set(start.Add(time.Minute))
	applyAll(t, tg, p)
	// moto answers GetObjectTagging on an unrestored archived object with
	// InvalidObjectState, so the restore's start is only in this process's
	// memory; a second process cannot know it.
	clk.Set(start.Add(2 * time.Minute))
	p = buildPlan(t, tg, d)
	want := "waiting for restore (tier Standard, started at " + start.Add(time.Minute).Format(time.RFC3339) + ") of 2 of 2 objects"
	if ws := p.Waits(); len(ws) != 1 || p.HasChanges() || !strings.Contains(ws[0].Reason, want) {
		t.Fatalf("while restoring (moto delays restores by 15s): actions %v, waits %+v", kinds(p), ws)
	}
	other, err := New(Config{Client: c, Locator: reg, Versions: reg, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if ws := buildPlan(t, other, d).Waits(); len(ws) != 1 || !strings.Contains(ws[0].Reason, "started at unknown") {
		t.Errorf("another process, same restore: waits %+v", ws)
	}

	eventually(t, "the restore to finish", func() bool {
		p = buildPlan(t, tg, d)
		return len(p.Waits()) == 0
	})
	if got := kinds(p); !reflect.DeepEqual(got, []string{KindTransition + " s3://models/runs/fraud/v1/artifacts/model GLACIER→STANDARD"}) {
		t.Fatalf("plan after restore = %v", got)
	}
	if !Ready(p).Readable("fraud", 1) {
		t.Error("v1 should be readable once restored")
	}
	applyAll(t, tg, p)
	for name, body := range files {
		k := motoKey("fraud", 1, name)
		h := head(t, c, "models", k)
		if storageclass.Normalize(string(h.StorageClass)) != storageclass.Standard || h.Restore != nil {
			t.Errorf("v1 %s: class %s restore %v", name, h.StorageClass, aws.ToString(h.Restore))
		}
		if !bytes.Equal(getBody(t, c, "models", k), body) {
			t.Errorf("v1 %s: content differs", name)
		}
		if _, ok := tagsOf(t, c, "models", k)[RestoreTagKey]; ok {
			t.Errorf("v1 %s keeps the restore record", name)
		}
	}
	if got := tagsOf(t, c, "models", motoKey("fraud", 1, "model.pkl")); got["owner"] != "risk" {
		t.Errorf("user tags lost: %v", got)
	}
	if p := buildPlan(t, tg, d); p.HasChanges() || len(p.Waits()) > 0 {
		t.Errorf("not converged: %v %v", kinds(p), p.Waits())
	}
}

func TestMotoDeepArchiveAfter(t *testing.T) {
	srv := testenv.NewMoto(t, testenv.MotoOptions{})
	c := srv.Client(t.Context())
	if err := srv.MakeBucket(t.Context(), "models", false); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	clk := &clock{t: now}
	reg := newRegistry()
	big := randomBytes(11<<20, 5)
	files := map[string][]byte{"MLmodel": randomBytes(400, 6), "weights.bin": big}
	motoVersion(t, c, reg, "models", "llm", reconciler.RegistryVersion{Version: 1, Created: now.Add(-200 * day)}, files)
	motoVersion(t, c, reg, "models", "llm", reconciler.RegistryVersion{Version: 2, Created: now.Add(-40 * day)}, files)
	motoVersion(t, c, reg, "models", "llm", reconciler.RegistryVersion{Version: 3, Created: now.Add(-day)}, files)
	// The weights of v2 carry a full-object CRC32, which the multipart copy
	// must preserve. (Not CRC64NVME: without the optional awscrt package
	// moto computes CRC32 under that name.)
	putObject(t, c, "models", motoKey("llm", 2, "weights.bin"), big, func(in *s3.PutObjectInput) {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
		in.ContentType = aws.String("application/octet-stream")
		in.Metadata = map[string]string{"dtype": "bf16"}
	})
	l := lifecycle(func(l *manifest.Lifecycle) { l.DeepArchiveAfter = dur(180 * day) })
	tg, err := New(Config{Client: c, Locator: reg, Versions: reg, Now: clk.Now, CopyThreshold: 1 << 20, MinPartSize: MinPartSize})
	if err != nil {
		t.Fatal(err)
	}
	d := desiredState(model("llm", l, env("prod", 3)))
	p := buildPlan(t, tg, d)
	want := []string{
		KindTransition + " s3://models/runs/llm/v1/artifacts/model STANDARD→DEEP_ARCHIVE",
		KindTransition + " s3://models/runs/llm/v2/artifacts/model STANDARD→GLACIER_IR",
	}
	if got := kinds(p); !reflect.DeepEqual(got, want) {
		t.Fatalf("plan = %v", got)
	}
	applyAll(t, tg, p)
	wantClass := map[int]string{1: storageclass.DeepArchive, 2: storageclass.GlacierIR, 3: storageclass.Standard}
	for v, class := range wantClass {
		for name := range files {
			if got := classOf(t, c, "models", motoKey("llm", v, name)); got != class {
				t.Errorf("v%d %s: %s, want %s", v, name, got, class)
			}
		}
	}
	h, err := c.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String("models"), Key: aws.String(motoKey("llm", 2, "weights.bin")), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(h.ChecksumCRC32) == "" || h.ContentType == nil || *h.ContentType != "application/octet-stream" || h.Metadata["dtype"] != "bf16" {
		t.Errorf("multipart copy lost checksum, content type or metadata: %+v", h)
	}

	// 150 days on, v2 has been idle for 190 days: GLACIER_IR goes deeper
	// without a restore.
	clk.Set(now.Add(150 * day))
	p = buildPlan(t, tg, d)
	if got := kinds(p); !reflect.DeepEqual(got, []string{KindTransition + " s3://models/runs/llm/v2/artifacts/model GLACIER_IR→DEEP_ARCHIVE"}) || len(p.Waits()) != 0 {
		t.Fatalf("plan = %v, waits %v", got, p.Waits())
	}
	applyAll(t, tg, p)
	for name := range files {
		if got := classOf(t, c, "models", motoKey("llm", 2, name)); got != storageclass.DeepArchive {
			t.Errorf("v2 %s: %s", name, got)
		}
	}
	if p := buildPlan(t, tg, d); p.HasChanges() {
		t.Errorf("not converged: %v", kinds(p))
	}
}

func TestMotoDeletionOnlyWhenAllowedAndOutsideRollbackWindow(t *testing.T) {
	srv := testenv.NewMoto(t, testenv.MotoOptions{})
	c := srv.Client(t.Context())
	if err := srv.MakeBucket(t.Context(), "models", true); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	reg := newRegistry()
	files := map[string][]byte{"MLmodel": randomBytes(200, 7), "model.pkl": randomBytes(4096, 8)}
	motoVersion(t, c, reg, "models", "churn", reconciler.RegistryVersion{Version: 1, Created: now.Add(-400 * day)}, files)
	motoVersion(t, c, reg, "models", "churn", reconciler.RegistryVersion{Version: 2, Created: now.Add(-500 * day)}, files)
	motoVersion(t, c, reg, "models", "churn", reconciler.RegistryVersion{Version: 3, Created: now.Add(-400 * day), LastUsed: now.Add(-3 * day)}, files)
	motoVersion(t, c, reg, "models", "keeper", reconciler.RegistryVersion{Version: 1, Created: now.Add(-400 * day)}, files)
	deleting := lifecycle(func(l *manifest.Lifecycle) { l.DeleteAfter, l.AllowDelete = dur(365*day), true })
	notAllowed := lifecycle(func(l *manifest.Lifecycle) { l.DeleteAfter = dur(365 * day) })
	tg, err := New(Config{Client: c, Locator: reg, Versions: reg, Now: func() time.Time { return now }, NoncurrentPolicy: NoncurrentDelete})
	if err != nil {
		t.Fatal(err)
	}
	d := desiredState(model("churn", deleting, env("prod", 2)), model("keeper", notAllowed))
	p := buildPlan(t, tg, d)
	want := []string{
		KindDelete + " s3://models/runs/churn/v1/artifacts/model STANDARD→",
		KindTransition + " s3://models/runs/keeper/v1/artifacts/model STANDARD→GLACIER_IR",
	}
	if got := kinds(p); !reflect.DeepEqual(got, want) {
		t.Fatalf("plan = %v", got)
	}
	del := p.Actions()[0]
	if del.Op != reconciler.OpDelete || !strings.Contains(del.Reason, "past deleteAfter 365d") {
		t.Errorf("delete action = %+v", del)
	}
	applyAll(t, tg, p)
	for name := range files {
		if _, err := c.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String("models"), Key: aws.String(motoKey("churn", 1, name))}); !isNotFound(err) {
			t.Errorf("churn v1 %s still there: %v", name, err)
		}
		for _, v := range []int{2, 3} {
			if got := classOf(t, c, "models", motoKey("churn", v, name)); got != storageclass.Standard {
				t.Errorf("churn v%d %s: %s", v, name, got)
			}
		}
	}
	// The versioned bucket keeps no version of the deleted files.
	out, err := c.ListObjectVersions(t.Context(), &s3.ListObjectVersionsInput{Bucket: aws.String("models"), Prefix: aws.String("runs/churn/v1/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Versions)+len(out.DeleteMarkers) != 0 {
		t.Errorf("versions left: %d, delete markers: %d", len(out.Versions), len(out.DeleteMarkers))
	}
	if p := buildPlan(t, tg, d); p.HasChanges() {
		t.Errorf("not converged: %v", kinds(p))
	}
	// Repeating the delete converges instead of failing.
	if err := tg.Apply(t.Context(), del); err != nil {
		t.Errorf("repeated delete: %v", err)
	}
}
