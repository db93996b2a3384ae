package gitsource_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/modelsync/modelsync/internal/gitsource"
	"github.com/modelsync/modelsync/internal/release"
	"github.com/modelsync/modelsync/test/testenv"
)

// git runs the git CLI in dir with a clean configuration.
func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.invalid",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.invalid")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func openSource(t testing.TB, url string, depth int) *gitsource.Source {
	t.Helper()
	src, err := gitsource.Open(t.Context(), gitsource.Options{URL: url, CacheDir: t.TempDir(), Depth: depth})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := src.Close(); err != nil {
			t.Error(err)
		}
	})
	return src
}

func mustSync(t testing.TB, src *gitsource.Source) gitsource.SyncResult {
	t.Helper()
	res, err := src.Sync(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func tagNames(tags []release.Tag) []string {
	var out []string
	for _, tg := range tags {
		out = append(out, tg.Name+"="+tg.Commit)
	}
	return out
}

func badTagText(errs []error) string {
	var s []string
	for _, e := range errs {
		s = append(s, e.Error())
	}
	return strings.Join(s, "\n")
}

// seedModels writes a models repository with two models.
func seedModels(w *testenv.Workdir) string {
	w.WriteFile("modelsync.yaml", "environments: [dev, staging, prod]\n")
	w.WriteFile("models/churn/model.yaml", "name: churn\n")
	w.WriteFile("models/churn/serving/kustomization.yaml", "resources: [isvc.yaml]\n")
	w.WriteFile("models/churn/serving/isvc.yaml", "kind: InferenceService\n")
	w.WriteFile("models/fraud/model.yaml", "name: fraud\n")
	return w.Commit("seed models")
}

func TestSyncLocalRepository(t *testing.T) {
	for _, scheme := range []string{"path", "file://"} {
		t.Run(scheme, func(t *testing.T) {
			w := testenv.NewWorkdir(t, "")
			first := seedModels(w)
			w.Tag("churn/v1.0.0", "release churn 1.0.0")  // annotated
			w.Tag("fraud/v0.2.0-rc.1", "")                // lightweight
			w.Tag("churn/v1.2", "malformed")              // looks like a release tag
			w.Tag("Churn/v1.0.0", "")                     // uppercase model
			w.Tag("nightly", "")                          // not a release tag
			w.Tag("v3.0.0", "")                           // repo-level tag, ignored
			w.Run("tag", "treetag/v1.0.0", "HEAD^{tree}") // release-shaped, but not a commit

			url := w.Dir
			if scheme == "file://" {
				url = "file://" + w.Dir
			}
			src := openSource(t, url, 0)

			res := mustSync(t, src)
			if !res.Changed {
				t.Fatal("first Sync reported no change")
			}
			if got := res.Heads["main"]; got != first || len(res.Heads) != 1 {
				t.Fatalf("Heads = %v, want main=%s", res.Heads, first)
			}
			want := []string{"churn/v1.0.0=" + first, "fraud/v0.2.0-rc.1=" + first}
			if got := tagNames(res.Tags); !slices.Equal(got, want) {
				t.Fatalf("Tags = %v, want %v", got, want)
			}
			if len(res.BadTags) != 3 {
				t.Fatalf("BadTags = %v, want 3 (churn/v1.2, Churn/v1.0.0, treetag/v1.0.0)", res.BadTags)
			}
			bad := badTagText(res.BadTags)
			for _, name := range []string{`"churn/v1.2"`, `"Churn/v1.0.0"`, `"treetag/v1.0.0"`, "not a commit"} {
				if !strings.Contains(bad, name) {
					t.Errorf("BadTags do not mention %s:\n%s", name, bad)
				}
			}
			for _, e := range res.BadTags {
				if !errors.Is(e, release.ErrInvalidTag) {
					t.Errorf("bad tag error %v does not match release.ErrInvalidTag", e)
				}
			}

			again := mustSync(t, src)
			if again.Changed {
				t.Fatal("second Sync without remote change reported Changed")
			}
			if again.Heads["main"] != first || !slices.Equal(tagNames(again.Tags), want) {
				t.Fatalf("unchanged Sync lost state: %+v", again)
			}

			w.WriteFile("models/fraud/model.yaml", "name: fraud\nversion: 2\n")
			second := w.Commit("bump fraud")
			w.Tag("fraud/v1.0.0", "release fraud")
			w.Run("branch", "feature")
			res = mustSync(t, src)
			if !res.Changed || res.Heads["main"] != second || res.Heads["feature"] != second {
				t.Fatalf("after commit: %+v, want main=feature=%s", res, second)
			}
			if got, _ := release.Latest(res.Tags, "fraud", false); got.Commit != second {
				t.Fatalf("latest fraud tag = %+v, want commit %s", got, second)
			}

			// Deleted and moved refs are mirrored: prune and forced update.
			w.Run("branch", "-D", "feature")
			w.Run("tag", "-d", "churn/v1.0.0", "churn/v1.2")
			w.Run("tag", "-f", "fraud/v0.2.0-rc.1", second)
			res = mustSync(t, src)
			if !res.Changed {
				t.Fatal("ref deletion not detected")
			}
			if _, ok := res.Heads["feature"]; ok {
				t.Fatalf("deleted branch still present: %v", res.Heads)
			}
			want = []string{"fraud/v0.2.0-rc.1=" + second, "fraud/v1.0.0=" + second}
			if got := tagNames(res.Tags); !slices.Equal(got, want) {
				t.Fatalf("Tags after prune = %v, want %v", got, want)
			}
			if got := git(t, src.Dir(), "for-each-ref", "--format=%(refname)", "refs/tags/churn/"); got != "" {
				t.Fatalf("cache still has pruned tags: %s", got)
			}

			// The cache is an ordinary bare repository git itself accepts.
			if got := git(t, src.Dir(), "rev-parse", "--is-bare-repository"); got != "true" {
				t.Fatalf("cache is not bare: %s", got)
			}
			git(t, src.Dir(), "fsck", "--no-progress", "--strict")
		})
	}
}

func TestOpenReusesCache(t *testing.T) {
	w := testenv.NewWorkdir(t, "")
	head := seedModels(w)
	cache := t.TempDir()
	ctx := t.Context()

	src, err := gitsource.Open(ctx, gitsource.Options{URL: w.Dir, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, src)

	// A second Open (a restarted process) finds the objects and reports no
	// change; a relative path to the same repository maps to the same cache.
	rel, err := filepath.Rel(mustGetwd(t), w.Dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := gitsource.Open(ctx, gitsource.Options{URL: rel, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if again.Dir() != src.Dir() {
		t.Fatalf("cache dir %s, want reuse of %s", again.Dir(), src.Dir())
	}
	res := mustSync(t, again)
	if res.Changed || res.Heads["main"] != head {
		t.Fatalf("reopened cache: %+v, want unchanged main=%s", res, head)
	}

	// Another repository gets its own cache directory.
	other := testenv.NewWorkdir(t, "")
	seedModels(other)
	o, err := gitsource.Open(ctx, gitsource.Options{URL: other.Dir, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if o.Dir() == src.Dir() || filepath.Dir(o.Dir()) != cache {
		t.Fatalf("other repo cache %s, first %s", o.Dir(), src.Dir())
	}

	// A cache whose remote was changed behind our back is refused, not reused.
	git(t, src.Dir(), "remote", "set-url", "origin", other.Dir)
	_, err = gitsource.Open(ctx, gitsource.Options{URL: w.Dir, CacheDir: cache})
	if err == nil || !strings.Contains(err.Error(), "mirrors "+other.Dir) {
		t.Fatalf("Open with mismatching cache remote: %v", err)
	}

	// A non-repository directory at the cache path is refused, not deleted.
	if err := os.RemoveAll(src.Dir()); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(src.Dir(), "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = gitsource.Open(ctx, gitsource.Options{URL: w.Dir, CacheDir: cache})
	if err == nil || !strings.Contains(err.Error(), "not a Git repository") {
		t.Fatalf("Open over a foreign directory: %v", err)
	}
	if _, statErr := os.Stat(filepath.Join(src.Dir(), "keep")); statErr != nil {
		t.Fatalf("foreign directory content was touched: %v", statErr)
	}
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

func TestOpenValidation(t *testing.T) {
	ctx := t.Context()
	cases := []struct {
		opts gitsource.Options
		want string
	}{
		{gitsource.Options{CacheDir: t.TempDir()}, "URL is empty"},
		{gitsource.Options{URL: "https://example.invalid/m.git"}, "cache directory"},
		{gitsource.Options{URL: "https://example.invalid/m.git", CacheDir: t.TempDir(), Depth: -1}, "negative depth"},
		{gitsource.Options{URL: "https://example.invalid/m.git", CacheDir: t.TempDir(), CacheSize: -1}, "negative cache size"},
	}
	for _, tc := range cases {
		if _, err := gitsource.Open(ctx, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%+v) = %v, want error containing %q", tc.opts, err, tc.want)
		}
	}
}

func TestSyncMissingLocalRepository(t *testing.T) {
	src := openSource(t, filepath.Join(t.TempDir(), "does-not-exist"), 0)
	_, err := src.Sync(t.Context())
	if !errors.Is(err, gitsource.ErrNotFound) {
		t.Fatalf("Sync of a missing repository = %v, want ErrNotFound", err)
	}
	if gitsource.IsRetryable(err) {
		t.Fatalf("missing repository reported retryable: %v", err)
	}
}

func TestSyncEmptyAndEmptiedRemote(t *testing.T) {
	bare := filepath.Join(t.TempDir(), "m.git")
	git(t, filepath.Dir(bare), "init", "--quiet", "--bare", "--initial-branch=main", bare)
	src := openSource(t, bare, 0)
	res := mustSync(t, src)
	if res.Changed || len(res.Heads) != 0 || len(res.Tags) != 0 {
		t.Fatalf("empty remote: %+v", res)
	}
	if _, err := src.Branch("main"); !errors.Is(err, gitsource.ErrNotFound) {
		t.Fatalf("Branch on empty cache = %v, want ErrNotFound", err)
	}

	w := testenv.NewWorkdir(t, bare)
	seedModels(w)
	w.Tag("churn/v1.0.0", "r")
	w.Push()
	if res = mustSync(t, src); !res.Changed || len(res.Tags) != 1 {
		t.Fatalf("after push: %+v", res)
	}

	// Every ref deleted on the remote: the cache follows.
	git(t, bare, "update-ref", "-d", "refs/tags/churn/v1.0.0")
	git(t, bare, "update-ref", "-d", "refs/heads/main")
	res = mustSync(t, src)
	if !res.Changed || len(res.Heads) != 0 || len(res.Tags) != 0 {
		t.Fatalf("after emptying remote: %+v", res)
	}
}

func TestBranchAndCommit(t *testing.T) {
	w := testenv.NewWorkdir(t, "")
	head := seedModels(w)
	src := openSource(t, w.Dir, 0)
	mustSync(t, src)

	c, err := src.Branch("main")
	if err != nil {
		t.Fatal(err)
	}
	if c.Hash != head || c.Message != "seed models\n" || c.AuthorName != "modelsync test" ||
		c.AuthorEmail != "test@modelsync.invalid" || c.When.Unix() != 1700000000 {
		t.Fatalf("Branch(main) = %+v", c)
	}
	byHash, err := src.Commit(strings.ToUpper(head))
	if err != nil || byHash.Hash != head {
		t.Fatalf("Commit(%s) = %+v, %v", head, byHash, err)
	}
	if _, err := src.Branch("nope"); !errors.Is(err, gitsource.ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("Branch(nope) = %v, want ErrNotFound naming the branch", err)
	}
	if _, err := src.Commit(strings.Repeat("a", 40)); !errors.Is(err, gitsource.ErrNotFound) {
		t.Fatalf("Commit(unknown) = %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"abc", strings.Repeat("z", 40), ""} {
		if _, err := src.Commit(bad); err == nil || errors.Is(err, gitsource.ErrNotFound) {
			t.Fatalf("Commit(%q) = %v, want invalid-hash error", bad, err)
		}
	}
}

func TestChangedPaths(t *testing.T) {
	w := testenv.NewWorkdir(t, "")
	first := seedModels(w)
	w.WriteFile("models/churn/model.yaml", "name: churn\nprod: 3\n")
	w.Remove("models/fraud")
	w.WriteFile("models/risk/model.yaml", "name: risk\n")
	w.Run("mv", "models/churn/serving/isvc.yaml", "models/churn/serving/inference.yaml")
	second := w.Commit("change")
	if err := os.Chmod(filepath.Join(w.Dir, "modelsync.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	third := w.Commit("chmod")

	src := openSource(t, w.Dir, 0)
	mustSync(t, src)

	got, err := src.ChangedPaths(first, second)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"models/churn/model.yaml",
		"models/churn/serving/inference.yaml",
		"models/churn/serving/isvc.yaml",
		"models/fraud/model.yaml",
		"models/risk/model.yaml",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ChangedPaths(first, second) = %v, want %v", got, want)
	}
	if got, err = src.ChangedPaths(second, third); err != nil || !slices.Equal(got, []string{"modelsync.yaml"}) {
		t.Fatalf("mode change: %v, %v", got, err)
	}
	if got, err = src.ChangedPaths(third, third); err != nil || len(got) != 0 {
		t.Fatalf("same commit: %v, %v", got, err)
	}
	if got, err = src.ChangedPaths("", first); err != nil || !slices.Equal(got, []string{
		"models/churn/model.yaml", "models/churn/serving/isvc.yaml", "models/churn/serving/kustomization.yaml",
		"models/fraud/model.yaml", "modelsync.yaml",
	}) {
		t.Fatalf("from empty: %v, %v", got, err)
	}
	if _, err := src.ChangedPaths(first, strings.Repeat("b", 40)); !errors.Is(err, gitsource.ErrNotFound) {
		t.Fatalf("unknown commit: %v", err)
	}
}

// Shallow mirrors must keep working across later fetches of new commits and
// of tags that point below the shallow boundary.
func TestSyncShallow(t *testing.T) {
	for _, depth := range []int{1, 2} {
		t.Run("depth="+string(rune('0'+depth)), func(t *testing.T) { testSyncShallow(t, depth) })
	}
}

func testSyncShallow(t *testing.T, depth int) {
	w := testenv.NewWorkdir(t, "")
	old := seedModels(w)
	for i := range 3 {
		w.WriteFile("models/churn/model.yaml", "name: churn\nrev: "+string(rune('a'+i))+"\n")
		w.Commit("churn rev")
	}
	src := openSource(t, w.Dir, depth)
	res := mustSync(t, src)
	head := res.Heads["main"]
	if n := strings.Count(git(t, src.Dir(), "rev-list", "--all"), "\n") + 1; n != depth {
		t.Fatalf("depth-%d cache holds %d commits", depth, n)
	}

	// New commit on main, and a release tag on a commit below the boundary.
	w.WriteFile("models/fraud/model.yaml", "name: fraud\nrev: 2\n")
	next := w.Commit("fraud rev")
	w.Run("tag", "-a", "-m", "old release", "churn/v1.0.0", old)
	res = mustSync(t, src)
	if !res.Changed || res.Heads["main"] != next {
		t.Fatalf("shallow incremental: %+v, want main=%s", res, next)
	}
	if got := tagNames(res.Tags); !slices.Equal(got, []string{"churn/v1.0.0=" + old}) {
		t.Fatalf("shallow tags: %v", got)
	}
	fsys, err := src.Tree(old)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := fsys.(interface{ ReadFile(string) ([]byte, error) }).ReadFile("models/churn/model.yaml"); err != nil || string(b) != "name: churn\n" {
		t.Fatalf("tagged commit below the boundary: %q, %v", b, err)
	}
	if paths, err := src.ChangedPaths(head, next); err != nil || !slices.Equal(paths, []string{"models/fraud/model.yaml"}) {
		t.Fatalf("ChangedPaths in shallow cache: %v, %v", paths, err)
	}
	if again := mustSync(t, src); again.Changed {
		t.Fatal("shallow cache: unchanged remote reported Changed")
	}
	git(t, src.Dir(), "fsck", "--no-progress", "--strict")
}

// ChangedPaths agrees with `git diff --name-only --no-renames` where
// names sort differently in Git's trees than as strings ("a.b" before
// "a/"), where a file becomes a directory of the same name and back, for
// links, executable bits and deep moves.
func TestChangedPathsMatchesGit(t *testing.T) {
	w := testenv.NewWorkdir(t, "")
	w.WriteFile("a/x", "1\n")
	w.WriteFile("a.b", "1\n")
	w.WriteFile("a-c/y", "1\n")
	w.WriteFile("f", "file\n")
	w.WriteFile("deep/1/2/3/z", "z\n")
	w.WriteFile("same/s", "s\n")
	commits := []string{w.Commit("one")}
	w.WriteFile("a/x", "2\n")
	w.WriteFile("a.b", "2\n")
	w.Remove("f")
	w.WriteFile("f/inside", "now a directory\n")
	if err := os.Symlink("a.b", filepath.Join(w.Dir, "link")); err != nil {
		t.Fatal(err)
	}
	w.Run("mv", "deep/1", "moved")
	commits = append(commits, w.Commit("two"))
	w.Remove("f")
	w.WriteFile("f", "a file again\n")
	if err := os.Chmod(filepath.Join(w.Dir, "a-c/y"), 0o755); err != nil {
		t.Fatal(err)
	}
	w.Remove("link")
	if err := os.Symlink("a-c", filepath.Join(w.Dir, "link")); err != nil {
		t.Fatal(err)
	}
	commits = append(commits, w.Commit("three"))

	src := openSource(t, w.Dir, 0)
	mustSync(t, src)
	for i := range commits {
		for j := range commits {
			got, err := src.ChangedPaths(commits[i], commits[j])
			if err != nil {
				t.Fatal(err)
			}
			out := strings.Fields(w.Run("diff", "--name-only", "--no-renames", commits[i], commits[j]))
			slices.Sort(out)
			if !slices.Equal(got, out) && (len(got) > 0 || len(out) > 0) {
				t.Errorf("ChangedPaths(%d, %d) = %q, git says %q", i, j, got, out)
			}
		}
	}
}
