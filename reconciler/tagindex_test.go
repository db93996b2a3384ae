package reconciler

import (
	"fmt"
	"testing"
	"testing/fstest"

	"github.com/modelsync/modelsync/internal/release"
)

// countingTags counts how often the desired state reads the whole list of
// release tags.
type countingTags struct {
	*memSnapshot
	reads int
}

func (s *countingTags) ReleaseTags() []release.Tag {
	s.reads++
	return s.memSnapshot.ReleaseTags()
}

// Finding each model's newest release must not scan every tag of the
// repository: with one tag per model that made the desired state cost
// models² comparisons (10⁸ at 10,000 models). The list is read once and
// indexed by model; the releases found are the same.
func TestComputeDesiredReadsReleaseTagsOnce(t *testing.T) {
	models := map[string]string{}
	for i := range 40 {
		models[fmt.Sprintf("m%02d", i)] = modelYAML(fmt.Sprintf("m%02d", i), "    dev: {version: 1}\n    prod: {version: 1}")
	}
	s := &countingTags{memSnapshot: &memSnapshot{commits: map[string]fstest.MapFS{"c1": tree(models)}, branches: map[string]string{"main": "c1"}}}
	for i := range 39 { // m39 is never released: a warning, not a scan
		s.tag(t, fmt.Sprintf("m%02d/v1.0.0", i), "c1")
		s.tag(t, fmt.Sprintf("m%02d/v1.1.0", i), "c1")
	}
	d, err := ComputeDesired(s, "main")
	if err != nil {
		t.Fatal(err)
	}
	if s.reads > 1 {
		t.Errorf("the release tags were read %d times for %d models, want once", s.reads, len(models))
	}
	for _, m := range d.Models {
		prod, ok := m.Env("prod")
		switch {
		case m.Name == "m39" && ok:
			t.Errorf("m39 has no release but runs %v", prod)
		case m.Name != "m39" && (!ok || prod.Release != m.Name+"/v1.1.0"):
			t.Errorf("%s prod: %+v, want release %s/v1.1.0", m.Name, prod, m.Name)
		}
	}
	if len(d.Warnings) != 1 || d.Warnings[0].Model != "m39" {
		t.Errorf("warnings %+v, want one for m39", d.Warnings)
	}
}
