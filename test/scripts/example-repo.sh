#!/usr/bin/env bash
# example-repo.sh DEST — turns manifests-example/ into a real Git repository
# with a short history and release tags, for demos and tests:
#
#   1. "Add models": every model but fraud-detector-xgb; churn's prod at v2.
#      Tags customer-churn-predictor/v1.0.0, llama2-7b-alpaca/v1.0.0,
#      sentiment-bert-legacy/v2.3.0 (the retirement release).
#   2. "Promote churn v3 to prod": tag customer-churn-predictor/v1.1.0.
#   3. "Add fraud-detector-xgb (dev only)".
#
# DEST must not exist. The repository's default branch is main.
set -euo pipefail
dest="${1:?usage: example-repo.sh DEST}"
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../manifests-example" && pwd)"
[[ -e "$dest" ]] && { echo "example-repo: $dest already exists" >&2; exit 1; }

export GIT_AUTHOR_NAME="Alice ML" GIT_AUTHOR_EMAIL="alice@example.com"
export GIT_COMMITTER_NAME="Alice ML" GIT_COMMITTER_EMAIL="alice@example.com"
export GIT_AUTHOR_DATE="2026-01-05T10:00:00Z" GIT_COMMITTER_DATE="2026-01-05T10:00:00Z"

mkdir -p "$dest"
git -C "$dest" init -q -b main
cp -R "$src/." "$dest/"
rm -rf "$dest/models/fraud-detector-xgb"
churn="$dest/models/customer-churn-predictor/model.yaml"
# Before the promotion, prod ran v2.
sed -i '/^    prod:/,/version:/ s/version: 3/version: 2/' "$churn"
grep -q 'version: 2' "$churn"
git -C "$dest" add -A
git -C "$dest" commit -q -m "Add models"
git -C "$dest" tag -a customer-churn-predictor/v1.0.0 -m "Release customer-churn-predictor v1.0.0"
git -C "$dest" tag -a llama2-7b-alpaca/v1.0.0 -m "Release llama2-7b-alpaca v1.0.0"
git -C "$dest" tag -a sentiment-bert-legacy/v2.3.0 -m "Retire sentiment-bert-legacy"

export GIT_AUTHOR_DATE="2026-01-12T10:00:00Z" GIT_COMMITTER_DATE="2026-01-12T10:00:00Z"
export GIT_AUTHOR_NAME="Bob Data" GIT_AUTHOR_EMAIL="bob@example.com"
cp "$src/models/customer-churn-predictor/model.yaml" "$churn"
git -C "$dest" commit -q -am "Promote customer-churn-predictor v3 to prod"
git -C "$dest" tag -a customer-churn-predictor/v1.1.0 -m "Release customer-churn-predictor v1.1.0"

export GIT_AUTHOR_DATE="2026-01-19T10:00:00Z" GIT_COMMITTER_DATE="2026-01-19T10:00:00Z"
export GIT_AUTHOR_NAME="Dana Risk" GIT_AUTHOR_EMAIL="dana@example.com"
cp -R "$src/models/fraud-detector-xgb" "$dest/models/"
git -C "$dest" add -A
git -C "$dest" commit -q -m "Add fraud-detector-xgb (dev only)"
echo "example repository ready: $dest"
git -C "$dest" log --oneline --decorate
