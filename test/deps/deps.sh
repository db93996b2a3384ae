#!/usr/bin/env bash
# deps.sh installs the real servers the integration tests start: kube-apiserver
# and etcd (built from the pinned Kubernetes release), the upstream KServe CRD,
# MLflow 3.x, 2.x and the oldest supported 2.x, MinIO, moto, Prometheus, PostgreSQL, headless Chromium and git's
# own servers; and
# govulncheck with a Go vulnerability database built from golang.org/x/vulndb.
#
# Everything lands in a cache outside the work tree, keyed by pinned version,
# so a second run only checks stamps and returns in about a second.
#
#   test/deps/deps.sh [step ...]     steps: kube kserve-crd mlflow3 mlflow2 mlflow2-floor minio moto prometheus postgres
#                                           chromium git govulncheck vulndb scanpy
#   test/deps/deps.sh --print-cache  prints the cache directory
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
. "$here/versions.env"

CACHE="${MODELSYNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelsync}"
mkdir -p "$CACHE"

if [[ "${1:-}" == "--print-cache" ]]; then echo "$CACHE"; exit 0; fi

# MODELSYNC_VULNDB_VERSION=latest (or a pseudo-version) overrides the pinned
# database; "latest" is resolved to the commit it names so the cache stays
# keyed by an exact version.
VULNDB_VERSION="${MODELSYNC_VULNDB_VERSION:-$VULNDB_VERSION}"
if [[ "$VULNDB_VERSION" == latest ]]; then
  VULNDB_VERSION="$(cd "$CACHE" && GOFLAGS= go list -m -f '{{.Version}}' golang.org/x/vulndb@latest)"
fi

log() { printf '[deps %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# done_stamp NAME: true when the step with that exact pinned key finished before.
done_stamp() { [[ -f "$CACHE/stamps/$1" ]]; }
mark_done() { mkdir -p "$CACHE/stamps"; date -u +%FT%TZ > "$CACHE/stamps/$1"; }

step_kube() {
  local key="kube-$KUBERNETES_VERSION-etcd-$ETCD_VERSION"
  local out="$CACHE/$key/bin"
  if done_stamp "$key" && [[ -x "$out/kube-apiserver" && -x "$out/etcd" ]]; then return; fi
  log "building kube-apiserver $KUBERNETES_VERSION and etcd $ETCD_VERSION (first time: several minutes)"
  mkdir -p "$out"
  local minor="${KUBERNETES_VERSION#v1.}"; minor="${minor%%.*}"
  local ld="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$here/../tools/kube" &&
    GOFLAGS=-mod=mod go build -trimpath -ldflags "$ld" -o "$out/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver &&
    GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$out/etcd" ./etcd)
  "$out/kube-apiserver" --version
  mark_done "$key"
}

step_kserve_crd() {
  local key="kserve-$KSERVE_VERSION"
  local dst="$CACHE/$key/serving.kserve.io_inferenceservices.yaml"
  if done_stamp "$key" && [[ -s "$dst" ]]; then return; fi
  log "fetching KServe $KSERVE_VERSION CRD from its module zip"
  mkdir -p "$CACHE/$key"
  local dir
  dir="$(cd "$here" && GOFLAGS=-mod=mod go mod download -json "github.com/kserve/kserve@$KSERVE_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  cp "$dir/config/crd/full/serving.kserve.io_inferenceservices.yaml" "$dst"
  chmod 0644 "$dst"
  mark_done "$key"
}

# venv NAME REQS...: a virtualenv of its own per pinned tool. The stamp also
# keys on the requirement list, so adding an extra to a pinned tool installs
# it into the existing venv (pip only fetches what is missing) instead of
# being skipped.
venv() {
  local name="$1"; shift
  local dir="$CACHE/$name"
  local key; key="$name-$(printf '%s\n' "$@" | sha256sum | cut -c1-12)"
  if done_stamp "$key" && [[ -x "$dir/bin/python" ]]; then return; fi
  if [[ ! -x "$dir/bin/python" ]]; then
    log "creating venv $dir"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install --quiet --upgrade pip
  fi
  log "pip install $* into $dir"
  rm -f "$dir/template.db" "$dir"/template-postgres*.sql
  "$dir/bin/pip" install --quiet "$@"
  mark_done "$key"
}

# mlflow_template NAME: an empty MLflow backend database already at the
# installed version's schema. test/testenv copies it instead of letting every
# server start run all migrations on a fresh sqlite file (seconds each time).
mlflow_template() {
  local dir="$CACHE/$1"
  [[ -s "$dir/template.db" ]] && return
  log "migrating an empty MLflow database template in $dir"
  rm -f "$dir/template.db.tmp"
  # `mlflow db upgrade` cannot start from an empty file on 2.x; the store's own
  # initialiser can on both majors, and (unlike constructing a store) it does
  # not create the Default experiment with a template-specific artifact path.
  (cd "$dir" && HOME="$dir" "$dir/bin/python" -c \
    'import sys; from mlflow.store.db import utils as u; u._initialize_tables(u.create_sqlalchemy_engine(sys.argv[1]))' \
    "sqlite:///$dir/template.db.tmp" >/dev/null 2>&1)
  mv "$dir/template.db.tmp" "$dir/template.db"
}

# mlflow[auth] brings Flask-WTF, which `mlflow server --app-name basic-auth` needs.
# psycopg2-binary is the driver MLflow's SQLAlchemy store uses for a
# postgresql:// backend store URI (test/testenv's PostgreSQL backend); it ships
# its own libpq, so no Debian client library is needed.
# MLflow 2.x imports a pool class that SQLAlchemy 2.1 removed, and its own pin
# (<3) lets pip pick 2.1, so cap it.
step_mlflow3() {
  venv "mlflow-$MLFLOW3_VERSION" "mlflow[auth]==$MLFLOW3_VERSION" "boto3" "psycopg2-binary==$PSYCOPG2_VERSION"
  mlflow_template "mlflow-$MLFLOW3_VERSION"
}
step_mlflow2() {
  venv "mlflow-$MLFLOW2_VERSION" "mlflow[auth]==$MLFLOW2_VERSION" "boto3" "sqlalchemy<2.1" "psycopg2-binary==$PSYCOPG2_VERSION"
  mlflow_template "mlflow-$MLFLOW2_VERSION"
}
# The oldest supported release. It has no [auth] extra (its basic-auth app
# needs nothing more), and like 2.22 it needs SQLAlchemy capped below 2.1; its
# own caps (numpy<2, pyarrow<15, packaging<24, pytz<2024, gunicorn<22) keep
# the rest on releases that import with it.
step_mlflow2_floor() {
  venv "mlflow-$MLFLOW2_FLOOR_VERSION" "mlflow==$MLFLOW2_FLOOR_VERSION" "boto3" "sqlalchemy<2.1" "psycopg2-binary==$PSYCOPG2_VERSION"
  mlflow_template "mlflow-$MLFLOW2_FLOOR_VERSION"
}
step_moto() { venv "moto-$MOTO_VERSION" "moto[server]==$MOTO_VERSION"; }

# The artifact scanner's corpus builder and benchmark: real model files from
# real libraries, and picklescan and modelscan to compare against.
step_scanpy() {
  venv "scanpy-$MODELSCAN_VERSION" "numpy==$SCANPY_NUMPY_VERSION" "scikit-learn==$SCANPY_SKLEARN_VERSION" \
    "joblib==$SCANPY_JOBLIB_VERSION" "safetensors==$SCANPY_SAFETENSORS_VERSION" "xgboost==$SCANPY_XGBOOST_VERSION" \
    "onnx==$SCANPY_ONNX_VERSION" "picklescan==$PICKLESCAN_VERSION" "modelscan==$MODELSCAN_VERSION"
}

step_minio() {
  local key="minio-$MINIO_VERSION"
  if done_stamp "$key" && [[ -x "$CACHE/$key/bin/minio" ]]; then return; fi
  log "building MinIO $MINIO_VERSION"
  mkdir -p "$CACHE/$key/bin"
  (cd "$CACHE" && GOBIN="$CACHE/$key/bin" GOFLAGS= go install "github.com/minio/minio@$MINIO_VERSION")
  mark_done "$key"
}

step_govulncheck() {
  local key="govulncheck-$GOVULNCHECK_VERSION"
  if done_stamp "$key" && [[ -x "$CACHE/$key/bin/govulncheck" ]]; then return; fi
  log "installing govulncheck $GOVULNCHECK_VERSION"
  mkdir -p "$CACHE/$key/bin"
  (cd "$CACHE" && GOBIN="$CACHE/$key/bin" GOFLAGS= go install "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION")
  mark_done "$key"
}

# step_vulndb builds the database govulncheck reads with -db file://... .
# golang.org/x/vulndb's module zip carries every report as OSV JSON
# (data/osv); its own cmd/indexdb writes them out in the v1 layout govulncheck
# expects (index/db.json, index/modules.json, index/vulns.json, ID/GO-*.json,
# each with a .gz twin). The zip has no Git history, from which the hosted
# database takes each entry's modified/published dates, so those stay zero:
# govulncheck matches on module, package, symbol and version ranges, not dates,
# and SOURCE records the commit (and its time) the data comes from instead.
step_vulndb() {
  local key="vulndb-$VULNDB_VERSION"
  local out="$CACHE/$key"
  if done_stamp "$key" && [[ -s "$out/db/index/modules.json" && -s "$out/db/SOURCE" ]]; then return; fi
  log "building the Go vulnerability database from golang.org/x/vulndb@$VULNDB_VERSION (first time: a few minutes)"
  local mod dir when
  mod="$(cd "$CACHE" && GOFLAGS= go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION")"
  dir="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["Dir"])' "$mod")"
  when="$(python3 -c 'import json,sys; print(json.load(open(json.loads(sys.argv[1])["Info"]))["Time"])' "$mod")"
  mkdir -p "$out/bin"
  (cd "$CACHE" && GOBIN="$out/bin" GOFLAGS= go install "golang.org/x/vulndb/cmd/indexdb@$VULNDB_VERSION")
  rm -rf "$out/db" "$out/db.tmp"
  "$out/bin/indexdb" -vulns "$dir/data/osv" -out "$out/db.tmp"
  local n; n="$(find "$out/db.tmp/ID" -name 'GO-*.json' | wc -l)"
  [[ "$n" -gt 0 ]] || { log "no reports in $dir/data/osv"; return 1; }
  # govulncheck reads only index/ and ID/; a file beside them is ignored.
  printf 'golang.org/x/vulndb@%s (commit %s), %s reports, v1 layout by its cmd/indexdb\n' \
    "$VULNDB_VERSION" "$when" "$n" > "$out/db.tmp/SOURCE"
  mv "$out/db.tmp" "$out/db"
  mark_done "$key"
}

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [[ ${#missing[@]} -eq 0 ]] && return
  log "apt-get install ${missing[*]}"
  local sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

step_prometheus() {
  apt_install prometheus
  # The package starts a system service; the tests start their own instances.
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now prometheus >/dev/null 2>&1 || true; fi
  command -v prometheus >/dev/null && command -v promtool >/dev/null
}

step_chromium() {
  # Headless Chromium for the dashboard's browser tests (chromedp drives it).
  apt_install chromium
  command -v chromium >/dev/null
}

# PostgreSQL: Debian's server, for MLflow's postgresql:// backend store
# (test/testenv.StartPostgres runs initdb and postgres itself, as an
# unprivileged user when the tests run as root).
step_postgres() {
  apt_install postgresql
  # The package creates and starts a cluster of its own as a system service;
  # the tests start their own throwaway clusters on free ports instead.
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now postgresql >/dev/null 2>&1 || true; fi
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    for v in /usr/lib/postgresql/*/; do pg_ctlcluster "$(basename "$v")" main stop >/dev/null 2>&1 || true; done
  fi
  postgres_bindir >/dev/null
}

# postgres_bindir prints the directory of the newest installed server's
# initdb/postgres/pg_ctl (Debian keeps them off PATH, one directory per major).
postgres_bindir() {
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
  if [[ -n "$d" && -x "$d/postgres" && -x "$d/initdb" ]]; then echo "$d"; return; fi
  d="$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)")"
  [[ -x "$d/postgres" ]] || { log "no PostgreSQL server binaries found"; return 1; }
  echo "$d"
}

step_git() {
  command -v git >/dev/null || apt_install git
  local exec_path; exec_path="$(git --exec-path)"
  [[ -x "$exec_path/git-http-backend" && -x "$exec_path/git-daemon" ]] || apt_install git
}

steps=("$@")
[[ ${#steps[@]} -eq 0 ]] && steps=(git prometheus postgres chromium kserve-crd minio moto mlflow3 mlflow2 mlflow2-floor kube govulncheck vulndb scanpy)
for s in "${steps[@]}"; do "step_${s//-/_}"; done
# env for the tests: where everything is.
cat > "$CACHE/env" <<ENV
MODELSYNC_KUBE_BIN=$CACHE/kube-$KUBERNETES_VERSION-etcd-$ETCD_VERSION/bin
MODELSYNC_KSERVE_CRD=$CACHE/kserve-$KSERVE_VERSION/serving.kserve.io_inferenceservices.yaml
MODELSYNC_MLFLOW3=$CACHE/mlflow-$MLFLOW3_VERSION/bin/mlflow
MODELSYNC_MLFLOW2=$CACHE/mlflow-$MLFLOW2_VERSION/bin/mlflow
MODELSYNC_MLFLOW2_FLOOR=$CACHE/mlflow-$MLFLOW2_FLOOR_VERSION/bin/mlflow
MODELSYNC_POSTGRES_BIN=$(postgres_bindir 2>/dev/null || true)
MODELSYNC_MINIO=$CACHE/minio-$MINIO_VERSION/bin/minio
MODELSYNC_MOTO=$CACHE/moto-$MOTO_VERSION/bin/moto_server
MODELSYNC_GOVULNCHECK=$CACHE/govulncheck-$GOVULNCHECK_VERSION/bin/govulncheck
MODELSYNC_VULNDB=$CACHE/vulndb-$VULNDB_VERSION/db
MODELSYNC_SCANPY=$CACHE/scanpy-$MODELSCAN_VERSION/bin/python
ENV
log "ready: $CACHE"
