// Package validate implements `modelsync validate`: every problem in a
// models repository's working tree, with file, line, column and field.
package validate

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"runtime"
	"slices"
	"sync"

	"github.com/spf13/cobra"

	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/wiring"
)

// Options are the inputs of validate.
type Options struct {
	IO     cmdutil.IOStreams
	Dir    string
	Output string
	// Branch is the branch modelsync.yaml is read from in production; with
	// no allowedSources it is the only branch an environment may follow.
	Branch string
}

// Report is validate's JSON output.
type Report struct {
	Valid    bool                   `json:"valid"`
	Models   []string               `json:"models"`
	Problems []*manifest.FieldError `json:"problems"`
	// Warnings are what could not be checked offline (a serving directory
	// with remote bases); they do not make the repository invalid.
	Warnings []*manifest.FieldError `json:"warnings"`
}

// NewCmdValidate builds the command; runF replaces the work in tests of flags.
func NewCmdValidate(f *wiring.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "validate [DIR]",
		Short: "Check modelsync.yaml and every model manifest in a working tree",
		Long: `Validate reads modelsync.yaml and models/*/model.yaml from DIR (default: the
current directory) and reports every problem with its file, line, column and
field. A broken model does not stop the others from being checked. Exit code 1
when any problem is found.

Each model's serving directory is rendered for each of its environments with
the KServe target's own confined kustomize build, offline: nothing is fetched
and no process runs, so a permitted remote base is a warning, not a render.
The render must yield exactly one InferenceService (plus kinds listed in
serving.extraKinds) that the target accepts.

An environment's source must be "releases", a branch listed in allowedSources,
or, when modelsync.yaml has no allowedSources, the --branch the controller
reads modelsync.yaml from.`,
		Example: `  # check the repository you are editing
  modelsync validate

  # machine-readable output for an editor or CI
  modelsync validate ./models-repo -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Dir = "."
			if len(args) == 1 {
				opts.Dir = args[0]
			}
			if err := cmdutil.CheckFormat(opts.Output, cmdutil.FormatText, cmdutil.FormatJSON); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return Run(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Output, "output", "o", cmdutil.FormatText, "output format: text or json")
	cmd.Flags().StringVar(&opts.Branch, "branch", "main", "branch modelsync.yaml is read from (the only allowed source when allowedSources is absent)")
	return cmd
}

// Run validates the working tree.
func Run(ctx context.Context, opts *Options) error {
	info, err := os.Stat(opts.Dir)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return fmt.Errorf("%s is not a directory", opts.Dir)
	}
	files := os.DirFS(opts.Dir)
	repo, err := manifest.Load(files)
	if err != nil {
		return err
	}
	branch := opts.Branch
	if branch == "" {
		branch = "main"
	}
	warnings := checkServing(ctx, files, repo)
	sourceErrs := repo.SourceErrors(branch)
	configBroken := len(repo.ConfigErrors)+len(sourceErrs) > 0
	problems := append(repo.AllErrors(), sourceErrs...)
	problems.Sort()
	rep := Report{Valid: len(problems) == 0, Models: repo.ModelNames(), Problems: problems, Warnings: warnings}
	if rep.Problems == nil {
		rep.Problems = []*manifest.FieldError{}
	}
	if rep.Warnings == nil {
		rep.Warnings = []*manifest.FieldError{}
	}
	if rep.Models == nil {
		rep.Models = []string{}
	}
	if opts.Output == cmdutil.FormatJSON {
		if err := cmdutil.WriteJSON(opts.IO.Out, rep); err != nil {
			return err
		}
	} else {
		for _, p := range problems {
			fmt.Fprintln(opts.IO.Out, p.Error())
		}
		for _, w := range warnings {
			fmt.Fprintln(opts.IO.Out, "warning: "+w.Error())
		}
		bad := len(repo.Problems)
		if configBroken {
			fmt.Fprintf(opts.IO.Out, "modelsync.yaml is invalid; %d model(s) valid, %d invalid.\n", len(repo.Models), bad)
		} else {
			fmt.Fprintf(opts.IO.Out, "%d model(s) valid, %d invalid.\n", len(repo.Models), bad)
		}
	}
	if !rep.Valid {
		return cmdutil.ErrSilent
	}
	return nil
}

// checkServing renders every model's serving directory offline, as the
// KServe target would, broken models included so that one run reports
// everything. A model whose render fails moves from repo.Models to
// repo.Problems, so it blocks only itself. It returns the warnings.
func checkServing(ctx context.Context, files fs.FS, repo *manifest.Repo) manifest.ErrorList {
	cfg := repo.Config
	if cfg == nil {
		// What could be read of a broken modelsync.yaml still names the
		// environments to render for; its problems are reported anyway.
		if cfg = repo.BrokenConfig; cfg == nil {
			return nil
		}
	}
	names := slices.Concat(repo.ModelNames(), slices.Sorted(maps.Keys(repo.Broken)))
	type result struct{ problems, warnings manifest.ErrorList }
	results := make([]result, len(names))
	// Renders are independent and CPU-bound: one per processor at a time.
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, name := range names {
		m, pos := repo.Models[name], repo.Lines[name]
		if m == nil {
			m, pos = repo.Broken[name], repo.BrokenLines[name]
		}
		if slices.ContainsFunc(repo.Problems[name], func(e *manifest.FieldError) bool {
			return e.Field == "spec.serving" || e.Field == "spec.serving.path"
		}) {
			continue // no directory to render; the problem says why
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			p, w := wiring.ValidateServing(ctx, files, cfg, name, m, pos)
			results[i] = result{p, w}
		}()
	}
	wg.Wait()
	var warnings manifest.ErrorList
	for i, name := range names {
		r := results[i]
		warnings = append(warnings, r.warnings...)
		if len(r.problems) == 0 {
			continue
		}
		repo.Problems[name] = append(repo.Problems[name], r.problems...)
		if m, ok := repo.Models[name]; ok {
			repo.Broken[name], repo.BrokenLines[name] = m, repo.Lines[name]
			delete(repo.Models, name)
			delete(repo.Lines, name)
		}
	}
	warnings.Sort()
	return warnings
}
