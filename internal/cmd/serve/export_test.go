package serve

import "github.com/modelsync/modelsync/internal/dashboard"

// LeaderElection exposes the flags-to-Lease mapping to the external tests.
var LeaderElection = leaderElection

// BuildDashboard exposes the dashboard's wiring to the external tests.
var BuildDashboard = buildDashboard

// DashboardSources exposes the dashboard's other sources to the external tests.
type DashboardSources = dashboardSources

// DashboardRollbacker is the dashboard's rollback for a --dashboard-rollback mode.
func DashboardRollbacker(opts *Options, mode string) (dashboard.Rollbacker, error) {
	g, err := newGitRollback(opts, mode)
	if err != nil {
		return nil, err
	}
	return g, nil
}
