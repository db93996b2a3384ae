// Command gitfetch compares modelsync's Git mirror (internal/gitsource, go-git)
// with the git CLI on a generated models repository:
//
//	go run ./test/bench/gitfetch [-models 1000] [-reps 9] [-transport daemon|http|path] [-depth 0]
//
// It generates a repository with -models models (models/<n>/model.yaml plus a
// small kustomize base each) and one release tag per model, serves it with git
// daemon and git http-backend (test/testenv), clones it with gitsource and with
// `git clone --bare`, then repeatedly pushes one commit and times the
// incremental fetch of each client on the same commit (order alternating per
// repetition). It prints medians and the ratio ours/git, and exits 1 when the
// incremental ratio exceeds -goal (default 1.5).
//
// "ours warm" reuses one Source, as the long-running reconciler does; "ours
// cold" opens a new Source on an existing cache each time, as a fresh process
// would. The no-change poll is compared with `git ls-remote` and with a
// `git fetch` that finds nothing new.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/modelsync/modelsync/internal/gitsource"
	"github.com/modelsync/modelsync/test/testenv"
)

func main() {
	models := flag.Int("models", 1000, "number of models in the generated repository")
	reps := flag.Int("reps", 9, "repetitions per measurement (median reported)")
	transport := flag.String("transport", "daemon", "daemon (git://), http (smart HTTP, basic auth) or path (local bare repository)")
	depth := flag.Int("depth", 0, "gitsource fetch depth (0 = full history)")
	goal := flag.Float64("goal", 1.5, "maximum accepted median ratio ours-cold/git for the incremental fetch")
	flag.Parse()
	if err := run(*models, *reps, *transport, *depth, *goal); err != nil {
		fmt.Fprintln(os.Stderr, "gitfetch:", err)
		os.Exit(1)
	}
}

// gitEnv isolates the git CLI from the machine's configuration and fixes the
// identity so commits can be made.
func gitEnv() []string {
	return append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@modelsync.invalid",
		"GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@modelsync.invalid",
	)
}

func git(dir, stdin string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv()
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		shown := make([]string, len(args))
		for i, a := range args {
			shown[i] = gitsource.SanitizeURL(a)
		}
		return "", fmt.Errorf("git %s: %w\n%s", strings.Join(shown, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func run(models, reps int, transport string, depth int, goal float64) error {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "modelsync-gitfetch-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	srv, err := testenv.StartGitServer(ctx, filepath.Join(tmp, "logs"))
	if err != nil {
		return err
	}
	defer srv.Close()
	bare, err := srv.NewBareRepo("models")
	if err != nil {
		return err
	}

	var oursURL, gitURL string
	var auth gitsource.Auth
	switch transport {
	case "daemon":
		oursURL, gitURL = srv.DaemonURL+"models.git", srv.DaemonURL+"models.git"
	case "http":
		oursURL, gitURL = srv.HTTPURL+"models.git", srv.AuthHTTPURL("models")
		auth = gitsource.Auth{Username: srv.Username, Password: srv.Password}
	case "path":
		oursURL, gitURL = bare, bare
	default:
		return fmt.Errorf("unknown -transport %q", transport)
	}

	start := time.Now()
	work := filepath.Join(tmp, "work")
	if err := generate(work, bare, models); err != nil {
		return err
	}
	fmt.Printf("generated %d models (%d files, %d tags) in %s, transport %s, depth %d\n",
		models, 3*models+1, models, time.Since(start).Round(time.Millisecond), transport, depth)

	// Initial clones.
	warmCache, coldCache := filepath.Join(tmp, "cache-warm"), filepath.Join(tmp, "cache-cold")
	t0 := time.Now()
	warm, err := gitsource.Open(ctx, gitsource.Options{URL: oursURL, CacheDir: warmCache, Auth: auth, Depth: depth})
	if err != nil {
		return err
	}
	if _, err := warm.Sync(ctx); err != nil {
		return err
	}
	oursClone := time.Since(t0)
	cold, err := gitsource.Open(ctx, gitsource.Options{URL: oursURL, CacheDir: coldCache, Auth: auth, Depth: depth})
	if err != nil {
		return err
	}
	if _, err := cold.Sync(ctx); err != nil {
		return err
	}
	gitDir := filepath.Join(tmp, "git-bare")
	t0 = time.Now()
	cloneArgs := []string{"clone", "--bare", "--quiet"}
	if depth > 0 {
		cloneArgs = append(cloneArgs, "--depth", fmt.Sprint(depth), "--no-single-branch")
	}
	if _, err := git(tmp, "", append(cloneArgs, gitURL, gitDir)...); err != nil {
		return err
	}
	gitClone := time.Since(t0)
	fmt.Printf("initial clone: ours %s, git clone --bare %s (ratio %.2f)\n",
		oursClone.Round(time.Millisecond), gitClone.Round(time.Millisecond), ratio(oursClone, gitClone))

	fetchArgs := []string{"fetch", "--quiet", "--prune"}
	if depth > 0 {
		fetchArgs = append(fetchArgs, "--depth", fmt.Sprint(depth))
	}
	fetchArgs = append(fetchArgs, gitURL, "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")

	oursWarm := func() (time.Duration, error) {
		t := time.Now()
		res, err := warm.Sync(ctx)
		if err == nil && !res.Changed {
			err = fmt.Errorf("ours (warm) saw no change")
		}
		return time.Since(t), err
	}
	oursCold := func() (time.Duration, error) {
		t := time.Now()
		src, err := gitsource.Open(ctx, gitsource.Options{URL: oursURL, CacheDir: coldCache, Auth: auth, Depth: depth})
		if err != nil {
			return 0, err
		}
		res, err := src.Sync(ctx)
		if err == nil && !res.Changed {
			err = fmt.Errorf("ours (cold) saw no change")
		}
		return time.Since(t), err
	}
	gitFetch := func() (time.Duration, error) {
		t := time.Now()
		_, err := git(gitDir, "", fetchArgs...)
		return time.Since(t), err
	}

	var tWarm, tCold, tGit []time.Duration
	for i := range reps {
		if err := commitAndPush(work, i); err != nil {
			return err
		}
		order := []func() (time.Duration, error){oursWarm, oursCold, gitFetch}
		sinks := []*[]time.Duration{&tWarm, &tCold, &tGit}
		// Rotate who goes first so server-side caching does not favour one.
		for k := range order {
			j := (k + i) % len(order)
			d, err := order[j]()
			if err != nil {
				return err
			}
			*sinks[j] = append(*sinks[j], d)
		}
		head, err := git(work, "", "rev-parse", "HEAD")
		if err != nil {
			return err
		}
		if got, err := git(gitDir, "", "rev-parse", "refs/heads/main"); err != nil || got != head {
			return fmt.Errorf("git fetch did not reach %s (got %s, %v)", head, got, err)
		}
		if c, err := warm.Branch("main"); err != nil || c.Hash != head {
			return fmt.Errorf("ours did not reach %s (got %+v, %v)", head, c, err)
		}
	}

	// No-change polling.
	var tNoOurs, tLsRemote, tNoFetch []time.Duration
	for range reps {
		t := time.Now()
		res, err := warm.Sync(ctx)
		if err != nil {
			return err
		}
		if res.Changed {
			return fmt.Errorf("no-change Sync reported a change")
		}
		tNoOurs = append(tNoOurs, time.Since(t))
		t = time.Now()
		if _, err := git(tmp, "", "ls-remote", "--heads", "--tags", gitURL); err != nil {
			return err
		}
		tLsRemote = append(tLsRemote, time.Since(t))
		d, err := gitFetch()
		if err != nil {
			return err
		}
		tNoFetch = append(tNoFetch, d)
	}

	mw, mc, mg := median(tWarm), median(tCold), median(tGit)
	fmt.Printf("incremental fetch of one commit, median of %d:\n", reps)
	fmt.Printf("  ours warm  %8s  (ratio %.2f)\n", mw.Round(time.Microsecond), ratio(mw, mg))
	fmt.Printf("  ours cold  %8s  (ratio %.2f)\n", mc.Round(time.Microsecond), ratio(mc, mg))
	fmt.Printf("  git fetch  %8s\n", mg.Round(time.Microsecond))
	fmt.Printf("no-change poll, median of %d:\n", reps)
	fmt.Printf("  ours Sync      %8s\n", median(tNoOurs).Round(time.Microsecond))
	fmt.Printf("  git ls-remote  %8s  (ours/ls-remote %.2f)\n", median(tLsRemote).Round(time.Microsecond), ratio(median(tNoOurs), median(tLsRemote)))
	fmt.Printf("  git fetch      %8s  (ours/fetch %.2f)\n", median(tNoFetch).Round(time.Microsecond), ratio(median(tNoOurs), median(tNoFetch)))
	r := ratio(mc, mg)
	if r > goal {
		return fmt.Errorf("incremental fetch ratio ours-cold/git = %.2f exceeds goal %.2f", r, goal)
	}
	fmt.Printf("goal: incremental ratio %.2f <= %.2f\n", r, goal)
	return nil
}

func generate(work, bare string, models int) error {
	if _, err := git(filepath.Dir(work), "", "init", "--quiet", "--initial-branch=main", work); err != nil {
		return err
	}
	write := func(rel, content string) error {
		p := filepath.Join(work, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, []byte(content), 0o644)
	}
	if err := write("modelsync.yaml", "environments: [dev, staging, prod]\n"); err != nil {
		return err
	}
	for i := range models {
		m := fmt.Sprintf("model-%04d", i)
		files := map[string]string{
			"models/" + m + "/model.yaml":                    fmt.Sprintf("name: %s\nmlflow:\n  registeredModel: %s\nenvironments:\n  dev: {version: 1}\n  staging: {version: 1}\n  prod: {version: 1}\n", m, m),
			"models/" + m + "/serving/kustomization.yaml":    "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [inferenceservice.yaml]\n",
			"models/" + m + "/serving/inferenceservice.yaml": fmt.Sprintf("apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: %s\nspec:\n  predictor:\n    model:\n      modelFormat: {name: sklearn}\n", m),
		}
		for rel, content := range files {
			if err := write(rel, content); err != nil {
				return err
			}
		}
	}
	if _, err := git(work, "", "add", "--all"); err != nil {
		return err
	}
	if _, err := git(work, "", "commit", "--quiet", "-m", "generate models"); err != nil {
		return err
	}
	head, err := git(work, "", "rev-parse", "HEAD")
	if err != nil {
		return err
	}
	var refs strings.Builder
	for i := range models {
		fmt.Fprintf(&refs, "create refs/tags/model-%04d/v1.0.0 %s\n", i, head)
	}
	if _, err := git(work, refs.String(), "update-ref", "--stdin"); err != nil {
		return err
	}
	if _, err := git(work, "", "remote", "add", "origin", bare); err != nil {
		return err
	}
	_, err = git(work, "", "push", "--quiet", "origin", "refs/heads/main:refs/heads/main", "refs/tags/*:refs/tags/*")
	return err
}

func commitAndPush(work string, i int) error {
	p := filepath.Join(work, "models", "model-0007", "model.yaml")
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if err := os.WriteFile(p, append(b, fmt.Sprintf("# rev %d\n", i)...), 0o644); err != nil {
		return err
	}
	if _, err := git(work, "", "commit", "--quiet", "-am", fmt.Sprintf("bump model-0007 rev %d", i)); err != nil {
		return err
	}
	// Push straight into the served bare repository: the server's own
	// push path is not what is being measured.
	_, err = git(work, "", "push", "--quiet", "origin", "HEAD:refs/heads/main")
	return err
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
