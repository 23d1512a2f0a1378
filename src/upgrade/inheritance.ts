// The new side of an upgrade: a Fulcrum started by `fulcrum upgrade` finds
// the upgrade socket as fd 3 (env FULCRUM_UPGRADE_FD), takes the sockets the
// old process hands over (and its session table, when it runs sync:), says
// 'ready' once it serves, or 'failed' with the reason when it cannot start,
// then takes over VRRP, BGP and session sync from the handover
// (src/upgrade/successor.ts is the other side, protocol.ts the messages).
import type { SessionRecord } from '../engine/sync-records.js';
import type { Engine } from '../engine/engine.js';
import { loadNative } from '../engine/native.js';
import type { SessionLink } from '../sync/session-sync.js';
import { UpgradeChannel } from './channel.js';
import {
  decodeSessions,
  parseMessage,
  sessionMessages,
  UPGRADE_FD_ENV,
  type CompanionSet,
  type HandoverMessage,
  type SocketManifest,
} from './protocol.js';

/** The old process sends at once; this bounds a start that would otherwise hang. */
const RECEIVE_TIMEOUT_MS = 10_000;
/** How often the upgrade socket is read while both processes serve. */
const POLL_MS = 5;
/** How long the handover may take to come after 'ready' (the old process reads every 20 ms;
 * a BGP announcement waits for a birdc command in flight, at most 3 s). */
export const HANDOVER_TIMEOUT_MS = 5_000;

/** The handover as received: the message and its descriptors by name. */
export interface Handover {
  message: HandoverMessage;
  fds: Map<string, number>;
}

export class Inheritance {
  readonly #sock: number;
  readonly #listeners: { key: string; fds: number[] }[];
  /** The admin API's socket, while not taken by takeAdmin(). */
  #admin: { fd: number; listen: string } | undefined;
  /** What the old process runs beside the engine. */
  readonly companions: CompanionSet;
  /** The old process's session table (and changes), until takeSessions(). */
  #sessions: SessionRecord[];
  #channel: UpgradeChannel | undefined;
  #poll: NodeJS.Timeout | undefined;
  #onSessions: ((records: SessionRecord[]) => void) | undefined;
  #done = false;

  private constructor(
    sock: number,
    listeners: { key: string; fds: number[] }[],
    admin: { fd: number; listen: string } | undefined,
    companions: CompanionSet,
    sessions: SessionRecord[],
  ) {
    this.#sock = sock;
    this.#listeners = listeners;
    this.#admin = admin;
    this.companions = companions;
    this.#sessions = sessions;
  }

  /**
   * The sockets handed over when this process was started by an upgrade,
   * undefined otherwise. Throws (a sentence) when the handover is broken; the
   * caller reports it through failed() where it can.
   */
  static fromEnvironment(): Inheritance | undefined {
    const value = process.env[UPGRADE_FD_ENV];
    if (value === undefined) return undefined;
    // Not passed on to what this process starts (notify scripts, BIRD, a later upgrade sets its own).
    delete process.env[UPGRADE_FD_ENV];
    const sock = Number(value);
    if (!Number.isInteger(sock) || sock < 0) throw new Error(`${UPGRADE_FD_ENV}=${value} is not a file descriptor`);
    const fdPassing = loadNative().fdPassing;
    const first = fdPassing.receive(sock, RECEIVE_TIMEOUT_MS);
    if (first === null || first.text === '') throw new Error('upgrade: the old process sent no sockets');
    const manifest = parseMessage(first.text) as SocketManifest | undefined;
    if (manifest?.type !== 'sockets' || !Array.isArray(manifest.listeners)) throw new Error('upgrade: unexpected message from the old process');
    const fds = [...first.fds];
    const expected = manifest.listeners.reduce((sum, l) => sum + l.count, 0) + (manifest.admin ? 1 : 0);
    while (fds.length < expected) {
      const more = fdPassing.receive(sock, RECEIVE_TIMEOUT_MS);
      if (more === null || more.text === '') throw new Error(`upgrade: ${fds.length} of ${expected} sockets arrived`);
      fds.push(...more.fds);
    }
    let next = 0;
    const listeners = manifest.listeners.map((l) => ({ key: l.key, fds: fds.slice(next, (next += l.count)) }));
    const admin = manifest.admin ? { fd: fds[next]!, listen: manifest.admin.listen } : undefined;
    // The session table, read before the engine takes the listeners: a client this
    // process serves first already finds its backend (see installSessions).
    const sessions: SessionRecord[] = [];
    if (manifest.sessions === true) {
      for (;;) {
        const part = fdPassing.receive(sock, RECEIVE_TIMEOUT_MS);
        if (part === null || part.text === '') throw new Error(`upgrade: the session table stopped after ${sessions.length} entries`);
        for (const fd of part.fds) fdPassing.close(fd);
        const message = parseMessage(part.text);
        if (message?.type === 'sessions-end') break;
        if (message?.type === 'sessions') sessions.push(...decodeSessions(message.records));
      }
    }
    return new Inheritance(sock, listeners, admin, manifest.companions ?? {}, sessions);
  }

  /** Give the engine the listeners (its first apply takes those the config still has). */
  adoptListeners(engine: Engine): void {
    for (const { key, fds } of this.#listeners) engine.adoptListeners(key, fds);
  }

  /**
   * Install the old process's session table; call right after the engine's
   * first apply (the tables exist from then on). Workers accept from that
   * apply on, so a client arriving in the instant between the two is
   * balanced afresh; an entry it makes is newer than the copy's and kept.
   * Returns how many entries took effect.
   */
  installSessions(engine: Engine): number {
    const records = this.#sessions;
    this.#sessions = [];
    return records.length === 0 ? 0 : engine.installSessionRecords(records).installed;
  }

  /**
   * While both processes serve: session records from the old process go to
   * `onSessions`, and the returned link sends this one's to it (SessionSync
   * startLinked). Records that arrive before this is called are dropped.
   */
  linkSessions(onSessions: (records: SessionRecord[]) => void): SessionLink {
    this.#onSessions = onSessions;
    return { records: (records) => this.#send(sessionMessages(records)) };
  }

  /** The admin API's socket when it was bound to `listen` (the config may have moved it), else undefined (closed). */
  takeAdmin(listen: string): number | undefined {
    const admin = this.#admin;
    this.#admin = undefined;
    if (admin === undefined) return undefined;
    if (admin.listen === listen) return admin.fd;
    loadNative().fdPassing.close(admin.fd);
    return undefined;
  }

  /**
   * Tell the old process this one serves and which companions it takes over
   * (it stops accepting and drains); resolves with the handover, or undefined
   * when nothing is taken over or none came within HANDOVER_TIMEOUT_MS (the
   * caller then starts those companions afresh).
   */
  async ready(adopts: CompanionSet = {}): Promise<Handover | undefined> {
    const channel = this.#open();
    if (channel === undefined) return undefined;
    this.#done = true;
    channel.send({ type: 'ready', pid: process.pid, adopts });
    this.#closeAdmin();
    // Read here from now on: the timer would pass over the handover.
    clearInterval(this.#poll);
    const wanted = Object.values(adopts).some(Boolean);
    if (!wanted) {
      await channel.drained(1_000);
      this.#close();
      return undefined;
    }
    const deadline = Date.now() + HANDOVER_TIMEOUT_MS;
    try {
      while (Date.now() < deadline && !channel.ended) {
        const handover = this.#read(channel);
        if (handover !== undefined) return handover;
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
      return undefined;
    } finally {
      this.#close();
    }
  }

  /** Tell the old process this one gives up (it keeps serving). */
  failed(reason: string): void {
    const channel = this.#open();
    if (channel === undefined) return;
    this.#done = true;
    // A message of a few bytes into a queue the old process reads every 20 ms: it fits.
    channel.send({ type: 'failed', reason });
    this.#closeAdmin();
    this.#close();
  }

  /** The channel, polled for session records from now on; undefined once done. */
  #open(): UpgradeChannel | undefined {
    if (this.#done) return undefined;
    if (this.#channel === undefined) {
      const channel = new UpgradeChannel(this.#sock);
      this.#channel = channel;
      this.#poll = setInterval(() => this.#read(channel), POLL_MS);
      this.#poll.unref();
    }
    return this.#channel;
  }

  /** Read what is there: session records go on, a handover is returned. */
  #read(channel: UpgradeChannel): Handover | undefined {
    for (let got = channel.receive(); got !== undefined; got = channel.receive()) {
      const { message, fds } = got;
      if (message.type === 'handover' && Array.isArray(message.fds)) {
        const names = message.fds as unknown[];
        const byName = new Map<string, number>();
        names.forEach((name, i) => {
          if (typeof name === 'string' && fds[i] !== undefined) byName.set(name, fds[i]!);
        });
        for (const fd of fds.slice(names.length)) loadNative().fdPassing.close(fd);
        return { message: message as unknown as HandoverMessage, fds: byName };
      }
      for (const fd of fds) loadNative().fdPassing.close(fd);
      if (message.type === 'sessions') this.#onSessions?.(decodeSessions(message.records));
    }
    return undefined;
  }

  #send(messages: object[]): void {
    const channel = this.#open();
    for (const message of messages) channel?.send(message);
  }

  #closeAdmin(): void {
    if (this.#admin) loadNative().fdPassing.close(this.#admin.fd);
    this.#admin = undefined;
  }

  #close(): void {
    clearInterval(this.#poll);
    this.#poll = undefined;
    this.#channel?.close();
  }
}
