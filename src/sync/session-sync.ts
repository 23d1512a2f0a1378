// Session state shared with peer nodes (docs/ecmp.md): every `interval` the
// engine's new sticky entries and UDP flow assignments are taken in one call
// and sent to every peer as HMAC-authenticated datagrams (wire.ts); what
// peers send is checked (source, bounds, MAC, clock skew, replay) and
// installed in one call. Every rejection is counted by reason and nothing of
// a rejected datagram is applied.
//
// Resync (docs/ecmp.md, "Resync"): a node that starts asks every peer for a
// full copy of its state, again with backoff until each peer's copy begins;
// a node that hears a peer's new incarnation (asked or not) sends it one
// copy, in rounds over the key space (dumpSessionRecords), at most one per
// incarnation and peer and never two to a peer within DUMP_MIN_INTERVAL_MS.
//
// Upgrade (src/upgrade/): while the old and the new process both serve, a
// link (the upgrade socket) joins them like a peer without the network: the
// old one sends its whole table down it first (copyTo), then each process's
// changes go to the other (setLink; what arrives goes in with fromLink, and
// the old one passes the new one's on to the peers). Only the old process
// talks to the peers until the handover: handOver() gives the new one the
// socket, the incarnation and the next sequence number, and adopt() goes on
// from there, so peers see one sender that never restarted (no resync, no
// replay rejection) and the new process, taught by the old one, holds no
// VRRP preemption or BGP announcement back.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import type { Endpoint, SyncConfig } from '../config/types.js';
import type { Engine } from '../engine/engine.js';
import type { SessionRecord } from '../engine/sync-records.js';
import type { Logger } from '../logger.js';
import { ReplayWindow } from './replay-window.js';
import {
  decodeMessage,
  encodeMessage,
  FLAG_BULK,
  FLAG_BULK_END,
  FLAG_RESYNC_REQUEST,
  MAX_DATAGRAM_BYTES,
  MAX_RECORDS,
  REJECT_REASONS,
  serviceId,
  type RejectReason,
} from './wire.js';

/** Rejections are summarised in one warning at most this often. */
const REJECT_LOG_INTERVAL_MS = 5000;
/** A peer whose copy has not begun is asked at start and again after each of these (5 requests over
 * 3.75 s); 4 s after the last it is given up on (its entries then arrive as they are refreshed). */
export const RESYNC_BACKOFF_MS: readonly number[] = [250, 500, 1000, 2000, 4000];
/** VRRP preemption waits for the first copy at most this long (holdPreempt). */
export const RESYNC_HOLD_MAX_MS = 10_000;
/** Two copies to one peer start at least this far apart. */
export const DUMP_MIN_INTERVAL_MS = 2000;
/** A copy goes out in rounds this far apart... */
export const DUMP_ROUND_MS = 20;
/** ...each a range of the key space sized to hold about this many records. */
export const DUMP_ROUND_RECORDS = 2048;
/** The key space of a copy (native kDumpBuckets) and the first round's share of it. */
const DUMP_BUCKETS = 65536;
const DUMP_FIRST_STEP = 256;
/** A round's range grows at most this much over the last one. */
const DUMP_MAX_GROWTH = 16;

/** Why a resync request was not served. */
export type ResyncRefusal = 'alreadySent' | 'tooSoon' | 'stale' | 'replay';
export const RESYNC_REFUSALS: readonly ResyncRefusal[] = ['alreadySent', 'tooSoon', 'stale', 'replay'];

/** This node's copy from one peer: asked for, arriving, complete, or asked for in vain. */
export type ResyncState = 'asking' | 'receiving' | 'taught' | 'gaveUp';

export interface SyncPeerStatus {
  address: string;
  /** Epoch ms of the last accepted message, when any. */
  lastAcceptedAt?: number;
  messagesAccepted: number;
  /** The peer's incarnation last accepted (its start time, epoch ms), as text. */
  incarnation?: string;
  /** Our copy from this peer. */
  resync: ResyncState;
  /** Full copies this node started sending to the peer, and when the last began (epoch ms). */
  dumpsSent: number;
  lastDumpAt?: number;
}

export interface SyncStatus {
  listen: string;
  peers: SyncPeerStatus[];
  counters: Record<string, number>;
  rejected: Record<RejectReason, number>;
  /** This node's resync at start: `taught` once one peer's copy is complete. */
  resync: { state: ResyncState; taughtBy?: string; taughtAt?: number; taughtAfterMs?: number };
  resyncRefused: Record<ResyncRefusal, number>;
}

interface Peer {
  endpoint: Endpoint;
  status: SyncPeerStatus;
  /** The incarnation the last copy to this peer was for, and when it began (monotonic ms). */
  dumpedIncarnation?: bigint;
  dumpStartedAt?: number;
  /** An unprompted copy that waits for DUMP_MIN_INTERVAL_MS. */
  pendingIncarnation?: bigint;
}

/** Where records go instead of the network: the upgrade socket (see the header). */
export interface SessionLink {
  records(records: readonly SessionRecord[]): void;
}

/** A copy in progress to one peer (or to a link): how much of the key space it still lacks. */
interface DumpTarget {
  peer?: Peer;
  link?: { sink: SessionLink; done: () => void };
  remaining: number;
  /** The round in flight when the target joined: part of its records may have gone out before,
   * so it does not count for this target (the cursor comes round to it again). */
  joinedDuring?: object;
}

export interface SyncSource {
  status(): SyncStatus;
}

export interface SessionSyncOptions {
  config: SyncConfig;
  engine: Pick<Engine, 'takeSessionRecords' | 'installSessionRecords' | 'dumpSessionRecords' | 'stopped'>;
  /** The services running now (their names are what service ids resolve to). */
  serviceNames: () => readonly string[];
  logger: Logger;
}

export class SessionSync implements SyncSource {
  readonly #config: SyncConfig;
  readonly #engine: SessionSyncOptions['engine'];
  readonly #serviceNames: () => readonly string[];
  readonly #logger: Logger;
  readonly #socket: Socket;
  readonly #replay = new ReplayWindow();
  #incarnation = BigInt(Date.now());
  /** The other process of an upgrade in progress: gets every change (see the header). */
  #link: SessionLink | undefined;
  /** The socket is ours to use (bound, or adopted): false while an upgraded process waits for the handover. */
  #network = false;
  /** handOver() ran: the socket belongs to the next process. */
  #handedOver = false;
  #sequence = 0n;
  #timer: NodeJS.Timeout | undefined;
  readonly #ids = new Map<string, bigint>();
  readonly #peers = new Map<string, Peer>();
  readonly #rejected = Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Record<RejectReason, number>;
  readonly #resyncRefused = Object.fromEntries(RESYNC_REFUSALS.map((r) => [r, 0])) as Record<ResyncRefusal, number>;
  #rejectedLogged = 0;
  #rejectLogAt = 0;
  readonly #counters = {
    messagesSent: 0,
    recordsSent: 0,
    sendErrors: 0,
    journalDropped: 0,
    messagesAccepted: 0,
    recordsReceived: 0,
    recordsInstalled: 0,
    recordsUnknown: 0,
    resyncRequestsSent: 0,
    resyncRequestsReceived: 0,
    resyncRequestsServed: 0,
    dumpsUnprompted: 0,
    dumpsCompleted: 0,
    dumpRounds: 0,
    dumpRecordsSent: 0,
    dumpDropped: 0,
    dumpRecordsReceived: 0,
  };
  // Our own resync: when it began (monotonic ms), the re-asks done, who taught us.
  #startedAt = 0;
  #askTimer: NodeJS.Timeout | undefined;
  #asks = 0;
  #taughtBy: string | undefined;
  /** When the first copy was complete: epoch ms, and ms after start. */
  #taughtAt: number | undefined;
  #taughtAfterMs: number | undefined;
  // Copies being sent: one cursor over the key space shared by every target.
  #dumpTargets: DumpTarget[] = [];
  #dumpTimer: NodeJS.Timeout | undefined;
  #dumpCursor = 0;
  #dumpStep = DUMP_FIRST_STEP;
  /** The round asked of the engine and not yet complete: its range and the records taken from it so far. */
  #dumpRound: { width: number; records: number } | undefined;
  #dumpPending = 0;

  constructor(options: SessionSyncOptions) {
    this.#config = options.config;
    this.#engine = options.engine;
    this.#serviceNames = options.serviceNames;
    this.#logger = options.logger.child({ sync: options.config.listen.text });
    for (const peer of this.#config.peers) {
      this.#peers.set(peer.host, { endpoint: peer, status: { address: peer.text, messagesAccepted: 0, resync: 'asking', dumpsSent: 0 } });
    }
    this.#socket = createSocket({ type: 'udp4', recvBufferSize: 1 << 20 });
    this.#socket.on('message', (message, remote) => this.#receive(message, remote));
    this.#socket.on('error', (err) => this.#logger.warn({ err }, 'session sync socket error'));
  }

  /** Bind sync.listen (rejects with EADDRNOTAVAIL, EADDRINUSE...) and start sending. */
  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#socket.once('error', reject);
      this.#socket.bind(this.#config.listen.port, this.#config.listen.host, () => {
        this.#socket.off('error', reject);
        resolve();
      });
    });
    this.#network = true;
    this.#link = undefined;
    // After startLinked (an upgrade whose handover did not come): one timer.
    clearInterval(this.#timer);
    this.#timer = setInterval(() => this.#tick(), this.#config.intervalMs);
    this.#timer.unref();
    this.#startedAt = performance.now();
    this.#logger.info({ peers: this.#config.peers.map((p) => p.text), intervalMs: this.#config.intervalMs }, 'session sync started');
    this.#ask();
  }

  /**
   * Upgrade, the new process, before the handover: the old process taught
   * this one its table (no resync from peers, nothing held back); changes go
   * to `link` only until adopt(). Call instead of start().
   */
  startLinked(link: SessionLink): void {
    this.#link = link;
    this.#timer = setInterval(() => this.#tick(), this.#config.intervalMs);
    this.#timer.unref();
    this.#startedAt = performance.now();
    this.#taughtBy = 'the previous process (upgrade)';
    this.#taughtAt = Date.now();
    this.#taughtAfterMs = 0;
    for (const peer of this.#peers.values()) peer.status.resync = 'taught';
  }

  /**
   * Upgrade, the new process, at the handover: receive on the old process's
   * socket (`fd`) and send as it did (`incarnation`, the next `sequence`).
   * Rejects when the socket cannot be taken (then call start()).
   */
  async adopt(fd: number, incarnation: bigint, sequence: bigint): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#socket.once('error', reject);
      this.#socket.bind({ fd }, () => {
        this.#socket.off('error', reject);
        resolve();
      });
    });
    this.#incarnation = incarnation;
    this.#sequence = sequence;
    this.#link = undefined;
    this.#network = true;
    this.flush();
    this.#logger.info({ peers: this.#config.peers.map((p) => p.text), incarnation: String(incarnation), sequence: String(sequence) }, 'session sync taken over from the previous process');
  }

  /** Upgrade: send every change to `link` too (undefined: no longer). */
  setLink(link: SessionLink | undefined): void {
    this.#link = link;
  }

  /** Upgrade: records the other process made; installed here and, while this one talks to the peers, passed on to them. */
  fromLink(records: readonly SessionRecord[]): void {
    if (records.length === 0) return;
    const result = this.#engine.installSessionRecords(records);
    this.#counters.recordsInstalled += result.installed;
    this.#counters.recordsUnknown += result.unknown;
    if (this.#network) this.#send(records, 0, [...this.#peers.values()]);
  }

  /**
   * Upgrade, the old process: a full copy of the session table to `sink`, in
   * rounds like a peer's (resolves once complete; at once when stopped).
   */
  copyTo(sink: SessionLink): Promise<void> {
    if (this.#timer === undefined) return Promise.resolve();
    return new Promise((resolve) => {
      this.#dumpTargets.push({ link: { sink, done: resolve }, remaining: DUMP_BUCKETS, ...(this.#dumpRound && { joinedDuring: this.#dumpRound }) });
      this.#logger.info('session sync: sending a full copy to the new process');
      this.#runDumps();
    });
  }

  /**
   * Upgrade, the old process: stop sending (what is recorded goes out first:
   * to the peers and the link) and return what the new process goes on
   * with; its socket's fd must be sent before release() closes ours.
   */
  handOver(): { listen: string; incarnation: bigint; sequence: bigint; fd: number } | undefined {
    if (this.#timer === undefined || !this.#network) return undefined;
    const fd = socketFd(this.#socket);
    if (fd === undefined) return undefined;
    this.flush();
    clearInterval(this.#timer);
    this.#timer = undefined;
    clearTimeout(this.#askTimer);
    this.#endDumps();
    this.#handedOver = true;
    this.#network = false;
    this.#link = undefined;
    this.#logger.info({ counters: this.#counters, incarnation: String(this.#incarnation), sequence: String(this.#sequence) }, 'session sync handed over to the new process');
    return { listen: this.#config.listen.text, incarnation: this.#incarnation, sequence: this.#sequence + 1n, fd };
  }

  /** Send what the engine recorded since the last flush (also on a timer); records of a
   * full copy go only to the peers it is for. */
  flush(): void {
    if (this.#engine.stopped) return;
    const taken = this.#engine.takeSessionRecords();
    this.#counters.journalDropped += taken.dropped;
    this.#counters.dumpDropped += taken.dumpDropped;
    this.#dumpPending = taken.dumpPending;
    const changes: SessionRecord[] = [];
    const copied: SessionRecord[] = [];
    for (const r of taken.records) (r.dump ? copied : changes).push(r);
    if (this.#network) this.#send(changes, 0, [...this.#peers.values()]);
    if (changes.length > 0) this.#link?.records(changes);
    if (copied.length > 0) {
      if (this.#dumpRound !== undefined) this.#dumpRound.records += copied.length;
      const targets = this.#dumpTargets.flatMap((t) => (t.peer ? [t.peer] : []));
      this.#send(copied, FLAG_BULK, targets);
      this.#counters.dumpRecordsSent += copied.length * targets.length;
      for (const target of this.#dumpTargets) target.link?.sink.records(copied);
    }
  }

  /** Send what is left, then close the socket. */
  stop(): void {
    if (this.#handedOver) {
      this.#handedOver = false;
      this.#socket.close();
      return;
    }
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    clearTimeout(this.#askTimer);
    clearInterval(this.#dumpTimer);
    this.#dumpTimer = undefined;
    this.flush();
    this.#network = false;
    this.#socket.close();
    this.#logger.info({ counters: this.#counters, rejected: this.#rejected, resyncRefused: this.#resyncRefused }, 'session sync stopped');
  }

  /** Whether this node is still learning its peers' state after its start (no peer's copy complete,
   * some still asked for or arriving, for at most RESYNC_HOLD_MAX_MS): VRRP holds preemption meanwhile,
   * so a recovered node takes the VIP back only once it knows the clients the peer served. */
  resyncing(): boolean {
    if (this.#timer === undefined || this.#taughtBy !== undefined) return false;
    if (performance.now() - this.#startedAt >= RESYNC_HOLD_MAX_MS) return false;
    return [...this.#peers.values()].some((p) => p.status.resync === 'asking' || p.status.resync === 'receiving');
  }

  status(): SyncStatus {
    const states = [...this.#peers.values()].map((p) => p.status.resync);
    const state: ResyncState = this.#taughtBy !== undefined ? 'taught' : states.includes('receiving') ? 'receiving' : states.includes('asking') ? 'asking' : 'gaveUp';
    return {
      listen: this.#config.listen.text,
      peers: [...this.#peers.values()].map((p) => ({ ...p.status })),
      counters: { ...this.#counters },
      rejected: { ...this.#rejected },
      resync: { state, ...(this.#taughtBy !== undefined && { taughtBy: this.#taughtBy, taughtAt: this.#taughtAt, taughtAfterMs: this.#taughtAfterMs }) },
      resyncRefused: { ...this.#resyncRefused },
    };
  }

  /** Encode `records` (MAX_RECORDS a datagram) and send each datagram to every one of `peers`. */
  #send(records: readonly SessionRecord[], flags: number, peers: readonly Peer[]): void {
    if (peers.length === 0) return;
    for (let i = 0; i < records.length; i += MAX_RECORDS) {
      const chunk = records.slice(i, i + MAX_RECORDS);
      this.#sendMessage(encodeMessage(this.#config.key, this.#nextHeader(), chunk, flags), peers);
      this.#counters.recordsSent += chunk.length * peers.length;
    }
  }

  #sendMessage(message: Buffer, peers: readonly Peer[]): void {
    if (!this.#network) return;
    for (const { endpoint } of peers) {
      this.#socket.send(message, endpoint.port, endpoint.host, (err) => {
        if (err) this.#counters.sendErrors++;
      });
      this.#counters.messagesSent++;
    }
  }

  #nextHeader(): { incarnation: bigint; sequence: bigint; sentAt: number } {
    this.#sequence++;
    return { incarnation: this.#incarnation, sequence: this.#sequence, sentAt: Date.now() };
  }

  #tick(): void {
    this.flush();
    // Unprompted copies that waited for the minimum interval.
    for (const peer of this.#peers.values()) {
      if (peer.pendingIncarnation !== undefined && this.#mayDumpTo(peer)) this.#startDump(peer, peer.pendingIncarnation);
    }
  }

  /** Ask every peer whose copy has not begun; again after each backoff step, then give up on them. */
  #ask(): void {
    if (this.#timer === undefined) return;
    const waiting = [...this.#peers.values()].filter((p) => p.status.resync === 'asking');
    if (waiting.length === 0) return;
    if (this.#asks === RESYNC_BACKOFF_MS.length) {
      for (const peer of waiting) peer.status.resync = 'gaveUp';
      this.#logger.warn({ peers: waiting.map((p) => p.status.address) }, 'session sync: no full copy from these peers; their entries arrive as they are refreshed');
      return;
    }
    this.#sendMessage(encodeMessage(this.#config.key, this.#nextHeader(), [], FLAG_RESYNC_REQUEST), waiting);
    this.#counters.resyncRequestsSent += waiting.length;
    const delay = RESYNC_BACKOFF_MS[this.#asks]!;
    this.#asks++;
    this.#askTimer = setTimeout(() => this.#ask(), delay);
    this.#askTimer.unref();
  }

  #mayDumpTo(peer: Peer): boolean {
    return peer.dumpStartedAt === undefined || performance.now() - peer.dumpStartedAt >= DUMP_MIN_INTERVAL_MS;
  }

  /** A peer asked for a copy (an accepted, fresh, unreplayed request). */
  #onRequest(peer: Peer, incarnation: bigint): void {
    this.#counters.resyncRequestsReceived++;
    if (peer.dumpedIncarnation === incarnation) return void this.#resyncRefused.alreadySent++;
    if (!this.#mayDumpTo(peer)) return void this.#resyncRefused.tooSoon++;
    this.#counters.resyncRequestsServed++;
    this.#startDump(peer, incarnation);
  }

  /** A peer's first accepted message of an incarnation that did not ask: it (re)started. */
  #onNewIncarnation(peer: Peer, incarnation: bigint): void {
    if (peer.dumpedIncarnation === incarnation) return;
    if (!this.#mayDumpTo(peer)) {
      peer.pendingIncarnation = incarnation;
      return;
    }
    this.#counters.dumpsUnprompted++;
    this.#startDump(peer, incarnation);
  }

  #startDump(peer: Peer, incarnation: bigint): void {
    peer.dumpedIncarnation = incarnation;
    peer.pendingIncarnation = undefined;
    peer.dumpStartedAt = performance.now();
    peer.status.dumpsSent++;
    peer.status.lastDumpAt = Date.now();
    const running = this.#dumpTargets.find((t) => t.peer === peer);
    const joinedDuring = this.#dumpRound;
    if (running !== undefined) {
      running.remaining = DUMP_BUCKETS;
      if (joinedDuring) running.joinedDuring = joinedDuring;
    } else this.#dumpTargets.push({ peer, remaining: DUMP_BUCKETS, ...(joinedDuring && { joinedDuring }) });
    this.#logger.info({ peer: peer.status.address, incarnation: String(incarnation) }, 'session sync: sending a full copy');
    this.#runDumps();
  }

  /** Start the rounds of the copies in #dumpTargets unless they run. */
  #runDumps(): void {
    if (this.#dumpTimer === undefined) {
      this.#dumpStep = DUMP_FIRST_STEP;
      this.#dumpTimer = setInterval(() => this.#dumpTick(), DUMP_ROUND_MS);
      this.#dumpTimer.unref();
      this.#dumpTick();
    }
  }

  /** One step of the copies in progress: take what the last round gave; once the workers have
   * added all of it, end the copies that are complete and ask the engine for the next range. */
  #dumpTick(): void {
    if (this.#engine.stopped) return this.#endDumps();
    this.flush();
    const round = this.#dumpRound;
    if (round !== undefined) {
      if (this.#dumpPending > 0) return; // workers are still adding their flows
      this.#dumpRound = undefined;
      for (const target of this.#dumpTargets) {
        if (target.joinedDuring === round) target.joinedDuring = undefined;
        else target.remaining -= round.width;
      }
      const done = this.#dumpTargets.filter((t) => t.remaining <= 0);
      this.#dumpTargets = this.#dumpTargets.filter((t) => t.remaining > 0);
      if (done.length > 0) {
        const peers = done.flatMap((t) => (t.peer ? [t.peer] : []));
        if (peers.length > 0) this.#sendMessage(encodeMessage(this.#config.key, this.#nextHeader(), [], FLAG_BULK | FLAG_BULK_END), peers);
        for (const target of done) target.link?.done();
        this.#counters.dumpsCompleted += done.length;
      }
      // Size the next range from what this one held (keys are hashes: spread evenly).
      const grown = this.#dumpStep * DUMP_MAX_GROWTH;
      this.#dumpStep = round.records === 0 ? grown : Math.max(1, Math.min(grown, Math.floor((this.#dumpStep * DUMP_ROUND_RECORDS) / round.records)));
    }
    if (this.#dumpTargets.length === 0) return this.#endDumps();
    const shortest = Math.min(...this.#dumpTargets.map((t) => t.remaining));
    const from = this.#dumpCursor;
    const to = Math.min(from + this.#dumpStep, DUMP_BUCKETS, from + shortest);
    this.#engine.dumpSessionRecords(from, to);
    this.#counters.dumpRounds++;
    this.#dumpRound = { width: to - from, records: 0 };
    this.#dumpCursor = to % DUMP_BUCKETS;
  }

  #endDumps(): void {
    clearInterval(this.#dumpTimer);
    this.#dumpTimer = undefined;
    this.#dumpRound = undefined;
    // A copy to a link that cannot complete ends here (its waiter goes on without the rest).
    for (const target of this.#dumpTargets) target.link?.done();
    this.#dumpTargets = [];
  }

  #receive(message: Buffer, remote: RemoteInfo): void {
    const peer = this.#peers.get(remote.address);
    if (peer === undefined) return this.#reject('notPeer', remote);
    if (message.length > MAX_DATAGRAM_BYTES) return this.#reject('tooLarge', remote);
    const decoded = decodeMessage(this.#config.key, message);
    if (!decoded.ok) return this.#reject(decoded.reason, remote);
    const { header, flags } = decoded;
    const request = flags === FLAG_RESYNC_REQUEST;
    if (Math.abs(Date.now() - header.sentAt) > this.#config.maxSkewMs) {
      if (request) this.#resyncRefused.stale++;
      return this.#reject('stale', remote);
    }
    const known = this.#replay.incarnation(remote.address);
    if (!this.#replay.accept(remote.address, header.incarnation, header.sequence)) {
      if (request) this.#resyncRefused.replay++;
      return this.#reject('replay', remote);
    }
    const status = peer.status;
    status.messagesAccepted++;
    status.lastAcceptedAt = Date.now();
    status.incarnation = String(header.incarnation);
    this.#counters.messagesAccepted++;
    if (request) this.#onRequest(peer, header.incarnation);
    else if (known === undefined || header.incarnation > known) this.#onNewIncarnation(peer, header.incarnation);
    if ((flags & FLAG_BULK) !== 0) {
      this.#counters.dumpRecordsReceived += decoded.records.length;
      if (status.resync !== 'taught') status.resync = 'receiving';
      if ((flags & FLAG_BULK_END) !== 0) this.#taught(peer);
    }
    if (decoded.records.length === 0) return;
    this.#counters.recordsReceived += decoded.records.length;
    const byId = this.#serviceIds();
    const records: SessionRecord[] = [];
    for (const r of decoded.records) {
      const service = byId.get(r.serviceId);
      if (service === undefined) {
        this.#counters.recordsUnknown++;
        continue;
      }
      records.push({ kind: r.kind, service, backend: r.backend, ageMs: r.ageMs, key: r.key });
    }
    const result = this.#engine.installSessionRecords(records);
    this.#counters.recordsInstalled += result.installed;
    this.#counters.recordsUnknown += result.unknown;
  }

  #taught(peer: Peer): void {
    peer.status.resync = 'taught';
    if (this.#taughtBy !== undefined) return;
    this.#taughtBy = peer.status.address;
    this.#taughtAt = Date.now();
    this.#taughtAfterMs = Math.round(performance.now() - this.#startedAt);
    this.#logger.info({ peer: this.#taughtBy, afterMs: this.#taughtAfterMs, records: this.#counters.dumpRecordsReceived }, 'session sync: full copy received');
  }

  /** Service id → name for the services running now. */
  #serviceIds(): Map<bigint, string> {
    const byId = new Map<bigint, string>();
    for (const name of this.#serviceNames()) {
      let id = this.#ids.get(name);
      if (id === undefined) {
        id = serviceId(name);
        this.#ids.set(name, id);
      }
      byId.set(id, name);
    }
    return byId;
  }

  #reject(reason: RejectReason, remote: RemoteInfo): void {
    this.#rejected[reason]++;
    const now = Date.now();
    if (now - this.#rejectLogAt < REJECT_LOG_INTERVAL_MS) return;
    const total = REJECT_REASONS.reduce((sum, r) => sum + this.#rejected[r], 0);
    this.#logger.warn({ reason, from: `${remote.address}:${remote.port}`, rejectedSinceLastLog: total - this.#rejectedLogged, rejected: this.#rejected }, 'session sync message rejected');
    this.#rejectLogAt = now;
    this.#rejectedLogged = total;
  }
}

/** The fd under a node:dgram socket (kept on the socket's internal state; `_handle` is deprecated there). */
function socketFd(socket: Socket): number | undefined {
  const state = Object.getOwnPropertySymbols(socket).find((symbol) => symbol.description === 'state symbol');
  const fd = state === undefined ? undefined : (socket as unknown as Record<symbol, { handle?: { fd?: unknown } } | undefined>)[state]?.handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}
