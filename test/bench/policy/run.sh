#!/usr/bin/env bash
# run.sh times the policy gate three ways on the same generated input (a
# pull request changing 50 models of a 1,000-model repository) and the same
# rules (policy/bundle):
#
#   warm      modelsync's engine compiled once, one evaluation per PR
#   cold      a fresh process that loads the bundle and evaluates once
#   conftest  `conftest test` on the same bundle and input
#
# and prints the ratios against conftest (goals: warm >= 10x, cold >= 2x).
# conftest is installed with `go install` into the deps cache
# ($(test/deps/deps.sh --print-cache)/bin), outside the work tree.
#
#   test/bench/policy/run.sh [-models N] [-changed N] [-runs N] [-warm N]
set -euo pipefail

CONFTEST_VERSION=v0.71.1
models=1000 changed=50 runs=20 warm=200
while [[ $# -gt 0 ]]; do
  case "$1" in
    -models) models="$2"; shift 2 ;;
    -changed) changed="$2"; shift 2 ;;
    -runs) runs="$2"; shift 2 ;;
    -warm) warm="$2"; shift 2 ;;
    *) echo "usage: $0 [-models N] [-changed N] [-runs N] [-warm N]" >&2; exit 2 ;;
  esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cache="$("$root/test/deps/deps.sh" --print-cache)"
bin="$cache/bin"
stamp="$cache/stamps/conftest-$CONFTEST_VERSION"
mkdir -p "$bin" "$cache/stamps"
if [[ ! -f "$stamp" || ! -x "$bin/conftest" ]]; then
  echo "installing conftest $CONFTEST_VERSION into $bin" >&2
  # Outside the module, so go install resolves conftest's own go.mod.
  (cd "$cache" && GOBIN="$bin" GOFLAGS=-mod=mod go install "github.com/open-policy-agent/conftest@$CONFTEST_VERSION")
  date -u +%FT%TZ > "$stamp"
fi
conftest="$bin/conftest"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$root" && go build -o "$work/policybench" ./test/bench/policy)
pb="$work/policybench"
# Both tools get the rules alone: conftest would otherwise also parse and
# compile the _test.rego files, which modelsync leaves out of evaluation.
bundle="$work/bundle"
(cd "$root/policy/bundle" && find . -type f ! -name '*_test.rego' | while read -r f; do
  mkdir -p "$bundle/$(dirname "$f")" && cp "$f" "$bundle/$f"
done)
input="$work/input.json"
"$pb" gen -models "$models" -changed "$changed" -o "$input"
echo "input: $models models, $changed changed, $(wc -c < "$input") bytes" >&2

now_ns() { date +%s%N; }

# Same verdict from both, or the comparison is meaningless.
ours="$("$pb" eval -bundle "$bundle" "$input")"
theirs="$("$conftest" test --all-namespaces -p "$bundle" -d "$bundle/data.json" -o json "$input" || true)"
theirs="$(printf '%s' "$theirs" | python3 -c '
import json, sys
r = json.load(sys.stdin)
print("denies=%d warnings=%d" % (sum(len(x.get("failures") or []) for x in r), sum(len(x.get("warnings") or []) for x in r)))')"
echo "modelsync: $ours; conftest: $theirs" >&2
if [[ "$ours" != "$theirs" ]]; then
  echo "verdicts differ; not comparing speed" >&2
  exit 1
fi

warm_ns="$("$pb" warm -bundle "$bundle" -n "$warm" "$input" | sed -n 's/^ns_per_eval=//p')"

start="$(now_ns)"
for _ in $(seq "$runs"); do "$pb" eval -bundle "$bundle" "$input" > /dev/null; done
cold_ns=$(( ($(now_ns) - start) / runs ))

start="$(now_ns)"
for _ in $(seq "$runs"); do
  "$conftest" test --all-namespaces -p "$bundle" -d "$bundle/data.json" -o json "$input" > /dev/null || true
done
conftest_ns=$(( ($(now_ns) - start) / runs ))

python3 - "$warm_ns" "$cold_ns" "$conftest_ns" <<'PY'
import sys
warm, cold, conf = (int(x) for x in sys.argv[1:])
ms = lambda ns: "%.2f ms" % (ns / 1e6)
print("warm evaluation (per PR):   %s" % ms(warm))
print("cold CLI (load + evaluate): %s" % ms(cold))
print("conftest test:              %s" % ms(conf))
print("conftest / warm = %.1fx (goal >= 10x)" % (conf / warm))
print("conftest / cold = %.1fx (goal >= 2x)" % (conf / cold))
PY
