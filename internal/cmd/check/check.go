// Package check implements `modelsync check`: the pull-request gate run
// locally or in CI. It compares the models repository at a base and a head
// ref, shows what would change in each environment, and judges the change
// with the policy read from the base.
package check

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/github/prcheck"
	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/repo"
	"github.com/modelsync/modelsync/internal/scanrecord"
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
	// ReviewsFile holds the pull request's reviews as GitHub lists them;
	// empty means none, or the GitHub API when the CI environment names a
	// pull request (see githubPullRequest).
	ReviewsFile string
	// Author is the pull request author's login; empty means the one
	// GitHub names, else the head commit's author.
	Author string
	// LoadPolicy compiles the bundle; nil means prcheck.LoadPolicy.
	LoadPolicy func(context.Context, policy.Source) (prcheck.Evaluator, error)
	// Registry supplies registry facts; nil means MLflow at --mlflow-uri (or
	// $MLFLOW_TRACKING_URI), or none when neither is set, so rules that
	// need them deny.
	Registry prcheck.RegistryFacts
	// Now fixes the evaluation time; zero means the current time.
	Now time.Time
	// Scan scans, before judging, the versions the change brings into an
	// environment that have no current scan record (as modelsync scan
	// MODEL VERSION does; versions already scanned are only listed).
	Scan bool
	// Advisories overrides the base's security.advisories.path for Scan.
	Advisories string
}

// noVerdict marks err as "could not judge" (exit 2), as opposed to a deny.
func noVerdict(err error) error {
	if err == nil {
		return nil
	}
	var ee *cmdutil.ExitError
	if errors.As(err, &ee) {
		return err
	}
	return &cmdutil.ExitError{Code: cmdutil.ExitNoVerdict, Err: err}
}

// NewCmdCheck builds the command; runF replaces the work in tests of flags.
func NewCmdCheck(f *wiring.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f}
	cmd := &cobra.Command{
		Use:   "check --base <ref> --head <ref>",
		Short: "Judge the change between two refs with the policy gate",
		Long: `Check computes the desired state at --base and at --head, lists what would
change per model and environment, and evaluates the policy. A ref is what
git rev-parse takes: a branch, origin/main, a tag, HEAD or @, a commit,
with ~N or ^N. In a CI checkout whose branches exist only under
refs/remotes/origin/, "main" means origin's main. The rules come from the
policy/ directory of the BASE ref when it has one, otherwise from the rules
built into modelsync; the head's policy/ is never used, so a change cannot
weaken its own gate.

Environments that follow release tags show what the next release cut from
the head would run.

Reviews count for the approval rules: --reviews FILE takes them in the JSON
of GitHub's "list reviews for a pull request" API. Without it, in a GitHub
Actions pull_request workflow with $GITHUB_TOKEN set, check reads the pull
request's reviews and author from the GitHub API itself. When the head is
the CI's merge of the pull request into the base, reviews are matched
against the pull request's head, the commit reviewers saw.

A version entering a gated environment without a scan of its artifacts is
denied (security.not_scanned). With --scan, check first scans every version
the change brings into an environment that has no current scan record
(reusing records, reading each artifact once) and records the result on the
version, as modelsync scan MODEL VERSION does.

Exit codes: 0 passed, 1 denied by the policy, 2 could not be judged (bad
flags, a repository or ref that cannot be read, a policy that does not
load, a failed evaluation or GitHub request).`,
		Example: `  modelsync check --repo . --base main --head my-branch
  modelsync check --repo . --base origin/main --head HEAD -o github
  gh api repos/acme/models/pulls/42/reviews --paginate --slurp > reviews.json
  modelsync check --repo . --base origin/main --head HEAD --reviews reviews.json --author carol`,
		Args: func(cmd *cobra.Command, args []string) error {
			return noVerdict(cobra.NoArgs(cmd, args))
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cmdutil.CheckFormat(opts.Output, cmdutil.FormatText, cmdutil.FormatJSON, FormatGitHub); err != nil {
				return noVerdict(err)
			}
			if opts.Base == "" || opts.Head == "" {
				return noVerdict(fmt.Errorf("both --base and --head are required"))
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return Run(cmd.Context(), opts)
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return noVerdict(err) })
	cmdutil.AddRepoFlags(cmd, &opts.Repo)
	cmd.Flags().Lookup("branch").Usage = "branch the base stands for when --base is a tag or commit"
	cmd.Flags().StringVar(&opts.Base, "base", "", "ref the change would merge into (anything git rev-parse takes: main, origin/main, a tag, a commit)")
	cmd.Flags().StringVar(&opts.Head, "head", "", "ref holding the change (e.g. HEAD, my-branch, a commit)")
	cmd.Flags().StringVarP(&opts.Output, "output", "o", cmdutil.FormatText, "output format: text, json or github")
	cmd.Flags().StringVar(&opts.ReviewsFile, "reviews", "", "file with the pull request's reviews, as GitHub's list-reviews API returns them (default: from the GitHub API in a GitHub Actions pull_request workflow with $GITHUB_TOKEN; otherwise none)")
	cmd.Flags().StringVar(&opts.Author, "author", "", "login of the pull request's author, whose own approval does not count (default: from GitHub, else the head commit's author)")
	cmd.Flags().StringVar(&f.Flags.MLflowURI, "mlflow-uri", "", "MLflow tracking URI for registry facts (default $MLFLOW_TRACKING_URI; none: rules needing them deny)")
	cmd.Flags().BoolVar(&opts.Scan, "scan", false, "before judging, scan the artifacts of every version the change brings into an environment that has no current scan record, and record the result on the version (needs --mlflow-uri and access to the artifacts)")
	cmd.Flags().StringVar(&opts.Advisories, "advisories", "", "with --scan: directory of OSV advisories (default: security.advisories.path of the base's modelsync.yaml)")
	cmd.Flags().StringVar(&f.Flags.S3Endpoint, "s3-endpoint", "", "with --scan: S3-compatible endpoint of the artifact store (default: AWS)")
	cmd.Flags().BoolVar(&f.Flags.S3PathStyle, "s3-path-style", false, "with --scan: address buckets by path, as most S3-compatible stores need")
	cmd.Flags().StringVar(&f.Flags.ArtifactsDestination, "artifacts-destination", "", "with --scan: storage URI behind mlflow-artifacts:/ (the MLflow server's --artifacts-destination)")
	return cmd
}

// Run performs the check and prints the report. It returns nil when the
// change passed, cmdutil.ErrSilent (exit 1) when the policy denied it, and
// an ExitNoVerdict error (exit 2) when it could not be judged.
func Run(ctx context.Context, opts *Options) error {
	rep, err := judge(ctx, opts)
	if err != nil {
		return noVerdict(err)
	}
	out := opts.Factory.IO.Out
	switch opts.Output {
	case cmdutil.FormatJSON:
		err = cmdutil.WriteJSON(out, NewJSONReport(rep))
	case FormatGitHub:
		err = prcheck.WriteGitHub(out, rep)
	default:
		err = prcheck.WriteText(out, rep)
	}
	switch {
	case err != nil:
		return noVerdict(err)
	case rep.Error != "":
		// The evaluation failed closed; the report says why.
		return &cmdutil.ExitError{Code: cmdutil.ExitNoVerdict}
	case !rep.Passed():
		return cmdutil.ErrSilent
	}
	return nil
}

// judge reads both refs, the reviews and the policy and evaluates it. A
// failed evaluation is in the report (Error set), not in the error.
func judge(ctx context.Context, opts *Options) (*prcheck.Report, error) {
	f := opts.Factory
	snap, err := f.OpenRepo(ctx, opts.Repo)
	if err != nil {
		return nil, err
	}
	for _, bad := range snap.BadTags() {
		fmt.Fprintf(f.IO.ErrOut, "warning: ignoring tag: %v\n", bad)
	}
	refs, err := ResolveRefs(snap, opts.Base, opts.Head, opts.Repo.Branch)
	if err != nil {
		return nil, err
	}
	r := prcheck.FromSnapshot(snap)
	cmp, err := prcheck.Compare(ctx, r, refs)
	if err != nil {
		return nil, err
	}
	src, err := prcheck.PolicySource(r, refs)
	if err != nil {
		return nil, err
	}
	load := opts.LoadPolicy
	if load == nil {
		load = prcheck.LoadPolicy
	}
	ev, err := load(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("policy from %s at %s: %w", src, refs.BaseRef, err)
	}
	head, err := snap.Source().Commit(refs.HeadSHA)
	if err != nil {
		return nil, err
	}
	req := prcheck.Request{
		PR:  policy.PullRequest{Author: firstNonEmpty(head.AuthorEmail, head.AuthorName, "unknown")},
		Now: opts.Now,
	}
	prHead, err := addReviews(ctx, opts, &req)
	if err != nil {
		return nil, err
	}
	if opts.Author != "" {
		req.PR.Author = opts.Author
	}
	// CI often judges its merge of the pull request into the base, while
	// reviewers saw the pull request's head. Only GitHub's word names
	// that head: a merge's parents alone could be a crafted merge that
	// passes off approvals of an older head as current.
	switch {
	case prHead == "" || prHead == refs.HeadSHA:
	case len(head.Parents) == 2 && head.Parents[1] == prHead:
		req.ReviewedSHA = prHead
	default:
		fmt.Fprintf(f.IO.ErrOut, "warning: head %s is neither the pull request's head %s nor a merge of it: reviews of that head do not count as current\n", refs.HeadSHA, prHead)
	}
	if opts.Scan {
		if err := scanReferenced(ctx, opts, cmp); err != nil {
			return nil, err
		}
	}
	facts := opts.Registry
	if facts == nil {
		if facts, err = registryFacts(f); err != nil {
			return nil, err
		}
	}
	if facts != nil {
		if req.Registry, err = facts.Facts(ctx, cmp, opts.Now); err != nil {
			return nil, fmt.Errorf("registry facts for %s: %w", refs.HeadRef, err)
		}
	}
	// A failed evaluation is in the report and makes Passed false.
	rep, _ := prcheck.Evaluate(ctx, cmp, ev, req)
	return rep, nil
}

// scanReferenced makes sure every version the change brings into an
// environment has a current scan record: each is listed, and scanned (one
// streaming pass over its artifacts, bounded memory) only when its tags
// hold no record for the objects listed now and this scanner version. The
// advisories come from the base's configuration, as the policy does: a
// change cannot loosen its own gate.
func scanReferenced(ctx context.Context, opts *Options, cmp *prcheck.Comparison) error {
	f := opts.Factory
	if !f.HasMLflow() {
		return fmt.Errorf("--scan needs the registry: set --mlflow-uri or $MLFLOW_TRACKING_URI")
	}
	var sec *manifest.Security
	if cmp.Base != nil && cmp.Base.Config != nil {
		sec = &cmp.Base.Config.Security
	}
	var subjects []scanrecord.Subject
	seen := map[string]bool{}
	for _, ch := range cmp.Changes {
		for _, v := range []int{ch.ToVersion, ch.CanaryTo} {
			key := fmt.Sprintf("%s/%d", ch.Model, v)
			if v <= 0 || seen[key] {
				continue
			}
			seen[key] = true
			s := scanrecord.Subject{Model: ch.Model, Registered: ch.Model, Version: v}
			if m, ok := cmp.Head.Model(ch.Model); ok {
				if m.RegisteredModel != "" {
					s.Registered = m.RegisteredModel
				}
				if m.Manifest != nil {
					s.SpecDependencies = m.Manifest.Spec.Dependencies
				}
			}
			subjects = append(subjects, s)
		}
	}
	if len(subjects) == 0 {
		return nil
	}
	ver, err := f.Verifier(ctx, wiring.VerifierOptions{Security: sec, AdvisoriesPath: opts.Advisories})
	if err != nil {
		return fmt.Errorf("--scan: %w", err)
	}
	for _, s := range subjects {
		o, err := ver.Ensure(ctx, s)
		if err != nil {
			return fmt.Errorf("--scan: %w", err)
		}
		how := "scanned now"
		if o.Reused {
			how = "scan record reused, no artifact read"
		}
		fmt.Fprintf(f.IO.ErrOut, "scan: %s v%d: %s (%s), digest %s: %d dangerous, %d unknown finding(s)\n",
			s.Model, s.Version, o.Record.Result, how, o.Record.Digest, o.Record.Findings.Dangerous, o.Record.Findings.Unknown)
	}
	return nil
}

// ResolveRefs turns the base and head refs into commits. A ref may be
// anything git rev-parse takes that names a commit: a branch, origin/<b>,
// a tag (annotated tags are peeled), HEAD or @, a full ref name, a full or
// abbreviated commit hash, each with ~N or ^N. The base branch is the
// branch the base ref names (origin/main: main), otherwise defaultBranch.
func ResolveRefs(snap *repo.Snapshot, base, head, defaultBranch string) (prcheck.Refs, error) {
	refs := prcheck.Refs{BaseRef: base, HeadRef: head, BaseBranch: defaultBranch}
	var err error
	if refs.BaseSHA, err = resolve(snap, base); err != nil {
		return refs, err
	}
	if refs.HeadSHA, err = resolve(snap, head); err != nil {
		return refs, err
	}
	if b, ok := snap.BranchOf(base); ok {
		refs.BaseBranch = b
	}
	return refs, nil
}

// resolve prefers a branch, as a pull request names its base (in a CI
// checkout "main" is origin's main), then resolves the ref as git
// rev-parse does: HEAD, origin/main, main~2, a tag, a commit.
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
