package rollback

import (
	"fmt"
	"path"
	"reflect"
	"sort"
	"strings"

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
	from := ch.releaseCommit
	if _, err := c.ws.Commit(from); err != nil {
		return nil, fmt.Errorf("release %s of model %s: %w", ch.CurrentRelease, ch.Model, err)
	}
	if _, err := c.ws.Commit(commit); err != nil {
		return nil, fmt.Errorf("commit %s: %w", commit, err)
	}
	dir := path.Join(manifest.ModelsDir, ch.Model)
	a, aok, err := c.ws.PathHash(from, dir)
	if err != nil {
		return nil, err
	}
	b, bok, err := c.ws.PathHash(commit, dir)
	if err != nil {
		return nil, err
	}
	var out []string
	if aok && bok && a != b {
		changed, err := c.ws.ChangedPaths(from, commit)
		if err != nil {
			return nil, fmt.Errorf("comparing %s at %s and %s: %w", dir, ch.CurrentRelease, commit, err)
		}
		for _, p := range changed {
			if rest, ok := strings.CutPrefix(p, dir+"/"); ok && rest != manifest.ModelFile {
				out = append(out, p)
			}
		}
	}
	fields, err := c.manifestDrift(ch, from, commit)
	if err != nil {
		return nil, err
	}
	out = append(out, fields...)
	sort.Strings(out)
	return out, nil
}

// manifestDrift names the top-level manifest sections that differ between
// the release and the rollback commit, ignoring other environments (a
// releases environment does not run them) and the rolled-back version.
func (c *Checkout) manifestDrift(ch *Change, from, to string) ([]string, error) {
	load := func(commit string) (*manifest.Model, error) {
		files, err := c.Files(commit)
		if err != nil {
			return nil, err
		}
		m, _, problems, err := manifest.LoadModel(files, ch.Model, ch.Config)
		if err != nil {
			return nil, err
		}
		if len(problems) > 0 {
			return nil, fmt.Errorf("model %s at %s is invalid: %w", ch.Model, commit, problems)
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
