#!/usr/bin/env bash
# `npm run fuzz`: the fuzz suite (test/fuzz) alone. `npm run fuzz -- --long` runs each
# property 50x longer (AGENTD_FUZZ_RUNS=2000); AGENTD_FUZZ_RUNS=N sets it exactly.
set -euo pipefail
if [[ "${1:-}" == "--long" ]]; then
  shift
  export AGENTD_FUZZ_RUNS="${AGENTD_FUZZ_RUNS:-2000}"
fi
exec npx vitest run test/fuzz "$@"
