package serve

// LeaderElection exposes the flags-to-Lease mapping to the external tests.
var LeaderElection = leaderElection

// BuildDashboard exposes the dashboard's wiring to the external tests.
var BuildDashboard = buildDashboard
