package s3

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/storageclass"
	"github.com/modelsync/modelsync/reconciler"
)

var planNow = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func planTarget(t *testing.T) *Target {
	t.Helper()
	tg, err := New(Config{
		Client:      s3.New(s3.Options{Region: "us-east-1"}),
		Locator:     newRegistry(),
		Versions:    newRegistry(),
		Now:         func() time.Time { return planNow },
		RestoreTier: TierBulk,
	})
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func version(v int, createdAgo time.Duration, uri string) VersionState {
	loc, err := ParseURI(uri)
	if err != nil {
		panic(err)
	}
	return VersionState{RegistryVersion: reconciler.RegistryVersion{Version: v, Created: planNow.Add(-createdAgo)}, Location: loc}
}

// observed builds a model's observation; objects are key → class.
func observed(name string, versions []VersionState, objects map[string]Object) ModelState {
	ms := ModelState{Model: name, RegisteredModel: name + "-registered", Versions: versions}
	ms.Prefixes = groupPrefixes(versions)
	for key, o := range objects {
		o.Key = key
		if o.ETag == "" {
			o.ETag = `"etag-` + key + `"`
		}
		if o.Size == 0 {
			o.Size = 100
		}
		if i := mostSpecific(ms.Prefixes, versions[0].Location.Bucket, key); i >= 0 {
			ms.Prefixes[i].Objects = append(ms.Prefixes[i].Objects, o)
		}
	}
	for i := range ms.Prefixes {
		objs := ms.Prefixes[i].Objects
		for a := range objs {
			for b := a + 1; b < len(objs); b++ {
				if objs[b].Key < objs[a].Key {
					objs[a], objs[b] = objs[b], objs[a]
				}
			}
		}
	}
	return ms
}

func payloadOf(t *testing.T, a reconciler.Action) Payload {
	t.Helper()
	p, err := DecodePayload(a)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func keysOf(p Payload) []string {
	var ks []string
	for _, o := range p.Objects {
		ks = append(ks, o.Key)
	}
	return ks
}

func TestPlanSharedPrefixKeepsHottestClass(t *testing.T) {
	tg := planTarget(t)
	vs := []VersionState{version(1, 90*day, "s3://b/shared"), version(2, 90*day, "s3://b/shared")}
	objs := map[string]Object{"shared/model.pkl": {Class: "STANDARD"}, "shared/MLmodel": {Class: "STANDARD"}}

	d := desiredState(model("churn", lifecycle(), env("prod", 2)))
	tp := tg.Plan(d, &Observation{At: planNow, Models: []ModelState{observed("churn", vs, objs)}})
	if len(tp.Actions) != 0 || len(tp.Errors) != 0 {
		t.Fatalf("v2 is referenced, so the shared prefix stays active: %+v", tp)
	}

	d = desiredState(model("churn", lifecycle(), env("prod", 3)))
	vs = append(vs, version(3, day, "s3://b/other"))
	tp = tg.Plan(d, &Observation{At: planNow, Models: []ModelState{observed("churn", vs, objs)}})
	if len(tp.Actions) != 1 {
		t.Fatalf("actions = %+v", tp.Actions)
	}
	a := tp.Actions[0]
	p := payloadOf(t, a)
	if a.Kind != KindTransition || a.Resource != "s3://b/shared" || a.From != "STANDARD" || a.To != "GLACIER_IR" ||
		!reflect.DeepEqual(p.Versions, []int{1, 2}) || !reflect.DeepEqual(keysOf(p), []string{"shared/MLmodel", "shared/model.pkl"}) {
		t.Errorf("action = %+v, payload %+v", a, p)
	}
	if !strings.Contains(a.Reason, "v1 archived") || !strings.Contains(a.Reason, "v2 archived") {
		t.Errorf("reason = %q", a.Reason)
	}
}

func TestPlanNestedPrefixes(t *testing.T) {
	tg := planTarget(t)
	// v1's prefix contains v2's: the objects under v2's prefix are v2's
	// too and stay hot; the rest is v1's alone.
	vs := []VersionState{version(1, 90*day, "s3://b/run"), version(2, 90*day, "s3://b/run/model")}
	objs := map[string]Object{"run/metrics.json": {Class: "STANDARD"}, "run/model/weights": {Class: "STANDARD"}}
	d := desiredState(model("churn", lifecycle(), env("prod", 2)))
	tp := tg.Plan(d, &Observation{At: planNow, Models: []ModelState{observed("churn", vs, objs)}})
	if len(tp.Actions) != 1 {
		t.Fatalf("actions = %+v", tp.Actions)
	}
	if p := payloadOf(t, tp.Actions[0]); !reflect.DeepEqual(keysOf(p), []string{"run/metrics.json"}) || !reflect.DeepEqual(p.Versions, []int{1}) {
		t.Errorf("payload = %+v", p)
	}
}

func TestPlanOrderAndPayloads(t *testing.T) {
	tg := planTarget(t)
	l := lifecycle(func(l *manifest.Lifecycle) {
		l.ArchivedClass = storageclass.Glacier
		l.DeepArchiveAfter = dur(180 * day)
		l.DeleteAfter, l.AllowDelete = dur(365*day), true
	})
	vs := []VersionState{
		version(1, 400*day, "s3://b/v1"), // deleted
		version(2, 200*day, "s3://b/v2"), // deep-archived
		version(3, 40*day, "s3://b/v3"),  // archived
		version(4, 300*day, "s3://b/v4"), // prod: rolled back to, needs restores
	}
	objs := map[string]Object{
		"v1/a":       {Class: "DEEP_ARCHIVE"},
		"v2/a":       {Class: "GLACIER", Restore: &RestoreStatus{}},
		"v3/a":       {Class: "STANDARD", Size: 5 << 30},
		"v4/cold":    {Class: "GLACIER", Restore: &RestoreStatus{}},
		"v4/running": {Class: "GLACIER", Restore: &RestoreStatus{Requested: true, Ongoing: true}},
		"v4/ready":   {Class: "DEEP_ARCHIVE", Restore: &RestoreStatus{Requested: true, Expiry: planNow.Add(day)}},
		"v4/hot":     {Class: "STANDARD"},
	}
	d := desiredState(model("churn", l, env("dev", 4), withCanary(env("prod", 3), 4)))
	obs := &Observation{At: planNow, Models: []ModelState{observed("churn", vs, objs)}}
	tp := tg.Plan(d, obs)

	type summary struct{ kind, resource, from, to string }
	var got []summary
	for _, a := range tp.Actions {
		got = append(got, summary{a.Kind, a.Resource, a.From, a.To})
		if a.Target != Name || a.Model != "churn" || a.Revision != d.Revision {
			t.Errorf("action header = %+v", a)
		}
		if err := tg.ValidateAction(a); err != nil {
			t.Errorf("planned action does not validate: %v", err)
		}
	}
	want := []summary{
		{KindDelete, "s3://b/v1", "DEEP_ARCHIVE", ""},
		{KindRestore, "s3://b/v2", "GLACIER", "readable for 7d (Bulk tier), then DEEP_ARCHIVE"},
		{KindRestore, "s3://b/v4", "GLACIER", "readable for 7d (Bulk tier), then STANDARD"},
		{KindTransition, "s3://b/v4", "DEEP_ARCHIVE", "STANDARD"},
	}
	// v3 is referenced by prod, so it stays STANDARD: no action.
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("actions:\n got %+v\nwant %+v", got, want)
	}
	if tp.Actions[0].Op != reconciler.OpDelete {
		t.Errorf("delete op = %s", tp.Actions[0].Op)
	}
	restore := payloadOf(t, tp.Actions[2])
	if restore.Tier != TierBulk || restore.Days != DefaultRestoreDays || !reflect.DeepEqual(keysOf(restore), []string{"v4/cold"}) {
		t.Errorf("restore payload = %+v", restore)
	}
	if tr := payloadOf(t, tp.Actions[3]); !reflect.DeepEqual(keysOf(tr), []string{"v4/ready"}) || tr.Objects[0].ETag != `"etag-v4/ready"` {
		t.Errorf("transition payload = %+v", tr)
	}

	// v4 is used by dev and by prod's canary: both wait.
	if len(tp.Waits) != 2 || tp.Waits[0].Environment != "dev" || tp.Waits[1].Environment != "prod" {
		t.Fatalf("waits = %+v", tp.Waits)
	}
	for _, w := range tp.Waits {
		if !strings.Contains(w.Reason, "waiting for restore (tier Bulk, requested by this plan) of 2 of 4 objects under s3://b/v4") {
			t.Errorf("wait reason = %q", w.Reason)
		}
	}
	r := ReadinessOf(tp.Waits)
	if r.Readable("churn", 4) || !r.Readable("churn", 3) || !reflect.DeepEqual(r.NotReadable(), []ModelVersion{{"churn", 4}}) {
		t.Errorf("readiness = %+v", r.NotReadable())
	}
	if !strings.Contains(r.Reason("churn", 4), "waiting for restore") || r.Reason("churn", 3) != "" {
		t.Errorf("reasons %q / %q", r.Reason("churn", 4), r.Reason("churn", 3))
	}

	if again := tg.Plan(d, obs); !reflect.DeepEqual(again, tp) {
		t.Error("planning the same observation twice differs")
	}
}

func TestPlanWaitNamesTierAndStart(t *testing.T) {
	tg := planTarget(t)
	started := planNow.Add(-2 * time.Hour)
	vs := []VersionState{version(5, 300*day, "s3://b/v5")}
	objs := map[string]Object{
		"v5/a": {Class: "GLACIER", Restore: &RestoreStatus{Requested: true, Ongoing: true}, RestoreRequest: &RestoreRequest{Tier: TierStandard, At: started}},
		"v5/b": {Class: "GLACIER", Restore: &RestoreStatus{Requested: true, Ongoing: true}, RestoreRequest: &RestoreRequest{Tier: TierStandard, At: started.Add(time.Minute)}},
	}
	d := desiredState(model("fraud", lifecycle(), env("prod", 5)))
	tp := tg.Plan(d, &Observation{At: planNow, Models: []ModelState{observed("fraud", vs, objs)}})
	if len(tp.Actions) != 0 {
		t.Errorf("nothing to do while restores run: %+v", tp.Actions)
	}
	if len(tp.Waits) != 1 || tp.Waits[0].Reason != "artifacts of v5 are not readable yet: waiting for restore (tier Standard, started at 2026-11-26T10:00:00Z) of 2 of 2 objects under s3://b/v5" {
		t.Errorf("waits = %+v", tp.Waits)
	}
}

func TestPlanErrorsAndSuspended(t *testing.T) {
	tg := planTarget(t)
	suspended := model("paused", lifecycle(), env("prod", 1))
	suspended.Suspended = true
	d := desiredState(model("broken", lifecycle(), env("prod", 1)), suspended)
	obs := &Observation{At: planNow, Models: []ModelState{
		{Model: "broken", Error: "locating artifacts of v1: boom"},
		observed("paused", []VersionState{version(1, 900*day, "s3://b/p1"), version(2, 900*day, "s3://b/p2")},
			map[string]Object{"p2/x": {Class: "STANDARD"}}),
	}}
	tp := tg.Plan(d, obs)
	if len(tp.Actions) != 0 || len(tp.Errors) != 1 || tp.Errors[0].Model != "broken" || tp.Errors[0].Target != Name {
		t.Errorf("plan = %+v", tp)
	}
}

func TestValidateActionRejects(t *testing.T) {
	tg := planTarget(t)
	good := Payload{Bucket: "b", Prefix: "p", Versions: []int{1}, To: "GLACIER_IR",
		Objects: []PayloadObject{{Key: "p/a", Size: 1, ETag: `"e"`, From: "STANDARD"}}}
	mk := func(kind string, op reconciler.Op, p Payload) reconciler.Action {
		return reconciler.Action{Target: Name, Kind: kind, Model: "m", Resource: "s3://b/p", Op: op, Payload: mustJSON(p)}
	}
	if err := tg.ValidateAction(mk(KindTransition, reconciler.OpUpdate, good)); err != nil {
		t.Fatal(err)
	}
	outside := good
	outside.Objects = []PayloadObject{{Key: "elsewhere/a", ETag: `"e"`, From: "STANDARD"}}
	same := good
	same.To = "standard"
	for name, a := range map[string]reconciler.Action{
		"key outside prefix":   mk(KindTransition, reconciler.OpUpdate, outside),
		"no-op transition":     mk(KindTransition, reconciler.OpUpdate, same),
		"delete without op":    mk(KindDelete, reconciler.OpUpdate, good),
		"restore without tier": mk(KindRestore, reconciler.OpUpdate, good),
		"unknown kind":         mk("rename", reconciler.OpUpdate, good),
		"other target":         {Target: "mlflow", Kind: KindTransition, Payload: mustJSON(good)},
		"bad payload":          {Target: Name, Kind: KindTransition, Payload: []byte(`{`)},
	} {
		if err := tg.ValidateAction(a); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	base := Config{Client: s3.New(s3.Options{}), Locator: newRegistry(), Versions: newRegistry()}
	for name, mod := range map[string]func(*Config){
		"threshold above CopyObject limit": func(c *Config) { c.CopyThreshold = MaxCopyObjectSize + 1 },
		"part size below S3 minimum":       func(c *Config) { c.MinPartSize = 1 << 20 },
		"tier":                             func(c *Config) { c.RestoreTier = "Fast" },
		"noncurrent policy":                func(c *Config) { c.NoncurrentPolicy = "keep" },
		"no client":                        func(c *Config) { c.Client = nil },
	} {
		c := base
		mod(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	tg, err := New(base)
	if err != nil {
		t.Fatal(err)
	}
	if tg.cfg.CopyThreshold != MaxCopyObjectSize || tg.cfg.NoncurrentPolicy != NoncurrentReport || tg.cfg.RestoreTier != TierStandard {
		t.Errorf("defaults = %+v", tg.cfg)
	}
}
