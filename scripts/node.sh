#!/usr/bin/env bash
# `node`, but always the pinned Node 24 of scripts/node-runtime.sh (fetched once into ~/.cache),
# whatever node the calling shell or npm runs on. Its bin directory goes first on PATH so that
# anything started below (npx, tsc, child processes) runs on the same Node.
set -euo pipefail
bin="$(bash "$(dirname "$(readlink -f "$0")")/node-runtime.sh")"
export PATH="$bin:$PATH"
exec "$bin/node" "$@"
