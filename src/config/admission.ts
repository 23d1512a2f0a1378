// Client identity and admission keys of a service: accept_proxy (with
// accept_proxy_from and accept_proxy_timeout), send_proxy (service and
// backend), source: client, allow / deny and client_limits. The schema checks
// their types; here: CIDR prefixes parse, keys that belong to another
// protocol or need a companion key, and the typed settings with defaults.
import { isIPv4, isIPv6 } from 'node:net';
import type { ConfigIssue } from '../errors.js';
import { parseDuration } from './duration.js';
import { DURATION_BOUNDS, type RawService } from './raw-types.js';
import type { ConfigPath, YamlSource } from './source.js';
import type { AcceptProxyConfig, ClientLimitsConfig } from './types.js';

// The default accept_proxy_timeout (3s) is the schema's: HAProxy bounds the
// header by `timeout client`; a proxy in front sends it at once, so a few
// seconds is plenty.
const ACCEPT_PROXY_TIMEOUT_MAX_MS = DURATION_BOUNDS['service.accept_proxy_timeout'].maxMs;

/** Keys of a protocol: tcp service only, and why. */
const TCP_ONLY: ReadonlyArray<{ path: readonly string[]; why: string }> = [
  { path: ['accept_proxy'], why: 'the PROXY protocol header is read from a TCP stream' },
  { path: ['accept_proxy_from'], why: 'the PROXY protocol header is read from a TCP stream' },
  { path: ['accept_proxy_timeout'], why: 'the PROXY protocol header is read from a TCP stream' },
  { path: ['send_proxy'], why: 'the PROXY protocol header is written to a TCP stream' },
  { path: ['source'], why: 'source: client applies to TCP connections' },
  { path: ['client_limits', 'max_connections'], why: 'UDP has flows, not connections; use datagram_rate' },
  { path: ['client_limits', 'connection_rate'], why: 'UDP has flows, not connections; use datagram_rate' },
  { path: ['client_limits', 'connection_burst'], why: 'UDP has flows, not connections; use datagram_burst' },
];
const UDP_ONLY: readonly string[] = ['datagram_rate', 'datagram_burst'];

/** Canonical text of a CIDR prefix (`10.0.0.0/8`, `2001:db8::/32`; a bare address gets /32 or /128), or why not. */
export function parseCidr(value: unknown): { ok: true; cidr: string } | { ok: false; message: string } {
  const bad = (why: string) => ({ ok: false as const, message: `bad prefix ${JSON.stringify(value)}: ${why}` });
  if (typeof value !== 'string') return bad('expected an address or address/length, e.g. 10.0.0.0/8 or 2001:db8::/32');
  const slash = value.indexOf('/');
  const host = slash < 0 ? value : value.slice(0, slash);
  const lengthText = slash < 0 ? undefined : value.slice(slash + 1);
  const bits = isIPv4(host) ? 32 : isIPv6(host) ? 128 : 0;
  if (bits === 0) return bad(`"${host}" is not an IPv4 or IPv6 address`);
  if (lengthText === undefined) return { ok: true, cidr: `${host}/${bits}` };
  if (!/^(0|[1-9][0-9]{0,2})$/.test(lengthText) || Number(lengthText) > bits) {
    return bad(`the prefix length must be a number from 0 to ${bits}`);
  }
  return { ok: true, cidr: `${host}/${lengthText}` };
}

/** The admission keys of one service, as the schema let them through with its defaults. */
export type RawAdmission = Pick<
  RawService,
  'protocol' | 'accept_proxy' | 'accept_proxy_from' | 'accept_proxy_timeout' | 'source' | 'allow' | 'deny' | 'client_limits'
>;

/** The typed admission settings of a service. */
export interface AdmissionSettings {
  acceptProxy: AcceptProxyConfig | undefined;
  allow: string[];
  deny: string[];
  clientLimits: ClientLimitsConfig | undefined;
  source: RawService['source'];
}

/** Issues of one service's admission keys (`service` is its YAML data as written, without the schema's defaults, at path `at`). */
export function admissionIssues(service: Record<string, unknown>, at: ConfigPath, source: YamlSource): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const report = (path: ConfigPath, message: string, anchor: 'key' | 'value' = 'value'): void => {
    issues.push(source.issue(path, message, anchor));
  };
  const protocol = service.protocol === 'udp' ? 'udp' : 'tcp';
  const limits = isRecord(service.client_limits) ? service.client_limits : undefined;
  if (protocol === 'udp') {
    for (const { path, why } of TCP_ONLY) {
      const parent = path.length === 1 ? service : service[path[0]!];
      if (isRecord(parent) && parent[path.at(-1)!] !== undefined) {
        report([...at, ...path], `${path.join('.')} does not apply to protocol: udp (${why})`, 'key');
      }
    }
    if (Array.isArray(service.backends)) {
      service.backends.forEach((backend, j) => {
        if (isRecord(backend) && backend.send_proxy !== undefined) {
          report([...at, 'backends', j, 'send_proxy'], 'send_proxy does not apply to protocol: udp (the header is written to a TCP stream)', 'key');
        }
      });
    }
  } else if (limits) {
    for (const key of UDP_ONLY) {
      if (limits[key] !== undefined) {
        report([...at, 'client_limits', key], `client_limits.${key} applies only to protocol: udp (use connection_rate for tcp)`, 'key');
      }
    }
  }
  for (const list of ['allow', 'deny', 'accept_proxy_from'] as const) {
    const values = service[list];
    if (!Array.isArray(values)) continue;
    values.forEach((value, k) => {
      const parsed = parseCidr(value);
      if (!parsed.ok) report([...at, list, k], parsed.message);
    });
  }
  if (service.accept_proxy !== true) {
    for (const key of ['accept_proxy_from', 'accept_proxy_timeout']) {
      if (service[key] !== undefined) report([...at, key], `${key} needs accept_proxy: true`, 'key');
    }
  }
  if (service.accept_proxy_timeout !== undefined) {
    const parsed = parseDuration(service.accept_proxy_timeout, 'accept_proxy_timeout', ACCEPT_PROXY_TIMEOUT_MAX_MS);
    if (!parsed.ok) report([...at, 'accept_proxy_timeout'], parsed.message);
  }
  if (limits) {
    const [rateKey, burstKey] = protocol === 'udp' ? ['datagram_rate', 'datagram_burst'] : ['connection_rate', 'connection_burst'];
    if (limits[burstKey] !== undefined && limits[rateKey] === undefined) {
      report([...at, 'client_limits', burstKey], `${burstKey} needs ${rateKey}`, 'key');
    }
    const limiting = protocol === 'udp' ? ['datagram_rate'] : ['max_connections', 'connection_rate'];
    if (!limiting.some((key) => limits[key] !== undefined)) {
      report([...at, 'client_limits'], `client_limits needs at least one of ${limiting.join(', ')}`, 'key');
    }
  }
  if (service.source === 'client' && typeof service.listen === 'string' && Array.isArray(service.backends)) {
    // A client's address can only be the source of a connection to a backend of its own family.
    const listenV4 = !service.listen.startsWith('[');
    const dualStack = service.listen.startsWith('[::]:') && service.ipv6_only !== true;
    if (dualStack) {
      // IPv4 and IPv6 clients at once: one of the two families could never reach the backends.
      report([...at, 'source'], `source: client on the dual-stack ${service.listen} takes IPv4 and IPv6 clients, and each can only reach backends of its own family; set ipv6_only: true (IPv6 backends) or listen on an IPv4 address`);
    }
    service.backends.forEach((backend, j) => {
      if (dualStack || !isRecord(backend) || typeof backend.address !== 'string') return;
      // An IPv4-mapped backend ([::ffff:a.b.c.d]) is IPv4.
      const backendV6 = backend.address.startsWith('[') && !/^\[::ffff:/i.test(backend.address);
      if (listenV4 && backendV6) {
        report([...at, 'backends', j, 'address'], `source: client connects from the client's IPv4 address and cannot reach IPv6 backend ${backend.address}`);
      } else if (!listenV4 && !backendV6) {
        report([...at, 'backends', j, 'address'], `source: client connects from the client's IPv6 address and cannot reach IPv4 backend ${backend.address}`);
      }
    });
  }
  return issues;
}

/** The typed settings; call only once admissionIssues() and the schema found nothing. */
export function buildAdmission(raw: RawAdmission): AdmissionSettings {
  const canonical = (list: string[] | undefined): string[] => (list ?? []).map((value) => {
    const parsed = parseCidr(value);
    if (!parsed.ok) throw new Error(`internal: unchecked prefix ${value}`);
    return parsed.cidr;
  });
  const timeout = parseDuration(raw.accept_proxy_timeout, 'accept_proxy_timeout', ACCEPT_PROXY_TIMEOUT_MAX_MS);
  if (!timeout.ok) throw new Error(`internal: unchecked accept_proxy_timeout ${String(raw.accept_proxy_timeout)}`);
  const limits = raw.client_limits;
  const udp = raw.protocol === 'udp';
  const rate = (udp ? limits?.datagram_rate : limits?.connection_rate) ?? 0;
  return {
    acceptProxy: raw.accept_proxy
      ? {
          from: raw.accept_proxy_from === undefined ? undefined : canonical(raw.accept_proxy_from),
          timeoutMs: timeout.ms,
        }
      : undefined,
    allow: canonical(raw.allow),
    deny: canonical(raw.deny),
    clientLimits: limits === undefined
      ? undefined
      : {
          maxConnections: limits.max_connections ?? 0,
          rate,
          burst: (udp ? limits.datagram_burst : limits.connection_burst) ?? rate,
          tableSize: limits.table_size,
        },
    source: raw.source,
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
