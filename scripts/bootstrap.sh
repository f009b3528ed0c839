#!/usr/bin/env bash
# First-run set-up shared by `npm start` and `npm test`: install node modules when missing or
# stale, and find or build the Temporal CLI (cached outside the clone).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "fedflow: installing node modules (npm ci) ..." >&2
  npm ci --no-audit --no-fund >&2
fi
node --import tsx scripts/temporal-cli.ts >/dev/null
