// What differs for protocol: udp services, checked on the YAML data before
// the schema fills in its (TCP) defaults, so a key the user wrote can be told
// from a default: keys that make no sense for datagrams are errors, and UDP's
// own defaults (balance: maglev, timeouts.idle: 30s) are filled in first.
import type { ConfigIssue } from '../errors.js';
import type { ConfigPath, YamlSource } from './source.js';

export const UDP_DEFAULTS = {
  /** Maglev on the 5-tuple: a flow keeps its server, and losing one moves only its flows. */
  balance: 'maglev',
  /** Game and DNS flows are short-lived; 10m (TCP's) would hold sockets for nothing. */
  idle: '30s',
  maxFlows: 16_384,
  responses: 0,
} as const;

/** Service keys that mean nothing without connections, and why. */
const TCP_ONLY_KEYS: ReadonlyArray<{ path: readonly string[]; why: string }> = [
  { path: ['timeouts', 'connect'], why: 'UDP has no connect handshake' },
  { path: ['retries'], why: 'a flow whose backend fails moves to another one on its next datagram' },
  { path: ['queue'], why: 'datagrams are never held waiting for a backend; they are dropped and counted' },
];

const UDP_ONLY_KEYS = ['max_flows', 'udp'] as const;

/**
 * Report keys that do not apply to a service's protocol, and fill UDP's
 * defaults into `data` (mutated, as the schema does with its own defaults).
 * Runs before the schema; values of the wrong type are left to it.
 */
export function prepareUdpServices(data: Record<string, unknown>, source: YamlSource): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (!Array.isArray(data.services)) return issues;
  (data.services as unknown[]).forEach((service, i) => {
    if (!isRecord(service)) return;
    const at: ConfigPath = ['services', i];
    if (service.protocol !== 'udp') {
      const protocol = typeof service.protocol === 'string' ? service.protocol : 'tcp';
      for (const key of UDP_ONLY_KEYS) {
        if (service[key] !== undefined) {
          issues.push(source.issue([...at, key], `${key} applies only to protocol: udp (this service has protocol: ${protocol})`, 'key'));
        }
      }
      return;
    }
    for (const { path, why } of TCP_ONLY_KEYS) {
      const parent = path.length === 1 ? service : service[path[0]!];
      if (isRecord(parent) && parent[path.at(-1)!] !== undefined) {
        issues.push(source.issue([...at, ...path], `${path.join('.')} does not apply to protocol: udp (${why})`, 'key'));
      }
    }
    if (service.balance === 'least_time') {
      issues.push(source.issue([...at, 'balance'], 'balance: least_time ranks backends by TCP connect time and does not apply to protocol: udp'));
    }
    service.balance ??= UDP_DEFAULTS.balance;
    service.timeouts ??= {};
    if (isRecord(service.timeouts)) service.timeouts.idle ??= UDP_DEFAULTS.idle;
  });
  return issues;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
