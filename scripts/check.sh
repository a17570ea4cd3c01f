#!/usr/bin/env bash
# npm run check: every static check, failing on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"

echo "== buf lint"
buf lint

echo "== gen/ is fresh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
buf generate --output "$tmp"
if ! diff -r "$tmp/gen" gen; then
  echo "gen/ differs from 'buf generate': run 'npm run generate' and commit" >&2
  exit 1
fi

echo "== buf breaking"
# A branch is compared with where it left main (the merge-base), so a break spread over several
# commits still fails; main itself (or a clone without main) with its last release tag, else with its
# first parent (main before the last commit or merge).
against=""
for base in main origin/main; do
  if git rev-parse -q --verify "$base^{commit}" >/dev/null; then
    against=$(git merge-base HEAD "$base" 2>/dev/null || true)
    [ -n "$against" ] && break
  fi
done
if [ -z "$against" ] || [ "$against" = "$(git rev-parse HEAD)" ]; then
  against=$(git describe --tags --abbrev=0 --match 'v*' HEAD~1 2>/dev/null || git rev-parse -q --verify HEAD~1 || true)
fi
if [ -n "$against" ] && git cat-file -e "$against:proto" 2>/dev/null; then
  echo "(against $against)"
  buf breaking --against ".git#ref=$against"
else
  echo "(no main, no earlier commit with proto/: skipped)"
fi

echo "== tsc"
tsc -p tsconfig.json
tsc -p web/console/tsconfig.json

echo "== layers (docs/architecture.md)"
tsx scripts/check-layers.ts

echo "== biome (lint, format, import order)"
biome check --error-on-warnings .
