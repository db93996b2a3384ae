package serve

// LeaderElection exposes the flags-to-Lease mapping to the external tests.
var LeaderElection = leaderElection
