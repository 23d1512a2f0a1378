// What systemd hears from a running Fulcrum (Type=notify, config/systemd/fulcrum.service):
//
//   when                                              datagram
//   ------------------------------------------------  ---------------------------------------
//   every listener bound, first health verdicts in    READY=1, STATUS=<summary>
//   a validated reload starts / is over               RELOADING=1 + MONOTONIC_USEC / READY=1
//   the first stop signal (drain begins)              STOPPING=1, STATUS=draining ...
//   the summary changed (checked every STATUS_MS)     STATUS=<summary>
//   every WATCHDOG_USEC/2, workers and loop alive     WATCHDOG=1
//
// A reload rejected by validation sends nothing (no READY flap): systemctl
// reload learns of it from the reload command's exit code. Without
// NOTIFY_SOCKET (not under systemd) nothing here runs.
import type { Logger } from '../logger.js';
import type { FulcrumRuntime, ReloadObserver } from '../runtime.js';
import { notifySocket, sdNotify, type NotifyError } from './notify.js';

/** How often the one-line status is recomputed (sent only when it changed). */
const STATUS_MS = 2000;
/** READY=1 waits at most this long for the first health verdicts: a slow check
 * must not make systemd's start timeout kill a balancer that listens. */
export const FIRST_VERDICT_WAIT_MS = 10_000;
const FIRST_VERDICT_POLL_MS = 50;
/** A worker loop turns at least once a second when idle (native/engine/worker.cc):
 * one that has not turned for this long is stuck, and the watchdog goes silent. */
export const WORKER_STALE_MS = 5000;

export type Send = (fields: Record<string, string | number>) => boolean;

export interface NotifierOptions {
  runtime: FulcrumRuntime;
  logger: Logger;
  env?: NodeJS.ProcessEnv;
  /** The datagram sender (sdNotify by default; tests record instead). */
  send?: Send;
}

/** CLOCK_MONOTONIC in ms, the clock the engine's workers stamp their loop turns with. */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint() / 1_000_000n);
}

/** The workers (by index) whose loop last turned more than `staleMs` before `nowMs`; one never turned counts as stuck. */
export function stuckWorkers(loopTimesMs: readonly number[], nowMs: number, staleMs: number = WORKER_STALE_MS): number[] {
  const stuck: number[] = [];
  loopTimesMs.forEach((at, worker) => {
    if (at === 0 || nowMs - at > staleMs) stuck.push(worker);
  });
  return stuck;
}

/** The watchdog interval systemd asks for (WATCHDOG_USEC / 2, in ms), or undefined when off or meant for another process. */
export function watchdogPingMs(env: NodeJS.ProcessEnv, pid: number = process.pid): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isSafeInteger(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID !== undefined && env.WATCHDOG_PID !== '' && Number(env.WATCHDOG_PID) !== pid) return undefined;
  return Math.max(1, Math.floor(usec / 2000));
}

export class ServiceNotifier implements ReloadObserver {
  readonly #runtime: FulcrumRuntime;
  readonly #logger: Logger;
  readonly #send: Send;
  readonly #timers: NodeJS.Timeout[] = [];
  #ready = false;
  #stopping = false;
  #reloading = false;
  #lastStatus = '';
  /** The stuck workers last reported, so a stuck worker is logged once, not at every tick. */
  #stuck = '';

  /** A notifier when systemd started this process as Type=notify (NOTIFY_SOCKET set), else undefined. */
  static start(options: NotifierOptions): ServiceNotifier | undefined {
    const env = options.env ?? process.env;
    if (options.send === undefined && notifySocket(env) === undefined) return undefined;
    return new ServiceNotifier(options);
  }

  private constructor({ runtime, logger, env = process.env, send }: NotifierOptions) {
    this.#runtime = runtime;
    this.#logger = logger;
    const failed = new Set<string>();
    this.#send =
      send ??
      ((fields) =>
        sdNotify(
          fields,
          (error: NotifyError) => {
            // Once per reason: a vanished socket must not flood the log every tick.
            if (failed.has(error.code)) return;
            failed.add(error.code);
            logger.warn({ err: error, socket: error.socket }, `systemd notification failed: ${error.code}`);
          },
          env,
        ));
    runtime.attachReloadObserver(this);
    const pingMs = watchdogPingMs(env);
    if (pingMs !== undefined) {
      this.#every(pingMs, () => this.#watchdog());
      logger.info({ pingMs }, 'systemd watchdog on');
    }
  }

  /** Every listener is bound: send READY=1 once the first health verdicts are in (or after FIRST_VERDICT_WAIT_MS). */
  listening(): void {
    const since = Date.now();
    const poll = setInterval(() => {
      if (this.#stopping) return clearInterval(poll);
      const undecided = this.#undecided();
      if (undecided > 0 && Date.now() - since < FIRST_VERDICT_WAIT_MS) return;
      clearInterval(poll);
      if (undecided > 0) this.#logger.warn({ undecided }, 'ready before every first health verdict: checks still running');
      this.#ready = true;
      this.#lastStatus = this.#summary();
      this.#send({ READY: 1, STATUS: this.#lastStatus });
      this.#every(STATUS_MS, () => this.#updateStatus());
    }, FIRST_VERDICT_POLL_MS);
    this.#timers.push(poll);
  }

  applying(): void {
    if (!this.#ready || this.#stopping) return;
    this.#reloading = true;
    this.#send({ RELOADING: 1, MONOTONIC_USEC: (process.hrtime.bigint() / 1000n).toString(), STATUS: 'reloading' });
  }

  settled(): void {
    if (!this.#reloading) return;
    this.#reloading = false;
    if (this.#stopping) return;
    this.#lastStatus = this.#summary();
    this.#send({ READY: 1, STATUS: this.#lastStatus });
  }

  /** The first stop signal: listeners close and open connections drain. */
  stopping(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#lastStatus = this.#summary();
    this.#send({ STOPPING: 1, STATUS: this.#lastStatus });
  }

  /** Stop every timer (the process is about to exit). */
  close(): void {
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers.length = 0;
  }

  #every(ms: number, task: () => void): void {
    this.#timers.push(setInterval(task, ms));
  }

  #updateStatus(): void {
    if (this.#reloading) return;
    const status = this.#summary();
    if (status === this.#lastStatus) return;
    this.#lastStatus = status;
    this.#send({ STATUS: status });
  }

  /** This timer running at all says the event loop answers; the engine's workers must have turned recently too. */
  #watchdog(): void {
    const stuck = stuckWorkers(this.#runtime.engine.workerLoopTimesMs(), monotonicMs());
    const key = stuck.join(',');
    if (key !== this.#stuck) {
      if (stuck.length > 0) this.#logger.error({ workers: stuck, staleMs: WORKER_STALE_MS }, 'engine worker stuck: systemd watchdog pings stopped');
      else this.#logger.warn('engine workers answer again: systemd watchdog pings resumed');
      this.#stuck = key;
    }
    if (stuck.length === 0) this.#send({ WATCHDOG: 1 });
  }

  /** Backends whose first active check has not finished. */
  #undecided(): number {
    return this.#runtime.health
      .snapshot()
      .filter((h) => h.checkType !== 'none' && h.history.length === 0 && h.ejectedUntil === undefined).length;
  }

  /** One line: "3 services, 5/6 backends up, 42 connections" (and "draining: " while stopping). */
  #summary(): string {
    const { engine, control } = this.#runtime;
    const services = this.#runtime.config().services.length;
    const backends = control.list();
    const up = backends.filter((b) => b.effective === 'up').length;
    const connections = engine.stopped ? 0 : engine.activeConnections();
    const line = `${services} service${services === 1 ? '' : 's'}, ${up}/${backends.length} backends up, ${connections} connection${connections === 1 ? '' : 's'}`;
    return this.#stopping ? `draining: ${line}` : line;
  }
}
