package memlimit_test

import (
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/modelsync/modelsync/internal/memlimit"
)

// tree writes files (path → content) under a temp root and returns it as
// the root file system.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestCgroupLimit(t *testing.T) {
	for name, tc := range map[string]struct {
		files     map[string]string
		want      int64
		wantFile  string
		wantError string
	}{
		"v2 namespaced container": {
			files: map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "1073741824\n"},
			want:  1 << 30, wantFile: "/sys/fs/cgroup/memory.max",
		},
		"v2 unlimited": {
			files:    map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "max\n"},
			wantFile: "/sys/fs/cgroup/memory.max",
		},
		// Without a cgroup namespace the process's own cgroup is named in
		// /proc/self/cgroup; a parent's smaller limit binds too.
		"v2 nested, parent smaller": {
			files: map[string]string{
				"proc/self/cgroup":                           "0::/kubepods/pod1/ctr\n",
				"sys/fs/cgroup/kubepods/pod1/ctr/memory.max": "max\n",
				"sys/fs/cgroup/kubepods/pod1/memory.max":     "536870912\n",
				"sys/fs/cgroup/kubepods/memory.max":          "8589934592\n",
				"sys/fs/cgroup/memory.max":                   "max\n",
				"sys/fs/cgroup/memory/memory.limit_in_bytes": "1024\n", // v1 ignored when v2 answers
			},
			want: 512 << 20, wantFile: "/sys/fs/cgroup/kubepods/pod1/memory.max",
		},
		"v1": {
			files: map[string]string{
				"proc/self/cgroup": "12:cpuset:/docker/abc\n11:memory:/docker/abc\n0::/\n",
				"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "2147483648\n",
				"sys/fs/cgroup/memory/memory.limit_in_bytes":            "9223372036854771712\n",
			},
			want: 2 << 30, wantFile: "/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes",
		},
		// Docker on v1 mounts the container's own cgroup at the top.
		"v1 own cgroup mounted at the top": {
			files: map[string]string{
				"proc/self/cgroup":                           "4:memory,foo:/docker/abc\n",
				"sys/fs/cgroup/memory/memory.limit_in_bytes": "268435456",
			},
			want: 256 << 20, wantFile: "/sys/fs/cgroup/memory/memory.limit_in_bytes",
		},
		"v1 unlimited": {
			files:    map[string]string{"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"},
			wantFile: "/sys/fs/cgroup/memory/memory.limit_in_bytes",
		},
		"none":    {files: map[string]string{"proc/self/cgroup": "0::/\n"}, wantError: "no cgroup memory limit file"},
		"garbage": {files: map[string]string{"sys/fs/cgroup/memory.max": "lots\n"}, wantError: `/sys/fs/cgroup/memory.max: memory limit "lots"`},
	} {
		t.Run(name, func(t *testing.T) {
			got, file, err := memlimit.CgroupLimit(os.DirFS(tree(t, tc.files)))
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("err = %v, want %q", err, tc.wantError)
				}
				return
			}
			if err != nil || got != tc.want || file != tc.wantFile {
				t.Fatalf("CgroupLimit = %d, %q, %v; want %d, %q", got, file, err, tc.want, tc.wantFile)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	limited := os.DirFS(tree(t, map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "1073741824\n"}))
	bare := os.DirFS(t.TempDir())
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	noEnv := env(nil)
	for name, tc := range map[string]struct {
		flag      memlimit.Flag
		getenv    func(string) string
		fsys      fs.FS
		want      memlimit.Decision
		sourceHas string
	}{
		"cgroup share":       {getenv: noEnv, fsys: limited, want: memlimit.Decision{Limit: 966367641}, sourceHas: "90% of the cgroup limit 1.0 GiB (/sys/fs/cgroup/memory.max)"},
		"no cgroup":          {getenv: noEnv, fsys: bare, want: memlimit.Decision{Keep: true}, sourceHas: "no cgroup memory limit"},
		"GOMEMLIMIT kept":    {getenv: env(map[string]string{"GOMEMLIMIT": "700MiB"}), fsys: limited, want: memlimit.Decision{Keep: true}, sourceHas: "GOMEMLIMIT=700MiB"},
		"flag wins":          {flag: memlimit.Flag{Set: true, Bytes: 300 << 20}, getenv: env(map[string]string{"GOMEMLIMIT": "700MiB"}), fsys: limited, want: memlimit.Decision{Limit: 300 << 20}, sourceHas: "--memory-limit"},
		"flag 0 is no limit": {flag: memlimit.Flag{Set: true}, getenv: noEnv, fsys: limited, want: memlimit.Decision{}, sourceHas: "none"},
	} {
		t.Run(name, func(t *testing.T) {
			got := memlimit.Decide(tc.flag, tc.getenv, tc.fsys, memlimit.DefaultShare)
			if !strings.Contains(got.Source, tc.sourceHas) {
				t.Errorf("source %q, want it to say %q", got.Source, tc.sourceHas)
			}
			got.Source = ""
			if got != tc.want {
				t.Errorf("Decide = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// Apply sets the runtime's limit, and Keep leaves GOMEMLIMIT's in force.
func TestApply(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(before)
	if got := (memlimit.Decision{Limit: 3 << 30}).Apply(); got != 3<<30 || debug.SetMemoryLimit(-1) != 3<<30 {
		t.Fatalf("Apply = %d, runtime %d; want 3 GiB", got, debug.SetMemoryLimit(-1))
	}
	if got := (memlimit.Decision{Keep: true}).Apply(); got != 3<<30 {
		t.Fatalf("Keep changed the limit to %d", got)
	}
	if got := (memlimit.Decision{}).Apply(); got != math.MaxInt64 || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Fatalf("no limit: Apply = %d, runtime %d", got, debug.SetMemoryLimit(-1))
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1048576": 1 << 20, "900MiB": 900 << 20, "900Mi": 900 << 20, "2GiB": 2 << 30, "2Gi": 2 << 30, "64KiB": 64 << 10, "1Ti": 1 << 40, "12B": 12} {
		if got, err := memlimit.ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5GiB", "1G", "1GB", "lots", "MiB", "9999999999999GiB"} {
		if got, err := memlimit.ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}
