// Config validation: the structure through the JSON Schema (schema.ts), then
// what a schema cannot say, here: addresses and durations parsed, names and
// listen addresses unique, no backend twice in a service, at least one
// non-backup backend, Maglev keys only with balance: maglev and its table size
// a prime. Every issue found is reported; the typed config is built only when
// there are none, from the data the schema filled with its defaults (typed by
// raw-types.ts, generated from the schema). What is derived from other keys
// (a queue's timeout from the connect timeout...) is resolved here.
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import type { ConfigIssue } from '../errors.js';
import { endpointsOverlap, isWildcard, parseBackendTarget, parseEndpoint, type AddressRole } from './address.js';
import { describeValue } from './describe.js';
import { AnnounceChecker } from './announce.js';
import { HaChecker } from './ha.js';
import { formatDuration, parseDuration } from './duration.js';
import { checkAdmin } from './admin.js';
import { buildConnectionLog, connectionLogIssues } from './connection-log.js';
import { admissionIssues, buildAdmission } from './admission.js';
import { buildHealthCheck, buildPassive, healthIssues } from './health-check.js';
import { DURATION_BOUNDS, SCHEMA_BOUNDS, SCHEMA_ENUMS, type RawConfig, type RawService } from './raw-types.js';
import { checkSchema } from './schema.js';
import { parseNatPorts, udpServiceIssues } from './udp.js';
import type { Anchor, ConfigPath, YamlSource } from './source.js';
import type { BackendConfig, DiscoveryEntry, Endpoint, FulcrumConfig, ResolversConfig, ServiceConfig } from './types.js';
import type { RawBackend, RawResolvers } from './raw-types.js';

/** The schema's bounds for maglev_table_size (both primes). */
const MAGLEV_TABLE_RANGE = SCHEMA_BOUNDS['service.maglev_table_size'];

export type ValidationResult =
  | { ok: true; config: Omit<FulcrumConfig, 'file'> }
  | { ok: false; issues: ConfigIssue[] };

/** Validate the YAML data of `source` (its toData(); mutated: defaults are filled in). */
export function validateConfig(data: unknown, source: YamlSource): ValidationResult {
  if (data === null || data === undefined) {
    return failed([source.issue([], 'the config is empty; expected a mapping with at least a "services" list')]);
  }
  if (!isRecord(data)) {
    return failed([source.issue([], `the top level must be a mapping (workers, drain_timeout, log, services), got ${describeValue(data)}`)]);
  }
  // Checks on whether a key was written must not see the schema's defaults.
  const written = structuredClone(data);
  const checker = new SemanticChecker(source);
  const udpIssues = udpServiceIssues(written, source);
  const schema = checkSchema(data, source);
  const issues = [...udpIssues, ...(schema.ok ? [] : schema.issues), ...checker.check(data, written)];
  const admin = checkAdmin(data.admin, source);
  issues.push(...admin.issues);
  if (!schema.ok || issues.length > 0 || admin.admin === undefined) return failed(issues);
  return { ok: true, config: { ...checker.build(schema.config), admin: admin.admin } };
}

interface ListenSeen {
  endpoint: Endpoint;
  /** [::] without ipv6_only: takes the port on every IPv4 address too. */
  dualStack: boolean;
  protocol: unknown;
  service: string;
  line: number;
}

class SemanticChecker {
  readonly #source: YamlSource;
  readonly #issues: ConfigIssue[] = [];
  /** Parsed values by path (joined with "/"), so build() does not parse twice. */
  readonly #endpoints = new Map<string, Endpoint>();
  /** Backend entries that name DNS records, by the path of the entry (joined with "/"). */
  readonly #names = new Map<string, { kind: 'host' | 'srv'; name: string; port: number }>();
  /** The services as the file wrote them (no defaults), by index. */
  #writtenServices: unknown[] = [];
  readonly #durations = new Map<string, number>();
  readonly #ha: HaChecker;
  readonly #announce: AnnounceChecker;

  constructor(source: YamlSource) {
    this.#source = source;
    this.#ha = new HaChecker(source);
    this.#announce = new AnnounceChecker(source);
  }

  /**
   * Check what the schema cannot; values of the wrong type were reported by
   * the schema and are skipped. `data` has the schema's defaults filled in,
   * `written` is the same data as the file has it (for keys that are allowed
   * only with others).
   */
  check(data: Record<string, unknown>, written: Record<string, unknown>): ConfigIssue[] {
    this.#duration(data, ['drain_timeout'], DURATION_BOUNDS.drain_timeout.maxMs);
    const services = Array.isArray(data.services) ? (data.services as unknown[]) : [];
    const writtenServices = Array.isArray(written.services) ? (written.services as unknown[]) : [];
    this.#writtenServices = writtenServices;
    if (isRecord(data.resolvers)) this.#checkResolvers(data.resolvers);
    const names = new Map<string, number>();
    const listens: ListenSeen[] = [];
    services.forEach((service, i) => {
      if (!isRecord(service)) return;
      const at: ConfigPath = ['services', i];
      const name = typeof service.name === 'string' ? service.name : undefined;
      const label = name === undefined ? `services[${i}]` : `"${name}"`;
      if (name !== undefined) {
        const first = names.get(name);
        if (first === undefined) names.set(name, i);
        else this.#report([...at, 'name'], `duplicate service name "${name}" (also at line ${this.#source.line(['services', first, 'name'])})`);
      }
      const listen = this.#endpoint(service, [...at, 'listen'], 'listen');
      if (listen !== undefined) {
        const dualStack = listen.host === '::' && service.ipv6_only !== true;
        this.#checkListen(listens, { endpoint: listen, dualStack, protocol: service.protocol, service: label, line: this.#source.line([...at, 'listen']) }, at);
        if (service.ipv6_only === true && listen.family === 4) {
          this.#report([...at, 'ipv6_only'], `ipv6_only applies to an IPv6 listen address such as [::]:${listen.port}; ${listen.text} is IPv4`);
        }
      }
      if (isRecord(service.timeouts)) {
        this.#duration(service.timeouts, [...at, 'timeouts', 'connect'], DURATION_BOUNDS['service.timeouts.connect'].maxMs);
        // 0 is "never" for tcp; a UDP flow must end when idle.
        this.#duration(service.timeouts, [...at, 'timeouts', 'idle'], DURATION_BOUNDS['service.timeouts.idle'].maxMs, service.protocol === 'udp' ? undefined : 'off');
      }
      if (isRecord(service.tcp_keepalive)) {
        for (const key of ['idle', 'interval'] as const) {
          const bound = DURATION_BOUNDS[`service.tcp_keepalive.${key}`];
          this.#duration(service.tcp_keepalive, [...at, 'tcp_keepalive', key], bound.maxMs, undefined, bound.minMs);
        }
      }
      this.#duration(service, [...at, 'slow_start'], DURATION_BOUNDS['service.slow_start'].maxMs, 'off');
      if (isRecord(service.queue)) this.#duration(service.queue, [...at, 'queue', 'timeout'], DURATION_BOUNDS['service.queue.timeout'].maxMs);
      if (isRecord(service.sticky)) this.#duration(service.sticky, [...at, 'sticky', 'timeout'], DURATION_BOUNDS['service.sticky.timeout'].maxMs);
      this.#duration(service, [...at, 'drain_timeout'], DURATION_BOUNDS['service.drain_timeout'].maxMs, 'off');
      if (Array.isArray(service.backends)) this.#checkBackends(service.backends as unknown[], at, label);
      const writtenService = isRecord(writtenServices[i]) ? writtenServices[i] : {};
      this.#checkMaglev(service, writtenService, at);
      this.#issues.push(...healthIssues(service, at, this.#source));
      this.#issues.push(...admissionIssues(writtenService, at, this.#source));
      if (writtenService.postgres_cancel !== undefined && writtenService.protocol === 'udp') {
        this.#report([...at, 'postgres_cancel'], 'postgres_cancel does not apply to protocol: udp (a PostgreSQL cancel request is a TCP connection)', 'key');
      }
      if (writtenService.relay !== undefined && writtenService.protocol === 'udp') {
        this.#report([...at, 'relay'], 'relay does not apply to protocol: udp (it chooses how TCP streams are relayed)', 'key');
      }
    });
    if (isRecord(data.ha)) this.#issues.push(...this.#ha.check(data.ha, new Set(names.keys())));
    if (isRecord(data.announce)) {
      const listening = services.map((service, i) => ({
        name: isRecord(service) && typeof service.name === 'string' ? service.name : `services[${i}]`,
        host: this.#endpoints.get(['services', i, 'listen'].join('/'))?.host,
      }));
      this.#issues.push(...this.#announce.checkAnnounce(data.announce, listening));
    }
    if (isRecord(data.sync)) this.#issues.push(...this.#announce.checkSync(data.sync));
    if (isRecord(data.connection_log)) this.#issues.push(...connectionLogIssues(data.connection_log, this.#source));
    return this.#issues;
  }

  /** The typed config; call only when check() and the schema found nothing. */
  build(raw: RawConfig): Omit<FulcrumConfig, 'file' | 'admin'> {
    return {
      workers: raw.workers === 'auto' ? availableParallelism() : raw.workers,
      drainTimeoutMs: this.#parsedDuration(['drain_timeout']),
      log: { level: raw.log.level, format: raw.log.format },
      connectionLog: buildConnectionLog(raw.connection_log, dirname(resolve(this.#source.file))),
      services: raw.services.map((s, i) => this.#buildService(s, ['services', i])),
      resolvers: this.#buildResolvers(raw.resolvers),
      ...(raw.ha === undefined ? {} : { ha: this.#ha.build(raw.ha) }),
      ...(raw.announce === undefined ? {} : { announce: this.#announce.buildAnnounce(raw.announce) }),
      ...(raw.sync === undefined ? {} : { sync: this.#announce.buildSync() }),
    };
  }

  /** One service, with the defaults that come from elsewhere resolved (queue timeout, slow start). */
  #buildService(s: RawService, at: ConfigPath): ServiceConfig {
    const connectMs = this.#parsedDuration([...at, 'timeouts', 'connect']);
    const serviceSlowStartMs = this.#parsedDuration([...at, 'slow_start']);
    const backendSettings = (b: RawBackend, j: number): Omit<BackendConfig, 'address'> => ({
      weight: b.weight,
      backup: b.backup,
      maxConnections: b.max_connections ?? 0,
      slowStartMs: this.#optionalDuration([...at, 'backends', j, 'slow_start']) ?? serviceSlowStartMs,
      ...withHealthCheck(s.health_check, b.health_check),
      sendProxy: b.send_proxy ?? s.send_proxy,
    });
    const writtenBackends = (this.#writtenServices[Number(at[1])] as { backends?: unknown[] } | undefined)?.backends ?? [];
    const discovery = s.backends.flatMap((b, j): DiscoveryEntry[] => {
      const named = this.#names.get([...at, 'backends', j].join('/'));
      if (named === undefined) return [];
      const label = named.kind === 'srv' ? `srv:${named.name}` : `${named.name}:${named.port}`;
      const weightWritten = isRecord(writtenBackends[j]) && writtenBackends[j].weight !== undefined;
      return [{ ...named, label, template: backendSettings(b, j), weightWritten }];
    });
    return {
      name: s.name,
      protocol: s.protocol,
      listen: this.#parsedEndpoint([...at, 'listen']),
      ipv6Only: s.ipv6_only && this.#parsedEndpoint([...at, 'listen']).family === 6,
      balance: s.balance,
      backends: s.backends.flatMap((b, j): BackendConfig[] =>
        this.#names.has([...at, 'backends', j].join('/')) ? [] : [{ address: this.#parsedEndpoint([...at, 'backends', j, 'address']), ...backendSettings(b, j) }],
      ),
      ...(discovery.length > 0 ? { discovery } : {}),
      written: withoutKey(this.#writtenServices[Number(at[1])], 'backends'),
      timeouts: {
        connectMs,
        idleMs: this.#parsedDuration([...at, 'timeouts', 'idle']),
      },
      tcpKeepalive:
        s.protocol === 'tcp' && typeof s.tcp_keepalive === 'object'
          ? {
              idleMs: this.#parsedDuration([...at, 'tcp_keepalive', 'idle']),
              intervalMs: this.#parsedDuration([...at, 'tcp_keepalive', 'interval']),
              // The schema's if/then filled it in (Ajv fills no default inside anyOf).
              count: s.tcp_keepalive.count!,
            }
          : undefined,
      retries: s.retries,
      hashKey: s.hash_key,
      maglevTableSize: s.maglev_table_size,
      queue: {
        size: s.queue.size,
        timeoutMs: this.#optionalDuration([...at, 'queue', 'timeout']) ?? connectMs,
      },
      sticky:
        s.sticky === undefined
          ? undefined
          : { key: s.sticky.key, timeoutMs: this.#parsedDuration([...at, 'sticky', 'timeout']), size: s.sticky.size },
      drainTimeoutMs: this.#parsedDuration([...at, 'drain_timeout']),
      ...(s.passive === undefined ? {} : { passive: buildPassive(s.passive)! }),
      udp: { maxFlows: s.max_flows, responses: s.udp.responses, datapath: s.datapath, natPorts: parseNatPorts(s.udp.nat_ports) ?? { first: 20000, count: 10000 } },
      ...buildAdmission(s),
      postgresCancel: s.postgres_cancel,
      relay: s.relay,
    };
  }

  /** resolvers: servers are IP or IP:port; max_ttl at least min_ttl. */
  #checkResolvers(resolvers: Record<string, unknown>): void {
    for (const key of ['timeout', 'min_ttl', 'max_ttl', 'retry'] as const) {
      const bound = DURATION_BOUNDS[`resolvers.${key}`];
      this.#duration(resolvers, ['resolvers', key], bound.maxMs, undefined, bound.minMs);
    }
    if (Array.isArray(resolvers.servers)) {
      resolvers.servers.forEach((server, i) => {
        if (typeof server !== 'string') return;
        if (isIPv4Or6(server)) return;
        const parsed = parseEndpoint(server, 'backend');
        if (!parsed.ok) this.#report(['resolvers', 'servers', i], `bad DNS server ${JSON.stringify(server)}: expected an IP address, IP:port or [v6]:port`);
      });
    }
    const min = this.#durations.get('resolvers/min_ttl');
    const max = this.#durations.get('resolvers/max_ttl');
    if (min !== undefined && max !== undefined && max < min) {
      this.#report(['resolvers', 'max_ttl'], `resolvers.max_ttl ${formatDuration(max)} is below min_ttl ${formatDuration(min)}`);
    }
  }

  #buildResolvers(raw: RawResolvers): ResolversConfig {
    return {
      servers: raw.servers,
      timeoutMs: this.#parsedDuration(['resolvers', 'timeout']),
      tries: raw.tries,
      minTtlMs: this.#parsedDuration(['resolvers', 'min_ttl']),
      maxTtlMs: this.#parsedDuration(['resolvers', 'max_ttl']),
      retryMs: this.#parsedDuration(['resolvers', 'retry']),
    };
  }

  /** Two services may not take the same connections: same protocol and port, equal hosts or one a wildcard. */
  #checkListen(seen: ListenSeen[], current: ListenSeen, at: ConfigPath): void {
    const rivals = seen.filter((other) => other.protocol === current.protocol && listensOverlap(other, current));
    // An exact duplicate says more than an overlap with a wildcard.
    const clash = rivals.find((other) => other.endpoint.text === current.endpoint.text) ?? rivals[0];
    seen.push(current);
    if (clash === undefined) return;
    const mine = current.endpoint.text;
    const theirs = clash.endpoint.text;
    const port = current.endpoint.port;
    const dual = current.endpoint.family !== clash.endpoint.family ? (current.dualStack ? current : clash) : undefined;
    const message =
      mine === theirs
        ? `duplicate listen address ${mine} (also used by service ${clash.service} at line ${clash.line})`
        : dual !== undefined
          ? `listen address ${mine} overlaps ${theirs} of service ${clash.service} at line ${clash.line}` +
            ` (${dual.endpoint.text} is dual-stack: it takes port ${port} on every IPv4 address too; set ipv6_only: true on ${dual.service} to keep it to IPv6)`
          : `listen address ${mine} overlaps ${theirs} of service ${clash.service} at line ${clash.line}` +
            ` (${isWildcard(current.endpoint) ? mine : theirs} takes port ${port} on every address)`;
    this.#report([...at, 'listen'], message);
  }

  #checkBackends(backends: unknown[], at: ConfigPath, service: string): void {
    const seen = new Map<string, number>();
    const records = backends.filter(isRecord);
    // Backups serve only while a primary is not available: with no primary at all they would be plain backends.
    if (records.length > 0 && records.length === backends.length && records.every((b) => b.backup === true)) {
      this.#report([...at, 'backends'], `every backend of service ${service} is a backup; at least one must not be`, 'key');
    }
    backends.forEach((backend, j) => {
      if (!isRecord(backend)) return;
      this.#duration(backend, [...at, 'backends', j, 'slow_start'], DURATION_BOUNDS['backend.slow_start'].maxMs, 'off');
      const entry = [...at, 'backends', j];
      if ((backend.address === undefined) === (backend.srv === undefined)) {
        const message = backend.address === undefined ? 'a backend needs an address (host:port) or an srv record name' : 'a backend has an address or an srv record name, not both';
        this.#report(entry, message, 'key');
        return;
      }
      const key = backend.srv !== undefined ? 'srv' : 'address';
      const path = [...entry, key];
      let text: string;
      if (typeof backend.srv === 'string') {
        const name = backend.srv.toLowerCase().replace(/\.$/, '');
        this.#names.set(entry.join('/'), { kind: 'srv', name, port: 0 });
        text = `srv:${name}`;
      } else {
        if (typeof backend.address !== 'string') return; // the schema reported it
        const target = parseBackendTarget(backend.address);
        if (!target.ok) return void this.#report(path, target.message);
        if ('name' in target) {
          this.#names.set(entry.join('/'), { kind: 'host', name: target.name, port: target.port });
          text = `${target.name}:${target.port}`;
        } else {
          this.#endpoints.set(path.join('/'), target.endpoint);
          text = target.endpoint.text;
        }
      }
      const first = seen.get(text);
      if (first === undefined) seen.set(text, j);
      else {
        const line = this.#source.line([...at, 'backends', first, key]);
        this.#report(path, `duplicate backend ${text} in service ${service} (also at line ${line})`);
      }
    });
  }

  /**
   * hash_key and maglev_table_size belong to balance: maglev (`written`: the
   * service as the file has it, without the schema's defaults); the table size
   * must be a prime (the Maglev permutation needs it) larger than the backend
   * count. Values the schema rejected (type, range) are not checked again.
   */
  #checkMaglev(service: Record<string, unknown>, written: Record<string, unknown>, at: ConfigPath): void {
    const balance = service.balance;
    if (typeof balance !== 'string' || !(SCHEMA_ENUMS['service.balance'] as readonly string[]).includes(balance)) return; // the schema reported it
    if (balance !== 'maglev') {
      for (const key of ['hash_key', 'maglev_table_size']) {
        if (written[key] !== undefined) {
          this.#report([...at, key], `${key} applies only to balance: maglev (this service has balance: ${balance})`, 'key');
        }
      }
      return;
    }
    const size = service.maglev_table_size;
    if (typeof size !== 'number' || !Number.isInteger(size) || size < MAGLEV_TABLE_RANGE.minimum || size > MAGLEV_TABLE_RANGE.maximum) return;
    const path = [...at, 'maglev_table_size'];
    if (!isPrime(size)) {
      const [below, above] = nearestPrimes(size);
      this.#report(path, `maglev_table_size ${size} must be a prime; nearest primes are ${below} and ${above}`);
      return;
    }
    const backends = Array.isArray(service.backends) ? service.backends.length : 0;
    if (size <= backends) {
      this.#report(path, `maglev_table_size ${size} must be larger than the number of backends (${backends})`);
    }
  }

  /** Parse the address at `path` (the last segment is the key in `parent`); undefined when absent or bad. */
  #endpoint(parent: Record<string, unknown>, path: ConfigPath, role: AddressRole): Endpoint | undefined {
    const value = parent[String(path.at(-1))];
    if (value === undefined) return undefined; // missing: the schema reported it
    const result = parseEndpoint(value, role);
    if (!result.ok) return this.#report(path, result.message);
    this.#endpoints.set(path.join('/'), result.endpoint);
    return result.endpoint;
  }

  /** Parse the duration at `path` when present; `zero: 'off'` where 0 turns the feature off. */
  #duration(parent: Record<string, unknown>, path: ConfigPath, maxMs: number, zero?: 'off', minMs = 1): void {
    const value = parent[String(path.at(-1))];
    if (value === undefined) return;
    const what = path.filter((s) => typeof s === 'string' && s !== 'services').join('.');
    const result = parseDuration(value, what, maxMs, zero === undefined ? {} : { zero });
    if (!result.ok) this.#report(path, result.message);
    else if (result.ms > 0 && result.ms < minMs) this.#report(path, `${what} ${JSON.stringify(value)}: expected at least ${formatDuration(minMs)}`);
    else this.#durations.set(path.join('/'), result.ms);
  }

  #parsedEndpoint(path: ConfigPath): Endpoint {
    const endpoint = this.#endpoints.get(path.join('/'));
    if (endpoint === undefined) throw new Error(`internal: no parsed address at ${path.join('/')}`);
    return endpoint;
  }

  #parsedDuration(path: ConfigPath): number {
    const ms = this.#optionalDuration(path);
    if (ms === undefined) throw new Error(`internal: no parsed duration at ${path.join('/')}`);
    return ms;
  }

  /** The parsed duration at `path`, undefined when the key was absent (and the schema has no default for it). */
  #optionalDuration(path: ConfigPath): number | undefined {
    return this.#durations.get(path.join('/'));
  }

  #report(path: ConfigPath, message: string, anchor: Anchor = 'value'): undefined {
    this.#issues.push(this.#source.issue(path, message, anchor));
    return undefined;
  }
}

/** Trial division: table sizes are at most ~4.2M, so at most ~1000 divisions. */
export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/** The largest prime below `n` and the smallest above it (prime gaps here are under 200). */
export function nearestPrimes(n: number): [number, number] {
  let below = n - 1;
  while (below > 2 && !isPrime(below)) below--;
  let above = n + 1;
  while (!isPrime(above)) above++;
  return [below, above];
}

/** `{ healthCheck }` when the backend has an active check, else nothing (the key stays absent). */
function withHealthCheck(serviceCheck: unknown, backendCheck: unknown): Pick<BackendConfig, 'healthCheck'> {
  const healthCheck = buildHealthCheck(serviceCheck, backendCheck);
  return healthCheck === undefined ? {} : { healthCheck };
}

function isIPv4Or6(text: string): boolean {
  return isIP(text) !== 0;
}

/** A copy of the mapping `value` without `key` (an empty mapping when it is not one). */
function withoutKey(value: unknown, key: string): Record<string, unknown> {
  if (!isRecord(value)) return {};
  const { [key]: _dropped, ...rest } = value;
  return rest;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function failed(issues: ConfigIssue[]): ValidationResult {
  return { ok: false, issues };
}

/** Two listens take the same connections: endpointsOverlap, or a dual-stack [::] and an IPv4 address on the same port. */
function listensOverlap(a: ListenSeen, b: ListenSeen): boolean {
  if (endpointsOverlap(a.endpoint, b.endpoint)) return true;
  const takesIpv4 = (dual: ListenSeen, other: ListenSeen): boolean => dual.dualStack && other.endpoint.family === 4 && dual.endpoint.port === other.endpoint.port;
  return takesIpv4(a, b) || takesIpv4(b, a);
}
