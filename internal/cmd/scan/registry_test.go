package scan

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/wiring"
)

// scan MODEL VERSION and scan --all reach the registry form; a local path
// (even one named like a version) stays the PATH form.
func TestRegistryFormRouting(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "7"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args            []string
		model, version  string
		all, pathsEmpty bool
	}{
		{[]string{"churn", "4"}, "churn", "4", false, true},
		{[]string{"--all", "--repo", "."}, "", "", true, true},
		{[]string{dir, filepath.Join(dir, "7")}, "", "", false, false},
		{[]string{"churn", "v4"}, "", "", false, false},
	} {
		var got *Options
		f := wiring.New(cmdutil.IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}, func(string) string { return "" }, "")
		cmd := NewCmdScan(f, func(_ context.Context, o *Options) error { got = o; return nil })
		cmd.SetArgs(c.args)
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		if err := cmd.Execute(); err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if got.Model != c.model || got.Version != c.version || got.All != c.all || (len(got.Paths) == 0) != c.pathsEmpty {
			t.Errorf("%v: model %q version %q all %v paths %v", c.args, got.Model, got.Version, got.All, got.Paths)
		}
	}
	f := wiring.New(cmdutil.IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}, func(string) string { return "" }, "")
	cmd := NewCmdScan(f, func(context.Context, *Options) error { return nil })
	cmd.SetArgs([]string{"--all", "churn"})
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	if err := cmd.Execute(); err == nil {
		t.Error("--all with arguments was accepted")
	}
}
