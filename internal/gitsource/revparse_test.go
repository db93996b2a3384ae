package gitsource_test

import (
	"errors"
	"testing"

	"github.com/modelsync/modelsync/internal/gitsource"
	"github.com/modelsync/modelsync/test/testenv"
)

// ciCheckout clones origin as CI systems do and checks out, detached, a
// merge commit made in the clone that no ref points at (GitLab's merged
// results, or a GitHub merge ref fetched by hash). Branches exist only as
// refs/remotes/origin/*.
func ciCheckout(t *testing.T) (origin *testenv.Workdir, ci string, merge string) {
	t.Helper()
	origin = testenv.NewWorkdir(t, "")
	seedModels(origin)
	origin.Run("checkout", "--quiet", "-b", "feature")
	origin.WriteFile("models/churn/model.yaml", "name: churn\nversion: 2\n")
	origin.Commit("feature")
	origin.Run("checkout", "--quiet", "main")
	origin.WriteFile("models/fraud/model.yaml", "name: fraud\nversion: 2\n")
	origin.Commit("main moves on")
	origin.Tag("churn/v1.0.0", "release")

	w := testenv.NewWorkdir(t, origin.Dir)
	w.Run("checkout", "--quiet", "--detach", "origin/main")
	w.Run("merge", "--quiet", "--no-ff", "-m", "Merge feature into main", "origin/feature")
	w.Run("branch", "--quiet", "-D", "main")
	return origin, w.Dir, w.Run("rev-parse", "HEAD")
}

// A detached checkout of a commit no ref points at used to fail every
// Sync with "list refs ...: reference not found" (go-git guessing HEAD's
// branch); its HEAD and origin's branches now resolve as git rev-parse
// resolves them.
func TestResolveInCICheckout(t *testing.T) {
	origin, ci, merge := ciCheckout(t)
	src := openSource(t, ci, 0)
	res := mustSync(t, src)

	mainTip := origin.Run("rev-parse", "main")
	if res.Heads["main"] != mainTip {
		t.Errorf("Heads[main] = %q, want origin/main %s (the branch exists only as refs/remotes/origin/main)", res.Heads["main"], mainTip)
	}
	if _, ok := res.Heads["HEAD"]; ok {
		t.Errorf("refs/remotes/origin/HEAD listed as a branch: %v", res.Heads)
	}
	want := map[string]string{
		"HEAD":                     merge,
		"@":                        merge,
		"HEAD^1":                   mainTip,
		"@~1":                      mainTip,
		"HEAD^2":                   origin.Run("rev-parse", "feature"),
		"HEAD^2~1":                 origin.Run("rev-parse", "main~1"),
		"origin/main":              mainTip,
		"origin":                   mainTip, // refs/remotes/origin/HEAD
		"refs/remotes/origin/main": mainTip,
		"origin/main~1":            origin.Run("rev-parse", "main~1"),
		"origin/main^":             origin.Run("rev-parse", "main~1"),
		"origin/main^0":            mainTip,
		"origin/main^{commit}":     mainTip,
		"churn/v1.0.0":             mainTip, // annotated, peeled
		"refs/tags/churn/v1.0.0":   mainTip,
		"churn/v1.0.0~1":           origin.Run("rev-parse", "main~1"),
		merge[:7]:                  merge,
		merge[:7] + "~1":           mainTip,
		merge:                      merge,
	}
	for rev, hash := range want {
		got, err := src.Resolve(res.Refs, rev)
		if err != nil || got != hash {
			t.Errorf("Resolve(%q) = %q, %v; want %s", rev, got, err, hash)
		}
	}
	for _, rev := range []string{"main~1", "HEAD~9", "HEAD^3", "~1", "HEAD~x", "HEAD^{tree}", "origin/nope", "HEAD~99999999"} {
		if got, err := src.Resolve(res.Refs, rev); err == nil {
			t.Errorf("Resolve(%q) = %q, want an error", rev, got)
		}
	}
	if _, err := src.Resolve(res.Refs, "HEAD~9"); !errors.Is(err, gitsource.ErrNotFound) {
		t.Errorf("Resolve(HEAD~9) beyond the root: %v, want ErrNotFound", err)
	}

	// A second sync with nothing moved is still no change; moving HEAD is.
	if again := mustSync(t, src); again.Changed {
		t.Error("unchanged CI checkout reported Changed")
	}
	git(t, ci, "checkout", "--quiet", "--detach", "HEAD^2")
	res = mustSync(t, src)
	if got, err := src.Resolve(res.Refs, "HEAD"); err != nil || got != origin.Run("rev-parse", "feature") {
		t.Errorf("after checkout of HEAD^2: Resolve(HEAD) = %q, %v", got, err)
	}
}
