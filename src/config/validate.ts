// Config validation: the structure through the JSON Schema (schema.ts), then
// what a schema cannot say, here: addresses and durations parsed, names and
// listen addresses unique, no backend twice in a service. Every issue found is
// reported; the typed config is built only when there are none.
import { availableParallelism } from 'node:os';
import type { ConfigIssue } from '../errors.js';
import { endpointsOverlap, isWildcard, parseEndpoint, type AddressRole } from './address.js';
import { describeValue } from './describe.js';
import { parseDuration } from './duration.js';
import { schemaIssues } from './schema.js';
import type { ConfigPath, YamlSource } from './source.js';
import type { BackendConfig, Balance, Endpoint, FulcrumConfig, Protocol, ServiceConfig } from './types.js';

/** Upper bounds for durations: beyond these a value is surely a mistake (and timers stay well within 2^31 ms). */
export const DURATION_LIMITS_MS = {
  drainTimeout: 24 * 3_600_000,
  connect: 3_600_000,
  idle: 7 * 86_400_000,
} as const;

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
  const checker = new SemanticChecker(source);
  const issues = [...schemaIssues(data, source), ...checker.check(data)];
  if (issues.length > 0) return failed(issues);
  return { ok: true, config: checker.build(data as unknown as RawConfig) };
}

/** The data once the schema accepted it and filled its defaults (YAML spelling). */
interface RawConfig {
  workers: 'auto' | number;
  drain_timeout: string | number;
  log: { level: FulcrumConfig['log']['level'] };
  services: RawService[];
}
interface RawService {
  name: string;
  protocol: Protocol;
  listen: string;
  balance: Balance;
  backends: { address: string; weight: number }[];
  timeouts: { connect: string | number; idle: string | number };
  retries: number;
}

interface ListenSeen {
  endpoint: Endpoint;
  protocol: unknown;
  service: string;
  line: number;
}

class SemanticChecker {
  readonly #source: YamlSource;
  readonly #issues: ConfigIssue[] = [];
  /** Parsed values by path (joined with "/"), so build() does not parse twice. */
  readonly #endpoints = new Map<string, Endpoint>();
  readonly #durations = new Map<string, number>();

  constructor(source: YamlSource) {
    this.#source = source;
  }

  /** Check what the schema cannot; values of the wrong type were reported by the schema and are skipped. */
  check(data: Record<string, unknown>): ConfigIssue[] {
    this.#duration(data, ['drain_timeout'], DURATION_LIMITS_MS.drainTimeout);
    const services = Array.isArray(data.services) ? (data.services as unknown[]) : [];
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
      if (listen !== undefined) this.#checkListen(listens, { endpoint: listen, protocol: service.protocol, service: label, line: this.#source.line([...at, 'listen']) }, at);
      if (isRecord(service.timeouts)) {
        this.#duration(service.timeouts, [...at, 'timeouts', 'connect'], DURATION_LIMITS_MS.connect);
        this.#duration(service.timeouts, [...at, 'timeouts', 'idle'], DURATION_LIMITS_MS.idle);
      }
      if (Array.isArray(service.backends)) this.#checkBackends(service.backends as unknown[], at, label);
    });
    return this.#issues;
  }

  /** The typed config; call only when check() and the schema found nothing. */
  build(raw: RawConfig): Omit<FulcrumConfig, 'file'> {
    return {
      workers: raw.workers === 'auto' ? availableParallelism() : raw.workers,
      drainTimeoutMs: this.#parsedDuration(['drain_timeout']),
      log: { level: raw.log.level },
      services: raw.services.map((s, i): ServiceConfig => ({
        name: s.name,
        protocol: s.protocol,
        listen: this.#parsedEndpoint(['services', i, 'listen']),
        balance: s.balance,
        backends: s.backends.map((b, j): BackendConfig => ({
          address: this.#parsedEndpoint(['services', i, 'backends', j, 'address']),
          weight: b.weight,
        })),
        timeouts: {
          connectMs: this.#parsedDuration(['services', i, 'timeouts', 'connect']),
          idleMs: this.#parsedDuration(['services', i, 'timeouts', 'idle']),
        },
        retries: s.retries,
      })),
    };
  }

  /** Two services may not take the same connections: same protocol and port, equal hosts or one a wildcard. */
  #checkListen(seen: ListenSeen[], current: ListenSeen, at: ConfigPath): void {
    const rivals = seen.filter((other) => other.protocol === current.protocol && endpointsOverlap(other.endpoint, current.endpoint));
    // An exact duplicate says more than an overlap with a wildcard.
    const clash = rivals.find((other) => other.endpoint.text === current.endpoint.text) ?? rivals[0];
    seen.push(current);
    if (clash === undefined) return;
    const mine = current.endpoint.text;
    const theirs = clash.endpoint.text;
    const message =
      mine === theirs
        ? `duplicate listen address ${mine} (also used by service ${clash.service} at line ${clash.line})`
        : `listen address ${mine} overlaps ${theirs} of service ${clash.service} at line ${clash.line}` +
          ` (${isWildcard(current.endpoint) ? mine : theirs} takes port ${current.endpoint.port} on every address)`;
    this.#report([...at, 'listen'], message);
  }

  #checkBackends(backends: unknown[], at: ConfigPath, service: string): void {
    const seen = new Map<string, number>();
    backends.forEach((backend, j) => {
      if (!isRecord(backend)) return;
      const path = [...at, 'backends', j, 'address'];
      const endpoint = this.#endpoint(backend, path, 'backend');
      if (endpoint === undefined) return;
      const first = seen.get(endpoint.text);
      if (first === undefined) seen.set(endpoint.text, j);
      else {
        const line = this.#source.line([...at, 'backends', first, 'address']);
        this.#report(path, `duplicate backend ${endpoint.text} in service ${service} (also at line ${line})`);
      }
    });
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

  #duration(parent: Record<string, unknown>, path: ConfigPath, maxMs: number): void {
    const value = parent[String(path.at(-1))];
    if (value === undefined) return;
    const what = path.filter((s) => typeof s === 'string' && s !== 'services').join('.');
    const result = parseDuration(value, what, maxMs);
    if (!result.ok) this.#report(path, result.message);
    else this.#durations.set(path.join('/'), result.ms);
  }

  #parsedEndpoint(path: ConfigPath): Endpoint {
    const endpoint = this.#endpoints.get(path.join('/'));
    if (endpoint === undefined) throw new Error(`internal: no parsed address at ${path.join('/')}`);
    return endpoint;
  }

  #parsedDuration(path: ConfigPath): number {
    const ms = this.#durations.get(path.join('/'));
    if (ms === undefined) throw new Error(`internal: no parsed duration at ${path.join('/')}`);
    return ms;
  }

  #report(path: ConfigPath, message: string): undefined {
    this.#issues.push(this.#source.issue(path, message));
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function failed(issues: ConfigIssue[]): ValidationResult {
  return { ok: false, issues };
}
