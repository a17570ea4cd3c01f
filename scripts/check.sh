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
# Against the previous commit of main, once it has protos: a breaking change to agentd.v1 fails.
if git rev-parse -q --verify HEAD~1 >/dev/null && git cat-file -e HEAD~1:proto 2>/dev/null; then
  buf breaking --against ".git#ref=HEAD~1"
else
  echo "(no earlier commit with proto/: skipped)"
fi

echo "== tsc"
tsc -p tsconfig.json
tsc -p web/console/tsconfig.json

echo "== biome lint"
biome lint --error-on-warnings .
