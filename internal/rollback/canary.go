package rollback

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	gh "github.com/google/go-github/v60/github"
	"github.com/modelsync/modelsync/internal/gitsource"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/release"
)

// CanaryField is the path of an environment's canary in a model manifest.
func CanaryField(env string) string { return "spec.environments." + env + ".canary" }

// CanaryOutcome is the end of an automated canary analysis, to be recorded
// in Git: Promote sets the environment's version to the candidate and
// removes the canary; otherwise (a rollback) only the canary is removed,
// and the stable version keeps serving. Revert is a rollback after the
// promotion: the promoted candidate failed its check after promotion, so
// the version goes back to Stable, whether Git still names the canary or
// already records the promotion.
type CanaryOutcome struct {
	Model       string
	Environment string
	Promote     bool
	Revert      bool
	Stable      int
	Candidate   int
	// Reason is the decision's reason; Evidence is the analysis' figures
	// (one line per metric), both recorded in the commit and the PR.
	Reason   string
	Evidence []string
	// Revision is the desired-state revision the canary ran from.
	Revision string
}

func (o *CanaryOutcome) verb() string {
	switch {
	case o.Promote:
		return "promote"
	case o.Revert:
		return "revert"
	}
	return "rollback"
}

// BranchName is the branch a proposed outcome is pushed to.
func (o *CanaryOutcome) BranchName() string {
	return fmt.Sprintf("modelsync/canary/%s-%s-v%d-%s", o.Model, o.Environment, o.Candidate, o.verb())
}

// Title is the one-line summary of the commit and the pull request.
func (o *CanaryOutcome) Title() string {
	if o.Promote {
		return fmt.Sprintf("canary: promote %s in %s to v%d", o.Model, o.Environment, o.Candidate)
	}
	if o.Revert {
		return fmt.Sprintf("canary: revert %s in %s to v%d (promoted v%d failed its check after promotion)", o.Model, o.Environment, o.Stable, o.Candidate)
	}
	return fmt.Sprintf("canary: roll back %s in %s to v%d (drop canary v%d)", o.Model, o.Environment, o.Stable, o.Candidate)
}

// Body is the commit message body and the pull request description: what
// changed, why, and the evidence.
func (o *CanaryOutcome) Body() string {
	var b strings.Builder
	if o.Promote {
		fmt.Fprintf(&b, "The canary analysis of model %s in environment %s promoted version %d: it now serves all traffic in place of version %d.\n", o.Model, o.Environment, o.Candidate, o.Stable)
	} else if o.Revert {
		fmt.Fprintf(&b, "Version %d of model %s in environment %s was promoted by its canary, then compared with version %d over equal windows before and after the promotion, and found clearly worse: version %d serves all traffic again.\n", o.Candidate, o.Model, o.Environment, o.Stable, o.Stable)
		b.WriteString("A before/after comparison is weaker evidence than the canary was: anything else that changed at the promotion counts too.\n")
	} else {
		fmt.Fprintf(&b, "The canary analysis of model %s in environment %s rolled back canary version %d: version %d serves all traffic again.\n", o.Model, o.Environment, o.Candidate, o.Stable)
	}
	b.WriteString("The controller has applied this already and holds it until Git agrees; merge to make it permanent.\n")
	if o.Reason != "" {
		fmt.Fprintf(&b, "\nDecision: %s\n", o.Reason)
	}
	if len(o.Evidence) > 0 {
		b.WriteString("\nEvidence:\n")
		for _, e := range o.Evidence {
			fmt.Fprintf(&b, "- %s\n", e)
		}
	}
	fmt.Fprintf(&b, "\nModelsync-Canary: %s v%d (stable v%d)\n", o.verb(), o.Candidate, o.Stable)
	if o.Revision != "" {
		fmt.Fprintf(&b, "Modelsync-Canary-Revision: %s\n", o.Revision)
	}
	return b.String()
}

// Message is the full commit message.
func (o *CanaryOutcome) Message() string { return o.Title() + "\n\n" + o.Body() }

// RemoveCanary returns data without the spec.environments.<env>.canary key
// and its value, every other byte unchanged (comments and blank lines
// around it stay). The key must be a plain `canary:` on a line of its own
// start; anything else yields *NotEditableError.
func RemoveCanary(file string, data []byte, pos manifest.Positions, env string) ([]byte, error) {
	field := CanaryField(env)
	p, ok := pos.Get(field)
	if !ok || p.Line < 1 {
		return nil, fmt.Errorf("%s: %s is not set; environment %s has no canary", file, field, env)
	}
	lines := strings.SplitAfter(string(data), "\n")
	if p.Line > len(lines) {
		return nil, fmt.Errorf("%s: %s: line %d is past the end of the file", file, field, p.Line)
	}
	// The key is on the value's line (flow or inline values) or on the
	// nearest line above it (a block mapping).
	keyLine := -1
	for i := p.Line - 1; i >= 0 && i >= p.Line-2; i-- {
		if strings.HasPrefix(strings.TrimLeft(lines[i], " "), "canary:") {
			keyLine = i
			break
		}
	}
	if keyLine < 0 {
		return nil, &NotEditableError{File: file, Field: field, Line: p.Line, Found: strings.TrimSpace(lines[p.Line-1])}
	}
	indent := len(lines[keyLine]) - len(strings.TrimLeft(lines[keyLine], " "))
	end := keyLine + 1 // one past the block's last content line
	for i := keyLine + 1; i < len(lines); i++ {
		t := strings.TrimLeft(lines[i], " ")
		if strings.TrimSpace(t) == "" {
			continue
		}
		if len(lines[i])-len(t) <= indent {
			break
		}
		end = i + 1
	}
	var out bytes.Buffer
	for i, l := range lines {
		if i < keyLine || i >= end {
			out.WriteString(l)
		}
	}
	return out.Bytes(), nil
}

// WriteCanaryOutcome records o in the models repository: in the manifest
// of the environment's branch (the config branch for a releases
// environment), the canary is removed and, on promotion, the version set
// to the candidate. The edited file must decode to the same model but for
// those two fields, or nothing is committed. The commit goes to a new
// branch for a pull request, or with opts.Direct to the branch itself; a
// releases environment with Direct also gets the next patch release tag,
// as a direct rollback does.
func (c *Checkout) WriteCanaryOutcome(ctx context.Context, o *CanaryOutcome, opts WriteOptions) (*Written, string, error) {
	if opts.Author.Name == "" || opts.Author.Email == "" {
		return nil, "", fmt.Errorf("canary %s of model %s in %s: a commit author name and email are required", o.verb(), o.Model, o.Environment)
	}
	if err := release.ValidateModelName(o.Model); err != nil {
		return nil, "", err
	}
	head, err := c.Head()
	if err != nil {
		return nil, "", err
	}
	files, err := c.Files(head.Hash)
	if err != nil {
		return nil, "", err
	}
	cfg, cfgErrs, err := manifest.LoadConfig(files)
	if err != nil {
		return nil, "", err
	}
	if len(cfgErrs) > 0 {
		return nil, "", fmt.Errorf("modelsync.yaml on branch %s is invalid:\n%w", c.branch, cfgErrs)
	}
	ec, ok := cfg.Environment(o.Environment)
	if !ok {
		return nil, "", fmt.Errorf("environment %q is not in modelsync.yaml on branch %s", o.Environment, c.branch)
	}
	ch := &Change{Model: o.Model, Environment: o.Environment, Config: cfg, Branch: c.branch, Releases: ec.FollowsReleases()}
	if !ch.Releases {
		ch.Branch = ec.Source
	}
	if err := c.UseBranch(ch.Branch); err != nil {
		return nil, "", err
	}
	rel := manifest.ModelPath(o.Model)
	before, pos, err := c.loadWorking(ch)
	if err != nil {
		return nil, "", err
	}
	w := &Written{Branch: ch.Branch, Base: ch.Branch}
	spec, ok := before.Spec.Environments[o.Environment]
	if !ok {
		return nil, "", fmt.Errorf("model %s does not run in environment %s on branch %s", o.Model, o.Environment, ch.Branch)
	}
	want := spec
	want.Canary = nil
	if o.Promote {
		want.Version = o.Candidate
	}
	if o.Revert {
		want.Version = o.Stable
	}
	if spec.Canary == nil && spec.Version == want.Version {
		// Someone recorded the outcome already.
		h, err := c.Head()
		if err != nil {
			return nil, "", err
		}
		w.Commit = h.Hash
		return w, "", nil
	}
	// A revert finds Git before the promotion was recorded (the canary
	// still named) or after (the candidate is the version, no canary).
	promotedInGit := o.Revert && spec.Canary == nil && spec.Version == o.Candidate
	if !promotedInGit && (spec.Canary == nil || spec.Canary.Version != o.Candidate || spec.Version != o.Stable) {
		return nil, "", fmt.Errorf("model %s in %s on branch %s no longer runs v%d with canary v%d; not recording the canary %s",
			o.Model, o.Environment, ch.Branch, o.Stable, o.Candidate, o.verb())
	}
	data, err := c.ReadFile(rel)
	if err != nil {
		return nil, "", err
	}
	edited := data
	if o.Promote || promotedInGit {
		if edited, err = SetVersion(rel, edited, pos, o.Environment, want.Version); err != nil {
			return nil, "", fmt.Errorf("canary %s of model %s in %s: %w", o.verb(), o.Model, o.Environment, err)
		}
	}
	// The version scalar precedes or follows the canary block; its edit
	// keeps line numbers, so the canary's position is still right.
	if spec.Canary != nil {
		if edited, err = RemoveCanary(rel, edited, pos, o.Environment); err != nil {
			return nil, "", fmt.Errorf("canary %s of model %s in %s: %w", o.verb(), o.Model, o.Environment, err)
		}
	}
	if err := c.WriteFile(rel, edited); err != nil {
		return nil, "", err
	}
	after, _, err := c.loadWorking(ch)
	if err != nil {
		return nil, "", fmt.Errorf("the edited manifest does not load: %w", err)
	}
	exp := *before
	exp.Spec.Environments = map[string]manifest.EnvironmentSpec{}
	for k, v := range before.Spec.Environments {
		exp.Spec.Environments[k] = v
	}
	exp.Spec.Environments[o.Environment] = want
	if !reflect.DeepEqual(&exp, after) {
		return nil, "", fmt.Errorf("canary %s of model %s in %s: editing %s changed more than the version and the canary; refusing to commit", o.verb(), o.Model, o.Environment, rel)
	}
	branch := o.BranchName()
	if opts.Direct {
		branch = ch.Branch
	}
	hash, err := c.CommitFiles(branch, []string{rel}, o.Message(), opts.Author)
	if err != nil {
		return nil, "", err
	}
	if err := c.PushBranch(ctx, !opts.Direct); err != nil {
		return nil, "", err
	}
	w.Branch, w.Commit, w.Changed = branch, hash, true
	if ch.Releases && opts.Direct {
		tag, err := c.TagNextPatch(ctx, o.Model, o.Title(), opts.Author)
		if err != nil {
			return w, "", fmt.Errorf("canary %s of model %s in %s was pushed to %s, but the release tag failed: %w", o.verb(), o.Model, o.Environment, branch, err)
		}
		return w, tag, nil
	}
	return w, "", nil
}

// CanaryWriter records canary outcomes in the models repository for the
// controller: each write is a fresh clone, an edit, a push and (unless
// Direct) a pull request, as `modelsync rollback` makes them.
type CanaryWriter struct {
	URL    string
	Branch string // the config branch
	Auth   gitsource.Auth
	// Direct commits to the environment's branch; otherwise the change is
	// pushed to its own branch and a pull request opened with GitHub.
	Direct bool
	GitHub *gh.Client
	// Owner and Name are the GitHub repository of pull requests.
	Owner, Name string
	Author      func() Signature
	// TempDir holds the clones (default: the system's).
	TempDir string
}

// WriteBack implements the controller's CanaryWriteBack: it returns the
// pull request URL, or the branch and commit written.
func (w *CanaryWriter) WriteBack(ctx context.Context, o *CanaryOutcome) (string, error) {
	if !w.Direct && w.GitHub == nil {
		return "", fmt.Errorf("canary %s of model %s in %s: pull requests need a GitHub client (configure GitHub or direct write-back)", o.verb(), o.Model, o.Environment)
	}
	tmp, err := os.MkdirTemp(w.TempDir, "modelsync-canary-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	co, err := Clone(ctx, CloneOptions{URL: w.URL, Branch: w.Branch, Auth: w.Auth, Dir: filepath.Join(tmp, "repo")})
	if err != nil {
		return "", err
	}
	defer co.Close()
	written, tag, err := co.WriteCanaryOutcome(ctx, o, WriteOptions{Direct: w.Direct, Author: w.Author()})
	if err != nil {
		return "", err
	}
	if !written.Changed {
		return "already in Git at " + written.Branch + "@" + written.Commit, nil
	}
	if w.Direct {
		where := "commit " + written.Commit + " on " + written.Branch
		if tag != "" {
			where += ", release " + tag
		}
		return where, nil
	}
	pr, err := OpenPullRequest(ctx, w.GitHub, w.Owner, w.Name, written.Branch, written.Base, o.Title(), o.Body()+"\nOpened by the modelsync controller's canary analysis.\n")
	if err != nil {
		return "", fmt.Errorf("branch %s was pushed but %w", written.Branch, err)
	}
	return pr.URL, nil
}
