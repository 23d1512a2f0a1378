// What differs for protocol: udp services, checked on the YAML data as the
// file has it (before the schema fills in defaults), so a key the user wrote
// can be told from a default: keys that make no sense for datagrams, or only
// for datagrams, are errors. UDP's own defaults (balance: maglev, since a flow
// must keep its server and losing one should move only its flows;
// timeouts.idle: 30s, since game and DNS flows are short-lived) are in the
// schema's if/then on protocol: udp.
import type { ConfigIssue } from '../errors.js';
import type { ConfigPath, YamlSource } from './source.js';

/** Service keys that mean nothing without connections, and why. */
const TCP_ONLY_KEYS: ReadonlyArray<{ path: readonly string[]; why: string }> = [
  { path: ['timeouts', 'connect'], why: 'UDP has no connect handshake' },
  { path: ['retries'], why: 'a flow whose backend fails moves to another one on its next datagram' },
  { path: ['queue'], why: 'datagrams are never held waiting for a backend; they are dropped and counted' },
  { path: ['tcp_keepalive'], why: 'a flow ends when idle for timeouts.idle' },
];

const UDP_ONLY_KEYS = ['max_flows', 'udp', 'datapath'] as const;

/**
 * Report keys that do not apply to a service's protocol. `data` is the
 * config as written; values of the wrong type are left to the schema.
 */
export function udpServiceIssues(data: Record<string, unknown>, source: YamlSource): ConfigIssue[] {
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
    const natPorts = isRecord(service.udp) ? service.udp.nat_ports : undefined;
    if (typeof natPorts === 'string' && /^[0-9]{1,5}-[0-9]{1,5}$/.test(natPorts) && parseNatPorts(natPorts) === undefined) {
      issues.push(source.issue([...at, 'udp', 'nat_ports'], `udp.nat_ports must be FIRST-LAST with 1 <= FIRST <= LAST <= 65535, got ${natPorts}`));
    }
    if (service.balance === 'least_time') {
      issues.push(source.issue([...at, 'balance'], 'balance: least_time ranks backends by TCP connect time and does not apply to protocol: udp'));
    }
  });
  return issues;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** "20000-29999" as its first port and count, or undefined when out of range. */
export function parseNatPorts(text: string): { first: number; count: number } | undefined {
  const [first, last] = text.split('-').map(Number);
  if (first === undefined || last === undefined || !(first >= 1 && first <= last && last <= 65535)) return undefined;
  return { first, count: last - first + 1 };
}
