package scan_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	scancmd "github.com/modelsync/modelsync/internal/cmd/scan"
	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/wiring"
)

func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	f := wiring.New(cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, func(string) string { return "" }, "")
	cmd := scancmd.NewCmdScan(f, nil)
	cmd.SetArgs(args)
	cmd.SetOut(&errOut)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), cmdutil.ExitCode(err)
}

func tree(t *testing.T, files map[string]string) string {
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const (
	evil    = "\x80\x02cposix\nsystem\nX\x02\x00\x00\x00id\x85R."
	clean   = "\x80\x02ccollections\nOrderedDict\n)R."
	foreign = "\x80\x04\x8c\x05mypkg\x8c\x05Model\x93)\x81."
)

func TestExitCodes(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		args  []string
		code  int
		text  string
	}{
		{"clean", map[string]string{"m/model.pkl": clean, "m/README": "hi"}, nil, 0, "Verdict: safe."},
		{"dangerous", map[string]string{"m/model.pkl": evil}, nil, 1, "GLOBAL posix.system  pickle.denied_global"},
		{"unknown", map[string]string{"m/model.pkl": foreign}, nil, 2, "STACK_GLOBAL mypkg.Model  pickle.unknown_global"},
		{"unknown allowed", map[string]string{"m/model.pkl": foreign}, []string{"--allow-global", "mypkg.*"}, 0, "Verdict: safe."},
		{"dangerous wins", map[string]string{"m/a.pkl": foreign, "m/b.pkl": evil}, nil, 1, "1 dangerous, 1 unknown, 0 safe"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := tree(t, c.files)
			out, errOut, code := run(t, append(c.args, filepath.Join(dir, "m"))...)
			if code != c.code || !strings.Contains(out, c.text) {
				t.Fatalf("exit %d (want %d)\n%s\n%s", code, c.code, out, errOut)
			}
		})
	}
	if _, _, code := run(t, "/nonexistent/model"); code != 2 {
		t.Errorf("unreadable path: exit %d, want 2", code)
	}
	if _, _, code := run(t, "-o", "yaml", "."); code != 2 {
		t.Errorf("bad format: exit %d, want 2", code)
	}
}

func TestJSONMatchesSchema(t *testing.T) {
	dir := tree(t, map[string]string{"m/a.pkl": evil, "m/b.pkl": clean})
	out, _, code := run(t, "-o", "json", filepath.Join(dir, "m"), filepath.Join(dir, "m", "b.pkl"))
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	c := jsonschema.NewCompiler()
	sch, err := c.Compile("../../manifest/schema/scan.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var rep scancmd.JSONReport
	json.Unmarshal([]byte(out), &rep)
	if len(rep.Targets) != 2 || rep.Targets[1].Report.Files[0].Path != "b.pkl" || rep.Verdict != "dangerous" {
		t.Fatalf("%+v", rep)
	}
	if rep.Targets[0].Report.Files[0].Findings[0].Offset != 2 || !strings.HasPrefix(rep.Targets[0].Report.Digest, "sha256:") {
		t.Fatalf("%+v", rep.Targets[0])
	}
}

func TestSARIF(t *testing.T) {
	dir := tree(t, map[string]string{"a.pkl": evil, "c.pkl": foreign})
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	os.Chdir(dir)
	out, _, code := run(t, "-o", "sarif", ".")
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	var log struct {
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Rules []struct {
						ID                   string            `json:"id"`
						DefaultConfiguration map[string]string `json:"defaultConfiguration"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID    string `json:"ruleId"`
				Level     string `json:"level"`
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct{ URI string } `json:"artifactLocation"`
						Region           struct {
							StartLine  int   `json:"startLine"`
							ByteOffset int64 `json:"byteOffset"`
						} `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
				PartialFingerprints map[string]string `json:"partialFingerprints"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(out), &log); err != nil {
		t.Fatal(err)
	}
	if log.Version != "2.1.0" || len(log.Runs) != 1 || len(log.Runs[0].Results) != 2 || len(log.Runs[0].Tool.Driver.Rules) != 2 {
		t.Fatalf("%s", out)
	}
	r := log.Runs[0].Results[0]
	loc := r.Locations[0].PhysicalLocation
	if r.RuleID != "pickle.denied_global" || r.Level != "error" || loc.ArtifactLocation.URI != "a.pkl" || loc.Region.StartLine != 1 || loc.Region.ByteOffset != 2 || len(r.PartialFingerprints) != 1 {
		t.Fatalf("%+v\n%s", r, out)
	}
	if log.Runs[0].Results[1].Level != "warning" {
		t.Fatalf("unknown should be a warning: %s", out)
	}
}

func TestProgressOnlyOnATerminal(t *testing.T) {
	dir := tree(t, map[string]string{"big.bin": strings.Repeat("x", 65<<20)})
	for _, term := range []bool{false, true} {
		var out, errOut bytes.Buffer
		opts := &scancmd.Options{IO: cmdutil.IOStreams{Out: &out, ErrOut: &errOut}, Paths: []string{dir}, Output: "text", Terminal: func() bool { return term }}
		if err := scancmd.Run(context.Background(), opts); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(errOut.String(), "big.bin ["); got != term {
			t.Errorf("terminal %v: progress drawn %v: %q", term, got, errOut.String())
		}
	}
}
