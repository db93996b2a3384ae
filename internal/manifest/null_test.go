package manifest

import (
	"strings"
	"testing"
	"testing/fstest"
)

// A document that is null ("null", "~", an anchored empty value) is a
// problem of its file, not a model whose fields are all zero (found by
// FuzzLoadModel: "&00" was accepted as a model named "").
func TestNullDocumentIsRefused(t *testing.T) {
	cfg := &RepoConfig{Environments: []Environment{{Name: "dev", Namespace: "d", Source: "main"}}}
	for _, in := range []string{"null\n", "~\n", "&00", "--- !!null\n"} {
		fsys := fstest.MapFS{"models/churn/model.yaml": {Data: []byte(in)}}
		m, _, errs, err := LoadModel(fsys, "churn", cfg)
		if err != nil || m != nil || len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), "models/churn/model.yaml:1:") || !strings.HasSuffix(errs[0].Error(), ": the document is null; expected a YAML mapping") {
			t.Errorf("%q: model %v, problems %v, err %v", in, m != nil, errs, err)
		}
	}
	if _, errs, _ := LoadConfig(fstest.MapFS{ConfigFile: {Data: []byte("~\n")}}); len(errs) == 0 {
		t.Error("a null modelsync.yaml was accepted")
	}
}
