package rollback

import (
	"errors"
	"fmt"
	"path"
	"reflect"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/modelsync/modelsync/internal/manifest"
)

// Unreleased lists what a release cut from commit would ship to the
// releases environment besides the rollback itself: files of the model
// folder that differ from the current release, and manifest fields other
// than the versions of other environments. A release tag on the rollback
// commit takes the whole folder, so these changes reach the environment
// together with the rollback; the caller shows them so nobody ships them
// by surprise. It returns nil for a branch environment.
func (c *Checkout) Unreleased(ch *Change, commit string) ([]string, error) {
	if !ch.Releases || ch.releaseCommit == "" {
		return nil, nil
	}
	from, err := c.commitAt(ch.releaseCommit)
	if err != nil {
		return nil, fmt.Errorf("release %s of model %s: %w", ch.CurrentRelease, ch.Model, err)
	}
	to, err := c.commitAt(commit)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", commit, err)
	}
	dir := path.Join(manifest.ModelsDir, ch.Model)
	a, err := subtree(from, dir)
	if err != nil {
		return nil, err
	}
	b, err := subtree(to, dir)
	if err != nil {
		return nil, err
	}
	var out []string
	if a != nil && b != nil {
		changes, err := object.DiffTree(a, b)
		if err != nil {
			return nil, fmt.Errorf("comparing %s at %s and %s: %w", dir, ch.CurrentRelease, commit, err)
		}
		for _, chg := range changes {
			name := chg.To.Name
			if name == "" {
				name = chg.From.Name
			}
			if name != manifest.ModelFile {
				out = append(out, path.Join(dir, name))
			}
		}
	}
	fields, err := c.manifestDrift(ch, from, to)
	if err != nil {
		return nil, err
	}
	out = append(out, fields...)
	sort.Strings(out)
	return out, nil
}

func subtree(c *object.Commit, dir string) (*object.Tree, error) {
	t, err := c.Tree()
	if err != nil {
		return nil, err
	}
	sub, err := t.Tree(dir)
	if errors.Is(err, object.ErrDirectoryNotFound) || errors.Is(err, plumbing.ErrObjectNotFound) {
		return nil, nil
	}
	return sub, err
}

// manifestDrift names the top-level manifest sections that differ between
// the release and the rollback commit, ignoring other environments (a
// releases environment does not run them) and the rolled-back version.
func (c *Checkout) manifestDrift(ch *Change, from, to *object.Commit) ([]string, error) {
	load := func(commit *object.Commit) (*manifest.Model, error) {
		files, err := c.Files(commit)
		if err != nil {
			return nil, err
		}
		m, _, problems, err := manifest.LoadModel(files, ch.Model, ch.Config)
		if err != nil {
			return nil, err
		}
		if len(problems) > 0 {
			return nil, fmt.Errorf("model %s at %s is invalid: %w", ch.Model, commit.Hash, problems)
		}
		spec := m.Spec.Environments[ch.Environment]
		spec.Version = 0
		m.Spec.Environments = map[string]manifest.EnvironmentSpec{ch.Environment: spec}
		return m, nil
	}
	a, err := load(from)
	if err != nil {
		return nil, err
	}
	b, err := load(to)
	if err != nil {
		return nil, err
	}
	var out []string
	file := manifest.ModelPath(ch.Model)
	if !reflect.DeepEqual(a.Metadata, b.Metadata) {
		out = append(out, file+": metadata")
	}
	va, vb := reflect.ValueOf(a.Spec), reflect.ValueOf(b.Spec)
	for i := range va.NumField() {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			name, _, _ := strings.Cut(va.Type().Field(i).Tag.Get("yaml"), ",")
			if name == "environments" {
				name = "environments." + ch.Environment + " (besides the version)"
			}
			out = append(out, file+": spec."+name)
		}
	}
	return out, nil
}
