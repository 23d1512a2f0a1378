// What a reload changes: services and backends added, removed or changed,
// and top-level settings. Names are `service` and `service/backend-address`,
// as the admin API and logs show them.
import { isDeepStrictEqual } from 'node:util';
import type { FulcrumConfig, ServiceConfig } from '../config/types.js';

export interface ConfigDiff {
  added: string[];
  removed: string[];
  changed: string[];
  /** Settings that only a restart applies (the running value stays). */
  needsRestart: string[];
}

/** Compare two validated configs. A service is `changed` when anything but its backend list differs. */
export function diffConfigs(before: FulcrumConfig, after: FulcrumConfig): ConfigDiff {
  const diff: ConfigDiff = { added: [], removed: [], changed: [], needsRestart: [] };
  const old = new Map(before.services.map((s) => [s.name, s]));
  const next = new Map(after.services.map((s) => [s.name, s]));
  for (const [name, service] of next) {
    const previous = old.get(name);
    if (!previous) {
      diff.added.push(name, ...service.backends.map((b) => `${name}/${b.address.text}`));
      continue;
    }
    if (!isDeepStrictEqual(withoutBackends(previous), withoutBackends(service))) diff.changed.push(name);
    const oldBackends = new Map(previous.backends.map((b) => [b.address.text, b]));
    const newBackends = new Map(service.backends.map((b) => [b.address.text, b]));
    for (const [address, backend] of newBackends) {
      const was = oldBackends.get(address);
      if (!was) diff.added.push(`${name}/${address}`);
      else if (!isDeepStrictEqual(was, backend)) diff.changed.push(`${name}/${address}`);
    }
    for (const address of oldBackends.keys()) if (!newBackends.has(address)) diff.removed.push(`${name}/${address}`);
  }
  for (const [name, service] of old) {
    if (!next.has(name)) diff.removed.push(name, ...service.backends.map((b) => `${name}/${b.address.text}`));
  }
  if (before.drainTimeoutMs !== after.drainTimeoutMs) diff.changed.push('drain_timeout');
  if (before.log.level !== after.log.level) diff.changed.push('log.level');
  if (before.admin.token !== after.admin.token) diff.changed.push('admin.token');
  if (before.workers !== after.workers) diff.needsRestart.push('workers');
  if (before.admin.listen.text !== after.admin.listen.text) diff.needsRestart.push('admin.listen');
  if (before.admin.maxConnections !== after.admin.maxConnections) diff.needsRestart.push('admin.max_connections');
  if (!isDeepStrictEqual(before.announce, after.announce)) diff.needsRestart.push('announce');
  if (!isDeepStrictEqual(before.sync, after.sync)) diff.needsRestart.push('sync');
  return diff;
}

function withoutBackends(service: ServiceConfig): Omit<ServiceConfig, 'backends'> {
  const { backends: _backends, ...rest } = service;
  return rest;
}
