// Session state shared with peer nodes (docs/ecmp.md): every `interval` the
// engine's new sticky entries and UDP flow assignments are taken in one call
// and sent to every peer as HMAC-authenticated datagrams (wire.ts); what
// peers send is checked (source, bounds, MAC, clock skew, replay) and
// installed in one call. Every rejection is counted by reason and nothing of
// a rejected datagram is applied.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import type { SyncConfig } from '../config/types.js';
import type { Engine } from '../engine/engine.js';
import type { SessionRecord } from '../engine/sync-records.js';
import type { Logger } from '../logger.js';
import { ReplayWindow } from './replay-window.js';
import { decodeMessage, encodeMessage, MAX_DATAGRAM_BYTES, MAX_RECORDS, REJECT_REASONS, serviceId, type RejectReason } from './wire.js';

/** Rejections are summarised in one warning at most this often. */
const REJECT_LOG_INTERVAL_MS = 5000;

export interface SyncPeerStatus {
  address: string;
  /** Epoch ms of the last accepted message, when any. */
  lastAcceptedAt?: number;
  messagesAccepted: number;
}

export interface SyncStatus {
  listen: string;
  peers: SyncPeerStatus[];
  counters: Record<string, number>;
  rejected: Record<RejectReason, number>;
}

export interface SyncSource {
  status(): SyncStatus;
}

export interface SessionSyncOptions {
  config: SyncConfig;
  engine: Pick<Engine, 'takeSessionRecords' | 'installSessionRecords' | 'stopped'>;
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
  readonly #incarnation = BigInt(Date.now());
  #sequence = 0n;
  #timer: NodeJS.Timeout | undefined;
  readonly #ids = new Map<string, bigint>();
  readonly #peers = new Map<string, SyncPeerStatus>();
  readonly #rejected = Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Record<RejectReason, number>;
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
  };

  constructor(options: SessionSyncOptions) {
    this.#config = options.config;
    this.#engine = options.engine;
    this.#serviceNames = options.serviceNames;
    this.#logger = options.logger.child({ sync: options.config.listen.text });
    for (const peer of this.#config.peers) this.#peers.set(peer.host, { address: peer.text, messagesAccepted: 0 });
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
    this.#timer = setInterval(() => this.flush(), this.#config.intervalMs);
    this.#timer.unref();
    this.#logger.info({ peers: this.#config.peers.map((p) => p.text), intervalMs: this.#config.intervalMs }, 'session sync started');
  }

  /** Send what the engine recorded since the last flush (also on a timer). */
  flush(): void {
    if (this.#engine.stopped) return;
    const { records, dropped } = this.#engine.takeSessionRecords();
    this.#counters.journalDropped += dropped;
    for (let i = 0; i < records.length; i += MAX_RECORDS) {
      const chunk = records.slice(i, i + MAX_RECORDS);
      this.#sequence++;
      const message = encodeMessage(this.#config.key, { incarnation: this.#incarnation, sequence: this.#sequence, sentAt: Date.now() }, chunk);
      for (const peer of this.#config.peers) {
        this.#socket.send(message, peer.port, peer.host, (err) => {
          if (err) this.#counters.sendErrors++;
        });
        this.#counters.messagesSent++;
        this.#counters.recordsSent += chunk.length;
      }
    }
  }

  /** Send what is left, then close the socket. */
  stop(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.flush();
    this.#socket.close();
    this.#logger.info({ counters: this.#counters, rejected: this.#rejected }, 'session sync stopped');
  }

  status(): SyncStatus {
    return {
      listen: this.#config.listen.text,
      peers: [...this.#peers.values()].map((p) => ({ ...p })),
      counters: { ...this.#counters },
      rejected: { ...this.#rejected },
    };
  }

  #receive(message: Buffer, remote: RemoteInfo): void {
    const peer = this.#peers.get(remote.address);
    if (peer === undefined) return this.#reject('notPeer', remote);
    if (message.length > MAX_DATAGRAM_BYTES) return this.#reject('tooLarge', remote);
    const decoded = decodeMessage(this.#config.key, message);
    if (!decoded.ok) return this.#reject(decoded.reason, remote);
    const { header } = decoded;
    if (Math.abs(Date.now() - header.sentAt) > this.#config.maxSkewMs) return this.#reject('stale', remote);
    if (!this.#replay.accept(remote.address, header.incarnation, header.sequence)) return this.#reject('replay', remote);
    peer.messagesAccepted++;
    peer.lastAcceptedAt = Date.now();
    this.#counters.messagesAccepted++;
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
