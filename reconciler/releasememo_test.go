package reconciler

import (
	"fmt"
	"io/fs"
	"reflect"
	"testing"
	"testing/fstest"

	"github.com/modelsync/modelsync/internal/manifest"
)

// lookupFS counts the content lookups (each a walk through the commit's
// directories in Git) made in one commit's tree.
type lookupFS struct {
	fstest.MapFS
	lookups *int
}

func (f lookupFS) ContentHash(name string) (string, error) {
	*f.lookups++
	return hashingFS{MapFS: f.MapFS}.ContentHash(name)
}

type lookupSnapshot struct {
	*memSnapshot
	lookups map[string]*int
}

func (s lookupSnapshot) Tree(h string) (fs.FS, error) {
	t, err := s.memSnapshot.Tree(h)
	if err != nil {
		return nil, err
	}
	if s.lookups[h] == nil {
		s.lookups[h] = new(int)
	}
	return lookupFS{t.(fstest.MapFS), s.lookups[h]}, nil
}

// Each model released at a commit of its own: a push to main then looks
// nothing up at any release commit, the desired state equals one computed
// afresh, and a tag moved to a new commit is read again.
func TestReleaseMemoSkipsReleasesAPushCannotChange(t *testing.T) {
	mem := &memSnapshot{commits: map[string]fstest.MapFS{}, branches: map[string]string{}}
	models := map[string]string{}
	for i := range 20 {
		n := fmt.Sprintf("m%02d", i)
		models[n] = modelYAML(n, "    dev: {version: 2}\n    prod: {version: 1}")
		rel := fmt.Sprintf("r%02d", i)
		mem.commits[rel] = tree(models)
		mem.tag(t, n+"/v1.0.0", rel)
	}
	mem.commits["head1"] = tree(models)
	mem.branches["main"] = "head1"
	s := lookupSnapshot{mem, map[string]*int{}}
	opts := DesiredOptions{Manifests: manifest.NewCache(), Releases: NewReleaseMemo()}
	if _, err := ComputeDesiredWith(s, "main", opts); err != nil {
		t.Fatal(err)
	}
	if n := opts.Releases.Len(); n != 20 {
		t.Fatalf("memo holds %d releases, want 20", n)
	}
	releaseLookups := func() int {
		n := 0
		for h, c := range s.lookups {
			if h != "head1" && h != "head2" {
				n += *c
			}
		}
		return n
	}
	before := releaseLookups()
	if before == 0 {
		t.Fatal("the first pass looked nothing up at the release commits")
	}

	models["m07"] = modelYAML("m07", "    dev: {version: 3}\n    prod: {version: 1}")
	mem.commits["head2"] = tree(models)
	mem.branches["main"] = "head2"
	d, err := ComputeDesiredWith(s, "main", opts)
	if err != nil {
		t.Fatal(err)
	}
	if n := releaseLookups() - before; n != 0 {
		t.Errorf("the pass after a push to main made %d lookups at release commits, want 0", n)
	}
	fresh, err := ComputeDesired(mem, "main")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(envSummary(d), envSummary(fresh)) {
		t.Errorf("with the memo:\n%v\nafresh:\n%v", envSummary(d), envSummary(fresh))
	}

	// m03 released again at a new commit with prod v2.
	models["m03"] = modelYAML("m03", "    dev: {version: 2}\n    prod: {version: 2}")
	mem.commits["r03b"] = tree(models)
	mem.tag(t, "m03/v1.1.0", "r03b")
	d, err = ComputeDesiredWith(s, "main", opts)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := d.Model("m03")
	prod, _ := m.Env("prod")
	if prod == nil || prod.Version != 2 || prod.Release != "m03/v1.1.0" || prod.Commit.Hash != "r03b" {
		t.Errorf("m03 prod after a new release: %+v", prod)
	}
	if n := opts.Releases.Len(); n != 20 {
		t.Errorf("memo holds %d releases after m03's new one, want 20 (the old one dropped)", n)
	}
}

// envSummary is what a desired state decides per model and environment.
func envSummary(d *DesiredState) []string {
	var out []string
	for _, m := range d.Models {
		for _, e := range m.Environments {
			out = append(out, fmt.Sprintf("%s/%s v%d %s %s %s %+v", m.Name, e.Environment, e.Version, e.Revision, e.Release, e.Commit.Hash, e.Serving))
		}
	}
	return out
}
