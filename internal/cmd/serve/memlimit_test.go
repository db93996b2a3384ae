package serve_test

import (
	"bytes"
	"context"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/modelsync/modelsync/internal/cmd/serve"
	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/memlimit"
)

// --memory-limit reaches the options as given (unset when absent, 0 is
// "none"), and a malformed value stops serve before it starts.
func TestServeMemoryLimitFlag(t *testing.T) {
	f := factory(nil, &bytes.Buffer{})
	for args, want := range map[string]memlimit.Flag{
		"":                     {},
		"--memory-limit 900Mi": {Set: true, Bytes: 900 << 20},
		"--memory-limit=2GiB":  {Set: true, Bytes: 2 << 30},
		"--memory-limit 0":     {Set: true},
	} {
		var got *serve.Options
		cmd := serve.NewCmdServe(f, func(_ context.Context, o *serve.Options) error { got = o; return nil })
		cmd.SetArgs(strings.Fields(args))
		if err := cmd.Execute(); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		if got.MemoryLimit != want {
			t.Errorf("%q: MemoryLimit = %+v, want %+v", args, got.MemoryLimit, want)
		}
	}
	for _, arg := range []string{"--memory-limit=1.5G", "--memory-limit=-1", "--memory-limit="} {
		cmd := serve.NewCmdServe(f, func(context.Context, *serve.Options) error { t.Errorf("%s: ran", arg); return nil })
		cmd.SetArgs([]string{arg})
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "--memory-limit: memory size") {
			t.Errorf("%s: err = %v", arg, err)
		}
	}
}

// Run applies the limit to the runtime and logs it and its source before
// it opens anything (here it then stops at a missing target).
func TestServeAppliesAndLogsMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(before)
	var logs bytes.Buffer
	_ = serve.Run(context.Background(), &serve.Options{Factory: factory(nil, &logs), Listen: "127.0.0.1:0",
		Repo: cmdutil.RepoFlags{URL: t.TempDir(), Branch: "main"}, MemoryLimit: memlimit.Flag{Set: true, Bytes: 700 << 20}})
	if got := debug.SetMemoryLimit(-1); got != 700<<20 {
		t.Errorf("runtime memory limit %d, want 700 MiB", got)
	}
	if !strings.Contains(logs.String(), `"msg":"soft memory limit","bytes":734003200,"limit":"700.0 MiB","source":"--memory-limit"`) {
		t.Errorf("log lacks the limit:\n%s", logs.String())
	}
	// GOMEMLIMIT as the runtime applied it is left alone and named.
	debug.SetMemoryLimit(600 << 20)
	logs.Reset()
	_ = serve.Run(context.Background(), &serve.Options{Factory: factory(map[string]string{"GOMEMLIMIT": "600MiB"}, &logs), Listen: "127.0.0.1:0",
		Repo: cmdutil.RepoFlags{URL: t.TempDir(), Branch: "main"}})
	if got := debug.SetMemoryLimit(-1); got != 600<<20 {
		t.Errorf("runtime memory limit %d, want GOMEMLIMIT's 600 MiB", got)
	}
	if !strings.Contains(logs.String(), `"source":"GOMEMLIMIT=600MiB"`) {
		t.Errorf("log lacks GOMEMLIMIT:\n%s", logs.String())
	}
}
