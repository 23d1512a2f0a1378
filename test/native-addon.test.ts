// src/engine/native.ts is the one front door to the addon: what it types is
// what the addon exports, and an addon that lacks a part is refused at load.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ADDON_EXPORTS, loadNative } from '../src/engine/native.js';

const root = join(import.meta.dirname, '..');

t.test('the addon exports exactly what native.ts types', async (t) => {
  const addon = loadNative();
  t.strictSame(Object.keys(addon).sort(), [...ADDON_EXPORTS].sort(), 'nothing more, nothing less than NativeAddon lists');
  t.type(addon.Engine, 'function');
  t.type(addon.setInterfaceAddress, 'function');
  t.type(addon.VrrpSocket, 'function');
  t.type(addon.testing.maglevAssign, 'function');
  t.strictSame(Object.keys(addon.bench).sort(), ['Client', 'Server', 'protocolVersion', 'testing']);
  t.type(addon.bench.testing.latencySummary, 'function');
});

t.test('VrrpSocket (native/ha) on an interface that does not exist throws ENODEV', async (t) => {
  const { VrrpSocket } = loadNative();
  t.throws(() => new VrrpSocket({ interface: 'fulcrum-none0', joinGroup: false, onPackets() {} }), { code: 'ENODEV' });
});

t.test('an addon without a part is refused with a rebuild hint', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-stale-addon-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // A stale build: the engine and its counters, no VrrpSocket or bench.
  const stale = join(dir, 'stale.cjs');
  writeFileSync(stale, 'module.exports = { Engine: class {}, counterLayout: { version: 3 }, testing: {} };\n');
  const script = `import(${JSON.stringify(pathToFileURL(join(root, 'dist/engine/native.js')).href)}).then((m) => m.loadNative())`;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, FULCRUM_NATIVE: stale },
    encoding: 'utf8',
    timeout: 10_000,
  });
  t.not(run.status, 0);
  t.match(run.stderr, 'the native addon has no snapshotSchema, VrrpSocket, setInterfaceAddress, bench: rebuild with npm run build');
});
