// The engine's full copy of its session state (Engine.dumpSessionRecords,
// native Engine::dump_sync) with real sockets: exactly the live sticky
// entries and UDP flows (read by each worker on its own thread) plus the
// assignments adopted from peers, split by key range, nothing once expired;
// then two nodes over loopback: a node that starts after its peer has served
// clients is taught by it, and a sticky client and a UDP flow keep their
// backends on it.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import type { FulcrumConfig } from '../../src/config/types.js';
import { Engine } from '../../src/engine/engine.js';
import type { SessionRecord } from '../../src/engine/sync-records.js';
import { createLogger } from '../../src/logger.js';
import { SessionSync } from '../../src/sync/session-sync.js';
import { freePort, startIdBackends, whoAnswers } from '../helpers/backends.js';
import { delay, waitUntil } from '../helpers/traffic.js';
import { freeUdpPort, startUdpBackend, udpClient, type UdpClient } from '../helpers/udp.js';
import { hashSourceIpv4 } from '../system/helpers/flow-hash.mjs';

type Test = Parameters<Parameters<typeof t.test>[1]>[0];

interface Ports {
  tcp: number;
  udp: number;
  syncListen: string;
  syncPeer: string;
}

/** Two services as a user writes them (sticky TCP `svc`, round-robin UDP `game`) and `sync:`. */
function nodeConfig(dir: string, ports: Ports, tcpBackends: number[], udpBackends: number[], timeouts = { sticky: '10m', idle: '30s' }): FulcrumConfig {
  const keyFile = join(dir, 'key');
  writeFileSync(keyFile, 'a sync dump test key of 32 bytes\n');
  const yaml = `workers: 2
log:
  level: warn
services:
  - name: svc
    listen: 127.0.0.1:${ports.tcp}
    balance: roundrobin
    sticky: {key: source, timeout: ${timeouts.sticky}}
    backends:
${tcpBackends.map((p) => `      - address: 127.0.0.1:${p}\n`).join('')}  - name: game
    protocol: udp
    listen: 127.0.0.1:${ports.udp}
    balance: roundrobin
    timeouts: {idle: ${timeouts.idle}}
    backends:
${udpBackends.map((p) => `      - address: 127.0.0.1:${p}\n`).join('')}sync:
  listen: ${ports.syncListen}
  peers: [${ports.syncPeer}]
  key_file: ${keyFile}
  interval: 20ms
`;
  return parseConfig(yaml, join(dir, 'node.yaml'));
}

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'fulsyncdump-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Take until the journal is empty; split into changes and dump records. */
async function takeAll(engine: Engine, timeoutMs = 5_000): Promise<{ changes: SessionRecord[]; dumped: SessionRecord[] }> {
  const changes: SessionRecord[] = [];
  const dumped: SessionRecord[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const taken = engine.takeSessionRecords();
    for (const r of taken.records) (r.dump ? dumped : changes).push(r);
    if (taken.dumpPending === 0) return { changes, dumped };
    if (Date.now() > deadline) throw new Error(`dump parts still pending after ${timeoutMs} ms`);
    await delay(2);
  }
}

async function dump(engine: Engine, from = 0, to = 65536): Promise<SessionRecord[]> {
  engine.dumpSessionRecords(from, to);
  const { changes, dumped } = await takeAll(engine);
  if (changes.some((r) => r.dump)) throw new Error('unreachable');
  return dumped;
}

const entry = (r: SessionRecord): string => `${r.kind} ${r.service} ${r.key} ${r.backend}`;
const sorted = (records: readonly SessionRecord[]): string[] => records.map(entry).sort();

/** Send one datagram and return the port of the UDP id backend that answered. */
async function udpBackendOf(client: UdpClient, port: number): Promise<number> {
  const reply = await client.request('hello', port);
  return Number(reply.data.toString().split('|')[0]);
}

t.test('a dump holds exactly the live sticky entries, UDP flows (from both workers) and adopted assignments', async (t) => {
  const dir = tempDir(t);
  const tcp = await startIdBackends(t, 3);
  const udp = await Promise.all([0, 1, 2].map(() => startUdpBackend(t, 'id')));
  const engine = Engine.start({ workers: 2 });
  t.teardown(() => engine.stop());
  const ports = { tcp: await freePort(), udp: await freeUdpPort(), syncListen: '127.0.0.1:7999', syncPeer: '127.0.0.2:7999' };
  engine.apply(nodeConfig(dir, ports, tcp.map((b) => b.port), udp.map((b) => b.port), { sticky: '4s', idle: '1s' }));
  await engine.whenApplied();

  const expected: string[] = [];
  const names = ['a', 'b', 'c'];
  for (const ip of ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5']) {
    const name = await whoAnswers(t, ports.tcp, ip);
    expected.push(entry({ kind: 'sticky', service: 'svc', key: hashSourceIpv4(ip), backend: `127.0.0.1:${tcp[names.indexOf(name)]!.port}`, ageMs: 0 }));
  }
  // 16 flows: the kernel spreads them over both workers' sockets (all on one: 2^-15).
  const clients = await Promise.all(Array.from({ length: 16 }, () => udpClient(t)));
  const flowBackends: number[] = [];
  for (const client of clients) flowBackends.push(await udpBackendOf(client, ports.udp));
  const { changes } = await takeAll(engine);
  const flowChanges = changes.filter((r) => r.kind === 'udp');
  t.equal(flowChanges.length, 16, 'each new flow was recorded as a change');
  t.same(flowChanges.map((r) => Number(r.backend.split(':')[1])).sort(), [...flowBackends].sort(), 'with the backend that answered it');
  expected.push(...flowChanges.map((r) => entry(r)));

  const dumped = await dump(engine);
  t.same(sorted(dumped), expected.sort(), `the dump: 5 sticky entries and 16 flows, nothing else (${dumped.length})`);
  t.ok(dumped.every((r) => r.dump === true && r.ageMs < 5_000), 'flagged, with their age');
  const halves = [...(await dump(engine, 0, 32768)), ...(await dump(engine, 32768, 65536))];
  t.same(sorted(halves), expected.sort(), 'two half ranges hold the same, each entry once');

  // A peer's flow this node never saw goes out too (an adopted assignment).
  const adopted: SessionRecord = { kind: 'udp', service: 'game', backend: `127.0.0.1:${udp[2]!.port}`, ageMs: 0, key: 0x0123_4567_89ab_cdefn };
  t.same(engine.installSessionRecords([adopted]), { installed: 1, unknown: 0 }, 'a peer\'s flow is adopted');
  t.ok((await dump(engine)).some((r) => entry(r) === entry(adopted)), 'and is in the next dump');

  // Idle flows close after 1 s, sticky entries and adopted ones expire after their timeouts.
  await waitUntil('the flows closed', () => engine.stats().services.find((s) => s.name === 'game')!.active === 0, 10_000, 50);
  t.notOk((await dump(engine)).some((r) => r.kind === 'udp' && r.key !== adopted.key), 'closed flows are not dumped');
  const deadline = Date.now() + 10_000;
  const seen = new Set<string>();
  let left = await dump(engine);
  while (left.length > 0 && Date.now() < deadline) {
    for (const r of left) seen.add(r.kind === 'sticky' ? 'sticky' : r.key === adopted.key ? 'adopted' : 'flow');
    await delay(250);
    left = await dump(engine);
  }
  t.same(left, [], 'nothing once every entry expired (adopted after 1 s, sticky after 4 s)');
  t.notOk(seen.has('flow'), 'no closed flow came back meanwhile');
});

t.test('a node that starts after its peer served clients is taught by it: the sticky client and the UDP flow keep their backends', async (t) => {
  const dir = tempDir(t);
  const tcp = await startIdBackends(t, 3);
  const udp = await Promise.all([0, 1, 2].map(() => startUdpBackend(t, 'id')));
  const [syncA, syncB] = [await freeUdpPort(), await freeUdpPort()];
  const udpPort = await freeUdpPort();
  const logger = createLogger('error');
  const start = async (ports: Ports): Promise<{ engine: Engine; sync: SessionSync; config: FulcrumConfig }> => {
    const engine = Engine.start({ workers: 2 });
    t.teardown(() => engine.stop());
    const config = nodeConfig(dir, ports, tcp.map((b) => b.port), udp.map((b) => b.port));
    engine.apply(config);
    await engine.whenApplied();
    const sync = new SessionSync({ config: config.sync!, engine, serviceNames: () => ['svc', 'game'], logger });
    await sync.start();
    t.teardown(() => sync.stop());
    return { engine, sync, config };
  };
  const a = await start({ tcp: await freePort(), udp: udpPort, syncListen: `127.0.0.1:${syncA}`, syncPeer: `127.0.0.2:${syncB}` });
  const aTcp = a.config.services[0]!.listen.port;

  // Another client takes each round robin's first turn, so the client's backends are the ones a fresh node would not pick first.
  t.equal(await whoAnswers(t, aTcp, '127.0.0.5'), 'a', 'another client gets a');
  t.equal(await whoAnswers(t, aTcp, '127.0.0.1'), 'b', 'the client gets b');
  const other = await udpClient(t);
  const client = await udpClient(t);
  t.equal(await udpBackendOf(other, udpPort), udp[0]!.port, 'another flow gets the first UDP backend');
  t.equal(await udpBackendOf(client, udpPort), udp[1]!.port, 'the client\'s flow gets the second');
  // A's changes went to B's address before B listened: B can learn them only from a copy.
  await waitUntil('A sent its changes', () => a.sync.status().counters.recordsSent >= 4, 5_000);
  await delay(100);

  const bTcp = await freePort();
  const b = await start({ tcp: bTcp, udp: await freeUdpPort(), syncListen: `127.0.0.2:${syncB}`, syncPeer: `127.0.0.1:${syncA}` });
  await waitUntil('B was taught by A', () => b.sync.status().resync.state === 'taught', 10_000);
  t.match(b.sync.status(), { resync: { state: 'taught', taughtBy: `127.0.0.1:${syncA}` }, counters: { dumpRecordsReceived: 4, recordsInstalled: 4 } }, 'B received A\'s 2 sticky entries and 2 flows in the copy');
  t.match(a.sync.status().counters, { resyncRequestsServed: 1, dumpsCompleted: 1 }, 'A served B\'s request');
  t.equal(await whoAnswers(t, bTcp, '127.0.0.1'), 'b', 'on B the client sticks to b (B\'s own first turn would be a)');

  // A goes away; B takes over its UDP address (as a VIP moves) and the flow arrives there.
  a.sync.stop();
  a.engine.stop();
  b.engine.apply(nodeConfig(dir, { tcp: bTcp, udp: udpPort, syncListen: `127.0.0.2:${syncB}`, syncPeer: `127.0.0.1:${syncA}` }, tcp.map((x) => x.port), udp.map((x) => x.port)));
  await b.engine.whenApplied();
  t.equal(await udpBackendOf(client, udpPort), udp[1]!.port, 'on B the client\'s flow reaches the same backend (B\'s first new flow would get the first)');
});
