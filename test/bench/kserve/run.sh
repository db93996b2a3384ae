#!/usr/bin/env bash
# run.sh measures a no-op resync of the KServe target: 1,000 InferenceServices
# in 3 namespaces on a real kube-apiserver (test/testenv), planned again and
# again with nothing changed. It prints wall time, CPU time and requests per
# resync (the benchmark fails unless requests are zero), the test process's
# peak RSS, and the whole run as /usr/bin/time sees it: CPU time of the test
# process, and the peak RSS of the largest process in the run (usually
# kube-apiserver). Both include the one-off setup: starting the apiserver,
# installing the CRD and creating the 1,000 objects.
#
#   test/bench/kserve/run.sh [iterations]     default 20
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
n="${1:-20}"
out="$(mktemp)"
trap 'rm -f "$out" "$out.test" "$out.time"' EXIT
go test -c -o "$out.test" ./internal/target/kserve/
/usr/bin/time -o "$out.time" -f 'whole run: %U s user + %S s system CPU; largest process peak RSS %M KiB' \
  "$out.test" -test.run '^$' -test.bench '^BenchmarkNoopResync$' -test.benchtime "${n}x" -test.count 1 >"$out" 2>&1 || {
  cat "$out" >&2
  exit 1
}
grep -E '^(Benchmark|PASS|FAIL)' "$out"
cat "$out.time"
awk '/^BenchmarkNoopResync/ {
  for (i = 3; i < NF; i += 2) v[$(i+1)] = $i
  printf "no-op resync: %.1f ms wall, %s ms CPU, %s requests per resync; test process peak RSS %s MiB\n",
    v["ns/op"] / 1e6, v["cpu-ms/op"], v["requests/op"], v["peak-rss-MiB"]
}' "$out"
