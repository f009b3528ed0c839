#!/usr/bin/env bash
# First-run set-up shared by `npm start` and `npm test`: get Node 24, install node modules when
# missing or stale, find or build the Temporal CLI, and find or fetch the time-skipping test server
# (all cached outside the clone).
set -euo pipefail
cd "$(dirname "$0")/.."

# fedflow runs on Node 24 LTS, pinned, fetched once from the npm registry (scripts/node-runtime.sh).
# npm may have been started by an older node (Debian's is 20, end of life since April 2026, and has
# no zstd in node:zlib): rather than stop there, everything below runs on Node 24, and so does the
# command npm runs after this script, through scripts/node.sh. Re-running on the right Node beats
# telling a new user to install one: both README commands stay the first thing to type.
bin="$(bash scripts/node-runtime.sh)"
caller="${npm_node_execpath:-$(command -v node || true)}"
caller_version="$([ -n "$caller" ] && "$caller" -p process.versions.node 2>/dev/null || echo 0)"
if [ "${caller_version%%.*}" -lt 22 ]; then
  echo "fedflow: the node that started this (${caller:-none}) is $caller_version, older than 22 and unsupported (Node 20 reached its end of life in April 2026); running on Node $("$bin/node" -p process.versions.node) from $bin instead." >&2
  echo "fedflow: to use that Node yourself: export PATH=\"$bin:\$PATH\"" >&2
fi
export PATH="$bin:$PATH"
# Native builds (the optional `lz4` addon) compile against this Node's own headers: node-gyp would
# otherwise download them from a site that is not a registry, or take a user config's older ones.
export npm_config_nodedir="$(dirname "$bin")"
# A linked node_modules belongs to another checkout (a git worktree sharing it): reinstalling
# through the link would empty it under that checkout's feet, so leave it alone.
if [ ! -L node_modules ] && { [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; }; then
  echo "fedflow: installing node modules (npm ci) ..." >&2
  npm ci --no-audit --no-fund >&2
fi
# node_modules installed by another Node keeps an `lz4` addon built for it: rebuild it for this one
# (else LZ4 falls back to the slower lz4-napi compressor, and the codec test says so).
if [ ! -L node_modules ] && [ -d node_modules/lz4 ] && ! node -e "require('lz4')" 2>/dev/null; then
  echo "fedflow: rebuilding the lz4 addon for Node $(node -p process.versions.node) ..." >&2
  npm rebuild lz4 >&2 || echo "fedflow: lz4 did not rebuild; LZ4 chunks are compressed by lz4-napi (slower, same format)" >&2
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
