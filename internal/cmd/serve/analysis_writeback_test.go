package serve

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/rollback"
	"github.com/modelsync/modelsync/internal/wiring"
)

// How serve records canary outcomes in Git, chosen as `modelsync
// rollback` chooses: pull requests with GitHub credentials; an explicit pr
// without them fails at startup; the default auto commits directly
// without them and says so; off writes nothing.
func TestCanaryWriteBackChoice(t *testing.T) {
	for _, tc := range []struct {
		mode    string
		env     map[string]string
		err     string // the startup error, if any
		want    string // "pr", "direct" or "off"
		logHas  string
		repoArg string
	}{
		{mode: "", want: "direct", logHas: "committed directly to the environment's branch: no GitHub credentials"},
		{mode: "auto", env: map[string]string{cmdutil.EnvGitHubToken: "ghp_x"}, repoArg: "acme/models", want: "pr", logHas: "as pull requests"},
		{mode: "pr", err: "--canary-write-back pr opens pull requests and needs GitHub credentials ($GITHUB_TOKEN or a GitHub App)"},
		{mode: "pr", env: map[string]string{cmdutil.EnvGitHubToken: "ghp_x"}, repoArg: "acme/models", want: "pr"},
		{mode: "pr", env: map[string]string{cmdutil.EnvGitHubToken: "ghp_x"}, err: "canary write-back by pull request: no GitHub repository"},
		{mode: "direct", want: "direct"},
		{mode: "off", want: "off", logHas: "not written back to Git"},
		{mode: "sometimes", err: `--canary-write-back "sometimes": want auto, pr, direct or off`},
	} {
		t.Run(tc.mode+"/"+tc.want+tc.err, func(t *testing.T) {
			kc := fake.NewSimpleClientset()
			kc.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
				r := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview)
				r.Status.Allowed = true
				return true, r, nil
			})
			env := tc.env
			f := wiring.New(cmdutil.IOStreams{In: strings.NewReader("")}, func(k string) string { return env[k] }, "")
			opts := &Options{Factory: f, CanaryWriteBack: tc.mode, GitHubRepository: tc.repoArg, GitHubAPIURL: "http://127.0.0.1:1/api/v3/"}
			opts.Repo.URL, opts.Repo.Branch = "http://git.invalid/models.git", "main"
			var logs bytes.Buffer
			ao, err := buildAnalysis(opts, kc, nil, slog.New(slog.NewTextHandler(&logs, nil)))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "ghp_x") {
					t.Fatalf("the token is in the error: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := "off"
			if w, ok := ao.WriteBack.(*rollback.CanaryWriter); ok {
				got = "pr"
				if w.Direct {
					got = "direct"
				} else if w.GitHub == nil || w.Owner != "acme" || w.Name != "models" {
					t.Fatalf("pull request writer without its GitHub repository: %+v", w)
				}
			} else if ao.WriteBack != nil {
				t.Fatalf("write-back %T", ao.WriteBack)
			}
			if got != tc.want {
				t.Fatalf("write-back %s, want %s", got, tc.want)
			}
			if !strings.Contains(logs.String(), tc.logHas) {
				t.Fatalf("log lacks %q:\n%s", tc.logHas, logs.String())
			}
		})
	}
}
