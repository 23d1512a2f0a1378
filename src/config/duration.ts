// Durations in the config: `<number><unit>` (500ms, 1.5s, 10m, 2h, 1d).
// Parsed to whole milliseconds. A bare number is refused: `idle: 3600` reads
// as an hour to some and as 3.6 s to others (it used to mean milliseconds),
// so the message asks for the unit. The one exception is 0 where 0 turns a
// feature off (`slow_start: 0`): zero is zero in every unit.

import { describeValue } from './describe.js';

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
type Unit = keyof typeof UNIT_MS;

const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

export const DURATION_EXPECTED = 'expected a number and a unit (ms, s, m, h, d) such as 500ms, 1.5s or 10m';

export type DurationResult = { ok: true; ms: number } | { ok: false; message: string };

/** `zero: 'off'` accepts 0 (in any unit) for settings where 0 turns a feature off, such as slow_start. */
export interface DurationOptions {
  zero?: 'off';
}

/**
 * Parse `value` (what the YAML held) as a duration of at least 1ms (or 0 with
 * `zero: 'off'`) and at most `maxMs`. `what` names the setting in messages
 * (e.g. "timeouts.connect").
 */
export function parseDuration(value: unknown, what: string, maxMs: number, options: DurationOptions = {}): DurationResult {
  let ms: number;
  if (typeof value === 'number') {
    if (value === 0 && options.zero === 'off') return { ok: true, ms: 0 };
    if (!Number.isFinite(value)) return fail(`bad duration ${value} for ${what}: ${DURATION_EXPECTED}`);
    if (value <= 0) return fail(`bad duration ${value} for ${what}: must be greater than 0`);
    return fail(`bad duration ${value} for ${what}: a duration needs a unit: write ${value}s for seconds or ${value}ms for milliseconds (${DURATION_EXPECTED})`);
  } else if (typeof value === 'string') {
    const match = DURATION_RE.exec(value);
    if (match === null) return fail(`bad duration ${JSON.stringify(value)} for ${what}: ${DURATION_EXPECTED}`);
    ms = Number(match[1]) * UNIT_MS[match[2] as Unit];
    if (!Number.isInteger(ms)) {
      return fail(`bad duration ${JSON.stringify(value)} for ${what}: expected a whole number of milliseconds`);
    }
  } else {
    return fail(`bad duration ${describeValue(value)} for ${what}: ${DURATION_EXPECTED}`);
  }
  if (ms === 0 && options.zero === 'off') return { ok: true, ms: 0 };
  if (ms <= 0) return fail(`bad duration ${JSON.stringify(value)} for ${what}: must be greater than 0`);
  if (ms > maxMs) return fail(`${what} ${JSON.stringify(value)} is too long: expected at most ${formatDuration(maxMs)}`);
  return { ok: true, ms };
}

/** The shortest exact text for `ms`: 90000 → "90s", 3600000 → "1h", 1500 → "1500ms". */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    if (ms >= UNIT_MS[unit] && ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  }
  return `${ms}ms`;
}

function fail(message: string): DurationResult {
  return { ok: false, message };
}
