// Passive health: Envoy's consecutive-failure outlier detection over the
// connect failures the data plane reports.
//
// - A backend's failures in a row are counted from 'connect_failed' events;
//   a connection established to it since the last failure (its `accepted`
//   counter moved) starts the count again.
// - At consecutive_failures it is ejected for base_ejection × n, n being how
//   many times it was ejected (capped at max_ejection). n decays by one for
//   every base_ejection the backend goes without being ejected, so a backend
//   that fails once a week is not punished like one that flaps.
// - At most max_ejection_percent of a service's backends are ejected at once
//   (at least one when the percent is above 0); a backend that reaches the
//   threshold beyond that share stays in and is counted in `skipped`.
// - When the ejection ends the backend is back (unless its active check says
//   down) and its count starts from zero.
import type { PassiveHealthConfig } from '../config/health-types.js';

export interface OutlierState {
  consecutive: number;
  /** The backend's `accepted` counter when its last failure was counted. */
  acceptedAtLastFailure: number;
  /** Ejections so far, decayed (the multiplier of the next one). */
  ejections: number;
  /** Total ejections, never decayed (for the admin API). */
  totalEjections: number;
  ejectedUntil: number | undefined;
  /** When its last ejection ended (for the decay). */
  lastReturn: number | undefined;
  timer: NodeJS.Timeout | undefined;
}

export function newOutlierState(): OutlierState {
  return { consecutive: 0, acceptedAtLastFailure: -1, ejections: 0, totalEjections: 0, ejectedUntil: undefined, lastReturn: undefined, timer: undefined };
}

/** How many of `total` backends may be ejected at once. */
export function ejectionAllowance(total: number, percent: number): number {
  if (percent <= 0 || total <= 0) return 0;
  return Math.max(1, Math.floor((total * percent) / 100));
}

/**
 * Count one connect failure; returns the ejection length in ms when the
 * backend must be ejected now, undefined otherwise. `ejectedInService` is the
 * number of the service's backends ejected right now.
 */
export function countFailure(
  state: OutlierState,
  config: PassiveHealthConfig,
  accepted: number,
  now: number,
  ejectedInService: number,
  backendsInService: number,
): { ejectMs: number } | { skipped: true } | undefined {
  if (state.ejectedUntil !== undefined) return undefined;
  if (accepted !== state.acceptedAtLastFailure) state.consecutive = 0;
  state.acceptedAtLastFailure = accepted;
  state.consecutive++;
  if (state.consecutive < config.consecutiveFailures) return undefined;
  if (ejectedInService >= ejectionAllowance(backendsInService, config.maxEjectionPercent)) return { skipped: true };
  if (state.lastReturn !== undefined) {
    const decay = Math.floor((now - state.lastReturn) / config.baseEjectionMs);
    state.ejections = Math.max(0, state.ejections - decay);
  }
  state.ejections++;
  state.totalEjections++;
  const ejectMs = Math.min(config.baseEjectionMs * state.ejections, config.maxEjectionMs);
  state.ejectedUntil = now + ejectMs;
  state.consecutive = 0;
  return { ejectMs };
}

/** End the ejection (its time is up). */
export function endEjection(state: OutlierState, now: number): void {
  clearTimeout(state.timer);
  state.timer = undefined;
  state.ejectedUntil = undefined;
  state.lastReturn = now;
  state.consecutive = 0;
}
