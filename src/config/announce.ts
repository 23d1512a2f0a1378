// The `announce:` and `sync:` blocks' checks that the schema cannot express:
// addresses parsed, durations bounded, every VIP served by some service,
// tracked services that exist, paths absolute, the sync key readable and long
// enough. Called by validate.ts once the schema has filled in defaults.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { ConfigIssue } from '../errors.js';
import { parseEndpoint } from './address.js';
import { parseDuration } from './duration.js';
import { parseIpv4 } from './ha.js';
import { DURATION_BOUNDS, type DurationBound, type DurationPath, type RawAnnounce } from './raw-types.js';
import type { ConfigPath, YamlSource } from './source.js';
import type { AnnounceConfig, Endpoint, SyncConfig } from './types.js';

/** Where Fulcrum keeps the BIRD files it owns, unless `announce.bird` says otherwise. */
export const BIRD_RUN_DIR = '/run/fulcrum';
/** HMAC-SHA256 keys shorter than this are refused. */
export const SYNC_KEY_MIN_BYTES = 16;


/** A service as the VIP check needs it: its name and listen host. */
export interface ListenSummary {
  name: string;
  host: string | undefined;
}

const WILDCARDS = new Set(['0.0.0.0', '::']);

/** The services a VIP's announcement depends on: those listening on it, else those on a wildcard address. */
export function servicesOfVip(vip: string, services: ReadonlyArray<{ name: string; listen: { host: string } }>): string[] {
  const exact = services.filter((s) => s.listen.host === vip).map((s) => s.name);
  return exact.length > 0 ? exact : services.filter((s) => WILDCARDS.has(s.listen.host)).map((s) => s.name);
}

export class AnnounceChecker {
  readonly #source: YamlSource;
  readonly #issues: ConfigIssue[] = [];
  readonly #durations = new Map<string, number>();
  #syncKey: Buffer | undefined;
  #syncKeyFile = '';
  readonly #endpoints = new Map<string, Endpoint>();

  constructor(source: YamlSource) {
    this.#source = source;
  }

  /** Issues in `announce` (wrong types were reported by the schema and are skipped). */
  checkAnnounce(block: Record<string, unknown>, services: readonly ListenSummary[]): ConfigIssue[] {
    const at: ConfigPath = ['announce'];
    this.#ipv4(block, [...at, 'local_address'], 'local_address');
    this.#ipv4(block, [...at, 'router_id'], 'router_id');
    if (Array.isArray(block.neighbors)) {
      const seen = new Set<string>();
      block.neighbors.forEach((n, i) => {
        if (typeof n !== 'object' || n === null) return;
        const address = this.#ipv4(n as Record<string, unknown>, [...at, 'neighbors', i, 'address'], 'neighbor address');
        if (address === undefined) return;
        if (address === block.local_address) this.#report([...at, 'neighbors', i, 'address'], `neighbor ${address} is local_address; expected the router's address`);
        else if (seen.has(address)) this.#report([...at, 'neighbors', i, 'address'], `duplicate neighbor ${address}`);
        seen.add(address);
      });
    }
    if (Array.isArray(block.vips)) {
      const seen = new Set<string>();
      block.vips.forEach((value, i) => {
        if (typeof value !== 'string') return;
        const path = [...at, 'vips', i];
        const vip = parseIpv4(value);
        if (vip === undefined) return this.#report(path, `bad VIP ${JSON.stringify(value)}: expected an IPv4 address such as 10.203.0.100 (announced as /32; IPv6 is not supported yet)`);
        if (seen.has(vip)) return this.#report(path, `duplicate VIP ${vip}`);
        seen.add(vip);
        const serving = services.filter((s) => s.host === vip || (s.host !== undefined && WILDCARDS.has(s.host)));
        if (serving.length === 0 && services.every((s) => s.host !== undefined)) {
          this.#report(path, `no service listens on VIP ${vip} (or on 0.0.0.0); expected a service with listen: ${vip}:PORT`);
        }
      });
    }
    this.#duration(block, 'announce.bfd_interval');
    this.#duration(block, 'announce.hold_time');
    this.#duration(block, 'announce.withdraw_grace');
    const track = block.track;
    if (typeof track === 'object' && track !== null && Array.isArray((track as Record<string, unknown>).services)) {
      const names = new Set(services.map((s) => s.name));
      ((track as Record<string, unknown>).services as unknown[]).forEach((name, i) => {
        if (typeof name === 'string' && !names.has(name)) {
          this.#report([...at, 'track', 'services', i], `tracked service "${name}" does not exist; expected one of: ${[...names].join(', ')}`);
        }
      });
    }
    const bird = block.bird;
    if (typeof bird === 'object' && bird !== null) {
      for (const key of ['config', 'socket'] as const) {
        const value = (bird as Record<string, unknown>)[key];
        if (typeof value === 'string' && !isAbsolute(value)) this.#report([...at, 'bird', key], `bird.${key} ${JSON.stringify(value)}: expected an absolute path`);
      }
    }
    return this.#issues;
  }

  /** Issues in `sync`. Reads key_file (relative to the config file) synchronously. */
  checkSync(block: Record<string, unknown>): ConfigIssue[] {
    const at: ConfigPath = ['sync'];
    const listen = this.#syncEndpoint(block.listen, [...at, 'listen']);
    if (Array.isArray(block.peers)) {
      const seen = new Set<string>();
      block.peers.forEach((value, i) => {
        const peer = this.#syncEndpoint(value, [...at, 'peers', i]);
        if (peer === undefined) return;
        if (listen !== undefined && peer.text === listen.text) this.#report([...at, 'peers', i], `peer ${peer.text} is this node's own sync.listen`);
        else if (seen.has(peer.host)) this.#report([...at, 'peers', i], `duplicate peer address ${peer.host} (peers are told apart by address)`);
        seen.add(peer.host);
      });
    }
    if (typeof block.key_file === 'string') {
      const file = resolve(dirname(resolve(this.#source.file)), block.key_file);
      try {
        const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'utf8');
        if (key.length < SYNC_KEY_MIN_BYTES) this.#report([...at, 'key_file'], `sync key in ${file} is ${key.length} bytes; expected at least ${SYNC_KEY_MIN_BYTES} (e.g. openssl rand -hex 32)`);
        else this.#syncKey = key;
      } catch (err) {
        this.#report([...at, 'key_file'], `cannot read sync key_file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      }
      this.#syncKeyFile = file;
    }
    this.#duration(block, 'sync.interval');
    this.#duration(block, 'sync.max_skew');
    return this.#issues;
  }

  /** The typed `announce:`; call only when the checks and the schema found nothing. */
  buildAnnounce(raw: RawAnnounce): AnnounceConfig {
    const local = parseIpv4(raw.local_address)!;
    return {
      localAddress: local,
      localAs: raw.local_as,
      routerId: raw.router_id === undefined ? local : parseIpv4(raw.router_id)!,
      neighbors: raw.neighbors.map((n) => ({ address: parseIpv4(n.address)!, as: n.as })),
      vips: raw.vips.map((v) => parseIpv4(v)!),
      interface: raw.interface,
      bfd: raw.bfd,
      bfdIntervalMs: this.#durations.get('announce.bfd_interval')!,
      bfdMultiplier: raw.bfd_multiplier,
      holdTimeMs: this.#durations.get('announce.hold_time')!,
      withdrawGraceMs: this.#durations.get('announce.withdraw_grace')!,
      track: { services: raw.track.services },
      bird: {
        run: raw.bird.run,
        config: raw.bird.config ?? `${BIRD_RUN_DIR}/bird-${local}.conf`,
        socket: raw.bird.socket ?? `${BIRD_RUN_DIR}/bird-${local}.ctl`,
        bird: raw.bird.bird,
        birdc: raw.bird.birdc,
      },
    };
  }

  /** The typed `sync:`; call only when the checks and the schema found nothing. */
  buildSync(): SyncConfig {
    const peers: Endpoint[] = [];
    for (const [key, endpoint] of this.#endpoints) if (key.startsWith('sync/peers/')) peers.push(endpoint);
    return {
      listen: this.#endpoints.get('sync/listen')!,
      peers,
      key: this.#syncKey!,
      keyFile: this.#syncKeyFile,
      intervalMs: this.#durations.get('sync.interval')!,
      maxSkewMs: this.#durations.get('sync.max_skew')!,
    };
  }

  #syncEndpoint(value: unknown, path: ConfigPath): Endpoint | undefined {
    if (typeof value !== 'string') return undefined;
    const result = parseEndpoint(value, 'backend');
    if (!result.ok) return this.#report(path, result.message);
    if (result.endpoint.family !== 4) return this.#report(path, `sync address ${result.endpoint.text}: expected IPv4:port (IPv6 is not supported yet)`);
    this.#endpoints.set(path.join('/'), result.endpoint);
    return result.endpoint;
  }

  #ipv4(block: Record<string, unknown>, path: ConfigPath, what: string): string | undefined {
    const value = block[path[path.length - 1] as string];
    if (typeof value !== 'string') return undefined;
    const address = parseIpv4(value);
    if (address === undefined) return this.#report(path, `bad ${what} ${JSON.stringify(value)}: expected an IPv4 address such as 10.201.0.1`);
    return address;
  }

  /** The duration at `path` (section.key), within the schema's bounds for it. */
  #duration(block: Record<string, unknown>, path: Extract<DurationPath, `announce.${string}` | `sync.${string}`>): void {
    const [section, key] = path.split('.') as [string, string];
    const value = block[key];
    if (value === undefined) return;
    const limits: DurationBound = DURATION_BOUNDS[path];
    const result = parseDuration(value, path, limits.maxMs, limits.zeroIsOff ? { zero: 'off' } : {});
    if (!result.ok) return void this.#report([section, key], result.message);
    if (result.ms !== 0 && result.ms < limits.minMs) return void this.#report([section, key], `${path} ${JSON.stringify(value)}: expected at least ${limits.minMs}ms`);
    this.#durations.set(path, result.ms);
  }

  #report(path: ConfigPath, message: string): undefined {
    this.#issues.push(this.#source.issue(path, message));
    return undefined;
  }
}
