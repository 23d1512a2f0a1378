// src/engine/native.ts is the one front door to the addon: what it types is
// what the addon exports, and an addon that lacks a part is refused at load.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseConfig } from '../../src/config/load.js';
import { ADDON_EXPORTS, counterFieldsDiffering, loadNative, type NativeServiceSpec } from '../../src/engine/native.js';
import { snapshot } from '../../src/engine/snapshot.js';

const root = join(import.meta.dirname, '..', '..');

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
  t.match(run.stderr, 'the native addon has no connectionStatsLayout, snapshotSchema, VrrpSocket, setInterfaceAddress, kernelRelaySupport, sdNotify, bench, fdPassing: rebuild with npm run build');
});

t.test('the counter fields native.ts reads are the layout\'s, checked at load', async (t) => {
  const { counterLayout } = loadNative();
  t.equal(counterFieldsDiffering(counterLayout), undefined, 'the built addon matches COUNTER_FIELDS');
  const { flowsMoved: _dropped, ...udp } = counterLayout.udp;
  t.equal(
    counterFieldsDiffering({ ...counterLayout, udp: { ...udp, flowsRenamed: 6 } }),
    'udp: the addon has datagramsDropped, datagramsIn, datagramsOut, flowsCompleted, flowsEvicted, flowsExpired, flowsRenamed; this code reads datagramsDropped, datagramsIn, datagramsOut, flowsCompleted, flowsEvicted, flowsExpired, flowsMoved',
  );
});

t.test('the snapshot reader requires every key and holds numbers to their bounds', async (t) => {
  const engine = new (loadNative().Engine)({ workers: 1, onEvents() {} });
  t.teardown(() => engine.stop());
  const config = parseConfig('services:\n  - name: svc\n    listen: 127.0.0.1:1\n    backends: [{address: 127.0.0.1:2}]\n', 'reader.yaml');
  const base = snapshot(config, { service: () => 0, backend: () => 0 }).services[0]!;
  const refused = (change: Record<string, unknown>, message: string): void => {
    t.throws(() => engine.apply({ services: [{ ...base, ...change } as NativeServiceSpec] }), { name: 'TypeError', message: `engine snapshot: ${message}` }, message);
  };
  refused({ sync: undefined }, 'services[0].sync must be a boolean');
  refused({ acceptProxy: undefined }, 'services[0].acceptProxy must be an object');
  refused({ sticky: undefined }, 'services[0].sticky must be an object');
  refused({ maglevTableSize: 250 }, 'services[0].maglevTableSize must be an integer from 251 to 4194301');
  refused({ connectTimeoutMs: 3_600_001 }, 'services[0].connectTimeoutMs must be an integer from 1 to 3600000');
  refused({ balance: 'fastest' }, 'services[0].balance: unknown value "fastest"');
  refused({ tcpKeepalive: undefined }, 'services[0].tcpKeepalive must be an object');
  refused({ tcpKeepalive: { idleMs: 999, intervalMs: 1000, count: 1 } }, 'services[0].tcpKeepalive.idleMs must be an integer from 1000 to 32400000');
  refused({ tcpKeepalive: { idleMs: 1000, intervalMs: 1000, count: 128 } }, 'services[0].tcpKeepalive.count must be an integer from 1 to 127');
  refused({ protocol: 'udp', idleTimeoutMs: 0, tcpKeepalive: null }, 'services[0].idleTimeoutMs must be at least 1 for protocol udp');
  refused({ clientLimits: { maxConnections: 0, rate: 5, burst: 0, tableSize: 16 } }, 'services[0].clientLimits.burst must be at least 1 with a rate');
  refused({ clientLimits: { maxConnections: 0, rate: 5, burst: 5, tableSize: 8 } }, 'services[0].clientLimits.tableSize must be an integer from 16 to 16777216');
  refused({ backends: [{ ...base.backends[0], maxConnections: 1_000_001 }] }, 'services[0].backends[0].maxConnections must be an integer from 1 to 1000000, or 0 for none');
});
