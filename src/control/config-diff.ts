// What a reload changes: services and backends added, removed or changed,
// and top-level settings. Names are `service` and `service/backend-address`,
// as the admin API and logs show them.
import { isDeepStrictEqual } from 'node:util';
import type { FulcrumConfig, ServiceConfig } from '../config/types.js';

export interface ConfigDiff {
  added: string[];
  removed: string[];
  changed: string[];
  /** What changed in each service kept by the reload, as YAML keys (`balance`, `timeouts.idle`)
   * and `backends (+added -removed ~changed)`; services with no change are absent. */
  details: Record<string, string[]>;
  /** Settings that only a restart applies (the running value stays). */
  needsRestart: string[];
}

/** Compare two validated configs. A service is `changed` when anything but its backend list differs. */
export function diffConfigs(before: FulcrumConfig, after: FulcrumConfig): ConfigDiff {
  const diff: ConfigDiff = { added: [], removed: [], changed: [], details: {}, needsRestart: [] };
  const old = new Map(before.services.map((s) => [s.name, s]));
  const next = new Map(after.services.map((s) => [s.name, s]));
  for (const [name, service] of next) {
    const previous = old.get(name);
    if (!previous) {
      diff.added.push(name, ...service.backends.map((b) => `${name}/${b.address.text}`));
      continue;
    }
    const keys = changedKeys(withoutBackends(previous), withoutBackends(service));
    if (keys.length > 0) diff.changed.push(name);
    const oldBackends = new Map(previous.backends.map((b) => [b.address.text, b]));
    const newBackends = new Map(service.backends.map((b) => [b.address.text, b]));
    const count = { added: 0, removed: 0, changed: 0 };
    for (const [address, backend] of newBackends) {
      const was = oldBackends.get(address);
      if (!was) {
        diff.added.push(`${name}/${address}`);
        count.added++;
      } else if (!isDeepStrictEqual(was, backend)) {
        diff.changed.push(`${name}/${address}`);
        count.changed++;
      }
    }
    for (const address of oldBackends.keys()) {
      if (newBackends.has(address)) continue;
      diff.removed.push(`${name}/${address}`);
      count.removed++;
    }
    if (count.added + count.removed + count.changed > 0) {
      keys.push(`backends (+${count.added} -${count.removed}${count.changed > 0 ? ` ~${count.changed}` : ''})`);
    }
    if (keys.length > 0) diff.details[name] = keys;
  }
  for (const [name, service] of old) {
    if (!next.has(name)) diff.removed.push(name, ...service.backends.map((b) => `${name}/${b.address.text}`));
  }
  if (before.drainTimeoutMs !== after.drainTimeoutMs) diff.changed.push('drain_timeout');
  if (before.log.level !== after.log.level) diff.changed.push('log.level');
  if (before.log.format !== after.log.format) diff.needsRestart.push('log.format');
  if (before.admin.token !== after.admin.token) diff.changed.push('admin.token');
  if (before.workers !== after.workers) diff.needsRestart.push('workers');
  if (before.admin.listen.text !== after.admin.listen.text) diff.needsRestart.push('admin.listen');
  if (before.admin.maxConnections !== after.admin.maxConnections) diff.needsRestart.push('admin.max_connections');
  if (!isDeepStrictEqual(before.announce, after.announce)) diff.needsRestart.push('announce');
  if (!isDeepStrictEqual(before.sync, after.sync)) diff.needsRestart.push('sync');
  return diff;
}

function withoutBackends(service: ServiceConfig): Omit<ServiceConfig, 'backends' | 'written'> {
  // `written` is the file's text of what the other keys already say.
  const { backends: _backends, written: _written, ...rest } = service;
  return rest;
}

/**
 * The YAML keys whose values differ between two objects of the typed config:
 * camelCase back to snake_case, a `Ms` suffix dropped (`idleMs` → `idle`),
 * nested objects as dotted paths (`timeouts.idle`). An address or a value
 * that appears or goes away is one key.
 */
function changedKeys(before: object, after: object, prefix = ''): string[] {
  const keys: string[] = [];
  const a = before as Record<string, unknown>;
  const b = after as Record<string, unknown>;
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (isDeepStrictEqual(a[key], b[key])) continue;
    const name = `${prefix}${yamlKey(key)}`;
    if (isNested(a[key]) && isNested(b[key])) keys.push(...changedKeys(a[key], b[key], `${name}.`));
    else keys.push(name);
  }
  return keys;
}

/** A settings block (timeouts, queue, udp...), not a leaf such as an address, a list or a regex. */
function isNested(value: unknown): value is object {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !('text' in value) && Object.getPrototypeOf(value) === Object.prototype;
}

function yamlKey(key: string): string {
  return key.replace(/Ms$/, '').replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/**
 * One line for a reload's outcome, as the log and `fulcrum reload` print it:
 * `added cache; removed old; changed redis: balance, backends (+1 -0); changed drain_timeout`,
 * or `nothing changed`.
 */
export function describeChanges(outcome: { added: string[]; removed: string[]; changed: string[]; details?: Record<string, string[]> }): string {
  const details = outcome.details ?? {};
  const services = (names: string[]): string[] => names.filter((n) => !n.includes('/'));
  const parts: string[] = [];
  const added = services(outcome.added);
  const removed = services(outcome.removed);
  if (added.length > 0) parts.push(`added ${added.join(', ')}`);
  if (removed.length > 0) parts.push(`removed ${removed.join(', ')}`);
  for (const [service, keys] of Object.entries(details)) parts.push(`changed ${service}: ${keys.join(', ')}`);
  // Top-level settings (drain_timeout, log.level...): in `changed`, not a service.
  const settings = outcome.changed.filter((n) => !n.includes('/') && !(n in details));
  if (settings.length > 0) parts.push(`changed ${settings.join(', ')}`);
  // Without details (an older peer's answer): the names as they are.
  if (outcome.details === undefined) {
    const backends = (names: string[]): string[] => names.filter((n) => n.includes('/'));
    if (backends(outcome.added).length > 0) parts.push(`added ${backends(outcome.added).join(', ')}`);
    if (backends(outcome.removed).length > 0) parts.push(`removed ${backends(outcome.removed).join(', ')}`);
    if (backends(outcome.changed).length > 0) parts.push(`changed ${backends(outcome.changed).join(', ')}`);
  }
  return parts.length > 0 ? parts.join('; ') : 'nothing changed';
}
