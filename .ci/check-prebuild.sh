#!/usr/bin/env bash
# `npm run prebuildify` must produce a prebuild that node-gyp-build loads on
# its own: build it, then load it from a directory that has only
# package.json and prebuilds/ (no build/), and run an engine and a bench
# server from it.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run prebuildify >/dev/null 2>&1 || { npm run prebuildify; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp package.json "$tmp/"
cp -r prebuilds "$tmp/"
node -e '
  const dir = process.argv[1];
  const addon = require("node-gyp-build")(dir);
  const path = require("node-gyp-build").resolve(dir);
  if (!path.startsWith(dir + "/prebuilds/")) throw new Error("loaded " + path + ", not the prebuild");
  // Every part of the addon, the libraries (engine, ha, bench) linked in.
  for (const name of ["Engine", "VrrpSocket", "counterLayout", "snapshotSchema", "setInterfaceAddress", "testing", "bench"]) {
    if (addon[name] === undefined) throw new Error("the prebuild has no " + name);
  }
  const engine = new addon.Engine({ workers: 1, onEvents() {} });
  engine.apply({ services: [] });
  engine.stop();
  const server = new addon.bench.Server({ host: "127.0.0.1", port: 0, threads: 1 });
  server.close();
  console.log("prebuild loads: " + path);
' "$tmp"
