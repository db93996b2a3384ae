package gitsource_test

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/gitsource"
	"github.com/modelsync/modelsync/test/testenv"
)

func newBare(t *testing.T) string {
	t.Helper()
	bare := filepath.Join(t.TempDir(), "models.git")
	git(t, filepath.Dir(bare), "init", "--quiet", "--bare", "--initial-branch=main", bare)
	return bare
}

func TestWorkspaceStatusAndHead(t *testing.T) {
	w := testenv.NewWorkdir(t, "")
	head := seedModels(w)

	// Opening from a subdirectory finds the enclosing work tree.
	ws, err := gitsource.OpenWorkspace(filepath.Join(w.Dir, "models", "churn"))
	if err != nil {
		t.Fatal(err)
	}
	dirty, paths, err := ws.IsDirty()
	if err != nil || dirty || len(paths) != 0 {
		t.Fatalf("clean tree: dirty=%v paths=%v err=%v", dirty, paths, err)
	}
	c, err := ws.HeadCommit()
	if err != nil || c.Hash != head || c.Message != "seed models\n" {
		t.Fatalf("HeadCommit = %+v, %v", c, err)
	}

	w.WriteFile("models/churn/model.yaml", "name: churn\nedited: true\n") // modified
	w.WriteFile("models/new/model.yaml", "name: new\n")                   // untracked
	w.WriteFile(".gitignore", "*.tmp\n")                                  // untracked
	w.WriteFile("scratch.tmp", "ignored\n")                               // ignored
	w.WriteFile("models/fraud/model.yaml", "name: fraud\nstaged: 1\n")
	w.Run("add", "models/fraud/model.yaml") // staged
	dirty, paths, err = ws.IsDirty()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{".gitignore", "models/churn/model.yaml", "models/fraud/model.yaml", "models/new/model.yaml"}
	if !dirty || !slices.Equal(paths, want) {
		t.Fatalf("IsDirty = %v %v, want true %v", dirty, paths, want)
	}

	if _, err := gitsource.OpenWorkspace(t.TempDir()); !errors.Is(err, gitsource.ErrNotFound) {
		t.Fatalf("OpenWorkspace outside a repository = %v, want ErrNotFound", err)
	}
	empty := testenv.NewWorkdir(t, "")
	ews, err := gitsource.OpenWorkspace(empty.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ews.HeadCommit(); !errors.Is(err, gitsource.ErrNotFound) {
		t.Fatalf("HeadCommit without commits = %v, want ErrNotFound", err)
	}
}

func TestWorkspaceReleaseTagsAndChangedSince(t *testing.T) {
	w := testenv.NewWorkdir(t, "")
	first := seedModels(w)
	w.Tag("churn/v1.0.0", "release churn")
	w.Tag("fraud/v1.0.0", "")
	w.Tag("fraud/v01.0.0", "")
	w.Tag("unrelated", "")

	ws, err := gitsource.OpenWorkspace(w.Dir)
	if err != nil {
		t.Fatal(err)
	}
	tags, bad, err := ws.ReleaseTags()
	if err != nil {
		t.Fatal(err)
	}
	if got := tagNames(tags); !slices.Equal(got, []string{"churn/v1.0.0=" + first, "fraud/v1.0.0=" + first}) {
		t.Fatalf("ReleaseTags = %v", got)
	}
	if len(bad) != 1 || !strings.Contains(bad[0].Error(), "fraud/v01.0.0") || !strings.Contains(bad[0].Error(), "leading zero") {
		t.Fatalf("bad tags = %v", bad)
	}

	w.WriteFile("models/fraud/model.yaml", "name: fraud\nrev: 2\n")
	w.WriteFile("models/risk/model.yaml", "name: risk\n")
	w.Commit("touch fraud, add risk")

	cases := map[string]bool{
		"models/churn":  false,
		"models/churn/": false,
		"models/fraud":  true,
		"models/risk":   true,  // appeared
		"models/absent": false, // absent on both sides
	}
	for dir, want := range cases {
		got, err := ws.ChangedSince(first, dir)
		if err != nil || got != want {
			t.Errorf("ChangedSince(%s) = %v, %v; want %v", dir, got, err, want)
		}
	}
	w.Remove("models/churn")
	w.Commit("drop churn")
	if got, err := ws.ChangedSince(first, "models/churn"); err != nil || !got {
		t.Fatalf("ChangedSince after deleting the model = %v, %v", got, err)
	}
	for _, bad := range []string{"", ".", "../x"} {
		if _, err := ws.ChangedSince(first, bad); err == nil {
			t.Errorf("ChangedSince(%q) succeeded", bad)
		}
	}
	if _, err := ws.ChangedSince(strings.Repeat("c", 40), "models/churn"); !errors.Is(err, gitsource.ErrNotFound) {
		t.Fatalf("ChangedSince(unknown commit) = %v, want ErrNotFound", err)
	}
}

func TestWorkspaceTagAndPush(t *testing.T) {
	bare := newBare(t)
	w := testenv.NewWorkdir(t, bare)
	head := seedModels(w)
	w.Push()

	ws, err := gitsource.OpenWorkspace(w.Dir)
	if err != nil {
		t.Fatal(err)
	}
	tagger := gitsource.Signature{Name: "Release Bot", Email: "bot@example.invalid", When: time.Unix(1700001234, 0).UTC()}
	if err := ws.CreateAnnotatedTag("churn/v1.1.0", "churn 1.1.0\n\nnew features", tagger); err != nil {
		t.Fatal(err)
	}
	if got := w.Run("cat-file", "-t", "churn/v1.1.0"); got != "tag" {
		t.Fatalf("tag type = %s, want annotated", got)
	}
	if got := w.Run("rev-parse", "churn/v1.1.0^{commit}"); got != head {
		t.Fatalf("tag points at %s, want HEAD %s", got, head)
	}
	if got := w.Run("for-each-ref", "--format=%(taggername) %(taggeremail) %(taggerdate:unix) %(contents:subject)", "refs/tags/churn/v1.1.0"); got != "Release Bot <bot@example.invalid> 1700001234 churn 1.1.0" {
		t.Fatalf("tag metadata = %q", got)
	}
	if err := ws.CreateAnnotatedTag("churn/v1.1.0", "again", tagger); !errors.Is(err, gitsource.ErrTagExists) {
		t.Fatalf("duplicate tag: %v", err)
	}
	if err := ws.CreateAnnotatedTag("bad..name", "m", tagger); err == nil {
		t.Fatal("invalid tag name accepted")
	}
	if err := ws.CreateAnnotatedTag("churn/v1.1.1", " ", tagger); err == nil {
		t.Fatal("empty message accepted")
	}

	ctx := t.Context()
	if err := ws.PushTag(ctx, "origin", "churn/v1.1.0", gitsource.Auth{}); err != nil {
		t.Fatal(err)
	}
	if got := git(t, bare, "rev-parse", "churn/v1.1.0^{commit}"); got != head {
		t.Fatalf("remote tag at %s, want %s", got, head)
	}
	if got := git(t, bare, "cat-file", "-t", "churn/v1.1.0"); got != "tag" {
		t.Fatalf("remote tag type %s", got)
	}
	// Idempotent.
	if err := ws.PushTag(ctx, "origin", "churn/v1.1.0", gitsource.Auth{}); err != nil {
		t.Fatalf("re-push of identical tag: %v", err)
	}

	// Someone else released churn/v1.2.0 first, on another commit: our push
	// must be refused rather than overwrite it.
	other := testenv.NewWorkdir(t, bare)
	other.WriteFile("models/churn/model.yaml", "name: churn\nother: 1\n")
	other.Commit("other change")
	other.Tag("churn/v1.2.0", "theirs")
	other.Push()
	if err := ws.CreateAnnotatedTag("churn/v1.2.0", "ours", tagger); err != nil {
		t.Fatal(err)
	}
	theirs := git(t, bare, "rev-parse", "churn/v1.2.0")
	err = ws.PushTag(ctx, "origin", "churn/v1.2.0", gitsource.Auth{})
	if !errors.Is(err, gitsource.ErrTagExists) || !strings.Contains(err.Error(), "churn/v1.2.0") || !strings.Contains(err.Error(), theirs) {
		t.Fatalf("push over a different remote tag = %v, want a refusal naming the tag", err)
	}
	if got := git(t, bare, "rev-parse", "churn/v1.2.0"); got != theirs {
		t.Fatalf("remote tag moved from %s to %s", theirs, got)
	}

	if err := ws.PushTag(ctx, "origin", "churn/v9.9.9", gitsource.Auth{}); !errors.Is(err, gitsource.ErrNotFound) {
		t.Fatalf("push of a missing tag = %v, want ErrNotFound", err)
	}
	if err := ws.PushTag(ctx, "upstream", "churn/v1.1.0", gitsource.Auth{}); !errors.Is(err, gitsource.ErrNotFound) {
		t.Fatalf("push to an unknown remote = %v, want ErrNotFound", err)
	}
}
