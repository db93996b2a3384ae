// Package release implements `modelsync release`: the next semver release
// tag of one model, created as an annotated tag and optionally pushed.
package release

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/modelsync/modelsync/internal/gitsource"
	"github.com/modelsync/modelsync/internal/manifest"
	rel "github.com/modelsync/modelsync/internal/release"
	"github.com/modelsync/modelsync/internal/wiring"
)

// Options are the inputs of release.
type Options struct {
	Factory *wiring.Factory
	Model   string
	Dir     string
	Bump    string
	Push    bool
	Remote  string
	Force   bool
	Message string
	Now     func() time.Time
}

// NewCmdRelease builds the command; runF replaces the work in tests of flags.
func NewCmdRelease(f *wiring.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f, Now: time.Now}
	cmd := &cobra.Command{
		Use:   "release MODEL",
		Short: "Tag the next release of a model (<model>/vX.Y.Z)",
		Long: `Release computes the model's next version from its existing release tags and
creates an annotated tag <model>/vX.Y.Z at HEAD. Environments whose source is
"releases" (usually prod) then roll out that commit's manifest of the model.

It refuses when the working tree has uncommitted changes, or when nothing under
models/<model>/ changed since the last release, unless --force is given.`,
		Example: `  # patch release of the churn model, pushed to origin
  modelsync release customer-churn-predictor --push

  # a new minor version
  modelsync release llama2-7b-alpaca --bump minor --push`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Model = args[0]
			switch opts.Bump {
			case rel.BumpMajor, rel.BumpMinor, rel.BumpPatch:
			default:
				return fmt.Errorf("--bump must be major, minor or patch, got %q", opts.Bump)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return Run(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Dir, "dir", "C", ".", "root of the models repository working tree")
	cmd.Flags().StringVar(&opts.Bump, "bump", rel.BumpPatch, "which part of the version to increase: major, minor or patch")
	cmd.Flags().BoolVar(&opts.Push, "push", false, "push the tag to the remote")
	cmd.Flags().StringVar(&opts.Remote, "remote", "origin", "remote to push to")
	cmd.Flags().BoolVar(&opts.Force, "force", false, "tag even with a dirty working tree or no changes since the last release")
	cmd.Flags().StringVarP(&opts.Message, "message", "m", "", "tag message (default: \"Release <model> vX.Y.Z\")")
	return cmd
}

// Run creates (and optionally pushes) the release tag.
func Run(ctx context.Context, opts *Options) error {
	if err := rel.ValidateModelName(opts.Model); err != nil {
		return err
	}
	ws, err := gitsource.OpenWorkspace(opts.Dir)
	if err != nil {
		return err
	}
	head, err := ws.HeadCommit()
	if err != nil {
		return err
	}
	// Release only what passes validation: a tag is what prod deploys. The
	// tree must be clean (unless --force), so the files on disk are HEAD's.
	tree := os.DirFS(opts.Dir)
	cfg, cfgErrs, err := manifest.LoadConfig(tree)
	if err != nil {
		return err
	}
	if len(cfgErrs) > 0 {
		return fmt.Errorf("cannot release %s: %w", opts.Model, cfgErrs)
	}
	if _, _, problems, err := manifest.LoadModel(tree, opts.Model, cfg); err != nil {
		return err
	} else if len(problems) > 0 {
		return fmt.Errorf("cannot release %s, its manifest is invalid:\n%w", opts.Model, problems)
	}
	if dirty, paths, err := ws.IsDirty(); err != nil {
		return err
	} else if dirty && !opts.Force {
		return fmt.Errorf("working tree has uncommitted changes (%s); commit them or pass --force", summarize(paths))
	}
	tags, bad, err := ws.ReleaseTags()
	if err != nil {
		return err
	}
	for _, b := range bad {
		fmt.Fprintf(opts.Factory.IO.ErrOut, "warning: ignoring tag: %v\n", b)
	}
	nextTag, latest, err := rel.NextRelease(tags, opts.Model, opts.Bump)
	if err != nil {
		return err
	}
	if latest != nil {
		changed, err := ws.ChangedSince(latest.Commit, manifest.ModelsDir+"/"+opts.Model)
		if err != nil {
			return err
		}
		if !changed && !opts.Force {
			return fmt.Errorf("nothing under %s/%s changed since %s; pass --force to tag anyway", manifest.ModelsDir, opts.Model, latest.Name)
		}
	}
	next, name := nextTag.Version, nextTag.Name
	msg := opts.Message
	if msg == "" {
		msg = fmt.Sprintf("Release %s v%s", opts.Model, next)
	}
	// The tagger is the person releasing, found as git finds a committer;
	// HEAD's author may be someone else entirely.
	tagger, err := ws.Identity(opts.Factory.Getenv)
	if err != nil {
		return fmt.Errorf("cannot tag %s: %w", name, err)
	}
	tagger.When = opts.Now()
	if err := ws.CreateAnnotatedTag(name, msg, tagger); err != nil {
		return err
	}
	from := "first release"
	if latest != nil {
		from = "after " + latest.Name
	}
	fmt.Fprintf(opts.Factory.IO.Out, "Created tag %s at %s (%s)\n", name, short(head.Hash), from)
	if !opts.Push {
		fmt.Fprintf(opts.Factory.IO.Out, "Push it with: git push %s %s\n", opts.Remote, name)
		return nil
	}
	if err := ws.PushTag(ctx, opts.Remote, name, gitsource.AuthFromEnv(opts.Factory.Getenv)); err != nil {
		return fmt.Errorf("tag %s was created locally but not pushed: %w", name, err)
	}
	fmt.Fprintf(opts.Factory.IO.Out, "Pushed %s to %s\n", name, opts.Remote)
	return nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func summarize(paths []string) string {
	if len(paths) > 3 {
		return strings.Join(paths[:3], ", ") + fmt.Sprintf(" and %d more", len(paths)-3)
	}
	return strings.Join(paths, ", ")
}
