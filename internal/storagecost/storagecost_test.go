package storagecost

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/storageclass"
	"github.com/modelsync/modelsync/reconciler"
)

// hundredVersions is the original design's example: 100 versions of a 7 GB
// model, one object each, all in one class.
func hundredVersions(class string, objectBytes int64) reconciler.ArtifactUsage {
	m := reconciler.ArtifactUsage{Model: "llm"}
	for v := 1; v <= 100; v++ {
		m.Objects = append(m.Objects, reconciler.StoredObject{Versions: []int{v}, Bucket: "b", Key: "p/" + string(rune('a'+v%26)), Class: class, Bytes: objectBytes})
	}
	return m
}

// day is one day of early-deletion arithmetic.
const day = 24 * time.Hour

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// The design said: 100 versions × 7 GB cost ≈ $16.1/month in STANDARD and
// ≈ $2.8/month in GLACIER_IR. S3 bills binary GB, so those figures hold for
// 7 GiB models (700 GiB × $0.023 = $16.10). Models of 7 decimal GB (7e9
// bytes) are 651.9 billing GB and cost $14.99.
func TestCostReproducesDesignArithmetic(t *testing.T) {
	p := DefaultPriceTable()
	at := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	const gib7 = 7 << 30
	const overhead = 100 * 8 * 1024 // GLACIER/DEEP_ARCHIVE: 8 KiB per object at the STANDARD rate…
	const overheadArchive = 100 * 32 * 1024
	cases := []struct {
		class string
		bytes int64
		want  float64
	}{
		{storageclass.Standard, gib7, 16.10},
		{storageclass.GlacierIR, gib7, 2.80},
		// Today's GLACIER Flexible Retrieval price is $0.0036 (the design's
		// $0.004 is GLACIER_IR's, and GLACIER's before 2021).
		{storageclass.Glacier, gib7, 700*0.0036 + gb(overhead)*0.023 + gb(overheadArchive)*0.0036},
		{storageclass.DeepArchive, gib7, 700*0.00099 + gb(overhead)*0.023 + gb(overheadArchive)*0.00099},
		{storageclass.Standard, 7_000_000_000, 14.994},
	}
	for _, c := range cases {
		r := p.Report(at, hundredVersions(c.class, c.bytes))
		if !near(r.Total.Monthly, c.want, 0.001) {
			t.Errorf("%s, 100 × %d bytes: $%.4f/month, want $%.4f", c.class, c.bytes, r.Total.Monthly, c.want)
		}
		if !near(r.Total.AllStandard, float64(100*c.bytes)/BillingGB*0.023, 1e-9) {
			t.Errorf("%s: all-STANDARD $%.4f", c.class, r.Total.AllStandard)
		}
		if !near(r.Total.Saving, r.Total.AllStandard-r.Total.Monthly, 1e-9) {
			t.Errorf("%s: saving $%.4f", c.class, r.Total.Saving)
		}
	}
	// The rounded figures the design quoted, checked as such.
	std := p.Report(at, hundredVersions(storageclass.Standard, gib7)).Total.Monthly
	gir := p.Report(at, hundredVersions(storageclass.GlacierIR, gib7)).Total.Monthly
	gla := p.Report(at, hundredVersions(storageclass.Glacier, gib7)).Total.Monthly
	deep := p.Report(at, hundredVersions(storageclass.DeepArchive, gib7)).Total.Monthly
	got := [4]string{fmt.Sprintf("%.1f", std), fmt.Sprintf("%.1f", gir), fmt.Sprintf("%.2f", gla), fmt.Sprintf("%.2f", deep)}
	if got != [4]string{"16.1", "2.8", "2.52", "0.69"} {
		t.Errorf("STANDARD, GLACIER_IR, GLACIER, DEEP_ARCHIVE = %v", got)
	}
}

func TestCostMinimumSizeAndEarlyDeletion(t *testing.T) {
	p := DefaultPriceTable()
	at := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	m := reconciler.ArtifactUsage{Model: "churn", Objects: []reconciler.StoredObject{
		// A 1 KiB MLmodel file in GLACIER_IR is billed as 128 KiB.
		{Versions: []int{3}, Bucket: "b", Key: "v3/MLmodel", Class: storageclass.GlacierIR, Bytes: 1024, Since: at.Add(-10 * day), Planned: storageclass.Standard},
		// 30 GiB moved to GLACIER_IR 30 days ago and rolled back now: 60 of
		// its 90 days remain, billed at $0.004 × 30 GiB × 60/30.
		{Versions: []int{3}, Bucket: "b", Key: "v3/weights", Class: storageclass.GlacierIR, Bytes: 30 << 30, Since: at.Add(-30 * day), Planned: storageclass.Standard},
		// Old enough: no charge.
		{Versions: []int{1}, Bucket: "b", Key: "v1/weights", Class: storageclass.GlacierIR, Bytes: 1 << 30, Since: at.Add(-200 * day), Planned: reconciler.PlannedDelete},
		{Versions: []int{4}, Bucket: "b", Key: "v4/weights", Class: storageclass.Standard, Bytes: 2 << 30},
	}}
	r := p.Report(at, m)
	small := gb(128*1024) * 0.004
	wantMonthly := small + 30*0.004 + 0.004 + 2*0.023
	if !near(r.Total.Monthly, wantMonthly, 1e-9) {
		t.Errorf("monthly $%.6f, want $%.6f", r.Total.Monthly, wantMonthly)
	}
	wantPlanned := gb(1024)*0.023 + 30*0.023 + 2*0.023
	if !near(r.Total.Planned, wantPlanned, 1e-9) {
		t.Errorf("planned $%.6f, want $%.6f", r.Total.Planned, wantPlanned)
	}
	wantEarly := small*80/30 + 30*0.004*60/30
	if !near(r.EarlyDeletion, wantEarly, 1e-9) {
		t.Errorf("early deletion $%.6f, want $%.6f", r.EarlyDeletion, wantEarly)
	}
	var rollback, deletion *PlannedChange
	for i, c := range r.Changes {
		switch c.To {
		case storageclass.Standard:
			rollback = &r.Changes[i]
		case reconciler.PlannedDelete:
			deletion = &r.Changes[i]
		}
	}
	if rollback == nil || deletion == nil || len(r.Changes) != 2 {
		t.Fatalf("changes = %+v", r.Changes)
	}
	if rollback.Objects != 2 || !near(rollback.Retrieval, gb(30<<30+1024)*0.03, 1e-9) || !near(rollback.Requests, 2*0.005/1000, 1e-12) {
		t.Errorf("rollback change = %+v", *rollback)
	}
	if deletion.EarlyDeletion != 0 || deletion.Retrieval != 0 || deletion.Requests != 0 {
		t.Errorf("deletion of an old object costs nothing once: %+v", *deletion)
	}

	var text, js bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"as of 2026-11-26", "GLACIER_IR", "Saving against all-STANDARD", "EARLY-DELETION", "v3"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.AsOf != "2026-11-26" || len(back.Rows) != len(r.Rows) {
		t.Errorf("JSON round trip: %v, %+v", err, back)
	}
}

func TestCostUnpricedClassAndSharedObjects(t *testing.T) {
	r := DefaultPriceTable().Report(time.Now(), reconciler.ArtifactUsage{Model: "m", Objects: []reconciler.StoredObject{
		{Versions: []int{1, 2}, Bucket: "b", Key: "shared/a", Class: "REDUCED_REDUNDANCY", Bytes: 1 << 30},
	}})
	if len(r.Unpriced) != 1 || r.Unpriced[0] != "REDUCED_REDUNDANCY" || r.Total.Monthly != 0 {
		t.Errorf("unpriced = %v, monthly %v", r.Unpriced, r.Total.Monthly)
	}
	if len(r.Rows) != 1 || r.Total.Objects != 1 || r.Total.Bytes != 1<<30 {
		t.Errorf("a shared object counts once: rows %+v total %+v", r.Rows, r.Total)
	}
}

func TestLoadPriceTable(t *testing.T) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(DefaultPriceTable()); err != nil {
		t.Fatal(err)
	}
	p, err := LoadPriceTable(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if p.Classes[storageclass.Glacier].StorageGBMonth != 0.0036 || p.AsOf != "2026-11-26" {
		t.Errorf("loaded %+v", p)
	}
	for _, bad := range []string{
		`{"asOf":"yesterday","classes":{"STANDARD":{"storageGBMonth":0.02}}}`,
		`{"asOf":"2026-01-01","classes":{"GLACIER":{"storageGBMonth":0.02}}}`,
		`{"asOf":"2026-01-01","classes":{"STANDARD":{"storageGBMonth":-1}}}`,
		`{"asOf":"2026-01-01","classes":{"STANDARD":{"price":1}}}`,
	} {
		if _, err := LoadPriceTable(strings.NewReader(bad)); err == nil {
			t.Errorf("LoadPriceTable accepted %s", bad)
		}
	}
}
