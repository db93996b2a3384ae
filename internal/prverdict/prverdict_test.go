package prverdict

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func verdict(pr int, sha string, minute int, models ...string) Verdict {
	return Verdict{PR: pr, HeadSHA: sha, State: "failure", Models: models, Time: t0.Add(time.Duration(minute) * time.Minute),
		Denies: []Denial{{Rule: "approvals.too_few", Message: fmt.Sprintf("PR %d needs 2 approvals", pr), Model: models[0], Environment: "prod"}}}
}

func lines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		n++
	}
	return n
}

func TestLogKeepsTheNewestPerModelAndReplacesARejudgedHead(t *testing.T) {
	l, err := Open(Options{PerModel: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if err := l.Record(verdict(i, "sha"+fmt.Sprint(i), i, "churn")); err != nil {
			t.Fatal(err)
		}
	}
	_ = l.Record(verdict(9, "a", 1, "fraud", "churn")) // older than all kept: dropped for churn
	got := l.ForModel("churn")
	if len(got) != 3 || got[0].PR != 5 || got[1].PR != 4 || got[2].PR != 3 {
		t.Fatalf("churn verdicts = %+v", got)
	}
	if f := l.ForModel("fraud"); len(f) != 1 || f[0].PR != 9 {
		t.Fatalf("fraud verdicts = %+v", f)
	}
	// A base push re-judges PR 5 at the same head: one entry, the newer.
	seq := l.Seq()
	v := verdict(5, "sha5", 10, "churn")
	v.State, v.Denies = "success", nil
	_ = l.Record(v)
	got = l.ForModel("churn")
	if len(got) != 3 || got[0].PR != 5 || got[0].State != "success" || got[1].PR != 4 {
		t.Fatalf("after re-judging: %+v", got)
	}
	if l.Seq() == seq {
		t.Fatal("Seq did not change on a record")
	}
	// A new head of the same pull request is a new verdict.
	_ = l.Record(verdict(5, "sha5b", 11, "churn"))
	if got = l.ForModel("churn"); got[0].HeadSHA != "sha5b" || got[1].HeadSHA != "sha5" {
		t.Fatalf("new head: %+v", got)
	}
	// A verdict touching no model is not kept anywhere.
	if err := l.Record(Verdict{PR: 7, HeadSHA: "x", State: "error", Time: t0}); err != nil || l.Seq() != seq+2 {
		t.Fatalf("model-less verdict: err %v, seq %d", err, l.Seq())
	}
}

func TestLogBoundsModels(t *testing.T) {
	l, _ := Open(Options{MaxModels: 2})
	_ = l.Record(verdict(1, "a", 1, "m1"))
	_ = l.Record(verdict(2, "b", 2, "m2"))
	_ = l.Record(verdict(3, "c", 3, "m3"))
	if len(l.ForModel("m1")) != 0 || len(l.ForModel("m2")) != 1 || len(l.ForModel("m3")) != 1 {
		t.Fatalf("m1 %v m2 %v m3 %v", l.ForModel("m1"), l.ForModel("m2"), l.ForModel("m3"))
	}
}

func TestLogSurvivesARestartAndCompacts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pr-verdicts.jsonl")
	l, err := Open(Options{File: path, PerModel: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if err := l.Record(verdict(i, "s", i, "churn")); err != nil {
			t.Fatal(err)
		}
	}
	// A damaged line (a crash mid-append) is skipped.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"pr":4,"headSha":"tru`)
	f.Close()
	r, err := Open(Options{File: path, PerModel: 2})
	if err != nil {
		t.Fatal(err)
	}
	got := r.ForModel("churn")
	if len(got) != 2 || got[0].PR != 3 || got[1].PR != 2 || got[0].Denies[0].Rule != "approvals.too_few" || !got[0].Time.Equal(t0.Add(3*time.Minute)) {
		t.Fatalf("after reopening: %+v", got)
	}
	// Re-judging one head many times keeps the file near what is kept.
	for i := range 400 {
		if err := r.Record(verdict(3, "s", 10+i, "churn")); err != nil {
			t.Fatal(err)
		}
	}
	if n := lines(t, path); n > 4*2+100+1 {
		t.Fatalf("file has %d lines for 2 kept verdicts", n)
	}
	again, _ := Open(Options{File: path, PerModel: 2})
	if got := again.ForModel("churn"); len(got) != 2 || got[0].PR != 3 || !got[0].Time.Equal(t0.Add(409*time.Minute)) || got[1].PR != 2 {
		t.Fatalf("after compaction: %+v", got)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
}
