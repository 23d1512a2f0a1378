// The engine's bookkeeping without the addon: slots of services and backends
// across reloads (SlotTable, EngineSlots: acquired in config order, rolled
// back when an apply fails, removed backends retired until their connections
// end or their drain_timeout closes them),
// and counter baselines of reused slots (CounterBaselines, over a counter
// block laid out as the addon lays it out).
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseConfig } from '../../src/config/load.js';
import type { FulcrumConfig } from '../../src/config/types.js';
import { CounterBaselines } from '../../src/engine/baselines.js';
import { backendKey, splitBackendKey } from '../../src/engine/backend-key.js';
import { CounterReader } from '../../src/engine/counter-reader.js';
import { COUNTER_FIELDS, type CounterLayout } from '../../src/engine/native.js';
import { SlotTable } from '../../src/engine/slot-table.js';
import { EngineSlots, RETIRE_POLL_MS } from '../../src/engine/slots.js';

/** A config of services `name: [backend ports]` on 127.0.0.1, each with `drainMs` (0: no drain_timeout key). */
function configOf(services: Record<string, number[]>, drainMs = 50): FulcrumConfig {
  const lines = ['services:'];
  let port = 7000;
  for (const [name, backends] of Object.entries(services)) {
    lines.push(`  - name: ${name}`, `    listen: 127.0.0.1:${port++}`, ...(drainMs > 0 ? [`    drain_timeout: ${drainMs}ms`] : []), '    backends:');
    for (const b of backends) lines.push(`      - address: 127.0.0.1:${b}`);
  }
  return parseConfig(lines.join('\n'), 'slots.yaml');
}

function slotsWith(active: Map<number, number> = new Map()) {
  const closed: number[] = [];
  const freed: number[] = [];
  const slots = new EngineSlots({ maxServices: 4, maxBackends: 8 }, {
    activeConnections: (slot) => active.get(slot) ?? 0,
    closeConnections: (slot) => closed.push(slot),
    freed: (slot) => freed.push(slot),
  });
  return { slots, closed, freed };
}

t.test('SlotTable hands out never-used slots before reusing freed ones, and says when it is full', async (t) => {
  const table = new SlotTable(3);
  t.strictSame([table.acquire('a'), table.acquire('b'), table.acquire('a')], [
    { slot: 0, isNew: true },
    { slot: 1, isNew: true },
    { slot: 0, isNew: false },
  ]);
  table.release('a');
  t.strictSame(table.acquire('c'), { slot: 2, isNew: true }, 'slot 2 was never used: it comes before freed 0');
  t.strictSame(table.acquire('d'), { slot: 0, isNew: true });
  t.throws(() => table.acquire('e'), RangeError);
  t.strictSame([...table.keys()].sort(), ['b', 'c', 'd']);
});

t.test('a backend key splits back into its service and address', async (t) => {
  t.strictSame(splitBackendKey(backendKey('db', '[::1]:5432')), { service: 'db', address: '[::1]:5432' });
});

t.test('assign: slots in config order, fresh ones listed, rolled back on request', async (t) => {
  const { slots } = slotsWith();
  const first = slots.assign(configOf({ a: [1, 2], b: [3] }));
  t.strictSame(first.fresh.map((f) => [f.kind, f.key, f.slot]), [
    ['service', 'a', 0],
    ['backend', backendKey('a', '127.0.0.1:1'), 0],
    ['backend', backendKey('a', '127.0.0.1:2'), 1],
    ['service', 'b', 1],
    ['backend', backendKey('b', '127.0.0.1:3'), 2],
  ]);
  t.equal(first.slots.backend('b', '127.0.0.1:3'), 2);
  t.throws(() => first.slots.backend('b', '127.0.0.1:9'), /no slot assigned/);
  const second = slots.assign(configOf({ a: [1, 2, 4], c: [5] }));
  t.strictSame(second.fresh.map((f) => f.key), [backendKey('a', '127.0.0.1:4'), 'c', backendKey('c', '127.0.0.1:5')], 'only what is new');
  second.rollback();
  t.equal(slots.backendSlot('a', '127.0.0.1:4'), undefined, 'rolled back');
  t.equal(slots.serviceSlot('c'), undefined);
  t.equal(slots.backendSlot('a', '127.0.0.1:1'), 0, 'what the first config holds stays');
});

t.test('settle: removed services and idle backends are freed; busy ones are retired for their drain time', async (t) => {
  const active = new Map([[1, 3]]);
  const { slots, closed, freed } = slotsWith(active);
  const first = configOf({ a: [1, 2], b: [3] }, 40);
  slots.assign(first);
  slots.settle(first, undefined);
  const second = configOf({ a: [1] });
  slots.assign(second);
  slots.settle(second, first);
  t.equal(slots.serviceSlot('b'), undefined, 'service b released');
  t.strictSame(freed, [2], 'b\'s idle backend freed at once');
  t.equal(slots.backendSlot('a', '127.0.0.1:2'), 1, 'a busy backend keeps its slot while it drains');
  t.equal(slots.backendAddresses().get(1), '127.0.0.1:2', 'and events still name it');
  await sleep(40 + RETIRE_POLL_MS + 100);
  t.strictSame(closed, [1], "after a's drain_timeout (the new config's, which still has the service) its connections are closed");
  t.strictSame(freed, [2, 1]);
  t.equal(slots.backendSlot('a', '127.0.0.1:2'), undefined);
});

t.test('without a drain_timeout a removed busy backend keeps its slot until its last connection ends; none is closed', async (t) => {
  const active = new Map([[1, 2]]);
  const { slots, closed, freed } = slotsWith(active);
  const first = configOf({ a: [1, 2] }, 0);
  slots.assign(first);
  slots.settle(first, undefined);
  const second = configOf({ a: [1] }, 0);
  slots.assign(second);
  slots.settle(second, first);
  await sleep(3 * RETIRE_POLL_MS);
  t.strictSame([closed, freed], [[], []], 'still busy: kept, nothing closed');
  t.equal(slots.backendSlot('a', '127.0.0.1:2'), 1);
  active.set(1, 0);
  await sleep(RETIRE_POLL_MS + 100);
  t.strictSame([closed, freed], [[], [1]], 'its connections ended: the slot is freed, none was closed');
  t.equal(slots.backendSlot('a', '127.0.0.1:2'), undefined);
});

t.test('a retired backend that comes back keeps its slot; stop ends no retirement', async (t) => {
  const active = new Map([[1, 1], [0, 1]]);
  const { slots, closed, freed } = slotsWith(active);
  const first = configOf({ a: [1, 2] }, 30);
  slots.assign(first);
  slots.settle(first, undefined);
  const second = configOf({ a: [1] });
  slots.assign(second);
  slots.settle(second, first);
  slots.assign(first);
  slots.settle(first, second);
  await sleep(30 + RETIRE_POLL_MS + 100);
  t.strictSame(closed, [], 'back before its retirement ended');
  t.equal(slots.backendSlot('a', '127.0.0.1:2'), 1);
  slots.assign(second);
  slots.settle(second, first);
  slots.stop();
  await sleep(30 + RETIRE_POLL_MS + 100);
  t.strictSame([closed, freed], [[], []], 'stopped: the engine closes everything itself');
});

t.test('counter baselines: a reused slot counts from its new owner on, gauges excepted', async (t) => {
  // One worker; every line is 8 words, lines in the order the addon lays them out.
  const line = 8;
  const fields = (names: readonly string[]) => Object.fromEntries(names.map((n, i) => [n, i]));
  const layout = {
    version: 5, globalOffset: 0, firstWorkerOffset: line, workerStride: line * 7, serviceOffset: line, backendOffset: line * 2,
    slotStride: line, udpServiceOffset: line * 3, udpBackendOffset: line * 4, admissionOffset: line * 5, relayOffset: line * 6, maxServices: 1, maxBackends: 1,
    global: fields(COUNTER_FIELDS.global), worker: fields(COUNTER_FIELDS.worker), traffic: fields(COUNTER_FIELDS.traffic),
    udp: fields(COUNTER_FIELDS.udp), admission: fields(COUNTER_FIELDS.admission), relay: fields(COUNTER_FIELDS.relay),
  } as CounterLayout;
  const words = new BigUint64Array(line * 8);
  const reader = new CounterReader(words.buffer, layout, 1);
  const at = (base: number, field: number) => line + base + field;
  words[at(layout.serviceOffset, layout.traffic.accepted)] = 10n;
  words[at(layout.serviceOffset, layout.traffic.active)] = 2n;
  words[at(layout.udpServiceOffset, layout.udp.datagramsIn)] = 30n;
  words[at(layout.admissionOffset, layout.admission.denied)] = 4n;
  words[at(layout.relayOffset, layout.relay.kernelEntered)] = 9n;
  words[at(layout.relayOffset, layout.relay.kernelActive)] = 3n;
  words[at(layout.backendOffset, layout.traffic.bytesIn)] = 500n;
  const baselines = new CounterBaselines(reader);
  baselines.capture({ kind: 'service', key: 'svc', slot: 0 });
  baselines.capture({ kind: 'backend', key: backendKey('svc', 'b'), slot: 0 });
  const add = (word: number, n: bigint): void => {
    words[word] = words[word]! + n;
  };
  add(at(layout.serviceOffset, layout.traffic.accepted), 1n);
  add(at(layout.udpServiceOffset, layout.udp.datagramsIn), 5n);
  add(at(layout.admissionOffset, layout.admission.denied), 1n);
  add(at(layout.relayOffset, layout.relay.kernelEntered), 2n);
  add(at(layout.backendOffset, layout.traffic.bytesIn), 7n);
  t.equal(baselines.serviceTraffic('svc', 0).accepted, 1);
  t.equal(baselines.serviceTraffic('svc', 0).active, 2, 'the gauge is read as it is');
  t.equal(baselines.serviceUdp('svc', 0).datagramsIn, 5);
  t.equal(baselines.admission('svc', 0).denied, 1);
  t.equal(baselines.relay('svc', 0).kernelEntered, 2, 'kernel relay counters too');
  t.equal(baselines.relay('svc', 0).kernelActive, 3, 'its gauge is read as it is');
  t.equal(baselines.backendTraffic(backendKey('svc', 'b'), 0).bytesIn, 7);
  baselines.forget('svc');
  t.equal(baselines.serviceTraffic('svc', 0).accepted, 11, 'forgotten: the raw counter');
});
