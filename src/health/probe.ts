// What one active check is given and what it answers. Each check type is a
// Probe in checks/; runProbe() turns every way a probe can fail (a
// CheckFailure, a socket error, a bug) into a failed result with a detail.
import type { HealthCheckConfig } from '../config/health-types.js';
import { CheckFailure } from '../errors.js';
import { PROBES } from './checks/index.js';

export interface ProbeTarget {
  host: string;
  port: number;
  check: HealthCheckConfig;
  /** The password read for this check (never logged, never put in a detail). */
  password: string | undefined;
}

export interface ProbeResult {
  ok: boolean;
  /** What was seen ("HTTP 200", "role primary") or why it failed. */
  detail: string;
  /** Database role, for the types that report one. */
  role?: 'primary' | 'replica';
}

export type Probe = (target: ProbeTarget) => Promise<ProbeResult>;

/** Run the probe of `target.check.type`; never rejects. The role filter is applied here. */
export async function runProbe(target: ProbeTarget): Promise<ProbeResult> {
  let result: ProbeResult;
  try {
    result = await PROBES[target.check.type](target);
  } catch (err) {
    const detail = err instanceof CheckFailure ? err.message : `check error: ${err instanceof Error ? err.message : String(err)}`;
    return { ok: false, detail: scrub(detail, target.password) };
  }
  const wanted = target.check.role;
  if (result.ok && wanted !== 'any' && result.role !== wanted) {
    return { ok: false, detail: `${result.detail}; wanted role ${wanted}`, ...(result.role ? { role: result.role } : {}) };
  }
  return { ...result, detail: scrub(result.detail, target.password) };
}

/** Belt and braces: a detail never carries the password, even if a server echoed it. */
function scrub(detail: string, password: string | undefined): string {
  if (!password) return detail;
  return detail.split(password).join('***');
}
