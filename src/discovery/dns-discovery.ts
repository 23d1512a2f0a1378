// DNS discovery: keeps every backend entry that names DNS records resolved,
// and says when the set of addresses changed. JS thread only.
//
// Per entry (a service's `address: NAME:PORT` or `srv: NAME`), one watch:
//   resolve -> answer   the addresses replace the last ones; next try at the
//                       answer's TTL, clamped to [min_ttl, max_ttl]
//           -> failure  the last good answer stays (none yet: the entry has
//                       no backends, the service runs with the rest); next
//                       try `retry` later; logged once per run of failures
// An entry kept by a reload keeps its watch and its last answer (its timer
// too); an entry a reload adds is resolved at once; a removed one stops.
// `onChange` runs after an answer that changed some entry's addresses; the
// runtime then applies the new backend set (runtime.ts, through the same
// path a reload takes, so removed addresses drain and sticky/Maglev
// placements of the others stay).
import { Resolver } from 'node:dns/promises';
import type { BackendConfig, DiscoveryEntry, FulcrumConfig, ResolversConfig } from '../config/types.js';
import type { Logger } from '../logger.js';
import { lookup, type ResolvedAddress } from './dns-lookup.js';

/** What the status page, `fulcrum status` and /metrics show for one entry. */
export interface DnsEntryStatus {
  service: string;
  /** `db.internal:5432` or `srv:_pg._tcp.example` */
  name: string;
  kind: 'host' | 'srv';
  /** The addresses in force (the last good answer), canonical `ip:port`. */
  addresses: string[];
  /** Epoch ms of the last answer, of the last failure. */
  lastAnswerAt?: number;
  lastFailureAt?: number;
  /** Why the last resolution failed, while it is the latest outcome. */
  error?: string;
  /** Failed resolutions since start. */
  failures: number;
  /** Resolutions since start (answers and failures). */
  resolutions: number;
  /** The TTL the last answer gave, in seconds (SRV: its targets' smallest A/AAAA TTL). */
  ttlSeconds?: number;
  /** Epoch ms of the next resolution. */
  nextAt?: number;
}

class Watch {
  readonly entry: DiscoveryEntry;
  readonly status: DnsEntryStatus;
  /** The backends of the last good answer, in answer order. */
  backends: BackendConfig[] = [];
  timer: NodeJS.Timeout | undefined;
  running = false;
  stopped = false;

  constructor(service: string, entry: DiscoveryEntry) {
    this.entry = entry;
    this.status = { service, name: entry.label, kind: entry.kind, addresses: [], failures: 0, resolutions: 0 };
  }
}

export class DnsDiscovery {
  readonly #logger: Logger;
  readonly #onChange: () => void;
  #resolver: Resolver;
  #settings: ResolversConfig;
  /** By `service\0label\0settings`: a changed template is a new watch. */
  #watches = new Map<string, Watch>();
  #stopped = false;

  constructor(settings: ResolversConfig, logger: Logger, onChange: () => void) {
    this.#logger = logger;
    this.#onChange = onChange;
    this.#settings = settings;
    this.#resolver = makeResolver(settings);
  }

  /** Start watches for the entries `config` adds, stop those it removed, keep the rest. */
  update(config: Pick<FulcrumConfig, 'services' | 'resolvers'>): void {
    const settings = config.resolvers ?? this.#settings;
    if (JSON.stringify(settings) !== JSON.stringify(this.#settings)) {
      this.#settings = settings;
      this.#resolver.cancel();
      this.#resolver = makeResolver(settings);
    }
    const next = new Map<string, Watch>();
    for (const service of config.services) {
      for (const entry of service.discovery ?? []) {
        const key = `${service.name}\0${entry.label}\0${JSON.stringify(entry.template)}\0${entry.weightWritten}`;
        const kept = this.#watches.get(key);
        if (kept !== undefined) {
          next.set(key, kept);
          continue;
        }
        const watch = new Watch(service.name, entry);
        next.set(key, watch);
        this.#logger.info({ service: service.name, dns: entry.label }, 'dns: resolving a backend name');
        void this.#resolve(watch);
      }
    }
    for (const [key, watch] of this.#watches) if (!next.has(key)) this.#stopWatch(watch);
    this.#watches = next;
  }

  /** The backends DNS gives `service` now (the last good answer of each of its entries). */
  backendsOf(service: string): BackendConfig[] {
    return [...this.#watches.values()].filter((w) => w.status.service === service).flatMap((w) => w.backends);
  }

  status(): DnsEntryStatus[] {
    return [...this.#watches.values()].map((w) => ({ ...w.status, addresses: [...w.status.addresses] }));
  }

  /** Resolve every entry now (tests, `fulcrum backend` has no such command: this is for the API's refresh). */
  refreshAll(): void {
    for (const watch of this.#watches.values()) {
      if (watch.running) continue;
      clearTimeout(watch.timer);
      void this.#resolve(watch);
    }
  }

  stop(): void {
    this.#stopped = true;
    for (const watch of this.#watches.values()) this.#stopWatch(watch);
    this.#resolver.cancel();
  }

  #stopWatch(watch: Watch): void {
    watch.stopped = true;
    clearTimeout(watch.timer);
  }

  async #resolve(watch: Watch): Promise<void> {
    watch.running = true;
    const result = await lookup(this.#resolver, watch.entry);
    watch.running = false;
    if (watch.stopped || this.#stopped) return;
    const status = watch.status;
    const now = Date.now();
    status.resolutions++;
    let delayMs: number;
    let changed = false;
    if (result.ok) {
      const backends = toBackends(watch.entry, result.addresses);
      const addresses = backends.map((b) => b.address.text);
      changed = JSON.stringify(backends) !== JSON.stringify(watch.backends);
      if (status.error !== undefined) this.#logger.info({ service: status.service, dns: status.name, addresses: addresses.length }, 'dns: resolving works again');
      watch.backends = backends;
      status.addresses = addresses;
      status.lastAnswerAt = now;
      delete status.error;
      status.ttlSeconds = result.ttlSeconds;
      const ttlMs = (result.ttlSeconds ?? 0) * 1000;
      delayMs = Math.min(this.#settings.maxTtlMs, Math.max(this.#settings.minTtlMs, ttlMs));
      if (changed) this.#logger.info({ service: status.service, dns: status.name, addresses, ttl: result.ttlSeconds }, `dns: ${status.name} gives ${addresses.length} address${addresses.length === 1 ? '' : 'es'}`);
    } else {
      status.failures++;
      status.lastFailureAt = now;
      const first = status.error === undefined;
      status.error = result.error;
      delayMs = this.#settings.retryMs;
      if (first) {
        const kept = status.addresses.length === 0 ? 'no address yet: the entry has no backends until it resolves' : `keeping the last good answer (${status.addresses.length} address${status.addresses.length === 1 ? '' : 'es'})`;
        this.#logger.warn({ service: status.service, dns: status.name, error: result.error, retryMs: delayMs }, `dns: cannot resolve ${status.name}: ${result.error}; ${kept}`);
      }
    }
    status.nextAt = now + delayMs;
    watch.timer = setTimeout(() => void this.#resolve(watch), delayMs);
    watch.timer.unref();
    if (changed) this.#onChange();
  }
}

/**
 * The backends an answer gives: the entry's settings at each address. srv:
 * the record's weight (capped to 1..256) unless the file wrote one; targets
 * of the lowest priority are primaries, higher priorities backups (RFC 2782:
 * the lowest priority is tried first). An address given twice counts once.
 * In address order (see the end).
 */
function toBackends(entry: DiscoveryEntry, addresses: ResolvedAddress[]): BackendConfig[] {
  const origin = { kind: 'dns' as const, name: entry.label };
  const lowest = Math.min(...addresses.map((a) => a.srvPriority ?? 0));
  const seen = new Set<string>();
  const backends: BackendConfig[] = [];
  for (const a of addresses) {
    if (seen.has(a.endpoint.text)) continue;
    seen.add(a.endpoint.text);
    const weight = entry.kind === 'srv' && !entry.weightWritten ? Math.min(256, Math.max(1, a.srvWeight ?? 1)) : entry.template.weight;
    const backup = entry.template.backup || (entry.kind === 'srv' && (a.srvPriority ?? 0) > lowest);
    backends.push({ ...entry.template, address: a.endpoint, weight, backup, origin });
  }
  // Servers rotate the order of equal records between answers: sorted, the same records are the same answer.
  return backends.sort((x, y) => (x.address.text < y.address.text ? -1 : x.address.text > y.address.text ? 1 : 0));
}

function makeResolver(settings: ResolversConfig): Resolver {
  const resolver = new Resolver({ timeout: settings.timeoutMs, tries: settings.tries });
  if (settings.servers !== undefined) resolver.setServers(settings.servers);
  return resolver;
}
