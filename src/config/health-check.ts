// The `health_check` and `passive` keys of a service (and `health_check` of a
// backend): what the JSON Schema cannot say (durations, hex, regular
// expressions, keys that belong to another check type, one password source),
// then the typed settings with their defaults. A backend's check is the
// service's with the backend's keys laid over it; the merge happens here, on
// raw keys, so every key is checked in the place it is written and once more
// in the merged result.
import type { ConfigIssue } from '../errors.js';
import { parseDuration } from './duration.js';
import type { CheckType, Expectation, HealthCheckConfig, PassiveHealthConfig } from './health-types.js';
import { DURATION_BOUNDS, SCHEMA_ENUMS } from './raw-types.js';
import type { ConfigPath, YamlSource } from './source.js';

/**
 * HAProxy's defaults for the core keys; Envoy's for passive ejection. These
 * are the only defaults not in the schema, which states them in its
 * descriptions: a backend's health_check is laid over its service's key by
 * key, so a default filled into either would hide the other's value.
 */
export const HEALTH_CHECK_DEFAULTS = {
  type: 'tcp',
  intervalMs: 2_000,
  timeoutMs: 1_000,
  rise: 2,
  fall: 3,
  jitter: 0.1,
  /** fast_interval defaults to interval / 4, never below this. */
  minFastIntervalMs: 100,
  path: '/',
} as const;

export const PASSIVE_DEFAULTS = {
  consecutiveFailures: 5,
  baseEjectionMs: 30_000,
  maxEjectionMs: 300_000,
  maxEjectionPercent: 50,
} as const;

const PASSIVE_BASE_MAX_MS = DURATION_BOUNDS['service.passive.base_ejection'].maxMs;
const PASSIVE_MAX_MAX_MS = DURATION_BOUNDS['service.passive.max_ejection'].maxMs;

const CHECK_TYPES: readonly string[] = SCHEMA_ENUMS['healthCheck.type'];

/** Keys that only some check types read: written for another type, they are a mistake. */
const KEY_TYPES: Readonly<Record<string, readonly string[]>> = {
  send: ['send_expect', 'udp'],
  send_hex: ['send_expect', 'udp'],
  expect: ['send_expect', 'udp', 'http'],
  expect_hex: ['send_expect', 'udp', 'http'],
  expect_regex: ['send_expect', 'udp', 'http'],
  path: ['http'],
  host: ['http'],
  expect_status: ['http'],
  role: ['postgres', 'mysql', 'redis'],
  user: ['postgres', 'mysql', 'redis'],
  database: ['postgres', 'mysql'],
  password_env: ['postgres', 'mysql', 'redis'],
  password_file: ['postgres', 'mysql', 'redis'],
};

type Raw = Record<string, unknown>;

function isRecord(value: unknown): value is Raw {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Keys that are alternatives to each other: a backend that sets one drops the service's others. */
const ALTERNATIVES: readonly (readonly string[])[] = [
  ['password_env', 'password_file'],
  ['send', 'send_hex'],
  ['expect', 'expect_hex', 'expect_regex'],
];

/** The service's check with the backend's keys laid over it. */
export function mergeChecks(service: Raw | undefined, backend: Raw | undefined): Raw {
  const merged: Raw = { ...(service ?? {}) };
  for (const group of ALTERNATIVES) {
    if (group.some((key) => backend?.[key] !== undefined)) for (const key of group) delete merged[key];
  }
  return { ...merged, ...(backend ?? {}) };
}

/** `"0a 0D"` → bytes; undefined when not an even number of hex digits. */
export function parseHex(text: string): Buffer | undefined {
  const digits = text.replace(/\s+/g, '');
  if (digits.length === 0 || digits.length % 2 !== 0 || !/^[0-9A-Fa-f]+$/.test(digits)) return undefined;
  return Buffer.from(digits, 'hex');
}

/**
 * Issues of the health keys of service `service` at `at`. Values the schema
 * rejected (wrong type) are skipped: it reported them.
 */
export function healthIssues(service: Raw, at: ConfigPath, source: YamlSource): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const report = (path: ConfigPath, message: string, anchor: 'key' | 'value' = 'value'): void => {
    issues.push(source.issue(path, message, anchor));
  };
  const serviceCheck = isRecord(service.health_check) ? service.health_check : undefined;
  const servicePath = [...at, 'health_check'];
  const serviceProblems = serviceCheck ? combinationProblems(serviceCheck) : [];
  if (serviceCheck) {
    checkKeys(serviceCheck, servicePath, report);
    for (const p of serviceProblems) report(p.key === undefined ? servicePath : [...servicePath, p.key], p.message, 'key');
  }
  const backends = Array.isArray(service.backends) ? (service.backends as unknown[]) : [];
  backends.forEach((backend, j) => {
    if (!isRecord(backend) || !isRecord(backend.health_check)) return;
    const own = backend.health_check;
    const path = [...at, 'backends', j, 'health_check'];
    checkKeys(own, path, report);
    // The merged check must make sense too (the service's role with a type
    // set here...); what is wrong with the service's check alone was reported there.
    const seen = new Set(serviceProblems.map((p) => p.message));
    for (const p of combinationProblems(mergeChecks(serviceCheck, own))) {
      if (seen.has(p.message)) continue;
      const mine = p.key !== undefined && own[p.key] !== undefined;
      report(mine ? [...path, p.key!] : path, mine ? p.message : `${p.message} (with the keys of the service's health_check)`, 'key');
    }
  });
  if (isRecord(service.passive)) {
    const p = service.passive;
    const base = duration(p.base_ejection, [...at, 'passive', 'base_ejection'], 'passive.base_ejection', PASSIVE_BASE_MAX_MS, report);
    const max = duration(p.max_ejection, [...at, 'passive', 'max_ejection'], 'passive.max_ejection', PASSIVE_MAX_MAX_MS, report);
    if (base !== undefined && max !== undefined && max < base) {
      report([...at, 'passive', 'max_ejection'], `passive.max_ejection must be at least base_ejection`);
    }
  }
  return issues;
}

type Report = (path: ConfigPath, message: string, anchor?: 'key' | 'value') => void;

/** Checks of one health_check mapping on its own: formats and bounds. */
function checkKeys(check: Raw, at: ConfigPath, report: Report): void {
  const interval = duration(check.interval, [...at, 'interval'], 'health_check.interval', DURATION_BOUNDS['healthCheck.interval'].maxMs, report);
  duration(check.fast_interval, [...at, 'fast_interval'], 'health_check.fast_interval', DURATION_BOUNDS['healthCheck.fast_interval'].maxMs, report);
  const timeout = duration(check.timeout, [...at, 'timeout'], 'health_check.timeout', DURATION_BOUNDS['healthCheck.timeout'].maxMs, report);
  if (interval !== undefined && timeout !== undefined && timeout > interval) {
    report([...at, 'timeout'], `health_check.timeout must not exceed interval (${String(check.interval)}): a check would still run when the next is due`);
  }
  for (const key of ['send_hex', 'expect_hex']) {
    if (typeof check[key] === 'string' && parseHex(check[key]) === undefined) {
      report([...at, key], `${key}: expected an even number of hex digits (spaces allowed), got ${JSON.stringify(check[key])}`);
    }
  }
  if (typeof check.expect_regex === 'string') {
    try {
      new RegExp(check.expect_regex);
    } catch (err) {
      report([...at, 'expect_regex'], `expect_regex is not a valid regular expression: ${(err as Error).message}`);
    }
  }
  if (check.password_env !== undefined && check.password_file !== undefined) {
    report([...at, 'password_file'], 'give the password in password_env or password_file, not both', 'key');
  }
  const expects = ['expect', 'expect_hex', 'expect_regex'].filter((k) => check[k] !== undefined);
  if (expects.length > 1) report([...at, expects[1]!], `give one of expect, expect_hex, expect_regex (found ${expects.join(' and ')})`, 'key');
  if (check.send !== undefined && check.send_hex !== undefined) report([...at, 'send_hex'], 'give send or send_hex, not both', 'key');
}

interface Problem {
  /** The key at fault, when one is. */
  key?: string;
  message: string;
}

/** Problems of a complete (possibly merged) check: keys that fit its type, what the type needs. */
function combinationProblems(check: Raw): Problem[] {
  const problems: Problem[] = [];
  const report = (path: readonly (string | number)[], message: string): void => {
    problems.push(path.length > 0 ? { key: String(path[0]), message } : { message });
  };
  const at: string[] = [];
  const type = typeof check.type === 'string' ? check.type : HEALTH_CHECK_DEFAULTS.type;
  // none has no keys to check; an unknown type was reported by the schema.
  if (type === 'none' || !CHECK_TYPES.includes(type)) return problems;
  for (const [key, types] of Object.entries(KEY_TYPES)) {
    if (check[key] !== undefined && !types.includes(type)) {
      report([...at, key], `${key} applies only to health_check type ${types.join(' or ')} (this check has type ${type})`);
    }
  }
  if (type === 'send_expect' && check.send === undefined && check.send_hex === undefined && check.expect === undefined && check.expect_hex === undefined && check.expect_regex === undefined) {
    report(at, 'a send_expect check needs send (or send_hex), expect (or expect_hex, expect_regex), or both');
  }
  if (type === 'udp' && check.send === undefined && check.send_hex === undefined) {
    report(at, 'a udp check needs send (or send_hex): the datagram to send');
  }
  if ((type === 'postgres' || type === 'mysql') && check.user === undefined) {
    if (check.role === 'primary' || check.role === 'replica') {
      report([...at, 'role'], `role ${check.role} needs user (and usually a password): the role is read after logging in`);
    }
    for (const key of ['password_env', 'password_file', 'database']) {
      if (check[key] !== undefined) report([...at, key], `${key} needs user`);
    }
  }
  if (type === 'redis' && check.user !== undefined && check.password_env === undefined && check.password_file === undefined) {
    report([...at, 'user'], 'a redis user needs a password (password_env or password_file)');
  }
  return problems;
}

function duration(value: unknown, path: ConfigPath, what: string, maxMs: number, report: Report): number | undefined {
  if (value === undefined) return undefined;
  const result = parseDuration(value, what, maxMs);
  if (!result.ok) {
    report(path, result.message);
    return undefined;
  }
  return result.ms;
}

function mustDuration(value: unknown, fallbackMs: number): number {
  if (value === undefined) return fallbackMs;
  const result = parseDuration(value, 'duration', Number.MAX_SAFE_INTEGER);
  if (!result.ok) throw new Error(`internal: unchecked duration ${String(value)}`);
  return result.ms;
}

/** The typed check of one backend (service keys, then the backend's over them); undefined when it has none. */
export function buildHealthCheck(serviceCheck: unknown, backendCheck: unknown): HealthCheckConfig | undefined {
  if (!isRecord(serviceCheck) && !isRecord(backendCheck)) return undefined;
  const raw = mergeChecks(isRecord(serviceCheck) ? serviceCheck : undefined, isRecord(backendCheck) ? backendCheck : undefined);
  const type = (raw.type ?? HEALTH_CHECK_DEFAULTS.type) as CheckType | 'none';
  if (type === 'none') return undefined;
  const intervalMs = mustDuration(raw.interval, HEALTH_CHECK_DEFAULTS.intervalMs);
  const defaultFast = Math.max(HEALTH_CHECK_DEFAULTS.minFastIntervalMs, Math.floor(intervalMs / 4));
  const statuses = raw.expect_status;
  return {
    type,
    intervalMs,
    fastIntervalMs: mustDuration(raw.fast_interval, Math.min(intervalMs, defaultFast)),
    timeoutMs: mustDuration(raw.timeout, Math.min(intervalMs, HEALTH_CHECK_DEFAULTS.timeoutMs)),
    rise: (raw.rise as number | undefined) ?? HEALTH_CHECK_DEFAULTS.rise,
    fall: (raw.fall as number | undefined) ?? HEALTH_CHECK_DEFAULTS.fall,
    jitter: (raw.jitter as number | undefined) ?? HEALTH_CHECK_DEFAULTS.jitter,
    port: raw.port as number | undefined,
    send: typeof raw.send === 'string' ? Buffer.from(raw.send, 'utf8') : typeof raw.send_hex === 'string' ? parseHex(raw.send_hex) : undefined,
    expect: expectation(raw),
    path: (raw.path as string | undefined) ?? HEALTH_CHECK_DEFAULTS.path,
    host: raw.host as string | undefined,
    expectStatus: statuses === undefined ? undefined : Array.isArray(statuses) ? (statuses as number[]) : [statuses as number],
    role: (raw.role as HealthCheckConfig['role'] | undefined) ?? 'any',
    user: raw.user as string | undefined,
    database: raw.database as string | undefined,
    password:
      typeof raw.password_env === 'string'
        ? { env: raw.password_env }
        : typeof raw.password_file === 'string'
          ? { file: raw.password_file }
          : undefined,
  };
}

function expectation(raw: Raw): Expectation | undefined {
  if (typeof raw.expect === 'string') return { bytes: Buffer.from(raw.expect, 'utf8'), text: raw.expect };
  if (typeof raw.expect_hex === 'string') {
    const bytes = parseHex(raw.expect_hex)!;
    return { bytes, text: `0x${bytes.toString('hex')}` };
  }
  if (typeof raw.expect_regex === 'string') return { regex: new RegExp(raw.expect_regex) };
  return undefined;
}

/** The typed passive settings; undefined when the service has no `passive` key. */
export function buildPassive(passive: unknown): PassiveHealthConfig | undefined {
  if (!isRecord(passive)) return undefined;
  const baseEjectionMs = mustDuration(passive.base_ejection, PASSIVE_DEFAULTS.baseEjectionMs);
  return {
    consecutiveFailures: (passive.consecutive_failures as number | undefined) ?? PASSIVE_DEFAULTS.consecutiveFailures,
    baseEjectionMs,
    maxEjectionMs: mustDuration(passive.max_ejection, Math.max(baseEjectionMs, PASSIVE_DEFAULTS.maxEjectionMs)),
    maxEjectionPercent: (passive.max_ejection_percent as number | undefined) ?? PASSIVE_DEFAULTS.maxEjectionPercent,
  };
}
