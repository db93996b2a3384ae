// Package validate implements `modelsync validate`: every problem in a
// models repository's working tree, with file, line, column and field.
package validate

import (
	"fmt"
	"os"

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
}

// NewCmdValidate builds the command; runF replaces the work in tests of flags.
func NewCmdValidate(f *wiring.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "validate [DIR]",
		Short: "Check modelsync.yaml and every model manifest in a working tree",
		Long: `Validate reads modelsync.yaml and models/*/model.yaml from DIR (default: the
current directory) and reports every problem with its file, line, column and
field. A broken model does not stop the others from being checked. Exit code 1
when any problem is found.

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
				return runF(opts)
			}
			return Run(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Output, "output", "o", cmdutil.FormatText, "output format: text or json")
	cmd.Flags().StringVar(&opts.Branch, "branch", "main", "branch modelsync.yaml is read from (the only allowed source when allowedSources is absent)")
	return cmd
}

// Run validates the working tree.
func Run(opts *Options) error {
	info, err := os.Stat(opts.Dir)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return fmt.Errorf("%s is not a directory", opts.Dir)
	}
	repo, err := manifest.Load(os.DirFS(opts.Dir))
	if err != nil {
		return err
	}
	branch := opts.Branch
	if branch == "" {
		branch = "main"
	}
	sourceErrs := repo.SourceErrors(branch)
	configBroken := len(repo.ConfigErrors)+len(sourceErrs) > 0
	problems := append(repo.AllErrors(), sourceErrs...)
	problems.Sort()
	rep := Report{Valid: len(problems) == 0, Models: repo.ModelNames(), Problems: problems}
	if rep.Problems == nil {
		rep.Problems = []*manifest.FieldError{}
	}
	if opts.Output == cmdutil.FormatJSON {
		if err := cmdutil.WriteJSON(opts.IO.Out, rep); err != nil {
			return err
		}
	} else {
		for _, p := range problems {
			fmt.Fprintln(opts.IO.Out, p.Error())
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
