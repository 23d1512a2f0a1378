#!/usr/bin/env bash
# The npm package installs and runs where there is no compiler: pack the
# tarball (with the prebuilt addon from `npm run prebuildify`), install it
# globally into a temporary prefix with a PATH that holds only node and npm
# (no cmake, make, g++, cc), then run the installed `fulcrum`: --version,
# and a real proxy check (bytes through `fulcrum run` to an echo backend).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d prebuilds ]; then
  npm run prebuildify >/dev/null 2>&1 || { npm run prebuildify; exit 1; }
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tarball=$(npm pack --silent --pack-destination "$tmp" | tail -n 1)
echo "packed: $tarball ($(du -h "$tmp/$tarball" | cut -f1))"
listing=$(tar -tzf "$tmp/$tarball")
grep -q '^package/prebuilds/linux-x64/.*\.node$' <<<"$listing" || { echo "the tarball has no linux-x64 prebuild"; exit 1; }
grep -q '^package/config/systemd/fulcrum.service$' <<<"$listing" || { echo "the tarball has no systemd unit"; exit 1; }

# A bin directory with node, npm and sh (npm runs install scripts with sh) only.
mkdir -p "$tmp/bin" "$tmp/prefix"
ln -s "$(command -v node)" "$tmp/bin/node"
ln -s "$(command -v npm)" "$tmp/bin/npm"
ln -s "$(command -v sh)" "$tmp/bin/sh"
for tool in cmake make g++ c++ cc gcc; do
  if PATH="$tmp/bin" command -v "$tool" >/dev/null 2>&1; then echo "$tool is on the restricted PATH"; exit 1; fi
done

# Registry packages come from npm's cache when it has them (npm ci filled it).
PATH="$tmp/bin" npm install -g --prefix "$tmp/prefix" --no-audit --no-fund --prefer-offline --allow-scripts=fulcrum --foreground-scripts "$tmp/$tarball" 2>&1 | tee "$tmp/install.log"
if grep -q 'No native build was found\|gyp info\|CMake' "$tmp/install.log"; then
  echo "the install built from source or printed a stack trace"; exit 1
fi
# npm 11 runs a global install's scripts only when allowed: allowed here, so
# scripts/install.mjs runs, finds the prebuild and says nothing.
grep -q '^> node scripts/install.mjs' "$tmp/install.log" || { echo "the install script did not run"; exit 1; }
if grep -q '^fulcrum: ' "$tmp/install.log"; then echo "the install script did not find the prebuild"; exit 1; fi
installed="$tmp/prefix/lib/node_modules/fulcrum"
[ ! -e "$installed/build" ] || { echo "the install made build/: it compiled"; exit 1; }
[ ! -e "$installed/node_modules/cmake-js" ] || { echo "cmake-js was installed as a dependency"; exit 1; }

version=$(PATH="$tmp/bin" "$tmp/prefix/bin/fulcrum" --version)
expected=$(node -p 'require("./package.json").version')
[ "$version" = "$expected" ] || { echo "fulcrum --version: '$version', expected '$expected'"; exit 1; }
echo "fulcrum --version: $version"
# The unit it prints runs the installed fulcrum with the node that runs it.
unit=$(PATH="$tmp/bin" "$tmp/prefix/bin/fulcrum" systemd-unit)
grep -qx "ExecStart=$(readlink -f "$(command -v node)") $installed/dist/cli.js run -c /etc/fulcrum/fulcrum.yaml" <<<"$unit" ||
  { echo "fulcrum systemd-unit: unexpected ExecStart:"; grep '^ExecStart=' <<<"$unit"; exit 1; }
echo "fulcrum systemd-unit: $(grep '^ExecStart=' <<<"$unit")"
PATH="$tmp/bin" node .ci/proxy-smoke.mjs "$tmp/prefix/bin/fulcrum" "$tmp"
