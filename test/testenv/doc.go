// Package testenv starts the real servers modelsync's integration tests run
// against, on loopback, each with fresh temporary state:
//
//   - StartKube: etcd + kube-apiserver (RBAC, admin client certificate in
//     system:masters) with the KServe InferenceService CRD applied.
//   - StartMLflow: MLflow 3 or 2 on sqlite or PostgreSQL, optionally with
//     basic auth and artifacts in S3.
//   - StartPostgres: a throwaway PostgreSQL cluster on a loopback port (as
//     the "postgres" system user when the tests run as root).
//   - StartMinIO, StartMoto: S3 servers (MinIO for STANDARD and
//     REDUCED_REDUNDANCY, moto for archive classes and restores).
//   - StartPrometheus + NewExporter: a real Prometheus scraping an in-test
//     exporter every second.
//   - StartGitServer + Workdir: git daemon and smart HTTP with basic auth,
//     and a git CLI working copy with a fixed identity and clock.
//   - NewFaultProxy, NewTCPFaultProxy: 5xx, latency and dropped connections
//     between a client and any of the above.
//
// Launchers take a context (bounding startup only) and a log directory and
// return errors, so they work from TestMain; NewKube, NewMLflow, NewMinIO,
// NewMoto, NewPrometheus and NewGitServer are the per-test forms that skip
// under MODELSYNC_SKIP_E2E=1, fail on errors, print log tails when the test
// fails and close at cleanup.
//
// Binaries come from test/deps/deps.sh (the MODELSYNC_* variables, else
// $MODELSYNC_CACHE/env, default ~/.cache/modelsync/env); a missing one is a
// NotInstalledError naming the deps step, never a skip. Every server leads
// its own process group: Close kills the group, and a watchdog process kills
// it if the test binary dies first (panic, -timeout, SIGKILL).
package testenv
