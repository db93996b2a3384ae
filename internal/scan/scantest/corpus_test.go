package scantest_test

import (
	"context"
	"path"
	"path/filepath"
	"testing"

	"github.com/modelsync/modelsync/internal/scan"
	"github.com/modelsync/modelsync/internal/scan/scantest"
	"github.com/modelsync/modelsync/test/testenv"
)

// TestCorpus scans files written by the real libraries and by attackers,
// each against the verdict (and rule) it must get.
func TestCorpus(t *testing.T) {
	testenv.RequireE2E(t)
	dir := t.TempDir()
	if err := scantest.Build(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	rep, err := scan.Scan(context.Background(), scan.DirSource(dir), scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]scan.FileReport{}
	for _, f := range rep.Files {
		byPath[f.Path] = f
	}
	for _, c := range scantest.Cases {
		t.Run(c.Path, func(t *testing.T) {
			fr, ok := byPath[c.Path]
			if !ok {
				t.Fatalf("not scanned")
			}
			if string(fr.Verdict) != c.Verdict {
				t.Fatalf("%s (%s): verdict %s, want %s; findings %+v", c.Path, c.Why, fr.Verdict, c.Verdict, fr.Findings)
			}
			if c.Rule == "" {
				return
			}
			for _, f := range fr.Findings {
				if f.Rule == c.Rule && f.Verdict == scan.Verdict(c.Verdict) {
					if path.Ext(c.Path) == ".pkl" && f.Global == "" {
						t.Errorf("pickle finding without its global: %+v", f)
					}
					return
				}
			}
			t.Fatalf("%s: no %s finding; findings %+v", c.Path, c.Rule, fr.Findings)
		})
	}
	if rep.Verdict != scan.Dangerous || len(rep.Files) != len(scantest.Cases) {
		t.Errorf("report verdict %s over %d files, want dangerous over %d", rep.Verdict, len(rep.Files), len(scantest.Cases))
	}
	// The benign half alone is clean.
	benign, err := scan.Scan(context.Background(), scan.DirSource(filepath.Join(dir, "benign")), scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if benign.Verdict != scan.Safe {
		t.Errorf("benign corpus: %s", benign.Verdict)
	}
}
