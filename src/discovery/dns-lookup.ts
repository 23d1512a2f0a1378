// One resolution of a backend entry that names DNS records, with node's
// dns.Resolver (c-ares; no DNS parsing here):
//   host NAME:PORT   every A and AAAA record of NAME, at PORT
//   srv NAME         every target of the SRV record, each resolved to its
//                    A/AAAA records, at the record's port, with its weight
// and the TTL to re-resolve at. Node reports TTLs for A/AAAA answers only
// (resolve4/resolve6 with { ttl: true }), not for SRV: an SRV answer is
// re-resolved at the smallest TTL of its targets' A/AAAA records, which is
// when the addresses it gave can change at the latest; the configured floor
// and ceiling (resolvers.min_ttl / max_ttl) bound it either way.
import type { Resolver } from 'node:dns/promises';
import { parseEndpoint } from '../config/address.js';
import type { DiscoveryEntry, Endpoint } from '../config/types.js';

/** One address an answer gave, with the SRV record it came from (srv entries only). */
export interface ResolvedAddress {
  endpoint: Endpoint;
  /** srv: the record's weight (0..65535) and priority (lowest is preferred). */
  srvWeight?: number;
  srvPriority?: number;
}

export type LookupResult =
  | { ok: true; addresses: ResolvedAddress[]; /** seconds; undefined: no record said */ ttlSeconds: number | undefined }
  | { ok: false; error: string };

/** SRV targets resolved at once (a 1,000-record answer must not send 2,000 queries together). */
const TARGET_CONCURRENCY = 32;

/** Resolve `entry` once. Never throws: a failure is { ok: false, error } with the resolver's code. */
export async function lookup(resolver: Resolver, entry: Pick<DiscoveryEntry, 'kind' | 'name' | 'port'>): Promise<LookupResult> {
  try {
    if (entry.kind === 'host') {
      const host = await hostAddresses(resolver, entry.name);
      if (!host.ok) return host;
      return { ok: true, addresses: host.ips.map((ip) => ({ endpoint: endpointOf(ip, entry.port) })), ttlSeconds: host.ttlSeconds };
    }
    const records = await resolver.resolveSrv(entry.name);
    if (records.length === 0) return { ok: false, error: `${entry.name}: no SRV records` };
    // One lookup per distinct target: many records often share a host (one port per game server).
    const targets = [...new Set(records.map((r) => r.name.toLowerCase()))];
    const resolved = new Map<string, Awaited<ReturnType<typeof hostAddresses>>>();
    for (let i = 0; i < targets.length; i += TARGET_CONCURRENCY) {
      const batch = targets.slice(i, i + TARGET_CONCURRENCY);
      const answers = await Promise.all(batch.map((t) => hostAddresses(resolver, t)));
      batch.forEach((t, j) => resolved.set(t, answers[j]!));
    }
    const addresses: ResolvedAddress[] = [];
    let ttlSeconds: number | undefined;
    const failures: string[] = [];
    for (const record of records) {
      const host = resolved.get(record.name.toLowerCase())!;
      if (!host.ok) {
        failures.push(host.error);
        continue;
      }
      if (host.ttlSeconds !== undefined) ttlSeconds = Math.min(ttlSeconds ?? Infinity, host.ttlSeconds);
      for (const ip of host.ips) addresses.push({ endpoint: endpointOf(ip, record.port), srvWeight: record.weight, srvPriority: record.priority });
    }
    if (addresses.length === 0) return { ok: false, error: `${entry.name}: no target resolved (${[...new Set(failures)].join('; ')})` };
    return { ok: true, addresses, ttlSeconds };
  } catch (err) {
    return { ok: false, error: `${entry.kind === 'srv' ? 'SRV ' : ''}${entry.name}: ${describe(err)}` };
  }
}

/** Every A and AAAA address of `name`, and the smallest TTL among them. A name with neither is a failure. */
async function hostAddresses(resolver: Resolver, name: string): Promise<{ ok: true; ips: string[]; ttlSeconds: number | undefined } | { ok: false; error: string }> {
  const [v4, v6] = await Promise.allSettled([resolver.resolve4(name, { ttl: true }), resolver.resolve6(name, { ttl: true })]);
  const records = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
  if (records.length === 0) {
    // ENODATA for one family is normal; report the more telling error.
    const errors = [v4, v6].flatMap((r) => (r.status === 'rejected' ? [describe(r.reason)] : []));
    const telling = errors.find((e) => !e.startsWith('ENODATA')) ?? errors[0] ?? 'no A or AAAA records';
    return { ok: false, error: `${name}: ${telling}` };
  }
  return { ok: true, ips: records.map((r) => r.address), ttlSeconds: Math.min(...records.map((r) => r.ttl)) };
}

function endpointOf(ip: string, port: number): Endpoint {
  const text = ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
  const parsed = parseEndpoint(text, 'backend');
  // c-ares hands back numeric addresses; anything else is a bug worth seeing.
  if (!parsed.ok) throw new Error(`internal: resolver answer ${text}: ${parsed.message}`);
  return parsed.endpoint;
}

/** `ECONNREFUSED (queryA)` style: the resolver's code, which says what happened. */
function describe(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  if (typeof e.code === 'string') return e.code === 'ENOTFOUND' ? 'ENOTFOUND (no such name)' : e.code === 'ETIMEOUT' ? 'ETIMEOUT (no answer from the DNS servers)' : e.code === 'ECONNREFUSED' ? 'ECONNREFUSED (DNS server not reachable)' : e.code;
  return typeof e.message === 'string' ? e.message : String(err);
}
