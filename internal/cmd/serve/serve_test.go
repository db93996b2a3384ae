package serve_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelsync/modelsync/test/fixture"

	"github.com/modelsync/modelsync/internal/cmd/serve"
	"github.com/modelsync/modelsync/internal/cmdutil"
	ghub "github.com/modelsync/modelsync/internal/github"
	"github.com/modelsync/modelsync/internal/github/githubtest"
	"github.com/modelsync/modelsync/internal/gitsource"
	"github.com/modelsync/modelsync/internal/wiring"
)

func factory(env map[string]string, errOut io.Writer) *wiring.Factory {
	return wiring.New(cmdutil.IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: errOut}, func(k string) string { return env[k] }, "")
}

func TestServeRefusesToStartWithoutSecret(t *testing.T) {
	f := factory(map[string]string{"GITHUB_TOKEN": "t", serve.EnvRepository: "acme/models"}, &bytes.Buffer{})
	cmd := serve.NewCmdServe(f, nil)
	cmd.SetArgs([]string{"--only", "webhooks", "--listen", "127.0.0.1:0", "--repo", t.TempDir()})
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	if err := cmd.ExecuteContext(context.Background()); !errors.Is(err, ghub.ErrNoWebhookSecret) {
		t.Fatalf("err = %v, want ErrNoWebhookSecret", err)
	}
}

func TestServeFlagsAndConfigErrors(t *testing.T) {
	var got *serve.Options
	f := factory(nil, &bytes.Buffer{})
	cmd := serve.NewCmdServe(f, func(_ context.Context, o *serve.Options) error { got = o; return nil })
	cmd.SetArgs([]string{"--only", "webhooks", "--listen", ":9090", "--github-repository", "acme/models", "--github-app-id", "5"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.Listen != ":9090" || got.GitHubRepository != "acme/models" || got.AppID != 5 || len(got.Only) != 1 || got.GitCacheMiB != gitsource.DefaultCacheSize>>20 {
		t.Fatalf("options = %+v", got)
	}
	// The API listens on loopback unless told otherwise; probes and
	// metrics on their own port.
	cmd = serve.NewCmdServe(f, func(_ context.Context, o *serve.Options) error { got = o; return nil })
	cmd.SetArgs(nil)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.Listen != "127.0.0.1:8080" || got.ProbeListen != ":8081" || got.KubeAPIAuth || got.APIAnonymousRead {
		t.Fatalf("default options = %+v", got)
	}
	for args, want := range map[string]string{
		"--only frobnicate":  "unknown component",
		"--git-cache-mib 0":  "--git-cache-mib 0: want at least 1",
		"--git-cache-mib -5": "--git-cache-mib -5: want at least 1",
	} {
		cmd = serve.NewCmdServe(f, func(context.Context, *serve.Options) error { return nil })
		cmd.SetArgs(strings.Fields(args))
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", args, err, want)
		}
	}
	for name, env := range map[string]map[string]string{
		"token and app":   {serve.EnvWebhookSecret: "s", serve.EnvRepository: "acme/models", "GITHUB_TOKEN": "t", cmdutil.EnvGitHubAppID: "1", cmdutil.EnvGitHubInstallationID: "2", cmdutil.EnvGitHubAppKeyFile: "/nope"},
		"app without key": {serve.EnvWebhookSecret: "s", serve.EnvRepository: "acme/models", cmdutil.EnvGitHubAppID: "1", cmdutil.EnvGitHubInstallationID: "2"},
		"no credentials":  {serve.EnvWebhookSecret: "s", serve.EnvRepository: "acme/models"},
		"no repository":   {serve.EnvWebhookSecret: "s", "GITHUB_TOKEN": "t"},
		"bad app id":      {serve.EnvWebhookSecret: "s", serve.EnvRepository: "acme/models", cmdutil.EnvGitHubAppID: "x"},
	} {
		err := serve.Run(context.Background(), &serve.Options{Factory: factory(env, &bytes.Buffer{}), Listen: "127.0.0.1:0", Only: []string{serve.ComponentWebhooks}})
		if err == nil {
			t.Errorf("%s: Run succeeded", name)
		} else if strings.Contains(err.Error(), "t\"") {
			t.Errorf("%s: error may quote a secret: %v", name, err)
		}
	}
}

// A configured API credential that cannot be used stops serve before it
// opens anything, and the error does not quote the token.
func TestServeRefusesUnusableAPITokens(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("# comment\nlong-enough-token-0123,alice\nshort,bob\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		env  map[string]string
		file string
		want string
	}{
		"short env token":  {map[string]string{serve.EnvAPIToken: "hunter2"}, "", "MODELSYNC_API_TOKEN: API token for \"default\" is 7 characters; at least 16"},
		"short file token": {nil, tokens, tokens + ":3: API token for \"bob\" is 5 characters"},
		"missing file":     {nil, tokens + ".nope", "--api-tokens-file: open"},
	} {
		err := serve.Run(context.Background(), &serve.Options{Factory: factory(tc.env, &bytes.Buffer{}), Listen: "127.0.0.1:0", APITokensFile: tc.file,
			Repo: cmdutil.RepoFlags{URL: t.TempDir(), Branch: "main"}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		} else if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "short,") {
			t.Errorf("%s: error quotes the token: %v", name, err)
		}
	}
}

// The controller, like plan and apply, refuses to run with no target: a
// loop that checks nothing would report everything in sync.
func TestServeControllerNeedsTargets(t *testing.T) {
	err := serve.Run(context.Background(), &serve.Options{Factory: factory(nil, &bytes.Buffer{}), Listen: "127.0.0.1:0", Repo: cmdutil.RepoFlags{URL: t.TempDir(), Branch: "main"}})
	if !errors.Is(err, wiring.ErrNoTargets) {
		t.Fatalf("err = %v, want ErrNoTargets", err)
	}
}

func exampleRepo(t *testing.T) string { return fixture.ExampleRepo(t) }

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Serve hosts the webhook receiver: a signed pull_request event leads to
// the required status on the head commit.
func TestServeWebhooks(t *testing.T) {
	dir := exampleRepo(t)
	cmd := exec.Command("git", "rev-parse", "main")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	head := strings.TrimSpace(string(out))
	api := githubtest.New(t, "acme", "models", "ghp_serve")
	api.PutPR(githubtest.PR{Number: 4, State: "open", Author: "carol", BaseRef: "main", HeadRef: "main", HeadSHA: head})
	final := make(chan githubtest.Status, 16)
	api.OnStatus(func(s githubtest.Status) {
		if s.State != "pending" && s.Context == ghub.StatusContext {
			final <- s
		}
	})
	secret := "serve-secret"
	env := map[string]string{serve.EnvWebhookSecret: secret, "GITHUB_TOKEN": "ghp_serve", serve.EnvRepository: "acme/models",
		cmdutil.EnvGitHubAPIURL: api.URL, "MODELSYNC_CACHE_DIR": t.TempDir()}
	var logs bytes.Buffer
	addr := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serve.Run(ctx, &serve.Options{Factory: factory(env, &syncWriter{w: &logs}), Only: []string{"webhooks"},
			Listen: "127.0.0.1:0", Repo: cmdutil.RepoFlags{URL: dir, Branch: "main"}, OnListen: func(a string) { addr <- a }})
	}()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case err := <-done:
		t.Fatalf("serve exited: %v", err)
	}
	if c := get(t, base+"/healthz"); c != 200 {
		t.Fatalf("/healthz = %d", c)
	}
	if c := get(t, base+"/readyz"); c != 200 {
		t.Fatalf("/readyz = %d", c)
	}
	url := base + ghub.WebhookPath
	if c := githubtest.Deliver(t, url, githubtest.Delivery{Event: "ping", ID: "p1", Payload: githubtest.PingEvent(), Secret: []byte(secret)}); c != 200 {
		t.Fatalf("ping = %d", c)
	}
	if c := githubtest.Deliver(t, url, githubtest.Delivery{Event: "pull_request", ID: "x1", Payload: api.PullRequestEvent("opened", 4)}); c != 401 {
		t.Fatalf("unsigned = %d, want 401", c)
	}
	if c := githubtest.Deliver(t, url, githubtest.Delivery{Event: "pull_request", ID: "x2", Payload: api.PullRequestEvent("opened", 4), Secret: []byte(secret)}); c != 202 {
		t.Fatalf("signed = %d, want 202", c)
	}
	st := <-final
	// Head equals base: nothing changes, so the policy passes.
	if st.State != "success" || st.SHA != head {
		t.Fatalf("final status = %+v", st)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if strings.Contains(logs.String(), "ghp_serve") || strings.Contains(logs.String(), secret) {
		t.Fatalf("a secret reached the log:\n%s", logs.String())
	}
}
