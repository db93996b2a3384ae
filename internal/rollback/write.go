package rollback

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/modelsync/modelsync/internal/manifest"
)

// BranchName is the branch a proposed rollback is pushed to.
func BranchName(model, env string, version int) string {
	return fmt.Sprintf("modelsync/rollback/%s-%s-v%d", model, env, version)
}

// WriteOptions say how the change is recorded in Git.
type WriteOptions struct {
	// Direct commits on the change's branch itself instead of a new
	// rollback branch. Branch protection normally forbids this.
	Direct bool
	// Reason is recorded in the commit message.
	Reason string
	Author Signature
}

// Written is what a rollback recorded in Git.
type Written struct {
	// Branch the commit was made on and pushed to.
	Branch string
	// Commit is the new commit, or the branch head when the manifest
	// already named the target version (possible only for a releases
	// environment whose config branch was reverted but not released).
	Commit string
	// Changed is false when no commit was needed.
	Changed bool
	// Base is the branch the change is for (a pull request's base).
	Base string
	// Line is the manifest line that changed; Before and After are its
	// text, for the report.
	Line          int
	Before, After string
}

// Title is the one-line summary used for the commit and the pull request.
func (ch *Change) Title() string {
	return fmt.Sprintf("rollback: %s in %s from v%d to v%d", ch.Model, ch.Environment, ch.From, ch.To)
}

// Message is the full commit message.
func (ch *Change) Message(reason string) string {
	var b strings.Builder
	b.WriteString(ch.Title())
	b.WriteString("\n\n")
	fmt.Fprintf(&b, "Roll back model %s in environment %s from version %d to version %d.\n", ch.Model, ch.Environment, ch.From, ch.To)
	if reason != "" {
		fmt.Fprintf(&b, "\nReason: %s\n", reason)
	}
	fmt.Fprintf(&b, "\nModelsync-Rollback-From: v%d (%s)\n", ch.From, ch.FromRevision)
	to := "not run here before"
	if ch.ToRevision != "" {
		to = ch.ToRevision
	}
	fmt.Fprintf(&b, "Modelsync-Rollback-To: v%d (%s)\n", ch.To, to)
	return b.String()
}

// Write edits spec.environments.<env>.version of the model manifest in the
// clone (one scalar, in place), checks that the edited file decodes to the
// same model but for that version, commits it and pushes it: to a new
// rollback branch, or with Direct to the change's branch.
func (c *Checkout) Write(ctx context.Context, ch *Change, opts WriteOptions) (*Written, error) {
	if opts.Author.Name == "" || opts.Author.Email == "" {
		return nil, fmt.Errorf("rollback of model %s in %s: a commit author name and email are required (set GIT_AUTHOR_NAME and GIT_AUTHOR_EMAIL)", ch.Model, ch.Environment)
	}
	if err := c.UseBranch(ch.Branch); err != nil {
		return nil, err
	}
	rel := manifest.ModelPath(ch.Model)
	before, pos, err := c.loadWorking(ch)
	if err != nil {
		return nil, err
	}
	w := &Written{Branch: ch.Branch}
	spec, ok := before.Spec.Environments[ch.Environment]
	if !ok {
		return nil, fmt.Errorf("model %s does not run in environment %s on branch %s; add it there by hand", ch.Model, ch.Environment, ch.Branch)
	}
	if spec.Version == ch.To {
		head, err := c.Head()
		if err != nil {
			return nil, err
		}
		w.Commit = head.Hash
		return w, nil
	}
	data, err := c.ReadFile(rel)
	if err != nil {
		return nil, err
	}
	edited, err := SetVersion(rel, data, pos, ch.Environment, ch.To)
	if err != nil {
		return nil, fmt.Errorf("rollback of model %s in %s to version %d: %w", ch.Model, ch.Environment, ch.To, err)
	}
	line := pos.At(VersionField(ch.Environment)).Line
	w.Line, w.Before, w.After = line, lineOf(data, line), lineOf(edited, line)
	if err := c.WriteFile(rel, edited); err != nil {
		return nil, err
	}
	after, _, err := c.loadWorking(ch)
	if err != nil {
		return nil, fmt.Errorf("the edited manifest does not load: %w", err)
	}
	want := *before
	want.Spec.Environments = map[string]manifest.EnvironmentSpec{}
	for k, v := range before.Spec.Environments {
		want.Spec.Environments[k] = v
	}
	spec.Version = ch.To
	want.Spec.Environments[ch.Environment] = spec
	if !reflect.DeepEqual(&want, after) {
		return nil, fmt.Errorf("rollback of model %s in %s: editing %s changed more than the version; refusing to commit", ch.Model, ch.Environment, rel)
	}
	branch := BranchName(ch.Model, ch.Environment, ch.To)
	if opts.Direct {
		branch = ch.Branch
	}
	hash, err := c.CommitFiles(branch, []string{rel}, ch.Message(opts.Reason), opts.Author)
	if err != nil {
		return nil, err
	}
	if err := c.PushBranch(ctx, !opts.Direct); err != nil {
		return nil, err
	}
	w.Branch, w.Commit, w.Changed = branch, hash, true
	return w, nil
}

// loadWorking validates the model in the work tree and returns it with the
// positions of its fields.
func (c *Checkout) loadWorking(ch *Change) (*manifest.Model, manifest.Positions, error) {
	m, pos, problems, err := manifest.LoadModel(os.DirFS(c.dir), ch.Model, ch.Config)
	if err != nil {
		return nil, manifest.Positions{}, err
	}
	if len(problems) > 0 {
		return nil, manifest.Positions{}, fmt.Errorf("model %s on branch %s is invalid; fix it first:\n%w", ch.Model, c.branch, problems)
	}
	return m, pos, nil
}

func lineOf(data []byte, line int) string {
	lines := strings.Split(string(data), "\n")
	if line < 1 || line > len(lines) {
		return ""
	}
	return lines[line-1]
}
