package rollback

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/modelsync/modelsync/internal/manifest"
)

// A manifest written by hand: comments everywhere, a flow mapping, quoted
// strings, odd spacing and a multi-byte character before the value.
const handWritten = `# Churn model — owned by customer analytics.
apiVersion: modelsync.dev/v1alpha1
kind: Model
metadata:
  name: churn   # folder name
spec:
  owners: [alice-ml]
  environments:
    # dev follows main
    dev: {version: 9, canary: {version: 10, steps: [20, 50]}}   # flow style
    staging:
      version:    4      # promoted after a week in dev
    prod:
      version: 3
  serving:
    path: "serving"
    modelFormat: sklearn
  modelCard:
    description: "Prédit le churn"
`

func load(t *testing.T, text string) (*manifest.Model, manifest.Positions) {
	t.Helper()
	fsys := fstest.MapFS{
		"models/churn/model.yaml":                 {Data: []byte(text)},
		"models/churn/serving/kustomization.yaml": {Data: []byte("resources: []\n")},
	}
	m, pos, problems, err := manifest.LoadModel(fsys, "churn", nil)
	if err != nil || len(problems) > 0 {
		t.Fatalf("load: %v %v", err, problems)
	}
	return m, pos
}

func TestSetVersionChangesOnlyThatScalar(t *testing.T) {
	_, pos := load(t, handWritten)
	for _, tc := range []struct {
		env     string
		version int
		line    int
		want    string
	}{
		{"staging", 3, 12, "      version:    3      # promoted after a week in dev"},
		{"dev", 12, 10, "    dev: {version: 12, canary: {version: 10, steps: [20, 50]}}   # flow style"},
		{"prod", 2, 14, "      version: 2"},
	} {
		out, err := SetVersion("model.yaml", []byte(handWritten), pos, tc.env, tc.version)
		if err != nil {
			t.Fatalf("%s: %v", tc.env, err)
		}
		before, after := strings.Split(handWritten, "\n"), strings.Split(string(out), "\n")
		if len(before) != len(after) {
			t.Fatalf("%s: line count %d -> %d", tc.env, len(before), len(after))
		}
		for i := range before {
			switch {
			case i == tc.line-1 && after[i] != tc.want:
				t.Errorf("%s: line %d = %q, want %q", tc.env, i+1, after[i], tc.want)
			case i != tc.line-1 && after[i] != before[i]:
				t.Errorf("%s: line %d changed: %q -> %q", tc.env, i+1, before[i], after[i])
			}
		}
		m, _ := load(t, string(out))
		if got := m.Spec.Environments[tc.env].Version; got != tc.version {
			t.Errorf("%s: decodes to version %d, want %d", tc.env, got, tc.version)
		}
	}
}

func TestSetVersionRefusesWhatItCannotRewrite(t *testing.T) {
	for name, text := range map[string]string{
		"hex":    strings.Replace(handWritten, "version: 3", "version: 0x3", 1),
		"alias":  strings.Replace(strings.Replace(handWritten, "version:    4", "version: &v 4", 1), "version: 3", "version: *v", 1),
		"tagged": strings.Replace(handWritten, "version: 3", `version: !!int "3"`, 1),
	} {
		_, pos := load(t, text)
		_, err := SetVersion("model.yaml", []byte(text), pos, "prod", 2)
		var ne *NotEditableError
		if !errors.As(err, &ne) || ne.Line != 14 || ne.Field != "spec.environments.prod.version" {
			t.Errorf("%s: err = %v, want a NotEditableError at line 14", name, err)
		}
	}
	_, pos := load(t, handWritten)
	if _, err := SetVersion("model.yaml", []byte(handWritten), pos, "qa", 2); err == nil || !strings.Contains(err.Error(), "does not run in environment qa") {
		t.Errorf("unknown environment: err = %v", err)
	}
	if _, err := SetVersion("model.yaml", []byte(handWritten), pos, "prod", 0); err == nil {
		t.Error("version 0 accepted")
	}
}

func TestOffsetCountsCharactersNotBytes(t *testing.T) {
	data := []byte("a: 1\n\"é€\": 22\n")
	i, err := offset(data, manifest.Pos{Line: 2, Column: 7})
	if err != nil || string(data[i:i+2]) != "22" {
		t.Fatalf("offset = %d, %v", i, err)
	}
	if _, err := offset(data, manifest.Pos{Line: 9, Column: 1}); err == nil {
		t.Error("line past the end accepted")
	}
}

func TestRepoFromRemote(t *testing.T) {
	for remote, want := range map[string]string{
		"https://github.com/acme/models.git":            "acme/models",
		"https://ghe.example.com/acme/models":           "acme/models",
		"ssh://git@github.com/acme/models.git":          "acme/models",
		"git@github.com:acme/models.git":                "acme/models",
		"https://ghe.example.com/scm/team/acme/models/": "acme/models",
	} {
		o, n, err := RepoFromRemote(remote)
		if err != nil || o+"/"+n != want {
			t.Errorf("%s: %s/%s %v, want %s", remote, o, n, err, want)
		}
	}
	if _, _, err := RepoFromRemote("http://127.0.0.1:8080/models.git"); err == nil {
		t.Error("single-segment path accepted")
	}
}
