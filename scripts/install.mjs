// npm's install step for Fulcrum. When node-gyp-build finds an addon that
// loads (a prebuild in prebuilds/<platform>-<arch>/ shipped in the package, or
// a build/ already made), there is nothing to do and nothing is printed.
// Otherwise the addon is built from source, after one line saying why (no
// stack trace: a missing prebuild for a platform is normal): with cmake-js in
// a checkout (a devDependency: `npm install` in the repository), else with
// the node-gyp that npm itself bundles (binding.gyp), so an install from the
// registry needs no build tool in its dependencies. Building needs a C++20
// compiler, make and, for cmake-js, cmake.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const require = createRequire(import.meta.url);

/** The addon node-gyp-build would load, if it loads; otherwise why not (one line). */
function existingAddon() {
  let path;
  try {
    path = require('node-gyp-build').resolve(root);
  } catch {
    return { why: `no prebuilt addon for ${process.platform}-${process.arch} (N-API)` };
  }
  try {
    require(path);
    return { path };
  } catch (err) {
    return { why: `the addon at ${path} does not load (${err instanceof Error ? err.message.split('\n')[0] : err})` };
  }
}

/** The command that builds the addon into build/Release/. */
function buildCommand() {
  try {
    const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
    return { what: 'cmake-js', needs: 'cmake, make and g++', args: [cmakeJs, 'compile', '--out', 'build'] };
  } catch {
    // npm sets npm_config_node_gyp to its own node-gyp for install scripts.
    const nodeGyp = process.env.npm_config_node_gyp;
    if (nodeGyp === undefined || nodeGyp === '') return undefined;
    return { what: 'node-gyp', needs: 'python3, make and g++', args: [nodeGyp, 'rebuild'] };
  }
}

const found = existingAddon();
if (found.path !== undefined) process.exit(0);
const build = buildCommand();
if (build === undefined) {
  process.stderr.write(`fulcrum: ${found.why}, and neither cmake-js nor npm's node-gyp is at hand to build it: run npm install through npm\n`);
  process.exit(1);
}
process.stderr.write(`fulcrum: ${found.why}: building it from source with ${build.what} (needs ${build.needs})\n`);
const result = spawnSync(process.execPath, build.args, { cwd: root, stdio: 'inherit' });
process.exit(result.status ?? 1);
