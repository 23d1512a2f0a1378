// Resync of session state to a peer that (re)starts (docs/ecmp.md, "Resync"):
// the request on the wire and every malformed form of it, the answering side
// (one paced full copy per incarnation, to the asker only, refusals counted
// by reason), the asking side (requests with backoff until a copy begins,
// preemption held until one is complete) and the VRRP hold itself. The
// engine is a stand-in here; test/engine/sync-dump.test.ts runs the real one.
import t from 'tap';
import { createHmac, randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import type { SyncConfig } from '../../src/config/types.js';
import type { SessionRecord } from '../../src/engine/sync-records.js';
import { VrrpStateMachine, type Timers } from '../../src/ha/state-machine.js';
import { createLogger } from '../../src/logger.js';
import { DUMP_MIN_INTERVAL_MS, DUMP_ROUND_RECORDS, SessionSync } from '../../src/sync/session-sync.js';
import {
  decodeMessage,
  encodeMessage,
  FLAG_BULK,
  FLAG_BULK_END,
  FLAG_RESYNC_REQUEST,
  MAX_RECORDS,
  type MessageHeader,
} from '../../src/sync/wire.js';
import { freePort } from '../helpers/backends.js';
import { serviceYaml } from '../helpers/engine.js';
import { delay, waitUntil } from '../helpers/traffic.js';
import { freeUdpPort } from '../helpers/udp.js';

const KEY_TEXT = 'a resync test key, 32 bytes long';
const KEY = Buffer.from(KEY_TEXT);
const logger = createLogger('error');
const headerAt = (incarnation: bigint, sequence: bigint, sentAt = Date.now()): MessageHeader => ({ incarnation, sequence, sentAt });

t.test('wire: a resync request and the end of a copy carry no records; every other combination is refused', async (t) => {
  const request = encodeMessage(KEY, headerAt(7n, 1n), [], FLAG_RESYNC_REQUEST);
  t.equal(request.length, 64, 'a request is a 32-byte header and its MAC');
  const decoded = decodeMessage(KEY, request);
  t.same(decoded.ok && { flags: decoded.flags, records: decoded.records, incarnation: decoded.header.incarnation }, { flags: FLAG_RESYNC_REQUEST, records: [], incarnation: 7n }, 'decodes as a request');
  const end = decodeMessage(KEY, encodeMessage(KEY, headerAt(7n, 2n), [], FLAG_BULK | FLAG_BULK_END));
  t.same(end.ok && end.flags, FLAG_BULK | FLAG_BULK_END, 'the end of a copy');
  const record: SessionRecord = { kind: 'sticky', service: 'pg', backend: '10.0.0.1:5432', ageMs: 1, key: 5n };
  const bulk = decodeMessage(KEY, encodeMessage(KEY, headerAt(7n, 3n), [record], FLAG_BULK));
  t.same(bulk.ok && [bulk.flags, bulk.records.length], [FLAG_BULK, 1], 'a copy\'s records');
  t.same(decodeMessage(KEY, encodeMessage(KEY, headerAt(7n, 4n), [record])).ok && 'ok', 'ok', 'changes still decode with flags 0');
  t.throws(() => encodeMessage(KEY, headerAt(7n, 1n), [record], FLAG_RESYNC_REQUEST), RangeError, 'a request with records is not encoded');
  t.throws(() => encodeMessage(KEY, headerAt(7n, 1n), [], FLAG_BULK), RangeError, 'nor an empty copy message that is not the end');
  t.throws(() => encodeMessage(KEY, headerAt(7n, 1n), [], 0), RangeError, 'nor an empty change');

  // Signed by hand, so only the flags are wrong.
  const signed = (flags: number, count: number): Buffer => {
    const body = Buffer.alloc(32 + count * 48);
    body.write('FLSY', 0, 'latin1');
    body.writeUInt8(1, 4);
    body.writeUInt8(flags, 5);
    body.writeUInt16BE(count, 6);
    body.writeBigUInt64BE(9n, 8);
    body.writeBigUInt64BE(1n, 16);
    body.writeBigUInt64BE(BigInt(Date.now()), 24);
    for (let i = 0; i < count; i++) {
      const at = 32 + i * 48;
      body.writeUInt8(1, at);
      body.writeUInt8(4, at + 1);
      body.writeUInt16BE(80, at + 2);
      body.writeBigUInt64BE(1n, at + 16);
    }
    return Buffer.concat([body, createHmac('sha256', KEY).update(body).digest()]);
  };
  t.same(decodeMessage(KEY, signed(FLAG_BULK, 1)).ok, true, 'the hand-signed form is valid with valid flags');
  const cases: Array<[string, Buffer, string]> = [
    ['a request with a record', signed(FLAG_RESYNC_REQUEST, 1), 'badRecord'],
    ['a request that is also a copy', signed(FLAG_RESYNC_REQUEST | FLAG_BULK, 0), 'badRecord'],
    ['an end without the copy flag', signed(FLAG_BULK_END, 0), 'badRecord'],
    ['an empty change', signed(0, 0), 'badRecord'],
    ['an empty copy message that is not the end', signed(FLAG_BULK, 0), 'badRecord'],
    ['an unknown flag', signed(0x08, 1), 'badRecord'],
    ['a request under another key', encodeMessage(Buffer.from('not the key, not the key, not it'), headerAt(7n, 1n), [], FLAG_RESYNC_REQUEST), 'badMac'],
    ['a request one byte short', request.subarray(0, 63), 'truncated'],
    ['a request with a byte more', Buffer.concat([request, Buffer.alloc(1)]), 'badLength'],
    ['a request claiming a record', Buffer.from(request).fill(0, 6, 7).fill(1, 7, 8), 'badLength'],
  ];
  for (const [what, datagram, reason] of cases) t.same(decodeMessage(KEY, datagram), { ok: false, reason }, `${what}: ${reason}`);
});

/** The engine as SessionSync uses it, with `entries` as its live state. */
class StandInEngine {
  stopped = false;
  readonly entries: SessionRecord[];
  readonly installed: SessionRecord[] = [];
  readonly rounds: Array<{ from: number; to: number; records: number }> = [];
  #queue: SessionRecord[] = [];
  /** Dump parts the workers have not added yet: the next take reports them pending. */
  #late: SessionRecord[] = [];

  constructor(entries: SessionRecord[] = []) {
    this.entries = entries;
  }

  takeSessionRecords(): { records: SessionRecord[]; dropped: number; dumpDropped: number; dumpPending: number } {
    const records = this.#queue;
    this.#queue = this.#late;
    const dumpPending = this.#late.length > 0 ? 1 : 0;
    this.#late = [];
    return { records, dropped: 0, dumpDropped: 0, dumpPending };
  }

  installSessionRecords(records: readonly SessionRecord[]): { installed: number; unknown: number } {
    this.installed.push(...records);
    return { installed: records.length, unknown: 0 };
  }

  dumpSessionRecords(from: number, to: number): number {
    const chosen = this.entries.filter((e) => {
      const bucket = Number(e.key >> 48n);
      return bucket >= from && bucket < to;
    });
    this.rounds.push({ from, to, records: chosen.length });
    // Half at once (the sticky tables), half a take later (the workers' flows).
    const half = Math.floor(chosen.length / 2);
    this.#queue.push(...chosen.slice(0, half).map((e) => ({ ...e, dump: true as const })));
    this.#late.push(...chosen.slice(half).map((e) => ({ ...e, dump: true as const })));
    return half;
  }
}

interface Peer {
  socket: Socket;
  host: string;
  /** Every accepted datagram, decoded. */
  got: Array<{ flags: number; records: number; keys: bigint[] }>;
  send(datagram: Buffer): Promise<void>;
}

async function peerSocket(t: Test, host: string): Promise<Peer> {
  const socket = createSocket({ type: 'udp4', recvBufferSize: 8 << 20 });
  const port = await freeUdpPort();
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, host, () => resolve());
  });
  t.teardown(() => socket.close());
  const peer: Peer = { socket, host, got: [], send: async () => undefined };
  socket.on('message', (message) => {
    const decoded = decodeMessage(KEY, message);
    if (decoded.ok) peer.got.push({ flags: decoded.flags, records: decoded.records.length, keys: decoded.records.map((r) => r.key) });
  });
  return peer;
}

type Test = Parameters<Parameters<typeof t.test>[1]>[0];

/** A SessionSync on 127.0.0.1 whose peers are the two sockets; started; stopped at teardown. */
async function node(t: Test, engine: StandInEngine): Promise<{ sync: SessionSync; peers: [Peer, Peer]; listenPort: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'fulresync-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'key'), `${KEY_TEXT}\n`);
  const peers: [Peer, Peer] = [await peerSocket(t, '127.0.0.2'), await peerSocket(t, '127.0.0.3')];
  const listenPort = await freeUdpPort();
  const yaml = `${serviceYaml(await freePort(), { backends: [1] }, 1)}sync:\n  listen: 127.0.0.1:${listenPort}\n  peers: [${peers.map((p) => `${p.host}:${p.socket.address().port}`).join(', ')}]\n  key_file: ${join(dir, 'key')}\n  interval: 20ms\n`;
  const config: SyncConfig = parseConfig(yaml, join(dir, 'node.yaml')).sync!;
  for (const peer of peers) {
    peer.send = (datagram) => new Promise((resolve) => peer.socket.send(datagram, listenPort, '127.0.0.1', () => resolve()));
  }
  const sync = new SessionSync({ config, engine, serviceNames: () => ['svc'], logger });
  await sync.start();
  t.teardown(() => sync.stop());
  return { sync, peers, listenPort };
}

const requests = (peer: Peer): number => peer.got.filter((m) => m.flags === FLAG_RESYNC_REQUEST).length;
const ended = (peer: Peer): number => peer.got.filter((m) => m.flags === (FLAG_BULK | FLAG_BULK_END)).length;
const copied = (peer: Peer): bigint[] => peer.got.filter((m) => (m.flags & FLAG_BULK) !== 0).flatMap((m) => m.keys);

function randomEntries(n: number): SessionRecord[] {
  const keys = new Set<bigint>();
  while (keys.size < n) keys.add(randomBytes(8).readBigUInt64BE(0) | 1n);
  return [...keys].map((key, i) => ({ kind: i % 2 === 0 ? 'sticky' : 'udp', service: 'svc', backend: '127.0.0.1:1', ageMs: i % 1000, key }));
}

t.test('a request is answered once per incarnation with the whole state, in paced rounds, to the asker only; refusals are counted by reason', async (t) => {
  const engine = new StandInEngine(randomEntries(20_000));
  const { sync, peers } = await node(t, engine);
  const [asker, other] = peers;
  await waitUntil('the node asked both peers at start', () => requests(asker) >= 1 && requests(other) >= 1, 5_000);

  const incarnation = BigInt(Date.now());
  const request = encodeMessage(KEY, headerAt(incarnation, 1n), [], FLAG_RESYNC_REQUEST);
  await asker.send(request);
  await waitUntil('the copy began', () => engine.rounds.length >= 1, 10_000);
  // Sent while the copy runs, not after it: 'too soon' means within
  // DUMP_MIN_INTERVAL_MS of the copy's start, and a paced copy of 20,000
  // entries can take longer than that on a loaded machine. First the same
  // incarnation asks again (already being sent), then it restarts (too soon).
  await asker.send(encodeMessage(KEY, headerAt(incarnation, 2n), [], FLAG_RESYNC_REQUEST));
  await asker.send(encodeMessage(KEY, headerAt(incarnation + 1n, 1n), [], FLAG_RESYNC_REQUEST));
  await waitUntil('the copy ended', () => ended(asker) === 1, 10_000);
  const keys = copied(asker);
  t.equal(keys.length, 20_000, 'every entry was sent once');
  t.equal(new Set(keys).size, 20_000, 'no entry twice');
  t.same(new Set(keys), new Set(engine.entries.map((e) => e.key)), 'exactly the engine\'s entries');
  t.ok(asker.got.every((m) => m.records <= MAX_RECORDS), `each datagram holds at most ${MAX_RECORDS} records`);
  const sizes = engine.rounds.map((r) => r.records);
  t.ok(engine.rounds.length >= 5, `in rounds (${engine.rounds.length}: ${sizes.join(', ')})`);
  t.ok(Math.max(...sizes) <= 2 * DUMP_ROUND_RECORDS, `no round much over ${DUMP_ROUND_RECORDS} records (largest ${Math.max(...sizes)})`);
  t.equal(engine.rounds.reduce((sum, r) => sum + (r.to - r.from), 0), 65536, 'the rounds cover the key space once');
  t.equal(copied(other).length + ended(other), 0, 'the other peer got nothing of the copy');
  let status = sync.status();
  t.match(status.counters, { resyncRequestsReceived: 3, resyncRequestsServed: 1, dumpsCompleted: 1, dumpRecordsSent: 20_000, dumpsUnprompted: 0 }, 'counted');
  t.match(status.peers[0], { dumpsSent: 1, incarnation: String(incarnation + 1n) }, 'the peer\'s status: its latest incarnation');

  const roundsBefore = engine.rounds.length;
  await asker.send(request); // the same datagram again
  await asker.send(encodeMessage(KEY, headerAt(incarnation + 2n, 1n, Date.now() - 3_600_000), [], FLAG_RESYNC_REQUEST)); // an hour old
  await asker.send(encodeMessage(Buffer.from('not the key, not the key, not it'), headerAt(incarnation + 3n, 1n), [], FLAG_RESYNC_REQUEST));
  await waitUntil('all five counted (two above, three here)', () => {
    const s = sync.status();
    return s.rejected.replay + s.rejected.stale + s.rejected.badMac + s.resyncRefused.alreadySent + s.resyncRefused.tooSoon >= 5;
  }, 5_000);
  status = sync.status();
  t.same(status.resyncRefused, { alreadySent: 1, tooSoon: 1, stale: 1, replay: 1 }, 'refused: already sent, too soon, stale, replayed');
  t.match(status.rejected, { replay: 1, stale: 1, badMac: 1 }, 'the replayed, stale and unauthenticated datagrams are rejected too');
  t.equal(status.counters.resyncRequestsServed, 1, 'none of them served');
  await delay(100);
  t.equal(engine.rounds.length, roundsBefore, 'no round started');
  t.equal(ended(asker), 1, 'no second copy');

  // After the minimum interval the restarted peer (it re-asks with backoff) is served.
  await delay(DUMP_MIN_INTERVAL_MS);
  await asker.send(encodeMessage(KEY, headerAt(incarnation + 1n, 2n), [], FLAG_RESYNC_REQUEST));
  await waitUntil('a second copy ended', () => ended(asker) === 2, 10_000);
  t.equal(copied(asker).length, 40_000, 'the whole state again');
  t.equal(sync.status().counters.resyncRequestsServed, 2, 'served');
});

t.test('a peer heard with a new incarnation gets a copy unprompted, once', async (t) => {
  const engine = new StandInEngine(randomEntries(300));
  const { sync, peers } = await node(t, engine);
  const [, restarted] = peers;
  const change: SessionRecord = { kind: 'sticky', service: 'svc', backend: '127.0.0.1:1', ageMs: 0, key: 77n };
  const incarnation = BigInt(Date.now());
  await restarted.send(encodeMessage(KEY, headerAt(incarnation, 1n), [change]));
  await waitUntil('the copy ended', () => ended(restarted) === 1, 10_000);
  t.equal(copied(restarted).length, 300, 'the whole state');
  t.equal(engine.installed.length, 1, 'and the change it sent was installed');
  await restarted.send(encodeMessage(KEY, headerAt(incarnation, 2n), [change]));
  await delay(200);
  t.equal(ended(restarted), 1, 'more messages of the same incarnation start nothing');
  t.match(sync.status().counters, { dumpsUnprompted: 1, resyncRequestsServed: 0 }, 'counted as unprompted');
});

t.test('a starting node asks with backoff until a copy begins, and holds preemption until one is complete', async (t) => {
  const engine = new StandInEngine();
  const { sync, peers } = await node(t, engine);
  const [teacher, silent] = peers;
  await delay(900);
  t.equal(requests(teacher), 3, 'asked at 0, 250 and 750 ms');
  t.equal(requests(silent), 3, 'every peer');
  t.ok(sync.resyncing(), 'resyncing: preemption is held');
  t.equal(sync.status().resync.state, 'asking');

  const incarnation = BigInt(Date.now());
  const entry: SessionRecord = { kind: 'udp', service: 'svc', backend: '127.0.0.1:1', ageMs: 10, key: 99n };
  await teacher.send(encodeMessage(KEY, headerAt(incarnation, 1n), [entry], FLAG_BULK));
  await waitUntil('installed', () => engine.installed.length === 1, 5_000);
  t.equal(sync.status().peers[0]!.resync, 'receiving', 'the copy began');
  await teacher.send(encodeMessage(Buffer.from('not the key, not the key, not it'), headerAt(incarnation, 2n), [], FLAG_BULK | FLAG_BULK_END));
  await waitUntil('the forged end is rejected', () => sync.status().rejected.badMac === 1, 5_000);
  t.ok(sync.resyncing(), 'a forged end teaches nothing');
  await delay(1100);
  t.equal(requests(teacher), 3, 'the peer whose copy began is not asked again');
  t.equal(requests(silent), 4, 'the silent one is (1.75 s)');
  await teacher.send(encodeMessage(KEY, headerAt(incarnation, 3n), [], FLAG_BULK | FLAG_BULK_END));
  await waitUntil('taught', () => !sync.resyncing(), 5_000);
  const status = sync.status();
  t.match(status.resync, { state: 'taught', taughtBy: status.peers[0]!.address }, 'taught by the peer');
  t.equal(status.counters.dumpRecordsReceived, 1, 'one record came in the copy');
  t.equal(status.counters.resyncRequestsSent, 7, '3 + 4 requests');
});

t.test('VRRP: a lower-priority Master is not preempted while holdPreempt says so; a Backup without a Master takes over regardless', async (t) => {
  const clock = { nowMs: 0, timers: new Map<number, { at: number; fn: () => void }>(), next: 1 };
  const timers: Timers = {
    now: () => clock.nowMs,
    set: (fn, ms) => {
      clock.timers.set(clock.next, { at: clock.nowMs + ms, fn });
      return clock.next++;
    },
    clear: (handle) => void clock.timers.delete(handle as number),
  };
  const advance = (ms: number): void => {
    const until = clock.nowMs + ms;
    for (;;) {
      const due = [...clock.timers.entries()].filter(([, v]) => v.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) break;
      clock.timers.delete(due[0]);
      clock.nowMs = due[1].at;
      due[1].fn();
    }
    clock.nowMs = until;
  };
  let hold = true;
  const make = () => new VrrpStateMachine(
    { priority: 150, advertIntervalMs: 100, preempt: true, preemptDelayMs: 0, primaryAddress: '10.0.0.1', holdPreempt: () => hold },
    { advertise: () => undefined, takeAddresses: () => undefined, releaseAddresses: () => undefined, transition: () => undefined },
    timers,
  );
  const lowerMaster = { vrid: 51, priority: 100, intervalCs: 10, addresses: ['10.0.0.100'], source: '10.0.0.2', destination: '224.0.0.18' };
  const sm = make();
  sm.start();
  for (let i = 0; i < 30; i++) {
    advance(100);
    sm.receive(lowerMaster);
  }
  t.equal(sm.state, 'backup', 'held for 3 s of the lower-priority Master\'s adverts');
  hold = false;
  for (let i = 0; i < 5 && sm.state === 'backup'; i++) {
    advance(100);
    sm.receive(lowerMaster);
  }
  t.equal(sm.state, 'master', 'preempts within a Master_Down_Interval once the hold ends');

  hold = true;
  const alone = make();
  alone.start();
  advance(400);
  t.equal(alone.state, 'master', 'with no Master to preempt, the hold changes nothing');
});
