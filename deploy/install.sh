#!/bin/sh
# Installs the fedflow release this script sits in (the top of dist/fedflow-<version>-linux-x64.tar.gz,
# built by `npm run release`), then starts one of its units:
#
#   tar xzf fedflow-<version>-linux-x64.tar.gz && sudo fedflow-<version>/install.sh [unit]
#
#   unit: fedflow-agent.service (default), fedflow-control.service, or none (install only)
#
# What it does, each step written to be safe to run again (a second run replaces the installed
# release and restarts the unit; test/hosts/userdata-install.test.ts runs it twice):
#   1. the system user and group `fedflow` the units run as (User=fedflow), when missing;
#   2. the release into /opt/fedflow (moved into place whole: versions are never mixed), owned by root;
#   3. /var/lib/fedflow (the unit's StateDirectory, 0700) owned by fedflow, and anything already put
#      there (the site's certificate and key under tls/, which cloud-init writes as root) handed to it;
#   4. the units into /etc/systemd/system, `systemctl daemon-reload`, `systemctl enable --now <unit>`.
#
# The unit reads /etc/fedflow/agent.env (or control.env) and /etc/fedflow/federation.yaml: put them
# in place first (the cloud-init of agent/site/cloud-init.ts writes them). Needs no network.
set -eu

here="$(cd "$(dirname "$0")" && pwd)"
replaced=0
prefix=/opt/fedflow
units=/etc/systemd/system
unit="${1:-fedflow-agent.service}"

case "$unit" in
  fedflow-agent.service | fedflow-control.service | none) ;;
  *) echo "install.sh: unknown unit '$unit': give fedflow-agent.service (default), fedflow-control.service or none" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (it creates the fedflow user and writes $prefix and $units)" >&2; exit 1; }
[ -x "$here/runtime/bin/node" ] && [ -f "$here/RELEASE.json" ] || { echo "install.sh: $here is not an unpacked fedflow release (no runtime/bin/node or RELEASE.json)" >&2; exit 1; }

# 1. The user the units run as: no login, its home the state directory.
if ! getent group fedflow >/dev/null; then groupadd --system fedflow; fi
if ! getent passwd fedflow >/dev/null; then
  useradd --system --gid fedflow --home-dir /var/lib/fedflow --no-create-home --shell /usr/sbin/nologin fedflow
fi

# 2. The release, swapped in whole.
if [ "$here" != "$prefix" ]; then
  mkdir -p "$(dirname "$prefix")"
  rm -rf "$prefix.new" "$prefix.old"
  mv "$here" "$prefix.new"
  chown -R root:root "$prefix.new"
  chmod -R go-w "$prefix.new"
  if [ -e "$prefix" ]; then mv "$prefix" "$prefix.old" && replaced=1; fi
  mv "$prefix.new" "$prefix"
fi

# 3. State: the agent's home (FEDFLOW_HOME), private to the fedflow user.
mkdir -p /var/lib/fedflow
chown -R fedflow:fedflow /var/lib/fedflow
chmod 0700 /var/lib/fedflow
mkdir -p /etc/fedflow

# 4. The units.
mkdir -p "$units"
for u in fedflow-agent.service fedflow-control.service; do
  cp "$prefix/deploy/$u" "$units/$u.tmp"
  chmod 0644 "$units/$u.tmp"
  mv "$units/$u.tmp" "$units/$u"
done
systemctl daemon-reload
echo "install.sh: fedflow $(sed -n 's/.*"version": "\(.*\)".*/\1/p' "$prefix/RELEASE.json") installed in $prefix"
if [ "$unit" != none ]; then
  if [ "$replaced" = 1 ]; then
    # A running agent still runs the old release's files: restart it on the new one.
    systemctl enable "$unit" && systemctl restart "$unit" && echo "install.sh: $unit enabled and restarted"
  else
    systemctl enable --now "$unit" && echo "install.sh: $unit enabled and started"
  fi
fi
# The old release goes only now: a running agent kept reading its files until the restart.
rm -rf "$prefix.old"
