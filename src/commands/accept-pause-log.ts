// The log lines of accepting pauses: why clients wait and what limit to
// raise, once per episode (the engine reports an episode once, while any
// worker is paused) and at most once a minute, so a process that sits at its
// limit writes a line a minute rather than one per worker every 100 ms. A
// resume is logged when its pause was; the pauses not logged are counted in
// the next line.
import type { EngineEvent } from '../engine/engine.js';
import type { ConnectionBudget } from '../engine/fd-budget.js';
import type { Logger } from '../logger.js';

/** At most one accept_paused line per this long. */
export const PAUSE_LOG_INTERVAL_MS = 60_000;

export class AcceptPauseLog {
  readonly #logger: Logger;
  readonly #budget: ConnectionBudget | undefined;
  readonly #now: () => number;
  #loggedAt = Number.NEGATIVE_INFINITY;
  #pausedAt: number | undefined;
  #unlogged = 0;

  constructor(logger: Logger, budget: ConnectionBudget | undefined, now: () => number = Date.now) {
    this.#logger = logger;
    this.#budget = budget;
    this.#now = now;
  }

  /** Handles accept_paused / accept_resumed; false for any other event. */
  handle(event: EngineEvent): boolean {
    if (event.type === 'accept_paused') this.#paused(event);
    else if (event.type === 'accept_resumed') this.#resumed(event);
    else return false;
    return true;
  }

  #paused(event: EngineEvent): void {
    const now = this.#now();
    this.#pausedAt = undefined;
    if (now - this.#loggedAt < PAUSE_LOG_INTERVAL_MS) {
      this.#unlogged++;
      return;
    }
    this.#loggedAt = now;
    this.#pausedAt = now;
    const budget = this.#budget;
    const raise = 'raise the file descriptor limit (ulimit -n, systemd LimitNOFILE=) to serve more at once';
    const why =
      event.code === undefined && budget !== undefined
        ? `${budget.maxConnections} connections are open, the most that RLIMIT_NOFILE ${budget.fdLimit} allows ` +
          `(${budget.reserve} descriptors are kept for the admin API, health checks and listeners): ` +
          `new clients wait in the listen backlog until connections close; ${raise}`
        : `the process ran out of file descriptors (${event.code ?? 'EMFILE'}): new clients wait in the listen backlog; ${raise}`;
    const { type, ...fields } = event;
    this.#logger.warn(
      { event: type, ...fields, reason: event.code ?? 'connection_budget', ...(budget ?? {}), pausesNotLogged: this.#unlogged, why },
      type,
    );
    this.#unlogged = 0;
  }

  #resumed(event: EngineEvent): void {
    if (this.#pausedAt === undefined) return;
    const { type, ...fields } = event;
    this.#logger.info({ event: type, ...fields, pausedMs: this.#now() - this.#pausedAt }, type);
    this.#pausedAt = undefined;
  }
}
