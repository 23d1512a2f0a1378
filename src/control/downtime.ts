// Down transitions and downtime per backend, as HAProxy's stats show them
// (chkdown, downtime): fed with each backend's effective state as it changes
// (BackendControl's 'change' events, and the backends it has after a start or
// reload). JS thread only.
//
// Counted: a transition into `down` from a state seen before (up, drain or
// maint), so the wait for a first passing check at start is not a
// transition; downtime is every millisecond spent in `down` since the backend
// appeared, that first wait included (a backend that never passes is down
// all along). drain and maint are an operator's choice, not downtime.
import type { BackendState } from '../engine/stats.js';

export interface DowntimeStats {
  /** Times the backend went down (health checks, passive ejection) after having been seen in another state. */
  downTransitions: number;
  /** Milliseconds spent down since the backend appeared, the current stretch included. */
  downtimeMs: number;
}

interface Entry {
  state: BackendState;
  transitions: number;
  /** Down time of the stretches that ended. */
  closedMs: number;
  /** When the current down stretch began; undefined when not down. */
  downSince: number | undefined;
}

export class DowntimeTracker {
  readonly #entries = new Map<string, Entry>();

  /** The backend `key` is in `state` from `now` on (a repeat of its state changes nothing). */
  observe(key: string, state: BackendState, now = Date.now()): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) {
      this.#entries.set(key, { state, transitions: 0, closedMs: 0, downSince: state === 'down' ? now : undefined });
      return;
    }
    if (state === entry.state) return;
    if (state === 'down') {
      entry.transitions++;
      entry.downSince = now;
    } else if (entry.downSince !== undefined) {
      entry.closedMs += now - entry.downSince;
      entry.downSince = undefined;
    }
    entry.state = state;
  }

  /** Whether `key` is tracked (a backend seen since start, not removed). */
  has(key: string): boolean {
    return this.#entries.has(key);
  }

  /** Forget the backends not in `keys` (removed by a reload). */
  retain(keys: ReadonlySet<string>): void {
    for (const key of [...this.#entries.keys()]) if (!keys.has(key)) this.#entries.delete(key);
  }

  stats(key: string, now = Date.now()): DowntimeStats {
    const entry = this.#entries.get(key);
    if (entry === undefined) return { downTransitions: 0, downtimeMs: 0 };
    const current = entry.downSince === undefined ? 0 : Math.max(0, now - entry.downSince);
    return { downTransitions: entry.transitions, downtimeMs: entry.closedMs + current };
  }
}
