// Package desired implements `modelsync desired`: what Git says should run
// in each environment, resolved from branches and release tags.
package desired

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/wiring"
	"github.com/modelsync/modelsync/reconciler"
)

// Options are the inputs of desired.
type Options struct {
	Factory *wiring.Factory
	Repo    cmdutil.RepoFlags
	Output  string
}

// NewCmdDesired builds the command; runF replaces the work in tests of flags.
func NewCmdDesired(f *wiring.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f}
	cmd := &cobra.Command{
		Use:   "desired",
		Short: "Print the desired state of every model in every environment",
		Long: `Desired fetches the models repository and resolves, for every model and
environment, the version, canary and serving spec Git asks for: branch
environments from the branch head, release environments from the model's
newest release tag. Models that cannot be resolved are listed as errors.`,
		Example: `  modelsync desired --repo https://github.com/acme/models.git
  modelsync desired --repo ./models -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cmdutil.CheckFormat(opts.Output, cmdutil.FormatText, cmdutil.FormatJSON, cmdutil.FormatYAML); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return Run(cmd.Context(), opts)
		},
	}
	cmdutil.AddRepoFlags(cmd, &opts.Repo)
	cmd.Flags().StringVarP(&opts.Output, "output", "o", cmdutil.FormatText, "output format: text, json or yaml")
	return cmd
}

// Run computes and prints the desired state.
func Run(ctx context.Context, opts *Options) error {
	d, _, err := opts.Factory.Desired(ctx, opts.Repo)
	if err != nil {
		return err
	}
	out := opts.Factory.IO.Out
	switch opts.Output {
	case cmdutil.FormatJSON:
		err = cmdutil.WriteJSON(out, d)
	case cmdutil.FormatYAML:
		err = cmdutil.WriteYAML(out, d)
	default:
		err = reconciler.WriteDesiredText(out, d)
	}
	if err != nil {
		return err
	}
	if len(d.Errors) > 0 {
		return cmdutil.ErrSilent
	}
	return nil
}
