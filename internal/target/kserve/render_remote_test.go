package kserve

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/modelsync/modelsync/internal/manifest"
)

// processTrap puts logging git and ssh wrappers first on PATH and points
// TMPDIR at an empty directory, so a test sees every process kustomize
// starts and every temporary directory it leaves. gitScript, when not
// empty, is what the git wrapper does after logging (a fake clone).
type processTrap struct {
	log, tmp string
}

func newProcessTrap(t *testing.T, gitScript string) *processTrap {
	t.Helper()
	bin, tmp := t.TempDir(), t.TempDir()
	p := &processTrap{log: filepath.Join(t.TempDir(), "exec.log"), tmp: tmp}
	if gitScript == "" {
		gitScript = "exit 1"
	}
	for name, body := range map[string]string{"git": gitScript, "ssh": "exit 255"} {
		script := "#!/bin/sh\necho \"" + name + " $*\" >> " + strconv.Quote(p.log) + "\n" + body + "\n"
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("TMPDIR", tmp)
	return p
}

// ran returns what the wrappers logged.
func (p *processTrap) ran(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(p.log)
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// leftovers lists what renders left in the temporary directory.
func (p *processTrap) leftovers(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(p.tmp)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func kustomizationWith(field, ref string) string {
	return "resources:\n- isvc.yaml\n" + field + ":\n- " + strconv.Quote(ref) + "\n"
}

func TestRenderRefusesNonLocalReferencesWithoutRunningAProcess(t *testing.T) {
	pwned := filepath.Join(t.TempDir(), "pwned")
	upload := "--upload-pack=touch " + pwned
	off := manifest.ServingPolicy{}
	on := func(hosts ...string) manifest.ServingPolicy {
		return manifest.ServingPolicy{AllowRemoteBases: true, RemoteBaseHosts: hosts}
	}
	cases := []struct {
		name   string
		field  string
		ref    string
		policy manifest.ServingPolicy
		// localDir makes the reference also exist as a directory in the
		// model folder, as an attacker would to pass an existence test.
		localDir bool
	}{
		{name: "scp-style without a dot", field: "resources", ref: "user@gitserver:org/repo", policy: off},
		{name: "scp-style with a dot", field: "resources", ref: "git@git.example.com:org/repo.git", policy: off},
		{name: "git:: prefix", field: "resources", ref: "git::https://git.example.com/org/repo", policy: off},
		{name: "ssh URL", field: "resources", ref: "ssh://git@git.example.com/org/repo", policy: off},
		{name: "file URL", field: "resources", ref: "file:///srv/git/repo", policy: off},
		{name: "upload-pack in ref", field: "resources", ref: "https://127.0.0.1:1/org/repo?ref=" + upload, policy: off},
		{name: "github shorthand", field: "resources", ref: "github.com/org/repo", policy: off},
		{name: "github shorthand that also exists locally", field: "resources", ref: "github.com/org/repo", policy: off, localDir: true},
		{name: "scp-style component", field: "components", ref: "user@gitserver:org/repo", policy: off},
		{name: "scp-style base", field: "bases", ref: "user@gitserver:org/repo", policy: off},
		{name: "scp-style generator", field: "generators", ref: "user@gitserver:org/repo", policy: off},
		{name: "git:: transformer", field: "transformers", ref: "git::ssh://gitserver/org/repo", policy: off},
		{name: "scp-style validator", field: "validators", ref: "user@gitserver:org/repo", policy: off},
		{name: "remote allowed, host not listed", field: "resources", ref: "https://127.0.0.1:1/org/repo//base?ref=v1&submodules=false", policy: on("git.example.com")},
		{name: "remote allowed, no host listed", field: "resources", ref: "https://127.0.0.1:1/org/repo//base?ref=v1&submodules=false", policy: on()},
		{name: "remote allowed, option-like ref", field: "resources", ref: "https://127.0.0.1:1/org/repo?ref=" + upload + "&submodules=false", policy: on("127.0.0.1:1")},
		{name: "remote allowed, option-like ref without spaces", field: "resources", ref: "https://127.0.0.1:1/org/repo?ref=--upload-pack=id&submodules=false", policy: on("127.0.0.1:1")},
		{name: "remote allowed, option-like version", field: "resources", ref: "https://127.0.0.1:1/org/repo?version=-uhack&submodules=false", policy: on("127.0.0.1:1")},
		{name: "remote allowed, submodules not off", field: "resources", ref: "https://127.0.0.1:1/org/repo?ref=v1", policy: on("127.0.0.1:1")},
		{name: "remote allowed, scp-style to a listed host", field: "resources", ref: "git@127.0.0.1:org/repo", policy: on("127.0.0.1")},
		{name: "remote allowed, ssh URL to a listed host", field: "resources", ref: "ssh://127.0.0.1:1/org/repo?submodules=false", policy: on("127.0.0.1:1")},
		{name: "remote allowed, git:: https to a listed host", field: "resources", ref: "git::https://127.0.0.1:1/org/repo?submodules=false", policy: on("127.0.0.1:1")},
		{name: "remote allowed, plain http", field: "resources", ref: "http://127.0.0.1:1/org/repo?submodules=false", policy: on("127.0.0.1:1")},
		{name: "remote allowed, user in URL", field: "resources", ref: "https://user@127.0.0.1:1/org/repo?submodules=false", policy: on("127.0.0.1:1")},
		{name: "remote allowed, github shorthand", field: "resources", ref: "github.com/org/repo", policy: on("github.com")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			trap := newProcessTrap(t, "")
			files := modelFiles(nil, "churn", "", "")
			files["models/churn/serving/kustomization.yaml"] = &fstest.MapFile{Data: []byte(kustomizationWith(tc.field, tc.ref))}
			if tc.localDir {
				files["models/churn/serving/"+tc.ref+"/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources: []\n")}
			}
			_, err := renderOne(t, files, desiredEnv("prod", "ml-prod", 1, files, "churn"), tc.policy)
			t.Log(err)
			if ran := trap.ran(t); ran != "" {
				t.Fatalf("the render ran processes:\n%s", ran)
			}
			if !errors.Is(err, ErrRemoteBase) {
				t.Fatalf("got %v, want ErrRemoteBase", err)
			}
			want := `models/churn/serving/kustomization.yaml: ` + tc.field + ` "` + tc.ref + `"`
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q should name the kustomization file and reference: %s", err, want)
			}
			if left := trap.leftovers(t); len(left) > 0 {
				t.Errorf("the render left %v in the temporary directory", left)
			}
		})
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Error("--upload-pack ran")
	}
}

// TestRenderRefusesRemoteFilesInPluginConfigs covers the paths builtin
// generators and transformers load: kustomize fetches http(s) URLs there
// itself, so they need the same rule as resources.
func TestRenderRefusesRemoteFilesInPluginConfigs(t *testing.T) {
	trap := newProcessTrap(t, "")
	patch := "apiVersion: builtin\nkind: PatchTransformer\nmetadata:\n  name: p\npath: https://127.0.0.1:1/patch.yaml\ntarget:\n  kind: InferenceService\n"
	cases := map[string]func(fstest.MapFS){
		"patches path": func(f fstest.MapFS) {
			f["models/churn/serving/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources:\n- isvc.yaml\npatches:\n- path: https://127.0.0.1:1/patch.yaml\n")}
		},
		"patchesStrategicMerge": func(f fstest.MapFS) {
			f["models/churn/serving/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources:\n- isvc.yaml\npatchesStrategicMerge:\n- https://127.0.0.1:1/patch.yaml\n")}
		},
		"configMapGenerator file": func(f fstest.MapFS) {
			f["models/churn/serving/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources:\n- isvc.yaml\nconfigMapGenerator:\n- name: c\n  files:\n  - k=https://127.0.0.1:1/x\n")}
		},
		"transformer file": func(f fstest.MapFS) {
			f["models/churn/serving/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources:\n- isvc.yaml\ntransformers:\n- patch.yaml\n")}
			f["models/churn/serving/patch.yaml"] = &fstest.MapFile{Data: []byte(patch)}
		},
		"inline transformer": func(f fstest.MapFS) {
			f["models/churn/serving/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources:\n- isvc.yaml\ntransformers:\n- " + strconv.Quote(patch) + "\n")}
		},
		"transformer directory": func(f fstest.MapFS) {
			f["models/churn/serving/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources:\n- isvc.yaml\ntransformers:\n- ../transformers\n")}
			f["models/churn/transformers/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources:\n- patch.yaml\n")}
			f["models/churn/transformers/patch.yaml"] = &fstest.MapFile{Data: []byte(strings.Replace(patch, "path:", "Path:", 1))}
		},
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			files := modelFiles(nil, "churn", "", "")
			edit(files)
			_, err := renderOne(t, files, desiredEnv("prod", "ml-prod", 1, files, "churn"), manifest.ServingPolicy{})
			t.Log(err)
			if !errors.Is(err, ErrRemoteBase) || !strings.Contains(err.Error(), "https://127.0.0.1:1/") {
				t.Fatalf("got %v, want ErrRemoteBase naming the URL", err)
			}
		})
	}
	if ran := trap.ran(t); ran != "" {
		t.Fatalf("the renders ran processes:\n%s", ran)
	}
}

// fakeClone is a git wrapper body that answers kustomize's clone
// (init, remote add, fetch, checkout) by writing base/ into the clone.
func fakeClone(kustomization string) string {
	return `case "$1" in
checkout)
  mkdir -p base
  printf '%s' ` + shellQuote(kustomization) + ` > base/kustomization.yaml
  printf '%s' ` + shellQuote(isvcYAML("remote-churn", "")) + ` > base/isvc.yaml
  ;;
esac
exit 0`
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func TestRenderAllowedRemoteBaseIsClonedAndRemoved(t *testing.T) {
	trap := newProcessTrap(t, fakeClone("resources:\n- isvc.yaml\n"))
	files := modelFiles(nil, "churn", "", "")
	files["models/churn/serving/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources:\n- https://127.0.0.1:1/org/repo//base?ref=v1&submodules=false\n")}
	policy := manifest.ServingPolicy{AllowRemoteBases: true, RemoteBaseHosts: []string{"127.0.0.1:1"}}
	r, err := renderOne(t, files, desiredEnv("prod", "ml-prod", 1, files, "churn"), policy)
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "remote-churn" {
		t.Errorf("name %q, want the remote base's remote-churn", r.Name)
	}
	if ran := trap.ran(t); !strings.Contains(ran, "git fetch --depth=1 https://127.0.0.1:1/org/repo v1") || strings.Contains(ran, "ssh") || strings.Contains(ran, "submodule") {
		t.Errorf("processes:\n%s", ran)
	}
	if left := trap.leftovers(t); len(left) > 0 {
		t.Errorf("the render left %v in the temporary directory", left)
	}
}

// TestRenderVetsKustomizationsInsideRemoteBases: a permitted remote base
// is not trusted further than the model folder; its own kustomization may
// not name a remote base that the policy refuses.
func TestRenderVetsKustomizationsInsideRemoteBases(t *testing.T) {
	trap := newProcessTrap(t, fakeClone("resources:\n- isvc.yaml\n- user@gitserver:org/other\n"))
	files := modelFiles(nil, "churn", "", "")
	files["models/churn/serving/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources:\n- https://127.0.0.1:1/org/repo//base?ref=v1&submodules=false\n")}
	policy := manifest.ServingPolicy{AllowRemoteBases: true, RemoteBaseHosts: []string{"127.0.0.1:1"}}
	_, err := renderOne(t, files, desiredEnv("prod", "ml-prod", 1, files, "churn"), policy)
	if !errors.Is(err, ErrRemoteBase) || !strings.Contains(err.Error(), `base/kustomization.yaml (in the clone of a remote base): resources "user@gitserver:org/other"`) {
		t.Fatalf("got %v, want ErrRemoteBase naming the remote base's kustomization", err)
	}
	if ran := trap.ran(t); strings.Contains(ran, "gitserver") || strings.Contains(ran, "ssh") {
		t.Errorf("the nested base was fetched:\n%s", ran)
	}
	if left := trap.leftovers(t); len(left) > 0 {
		t.Errorf("the render left %v in the temporary directory", left)
	}
}
