package release

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/wiring"
)

// exampleRepo builds the example repository, whose HEAD commit was
// authored by Dana Risk.
func exampleRepo(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "models")
	if out, err := exec.Command("../../../test/scripts/example-repo.sh", dir).CombinedOutput(); err != nil {
		t.Fatalf("example-repo.sh: %v\n%s", err, out)
	}
	return dir
}

func runRelease(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	f := wiring.New(cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, func(k string) string { return env[k] }, "test")
	cmd := NewCmdRelease(f, func(ctx context.Context, o *Options) error {
		o.Now = func() time.Time { return time.Unix(1767600000, 0) }
		return Run(ctx, o)
	})
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	return out.String() + errOut.String(), err
}

func tagger(t *testing.T, dir, tag string) string {
	t.Helper()
	out, err := exec.Command("git", "-C", dir, "for-each-ref", "--format=%(taggername) %(taggeremail)", "refs/tags/"+tag).CombinedOutput()
	if err != nil {
		t.Fatalf("git for-each-ref: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReleaseTaggerIsTheUserRunningIt: the tag names whoever runs release,
// found as git finds a committer, never HEAD's author.
func TestReleaseTaggerIsTheUserRunningIt(t *testing.T) {
	const tag = "customer-churn-predictor/v1.1.1"
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir, home string) map[string]string
		want  string
	}{
		{"global config", func(t *testing.T, dir, home string) map[string]string {
			writeFile(t, filepath.Join(home, ".gitconfig"), "[user]\n\tname = Erin Ops\n\temail = erin@example.com\n")
			return nil
		}, "Erin Ops <erin@example.com>"},
		{"XDG config", func(t *testing.T, dir, home string) map[string]string {
			writeFile(t, filepath.Join(home, ".config", "git", "config"), "[user]\n\tname = Xavier\n\temail = x@example.com\n")
			return nil
		}, "Xavier <x@example.com>"},
		{"repository config wins over global", func(t *testing.T, dir, home string) map[string]string {
			writeFile(t, filepath.Join(home, ".gitconfig"), "[user]\n\tname = Erin Ops\n\temail = erin@example.com\n")
			if out, err := exec.Command("git", "-C", dir, "config", "user.email", "erin@work.example.com").CombinedOutput(); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			return nil
		}, "Erin Ops <erin@work.example.com>"},
		{"committer environment wins", func(t *testing.T, dir, home string) map[string]string {
			writeFile(t, filepath.Join(home, ".gitconfig"), "[user]\n\tname = Erin Ops\n\temail = erin@example.com\n")
			return map[string]string{"GIT_COMMITTER_NAME": "CI Bot", "GIT_COMMITTER_EMAIL": "ci@example.com"}
		}, "CI Bot <ci@example.com>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, home := exampleRepo(t), t.TempDir()
			env := map[string]string{"HOME": home, "GIT_CONFIG_NOSYSTEM": "1"}
			for k, v := range tc.setup(t, dir, home) {
				env[k] = v
			}
			if out, err := runRelease(t, env, "customer-churn-predictor", "-C", dir, "--force"); err != nil {
				t.Fatalf("release: %v\n%s", err, out)
			}
			if got := tagger(t, dir, tag); got != tc.want {
				t.Errorf("tagger = %q, want %q (HEAD's author is Dana Risk)", got, tc.want)
			}
		})
	}
}

func TestReleaseRefusesWithoutIdentity(t *testing.T) {
	dir := exampleRepo(t)
	env := map[string]string{"HOME": t.TempDir(), "GIT_CONFIG_NOSYSTEM": "1", "GIT_COMMITTER_NAME": "Only Name"}
	out, err := runRelease(t, env, "customer-churn-predictor", "-C", dir, "--force")
	if err == nil {
		t.Fatalf("release without an email succeeded:\n%s", out)
	}
	for _, want := range []string{"email is not set", "user.email"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if got := tagger(t, dir, "customer-churn-predictor/v1.1.1"); got != "" {
		t.Errorf("a tag was created by %q", got)
	}
}
