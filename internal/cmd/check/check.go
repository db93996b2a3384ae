// Package check implements `modelsync check`: the pull-request gate run
// locally or in CI. It compares the models repository at a base and a head
// ref, shows what would change in each environment, and judges the change
// with the policy read from the base.
package check

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/github/prcheck"
	"github.com/modelsync/modelsync/internal/repo"
	"github.com/modelsync/modelsync/internal/wiring"
	"github.com/modelsync/modelsync/policy"
)

// FormatGitHub prints GitHub Actions workflow commands.
const FormatGitHub = "github"

// Options are the inputs of check.
type Options struct {
	Factory *wiring.Factory
	Repo    cmdutil.RepoFlags
	Base    string
	Head    string
	Output  string
	// LoadPolicy compiles the bundle; nil means prcheck.LoadPolicy.
	LoadPolicy func(context.Context, policy.Source) (prcheck.Evaluator, error)
	// Registry supplies registry facts; nil means MLflow at --mlflow-uri (or
	// $MLFLOW_TRACKING_URI), or none when neither is set, so rules that
	// need them deny.
	Registry prcheck.RegistryFacts
	// Now fixes the evaluation time; zero means the current time.
	Now time.Time
}

// NewCmdCheck builds the command; runF replaces the work in tests of flags.
func NewCmdCheck(f *wiring.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f}
	cmd := &cobra.Command{
		Use:   "check --base <ref> --head <ref>",
		Short: "Judge the change between two refs with the policy gate",
		Long: `Check computes the desired state at --base and at --head (a branch, tag or
commit), lists what would change per model and environment, and evaluates
the policy. The rules come from the policy/ directory of the BASE ref when
it has one, otherwise from the rules built into modelsync; the head's
policy/ is never used, so a change cannot weaken its own gate.

Environments that follow release tags show what the next release cut from
the head would run.

Exit codes: 0 allowed, 1 denied or error.`,
		Example: `  modelsync check --repo . --base main --head my-branch
  modelsync check --repo . --base origin/main --head HEAD -o github`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cmdutil.CheckFormat(opts.Output, cmdutil.FormatText, cmdutil.FormatJSON, FormatGitHub); err != nil {
				return err
			}
			if opts.Base == "" || opts.Head == "" {
				return fmt.Errorf("both --base and --head are required")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return Run(cmd.Context(), opts)
		},
	}
	cmdutil.AddRepoFlags(cmd, &opts.Repo)
	cmd.Flags().Lookup("branch").Usage = "branch the base stands for when --base is a tag or commit"
	cmd.Flags().StringVar(&opts.Base, "base", "", "ref the change would merge into (branch, tag or commit)")
	cmd.Flags().StringVar(&opts.Head, "head", "", "ref holding the change (branch, tag or commit)")
	cmd.Flags().StringVarP(&opts.Output, "output", "o", cmdutil.FormatText, "output format: text, json or github")
	cmd.Flags().StringVar(&f.Flags.MLflowURI, "mlflow-uri", "", "MLflow tracking URI for registry facts (default $MLFLOW_TRACKING_URI; none: rules needing them deny)")
	return cmd
}

// Run performs the check and prints the report.
func Run(ctx context.Context, opts *Options) error {
	f := opts.Factory
	snap, err := f.OpenRepo(ctx, opts.Repo)
	if err != nil {
		return err
	}
	for _, bad := range snap.BadTags() {
		fmt.Fprintf(f.IO.ErrOut, "warning: ignoring tag: %v\n", bad)
	}
	refs, err := ResolveRefs(snap, opts.Base, opts.Head, opts.Repo.Branch)
	if err != nil {
		return err
	}
	r := prcheck.FromSnapshot(snap)
	cmp, err := prcheck.Compare(ctx, r, refs)
	if err != nil {
		return err
	}
	src, err := prcheck.PolicySource(r, refs)
	if err != nil {
		return err
	}
	load := opts.LoadPolicy
	if load == nil {
		load = prcheck.LoadPolicy
	}
	ev, err := load(ctx, src)
	if err != nil {
		return fmt.Errorf("policy from %s at %s: %w", src, refs.BaseRef, err)
	}
	head, err := snap.Commit(refs.HeadSHA)
	if err != nil {
		return err
	}
	req := prcheck.Request{
		PR:  policy.PullRequest{Author: firstNonEmpty(head.AuthorEmail, head.AuthorName, "unknown")},
		Now: opts.Now,
	}
	facts := opts.Registry
	if facts == nil {
		if facts, err = registryFacts(f); err != nil {
			return err
		}
	}
	if facts != nil {
		if req.Registry, err = facts.Facts(ctx, cmp, opts.Now); err != nil {
			return fmt.Errorf("registry facts for %s: %w", refs.HeadRef, err)
		}
	}
	// A failed evaluation is in the report and makes Passed false; the
	// report is printed either way.
	rep, _ := prcheck.Evaluate(ctx, cmp, ev, req)
	out := f.IO.Out
	switch opts.Output {
	case cmdutil.FormatJSON:
		err = cmdutil.WriteJSON(out, NewJSONReport(rep))
	case FormatGitHub:
		err = prcheck.WriteGitHub(out, rep)
	default:
		err = prcheck.WriteText(out, rep)
	}
	if err != nil {
		return err
	}
	if !rep.Passed() {
		return cmdutil.ErrSilent
	}
	return nil
}

// ResolveRefs turns the base and head refs into commits. A ref may be a
// branch, a tag (annotated tags are peeled), a full or abbreviated commit
// hash. The base branch is the base ref when it names a branch, otherwise
// defaultBranch.
func ResolveRefs(snap *repo.Snapshot, base, head, defaultBranch string) (prcheck.Refs, error) {
	refs := prcheck.Refs{BaseRef: base, HeadRef: head, BaseBranch: defaultBranch}
	var err error
	if refs.BaseSHA, err = resolve(snap, base); err != nil {
		return refs, err
	}
	if refs.HeadSHA, err = resolve(snap, head); err != nil {
		return refs, err
	}
	if _, err := snap.BranchHead(base); err == nil {
		refs.BaseBranch = base
	}
	return refs, nil
}

// resolve prefers a branch, as a pull request names its base, then asks
// the snapshot for a tag or commit.
func resolve(snap *repo.Snapshot, ref string) (string, error) {
	if c, err := snap.BranchHead(ref); err == nil {
		return c.Hash, nil
	}
	h, err := snap.Resolve(ref)
	if err != nil {
		return "", fmt.Errorf("ref %q is not a branch, tag or commit of %s: %w", ref, snap.Source().URL(), err)
	}
	return h, nil
}

// registryFacts returns MLflow registry facts when a tracking URI is
// configured, credentials coming from the MLFLOW_* environment.
func registryFacts(f *wiring.Factory) (prcheck.RegistryFacts, error) {
	if !f.HasMLflow() {
		return nil, nil
	}
	c, err := f.MLflow()
	if err != nil {
		return nil, fmt.Errorf("registry facts: %w", err)
	}
	return &prcheck.MLflowFacts{Client: c}, nil
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
