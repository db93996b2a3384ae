package serve_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelsync/modelsync/internal/cmd/serve"
	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/controller"
	"github.com/modelsync/modelsync/internal/dashboard"
)

// --dashboard-rollback: auto needs nothing, pull-request needs a GitHub
// token and a repository, an unknown mode is refused before serving.
func TestDashboardRollbackModes(t *testing.T) {
	// The wiring only hands the controller on; no request here reaches it.
	var c *controller.Controller
	for _, tc := range []struct {
		mode, token, repo, wantErr string
	}{
		{mode: serve.RollbackAuto},
		{mode: serve.RollbackOff},
		{mode: serve.RollbackDirect},
		{mode: serve.RollbackPullRequest, wantErr: "needs a GitHub token"},
		{mode: serve.RollbackPullRequest, token: "ghp_x", repo: "https://git.internal/models.git", wantErr: "GitHub repository is unknown"},
		{mode: serve.RollbackPullRequest, token: "ghp_x", repo: "https://github.com/acme/models.git"},
		{mode: serve.RollbackAuto, token: "ghp_x", repo: "https://git.internal/models.git"}, // no button, no error
		{mode: "sometimes", wantErr: `--dashboard-rollback "sometimes"`},
	} {
		env := map[string]string{cmdutil.EnvGitHubToken: tc.token}
		opts := &serve.Options{Factory: factory(env, &bytes.Buffer{}), DashboardRollback: tc.mode, Repo: cmdutil.RepoFlags{URL: tc.repo, Branch: "main"}}
		h, err := serve.BuildDashboard(opts, c, dashboard.NewAuditLog(0), nil, slog.New(slog.DiscardHandler), serve.DashboardSources{})
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s (token %v, %s): %v", tc.mode, tc.token != "", tc.repo, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s (token %v, %s): err %v, want %q", tc.mode, tc.token != "", tc.repo, err, tc.wantErr)
		case err == nil:
			// Without providers nobody signs in: the login page, never an open dashboard.
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			if rec.Code != http.StatusUnauthorized {
				t.Errorf("%s: GET / without providers = %d", tc.mode, rec.Code)
			}
		}
	}
}
