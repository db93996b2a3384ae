package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/modelsync/modelsync/internal/github/prcheck"
	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/repo"
	"github.com/modelsync/modelsync/policy"
	"github.com/modelsync/modelsync/reconciler"
	"github.com/modelsync/modelsync/reconciler/reconcilertest"
	"github.com/modelsync/modelsync/test/bench/internal/procstat"
)

// steps measured by -step, in the order -table prints them.
var steps = []string{"desired", "plan", "gate"}

// stepResult is one step at one size: medians over the runs, and the peak
// RSS of the process that ran only that step (the clone and sync
// included, which every step needs).
type stepResult struct {
	wall, cpu time.Duration
	rssMB     float64
}

// runStep measures one step in this process and prints it as one line
// that runTable parses: "step <name> <models> <wall ns> <cpu ns> <rss MB>".
//
//   - desired: the whole desired state with fresh caches of manifests and
//     attribution (the Git source's caches warm after the first run), as
//     the controller computes it when it starts.
//   - plan: BuildPlan from that state over two in-memory targets (a
//     registry-like and a serving-like one, reconcilertest) whose live
//     state matches Git except one model: the planner's own work, its
//     observation copies, merging, holds and sorting, without a server.
//   - gate: the PR check of the last commit (one model changed) against
//     its parent: both desired states, both repositories' manifests, the
//     changes, the plan, the policy input and its evaluation by the
//     built-in rules (the bundle compiled once, outside the timing).
func runStep(step, fixtures string, models, runs int, gitCache int64, memprofile string) error {
	dir, err := os.MkdirTemp("", "modelsync-bench-step-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(fixtures, fmt.Sprintf("repo-%d", models))
	if _, err := os.Stat(filepath.Join(src, ".git")); err != nil {
		return fmt.Errorf("no fixture at %s: run once with -fixtures %s -models %d first", src, fixtures, models)
	}
	if step == "gate" {
		if err := prBranch(src); err != nil {
			return err
		}
	}
	ctx := context.Background()
	r, snap, err := openFixture(ctx, src, dir, gitCache)
	if err != nil {
		return err
	}
	defer r.Close()
	// The clone alone, so the step's own share of the peak shows.
	fmt.Fprintf(os.Stderr, "%s at %d models: peak RSS after the clone and sync %.0f MB\n", step, models, procstat.PeakRSSMB())
	var measure func() error
	// kept is what the last run produced and a controller would keep
	// until its next pass: the state and its caches; -memprofile sees it.
	var kept []any
	switch step {
	case "desired":
		measure = func() error {
			a, mc := reconciler.NewAttribution(), manifest.NewCache()
			d, err := reconciler.ComputeDesiredWith(snap, "main", reconciler.DesiredOptions{Attribution: a, Manifests: mc})
			if err != nil {
				return err
			}
			kept = []any{d, a, mc}
			if len(d.Models) != models || len(d.Errors) > 0 {
				return fmt.Errorf("desired has %d models and %d errors, want %d and 0", len(d.Models), len(d.Errors), models)
			}
			return nil
		}
	case "plan":
		d, err := reconciler.ComputeDesiredWith(snap, "main", reconciler.DesiredOptions{})
		if err != nil {
			return err
		}
		var targets []reconciler.Target
		for _, name := range []string{"registry", "serving"} {
			t := reconcilertest.New(name)
			for i, m := range d.Models {
				var record []string
				for _, e := range m.Environments {
					v := e.Version
					if i == len(d.Models)/2 {
						v++ // the one model whose change the plan carries
					}
					t.SetLive(m.Name, e.Environment, v)
					record = append(record, e.Environment+"=v"+strconv.Itoa(e.Version))
				}
				t.SetRecord(m.Name, strings.Join(record, ","))
			}
			targets = append(targets, t)
		}
		measure = func() error {
			p, err := reconciler.BuildPlan(ctx, d, targets)
			if err != nil {
				return err
			}
			// Per target one alias per environment of the changed model.
			if n := len(p.Actions()); n != 2*len(d.Models[len(d.Models)/2].Environments) {
				return fmt.Errorf("plan has %d actions, want one per environment and target of the one changed model", n)
			}
			return nil
		}
	case "gate":
		base, err := snap.BranchHead("main")
		if err != nil {
			return err
		}
		head, err := snap.BranchHead(prBranchName)
		if err != nil {
			return err
		}
		refs := prcheck.Refs{BaseBranch: "main", BaseRef: "main", HeadRef: prBranchName, BaseSHA: base.Hash, HeadSHA: head.Hash}
		r := prcheck.FromSnapshot(snap)
		src, err := prcheck.PolicySource(r, refs)
		if err != nil {
			return err
		}
		ev, err := prcheck.LoadPolicy(ctx, src)
		if err != nil {
			return err
		}
		measure = func() error {
			cmp, err := prcheck.Compare(ctx, r, refs)
			if err != nil {
				return err
			}
			if len(cmp.Changes) != 1 || cmp.Changes[0].Model != prModel {
				return fmt.Errorf("the gate saw changes %+v, want one of %s", cmp.Changes, prModel)
			}
			rep, err := prcheck.Evaluate(ctx, cmp, ev, prcheck.Request{PR: policy.PullRequest{Author: "bench"}, Now: time.Now()})
			if err != nil {
				return err
			}
			if rep.Error != "" {
				return fmt.Errorf("evaluation failed: %s", rep.Error)
			}
			return nil
		}
	default:
		return fmt.Errorf("unknown step %q (want one of %s)", step, strings.Join(steps, ", "))
	}
	var walls, cpus []time.Duration
	for range runs {
		// What setting up (the sync, the desired state the plan starts
		// from) left to collect is not the step's.
		runtime.GC()
		start, cpu0 := time.Now(), procstat.CPUTime()
		if err := measure(); err != nil {
			return fmt.Errorf("%s at %d models: %w", step, models, err)
		}
		walls, cpus = append(walls, time.Since(start)), append(cpus, procstat.CPUTime()-cpu0)
	}
	fmt.Printf("step %s %d %d %d %.1f\n", step, models, median(walls), median(cpus), procstat.PeakRSSMB())
	if memprofile != "" {
		// Whatever the step keeps live between runs, with the snapshot
		// and the Git caches it read through.
		f, err := os.Create(memprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		runtime.GC()
		if err := pprof.WriteHeapProfile(f); err != nil {
			return err
		}
		runtime.KeepAlive(snap)
		runtime.KeepAlive(kept)
	}
	return nil
}

// The pull request the gate judges: one commit on top of main that moves
// one model's dev environment to the next version.
const (
	prBranchName = "bench-pr"
	prModel      = "model-0001"
)

// prBranch writes the pull request's branch into the fixture once, with
// Git plumbing so the working tree is left alone. It is rewritten when
// main moved (the desired bench adds commits to main).
func prBranch(dir string) error {
	script := `set -e
base=$(git rev-parse main)
if [ "$(git rev-parse -q --verify ` + prBranchName + `^ 2>/dev/null)" = "$base" ]; then exit 0; fi
f=models/` + prModel + `/model.yaml
blob=$(git show "main:$f" | sed -E 's/^    dev: \{version: ([0-9]+)\}$/    dev: {version: 9}/' | git hash-object -w --stdin)
export GIT_INDEX_FILE=$(mktemp)
git read-tree main
git update-index --cacheinfo 100644,$blob,$f
tree=$(git write-tree)
rm -f "$GIT_INDEX_FILE"
c=$(git -c user.name=bench -c user.email=bench@example.com commit-tree "$tree" -p "$base" -m "bump ` + prModel + ` in dev")
git update-ref refs/heads/` + prBranchName + ` "$c"`
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	if out, err := cmd.Output(); err != nil {
		return fmt.Errorf("writing the pull request branch: %w\n%s", err, out)
	}
	return nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// runTable runs every step at every size, each in its own process so
// that its peak RSS is its own, and prints them side by side with the
// growth of CPU time per 10× models.
func runTable(sizes []int, fixtures string, runs int, gitCache int64) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	res := map[string]map[int]stepResult{}
	for _, n := range sizes {
		for _, step := range steps {
			cmd := exec.Command(self, "-step", step, "-models", strconv.Itoa(n), "-runs", strconv.Itoa(runs),
				"-fixtures", fixtures, "-git-cache-mib", strconv.FormatInt(gitCache>>20, 10))
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			if err != nil {
				return fmt.Errorf("%s at %d models: %w", step, n, err)
			}
			var name string
			var models int
			var wall, cpu int64
			var rss float64
			if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "step %s %d %d %d %f", &name, &models, &wall, &cpu, &rss); err != nil {
				return fmt.Errorf("%s at %d models: parsing %q: %w", step, n, out, err)
			}
			if res[step] == nil {
				res[step] = map[int]stepResult{}
			}
			res[step][n] = stepResult{time.Duration(wall), time.Duration(cpu), rss}
			fmt.Fprintf(os.Stderr, "%s at %d models: %v wall, %v CPU, %.0f MB\n", step, n, time.Duration(wall).Round(time.Millisecond), time.Duration(cpu).Round(time.Millisecond), rss)
		}
	}
	var load [3]float64
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Sscanf(string(b), "%f %f %f", &load[0], &load[1], &load[2])
	}
	fmt.Printf("median of %d runs per step, each step in its own process; load average after: %.1f %.1f %.1f\n", runs, load[0], load[1], load[2])
	fmt.Printf("| step |")
	for _, n := range sizes {
		fmt.Printf(" %d models: wall / CPU / peak RSS |", n)
	}
	fmt.Printf(" CPU growth per step |\n|---|")
	for range sizes {
		fmt.Printf("---|")
	}
	fmt.Printf("---|\n")
	for _, step := range steps {
		fmt.Printf("| %s |", step)
		for _, n := range sizes {
			r := res[step][n]
			fmt.Printf(" %v / %v / %.0f MB |", r.wall.Round(time.Millisecond), r.cpu.Round(time.Millisecond), r.rssMB)
		}
		var growth []string
		for i := 1; i < len(sizes); i++ {
			a, b := res[step][sizes[i-1]], res[step][sizes[i]]
			growth = append(growth, fmt.Sprintf("%.1f× for %.0f×", float64(b.cpu)/float64(a.cpu), float64(sizes[i])/float64(sizes[i-1])))
		}
		fmt.Printf(" %s |\n", strings.Join(growth, ", "))
	}
	return nil
}

// openFixture clones the fixture repository at src into a cache under dir
// and syncs it once: what every measured step starts from.
func openFixture(ctx context.Context, src, dir string, gitCache int64) (*repo.Repository, *repo.Snapshot, error) {
	r, err := repo.New(ctx, repo.Options{URL: src, CacheDir: filepath.Join(dir, "cache"), CacheSize: gitCache})
	if err != nil {
		return nil, nil, err
	}
	snap, err := r.Sync(ctx)
	if err != nil {
		r.Close()
		return nil, nil, err
	}
	return r, snap, nil
}
