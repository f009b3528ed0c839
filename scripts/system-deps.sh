#!/usr/bin/env bash
# The Debian packages fedflow's tests and benchmarks use: Chromium (the browser tier), PostgreSQL
# and Redis (the workload specs' services), rsync (the
# delta benchmark's peer), lz4/zstd (the codec benchmarks' command-line peers), openssl, Python
# (the moto emulator's venv), Java and Maven (the workflow tier's time-skipping test server).
# Run as root with apt-get, it installs what is missing; otherwise (or if apt-get fails, say with
# no network) it prints the exact command to run, and `npm test` skips only the browser tier.
# `.ci/run` and `npm test` (scripts/bootstrap.sh) both call it.
set -uo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v rsync >/dev/null || need+=(rsync)
command -v lz4 >/dev/null || need+=(lz4)
command -v zstd >/dev/null || need+=(zstd)
command -v openssl >/dev/null || need+=(openssl)
command -v python3 >/dev/null || need+=(python3 python3-venv)
# The hosts tier: namespaces, veths, a bridge and tc (iproute2); a site's user-data fetches the
# release artifact with curl and starts its unit as the unit's User= (setpriv, util-linux).
command -v ip >/dev/null && command -v tc >/dev/null || need+=(iproute2)
command -v curl >/dev/null || need+=(curl)
command -v setpriv >/dev/null && command -v unshare >/dev/null || need+=(util-linux)
# The workload specs' real services (workloads/postgres.yaml, workloads/redis.yaml): PostgreSQL 15
# (the image's own in /usr/local/bin, or Debian's in /usr/lib/postgresql/15/bin, which the spec's
# PATH names) and Redis.
{ command -v postgres >/dev/null || [ -x /usr/lib/postgresql/15/bin/postgres ]; } || need+=(postgresql-15)
{ command -v psql >/dev/null || [ -x /usr/lib/postgresql/15/bin/psql ]; } || need+=(postgresql-client-15)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "fedflow: installing ${need[*]} (apt-get) ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; then exit 0; fi
  echo "fedflow: apt-get could not install them (no network or no Debian mirror?)" >&2
fi
echo "fedflow: missing system packages: ${need[*]}. Install them with: sudo apt-get install ${need[*]}" >&2
[ -x /usr/bin/chromium ] || echo "fedflow: until chromium is installed, npm test skips the browser tier (and says so at the end)" >&2
exit 0
