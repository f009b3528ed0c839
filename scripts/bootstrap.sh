#!/usr/bin/env bash
# First-run set-up shared by `npm start` and `npm test`: install node modules when missing or
# stale, find or build the Temporal CLI, and find or fetch the time-skipping test server (both
# cached outside the clone).
set -euo pipefail
cd "$(dirname "$0")/.."
# A linked node_modules belongs to another checkout (a git worktree sharing it): reinstalling
# through the link would empty it under that checkout's feet, so leave it alone.
if [ ! -L node_modules ] && { [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; }; then
  echo "fedflow: installing node modules (npm ci) ..." >&2
  npm ci --no-audit --no-fund >&2
fi
node --import tsx scripts/temporal-cli.ts >/dev/null
# System packages the tests use (installed when root with apt-get; otherwise the command is printed).
if [ "${npm_lifecycle_event:-}" != start ]; then
  bash scripts/system-deps.sh
fi
# The workflow tier's server (Java, from Maven Central), for tests only (`npm start` needs none).
# Without java and mvn only that tier fails, naming what is missing; the other tiers still run.
if [ "${npm_lifecycle_event:-}" != start ]; then
  node --import tsx scripts/temporal-test-server.ts >/dev/null || echo "fedflow: no time-skipping test server; test/workflow will fail (see above)" >&2
fi
