#!/usr/bin/env bash
# Alternates a benchmark between two revisions of this repository, round by round, so that both
# arms see the same drift of a shared machine; then prints each arm's medians (bench-ab-summary.mjs).
#
#   bash scripts/bench-ab.sh <revA> <revB> <rounds> <out-prefix> -- <bench args…>
#   bash scripts/bench-ab.sh 262240e HEAD 3 /tmp/ab -- downtime --workload postgres --volume-mib 64 --runs 5
#
# Each revision is checked out in a work tree of its own (/tmp/fedflow-ab-<rev>-<pid>, removed at
# the end), sharing this checkout's node_modules. The JSON lines go to <out-prefix>.A.jsonl and .B.jsonl, stderr to .err.
set -euo pipefail
[ $# -ge 6 ] && [ "$5" = "--" ] || { echo "usage: bash scripts/bench-ab.sh <revA> <revB> <rounds> <out-prefix> -- <bench args…>" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
revA=$(git -C "$root" rev-parse --short "$1"); revB=$(git -C "$root" rev-parse --short "$2"); rounds=$3; out=$4; shift 5
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "rounds must be a whole number of at least 1, got $rounds" >&2; exit 2; }
export PATH="$(bash "$root/scripts/node-runtime.sh"):$PATH"
trees=()
cleanup() { for d in "${trees[@]}"; do git -C "$root" worktree remove --force "$d" >/dev/null 2>&1 || true; done; }
trap cleanup EXIT
tree() {
  local dir=/tmp/fedflow-ab-$1-$$
  git -C "$root" worktree add -f --detach "$dir" "$1" >/dev/null 2>&1
  ln -sfn "$root/node_modules" "$dir/node_modules"
  echo "$dir"
}
dirA=$(tree "$revA"); trees+=("$dirA"); dirB=$(tree "$revB"); trees+=("$dirB")
for r in $(seq "$rounds"); do
  for arm in A B; do
    dir=$dirA; [ $arm = B ] && dir=$dirB
    (cd "$dir" && npm run -s bench -- "$@" >> "$out.$arm.jsonl" 2>> "$out.$arm.err")
    echo "$(date -u +%H:%M:%S) round $r arm $arm ($([ $arm = A ] && echo "$revA" || echo "$revB")) done" >&2
  done
done
node "$root/scripts/bench-ab-summary.mjs" "$out.A.jsonl" "$out.B.jsonl"
