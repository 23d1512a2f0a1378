// The rise/fall state machine of one backend's active check (HAProxy's).
//
//   status  provisional  check passes                 check fails
//   ------  -----------  ---------------------------  ---------------------------
//   up      yes          up, settled                  down (one failure decides)
//   up      no           up, failures = 0             failures++; = fall → down
//   down    yes          up (one pass decides)        down, settled
//   down    no           passes++; = rise → up        down, passes = 0
//
// A backend starts provisional: at start it is up until its first check says
// otherwise (HAProxy's servers start up but one failed check takes them down);
// one a reload added starts down until its first passing check. While a
// transition is under way (provisional, or some passes while down / failures
// while up) checks run at fast_interval, otherwise at interval.
import type { CheckRecord } from '../control/types.js';
import type { HealthCheckConfig } from '../config/health-types.js';

export type ActiveStatus = 'up' | 'down';

/** Newest checks kept per backend. */
export const HISTORY_LENGTH = 20;

export class CheckState {
  status: ActiveStatus;
  provisional = true;
  /** Consecutive passes and failures. */
  passes = 0;
  failures = 0;
  role: 'primary' | 'replica' | undefined;
  readonly history: CheckRecord[] = [];

  constructor(initial: ActiveStatus) {
    this.status = initial;
  }

  /** Record one outcome; returns true when the status changed. */
  record(entry: CheckRecord, check: Pick<HealthCheckConfig, 'rise' | 'fall'>, role?: 'primary' | 'replica'): boolean {
    this.history.push(entry);
    if (this.history.length > HISTORY_LENGTH) this.history.shift();
    this.role = role;
    if (entry.ok) {
      this.passes++;
      this.failures = 0;
    } else {
      this.failures++;
      this.passes = 0;
    }
    const before = this.status;
    if (this.provisional) {
      this.provisional = false;
      this.status = entry.ok ? 'up' : 'down';
    } else if (this.status === 'up' && this.failures >= check.fall) {
      this.status = 'down';
    } else if (this.status === 'down' && this.passes >= check.rise) {
      this.status = 'up';
    }
    return this.status !== before;
  }

  /** Checks run faster while the status may be about to change. */
  get changing(): boolean {
    return this.provisional || (this.status === 'up' ? this.failures > 0 : this.passes > 0);
  }

  /** New settings: counters start again; status, history and role stay. */
  restart(): void {
    this.passes = 0;
    this.failures = 0;
  }
}

/** `baseMs` moved by a uniform draw within ±jitter of itself. */
export function jittered(baseMs: number, jitter: number, random: () => number = Math.random): number {
  return Math.max(1, Math.round(baseMs * (1 + (random() * 2 - 1) * jitter)));
}
