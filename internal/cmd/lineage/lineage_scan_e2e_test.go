package lineage_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/lineage"
	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/internal/scan"
	"github.com/modelsync/modelsync/internal/scanrecord"
	"github.com/modelsync/modelsync/internal/scanrecord/scanrecordtest"
	"github.com/modelsync/modelsync/test/testenv"
)

// TestLineageShowsScan: on the oldest supported MLflow (whose tag values
// hold 5,000 characters, so the per-file list spans several tags), lineage
// says a version was not scanned and what to run, then, once a scan is
// recorded, shows its result, digest, scanner and findings file by file,
// in text and JSON.
func TestLineageShowsScan(t *testing.T) {
	s := testenv.NewMLflow(t, testenv.MLflowOptions{Major: 2, Floor: true})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := mlflowclient.New(mlflowclient.Config{TrackingURI: s.URL})
	if err != nil {
		t.Fatal(err)
	}
	model := testenv.UniqueName("churn")
	if v := scanrecordtest.NewVersion(t, c, testenv.UniqueName("exp"), model); v != 1 {
		t.Fatalf("registered version %d, want 1", v)
	}

	text := run(t, s, model)
	if want := fmt.Sprintf("Scan: not scanned; run: modelsync scan %s 1", model); !strings.Contains(text, want) {
		t.Fatalf("unscanned version: text lacks %q:\n%s", want, text)
	}
	var got lineage.Lineage
	if out := run(t, s, model, "-o", "json"); json.Unmarshal([]byte(out), &got) != nil || got.Scan != nil || !strings.Contains(out, `"scan": null`) {
		t.Fatalf("unscanned version: JSON scan should be null:\n%s", out)
	}

	// A real scan of a model directory: a payload, and enough clean files
	// that the per-file list needs several tags.
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("model.pkl", "\x80\x02}q\x00.")
	write("extra/hook.pkl", "\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.")
	for i := range 60 {
		write(fmt.Sprintf("shards/part-%02d.bin", i), fmt.Sprintf("shard %d", i))
	}
	rep, err := scan.Scan(ctx, scan.DirSource(dir), scan.Options{})
	if err != nil || rep.Verdict != scan.Dangerous {
		t.Fatalf("scan: %v, verdict %s", err, rep.Verdict)
	}
	fl := scanrecord.ListFiles(rep)
	rec := scanrecord.Record{Result: rep.Verdict, Digest: rep.Digest, Scanner: rep.Scanner, ScannedAt: time.Now().UTC().Truncate(time.Second),
		Findings: scanrecord.Summarize(rep), Files: &fl}
	tags := rec.Tags()
	if n := tags[scanrecord.TagFiles]; n == "1" || n == "" {
		t.Fatalf("the list fits one tag (%s parts); the test means to span several", n)
	}
	tags[scanrecord.ApprovedTag("prod")] = rep.Digest
	if err := scanrecord.WriteTags(ctx, c, model, 1, tags); err != nil {
		t.Fatal(err)
	}

	out := run(t, s, model, "-o", "json")
	got = lineage.Lineage{}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	sc := got.Scan
	if sc == nil || sc.Result != scan.Dangerous || sc.Digest != rep.Digest || sc.Scanner != scan.ScannerVersion || !sc.Current ||
		sc.Findings.Dangerous != 1 || sc.Approved["prod"] != rep.Digest || len(sc.Files) != len(rep.Files) {
		t.Fatalf("JSON scan %+v", sc)
	}
	var hook *lineage.ScanFile
	for i, f := range sc.Files {
		if f.Path == "extra/hook.pkl" {
			hook = &sc.Files[i]
		}
	}
	if hook == nil || hook.Verdict != scan.Dangerous || len(hook.Findings) != 1 || hook.Findings[0].Global != "posix.system" || hook.Findings[0].Opcode != "GLOBAL" {
		t.Fatalf("the payload's file in JSON: %+v", hook)
	}

	text = run(t, s, model)
	for _, want := range []string{"Scan: dangerous (" + scan.ScannerVersion, rep.Digest, "1 dangerous, 0 unknown in 62 file(s)",
		"DANGEROUS  extra/hook.pkl (pickle)", "GLOBAL posix.system  pickle.denied_global", "approved in prod  " + rep.Digest} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, scanrecord.TagFiles) {
		t.Errorf("the per-file tags are printed as version tags:\n%s", text)
	}
}
