// The new side of an upgrade: a Fulcrum started by `fulcrum upgrade` finds
// the upgrade socket as fd 3 (env FULCRUM_UPGRADE_FD), takes the sockets the
// old process hands over, and says 'ready' once it serves, or 'failed' with
// the reason when it cannot start (src/upgrade/successor.ts is the other side).
import type { Engine } from '../engine/engine.js';
import { loadNative } from '../engine/native.js';
import { parseMessage, UPGRADE_FD_ENV, type SocketManifest } from './protocol.js';

/** The old process sends at once; this bounds a start that would otherwise hang. */
const RECEIVE_TIMEOUT_MS = 10_000;

export class Inheritance {
  readonly #sock: number;
  readonly #listeners: { key: string; fds: number[] }[];
  /** The admin API's socket, while not taken by takeAdmin(). */
  #admin: { fd: number; listen: string } | undefined;
  #done = false;

  private constructor(sock: number, listeners: { key: string; fds: number[] }[], admin: { fd: number; listen: string } | undefined) {
    this.#sock = sock;
    this.#listeners = listeners;
    this.#admin = admin;
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
    return new Inheritance(sock, listeners, admin);
  }

  /** Give the engine the listeners (its first apply takes those the config still has). */
  adoptListeners(engine: Engine): void {
    for (const { key, fds } of this.#listeners) engine.adoptListeners(key, fds);
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

  /** Tell the old process this one serves: it stops accepting and drains. */
  ready(): void {
    this.#finish({ type: 'ready', pid: process.pid });
  }

  /** Tell the old process this one gives up (it keeps serving). */
  failed(reason: string): void {
    this.#finish({ type: 'failed', reason });
  }

  #finish(message: object): void {
    if (this.#done) return;
    this.#done = true;
    const fdPassing = loadNative().fdPassing;
    if (this.#admin) fdPassing.close(this.#admin.fd);
    this.#admin = undefined;
    try {
      fdPassing.send(this.#sock, JSON.stringify(message), []);
    } catch {
      // The old process is gone: nothing to tell.
    }
    fdPassing.close(this.#sock);
  }
}
