// The data plane as the control plane sees it. Owns the native engine (its
// threads and sockets), turns validated configs into native snapshots with
// stable slots, reads counters from shared memory and re-emits worker events
// with names instead of slots.
import { EventEmitter } from 'node:events';
import { availableParallelism } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FulcrumConfig, ServiceConfig } from '../config/types.js';
import { CounterReader, type AdmissionField, type AdmissionTotals, type TrafficTotals, type UdpTotals } from './counter-reader.js';
import {
  loadNative,
  NativeBackendState,
  type NativeEngine,
  type NativeEvent,
  type NativeServiceSpec,
} from './native.js';
import { SlotTable } from './slot-table.js';
import { decodeSlotRecords, encodeSlotRecords, type SessionRecord, type SlotRecord } from './sync-records.js';

/**
 * up: takes new connections. down: takes none (health checks say so); open
 * ones continue. drain: takes none; open ones continue until the service's
 * drain_timeout, then are closed. maint: an operator took it out; open ones continue.
 */
export type BackendState = 'up' | 'down' | 'drain' | 'maint';

export interface TrafficCounters {
  /** Client connections accepted (service) or connections established to it (backend). */
  accepted: number;
  /** Connections open now. */
  active: number;
  /** Service: clients closed because no backend could be reached. Backend: failed connect attempts. */
  failed: number;
  /** Bytes client → backend. */
  bytesIn: number;
  /** Bytes backend → client. */
  bytesOut: number;
}

/** A protocol: udp backend's datagrams (its TrafficCounters count flows: accepted = flows created,
 * active = flows open, failed = ICMP unreachable answers and send errors). */
export interface UdpBackendStats {
  datagramsIn: number;
  datagramsOut: number;
}

/** A protocol: udp service's flow table, summed over the workers. */
export interface UdpServiceStats {
  /** Datagrams client → backend and backend → client that were forwarded. */
  datagramsIn: number;
  datagramsOut: number;
  /** Received but not forwarded: no flow could be had, truncated, a full socket buffer, beyond `udp.responses`. */
  datagramsDropped: number;
  flowsCreated: number;
  flowsActive: number;
  /** Ended after timeouts.idle without a datagram either way. */
  flowsExpired: number;
  /** Ended to make room under max_flows (the longest idle). */
  flowsEvicted: number;
  /** Ended after `udp.responses` replies. */
  flowsCompleted: number;
  /** Sent to another backend because theirs went down, refused (ICMP) or left the config. */
  flowsMoved: number;
  /** New flows that could not be created: no backend available, max_flows with nothing to evict, no socket. */
  flowsDropped: number;
}

/** Who a service let in: clients refused before any backend was touched, and
 * PROXY protocol headers read. TCP counts connections (each also in the
 * service's `accepted`, never in `failed`); UDP counts datagrams. */
export type AdmissionStats = AdmissionTotals;

export interface BackendStats extends TrafficCounters {
  address: string;
  /** protocol: udp services only. */
  udp?: UdpBackendStats;
  /** The weight in effect (the config's, or one set since with setBackendWeight). */
  weight: number;
  backup: boolean;
  state: BackendState;
}

export interface ServiceStats extends TrafficCounters {
  /** Clients that waited in the queue for a backend with room. */
  queued: number;
  /** Clients turned away: every backend full and the queue too, or the queue timeout passed. */
  refused: number;
  /** The part of `refused` that waited the whole queue timeout. */
  queueTimeouts: number;
  name: string;
  listen: string;
  protocol: 'tcp' | 'udp';
  /** protocol: udp services only. */
  udp?: UdpServiceStats;
  admission: AdmissionStats;
  backends: BackendStats[];
}

export interface EngineStats {
  services: ServiceStats[];
  /** Empty pipes kept in the workers' pools (each holds two fds). */
  pooledPipes: number;
  /** Times accepting was paused because the process ran out of file descriptors. */
  acceptPauses: number;
}

/** Something the data plane reports (batched, delivered on the JS thread). */
export interface EngineEvent {
  type: 'connect_failed' | 'listener_error' | 'accept_paused' | 'accept_resumed' | 'source_bind_failed' | 'client_refused' | 'events_dropped';
  service?: string;
  backend?: string;
  /** errno name, e.g. ECONNREFUSED, ETIMEDOUT, EMFILE. */
  code?: string;
  worker?: number;
  count?: number;
  /** client_refused: who (address:port; the PROXY header's client once one was read) and why
   * (the admission counter that counted it: denied, overConnections, overRate, proxyMissing,
   * proxyMalformed, proxyTimeout); `suppressed`: refusals on that worker not reported since its
   * previous client_refused event (at most 10 events a second per worker). */
  client?: string;
  reason?: AdmissionField;
  suppressed?: number;
}

export interface EngineOptions {
  /** Worker threads; defaults to os.availableParallelism(). */
  workers?: number;
}

const backendKey = (service: string, address: string): string => `${service}\u0000${address}`;
const DRAIN_POLL_MS = 50;
const APPLY_BOUND_MS = 5000;

/**
 * The data plane. Owns the native engine's threads and sockets; the JS side
 * only hands it configs and reads counters. Emits 'event' (EngineEvent).
 */
export class Engine extends EventEmitter {
  readonly #native: NativeEngine;
  readonly #counters: CounterReader;
  readonly #serviceSlots: SlotTable;
  readonly #backendSlots: SlotTable;
  /** Counter values a reused slot had when it was handed out, subtracted in stats(). */
  readonly #baselines = new Map<string, TrafficTotals>();
  /** The same for the datagram counters of protocol: udp. */
  readonly #udpBaselines = new Map<string, UdpTotals>();
  /** The same for services' admission counters. */
  readonly #admissionBaselines = new Map<string, AdmissionTotals>();
  readonly #states = new Map<number, BackendState>();
  /** Weights set at run time, by backend slot (the config's weight otherwise). */
  readonly #weights = new Map<number, number>();
  /** Drained backends' pending close of their open connections, by slot. */
  readonly #drainTimers = new Map<number, NodeJS.Timeout>();
  /** Backends a reload removed that still had connections, by key: their slot is
   * held (not reused) until the pending close of those connections (see #retire). */
  readonly #retiring = new Map<string, NodeJS.Timeout>();
  #config: FulcrumConfig | undefined;
  #eventsDropped = 0;
  /** Generation of the last snapshot handed to the workers. */
  #generation = 0;
  #stopped = false;

  private constructor(native: NativeEngine) {
    super();
    this.#native = native;
    const { counterLayout } = loadNative();
    this.#counters = new CounterReader(native.counters, counterLayout, native.workers);
    this.#serviceSlots = new SlotTable(counterLayout.maxServices);
    this.#backendSlots = new SlotTable(counterLayout.maxBackends);
  }

  static start(options: EngineOptions = {}): Engine {
    const addon = loadNative();
    const workers = options.workers ?? availableParallelism();
    let engine: Engine | undefined;
    const native = new addon.Engine({ workers, onEvents: (events) => {
        if (engine) engine.#onNativeEvents(events);
      },
    });
    engine = new Engine(native);
    return engine;
  }

  get workers(): number {
    return this.#native.workers;
  }

  /** Bind new listeners, keep ones that stay, close removed ones; open connections are untouched.
   * Throws an Error whose `code` is the errno name (EADDRINUSE...) and, when a
   * listener failed, whose `service` names its service; the running config
   * stays in place. */
  apply(config: FulcrumConfig): void {
    this.#assertRunning();
    const acquired: Array<{ table: SlotTable; key: string }> = [];
    const acquire = (table: SlotTable, key: string, baselineOf?: (slot: number) => TrafficTotals): number => {
      const { slot, isNew } = table.acquire(key);
      if (isNew) {
        acquired.push({ table, key });
        if (baselineOf) this.#baselines.set(key, baselineOf(slot));
        if (baselineOf) this.#udpBaselines.set(key, table === this.#serviceSlots ? this.#counters.udpService(slot) : this.#counters.udpBackend(slot));
        if (baselineOf && table === this.#serviceSlots) this.#admissionBaselines.set(key, this.#counters.admission(slot));
      }
      return slot;
    };
    let services: NativeServiceSpec[];
    try {
      // Listeners on a VIP bind before this node holds it (IP_FREEBIND): VRRP's, and the announced ones.
      const virtualIps = new Set([...(config.ha?.virtualIps.map((vip) => vip.address) ?? []), ...(config.announce?.vips ?? [])]);
      services = config.services.map((service) => this.#serviceSpec(service, acquire, virtualIps, config.sync !== undefined));
      this.#generation = this.#native.apply({ services });
    } catch (error) {
      for (const { table, key } of acquired) {
        table.release(key);
        this.#baselines.delete(key);
        this.#udpBaselines.delete(key);
        this.#admissionBaselines.delete(key);
      }
      throw error;
    }
    // New backends start up (a reused slot may still say down).
    for (const service of services) {
      for (const backend of service.backends) {
        if (!this.#states.has(backend.slot)) this.#setState(backend.slot, 'up');
      }
    }
    this.#releaseRemoved(config);
    // A new config's weights are the config's.
    this.#weights.clear();
    this.#config = config;
  }

  /** Set a backend's state. `drain` takes it out of rotation and, after the
   * service's drain timeout, closes the connections it still has. */
  setBackendState(service: string, backend: string, state: BackendState): void {
    this.#assertRunning();
    const slot = this.#slotOf(service, backend);
    this.#setState(slot, state);
    if (state !== 'drain') return;
    const timeoutMs = this.#config!.services.find((s) => s.name === service)!.drainTimeoutMs;
    const timer = setTimeout(() => {
      this.#drainTimers.delete(slot);
      if (!this.#stopped && this.#states.get(slot) === 'drain') this.#native.closeBackendConnections(slot);
    }, timeoutMs);
    timer.unref();
    this.#drainTimers.set(slot, timer);
  }

  /** Change a backend's weight (0..256) at run time; 0 takes no new
   * connections. Its service's pickers are rebuilt; open connections and
   * listeners are untouched. The config's weight returns on the next apply(). */
  setBackendWeight(service: string, backend: string, weight: number): void {
    this.#assertRunning();
    if (!Number.isInteger(weight) || weight < 0 || weight > 256) {
      throw Object.assign(new RangeError(`weight must be an integer from 0 to 256, got ${weight}`), { code: 'FULCRUM_ERR_RANGE' });
    }
    const slot = this.#slotOf(service, backend);
    this.#generation = this.#native.setBackendWeight(slot, weight);
    this.#weights.set(slot, weight);
  }

  #slotOf(service: string, backend: string): number {
    const slot = this.#backendSlots.get(backendKey(service, backend));
    if (slot === undefined) {
      throw Object.assign(new Error(`no backend ${backend} in service ${service}`), { code: 'FULCRUM_ERR_NOT_FOUND' });
    }
    return slot;
  }

  /** True once stop() ran: the data plane serves nothing (HA tracking reads it). */
  get stopped(): boolean {
    return this.#stopped;
  }

  stats(): EngineStats {
    const services = (this.#config?.services ?? []).map((service): ServiceStats => {
      const slot = this.#serviceSlots.get(service.name)!;
      const udp = service.protocol === 'udp';
      const serviceTraffic = this.#traffic(service.name, this.#counters.service(slot));
      return {
        name: service.name,
        listen: service.listen.text,
        protocol: service.protocol,
        ...serviceTraffic,
        ...(udp ? { udp: this.#udpServiceStats(service.name, slot, serviceTraffic) } : {}),
        admission: this.#since(this.#admissionBaselines.get(service.name), this.#counters.admission(slot)),
        backends: service.backends.map((backend): BackendStats => {
          const key = backendKey(service.name, backend.address.text);
          const backendSlot = this.#backendSlots.get(key)!;
          const { queued: _q, refused: _r, queueTimeouts: _t, ...traffic } = this.#traffic(key, this.#counters.backend(backendSlot));
          return {
            address: backend.address.text,
            weight: this.#weights.get(backendSlot) ?? backend.weight,
            backup: backend.backup,
            state: this.#states.get(backendSlot) ?? 'up',
            ...traffic,
            ...(udp ? { udp: this.#udpBackendStats(key, backendSlot) } : {}),
          };
        }),
      };
    });
    return {
      services,
      pooledPipes: this.#counters.worker('pooledPipes'),
      acceptPauses: this.#counters.worker('acceptPauses'),
    };
  }

  /** Connections open across all services. */
  activeConnections(): number {
    let active = 0;
    for (const name of this.#serviceSlots.keys()) {
      active += this.#counters.service(this.#serviceSlots.get(name)!).active;
    }
    return active;
  }

  /** Resolves once every worker runs the last applied snapshot: new
   * listeners accept there, removed ones are closed. (apply() binds new
   * listeners before it returns, so connects queue even before this.) */
  async whenApplied(): Promise<void> {
    // Workers take a snapshot within one turn of their loop; the bound only
    // guards against a wedged worker turning a stop or reload into a hang.
    const deadline = Date.now() + APPLY_BOUND_MS;
    while (!this.#stopped && this.#counters.workerMin('appliedGeneration') < this.#generation && Date.now() < deadline) {
      await sleep(1);
    }
  }

  /** Close every listener. Resolves once every worker has closed its
   * sockets, so a connect made after that is refused. Open connections go on. */
  async closeListeners(): Promise<void> {
    if (this.#stopped) return;
    this.#generation = this.#native.apply({ services: [] });
    await this.whenApplied();
  }

  /** closeListeners(), then wait until open connections finish or `timeoutMs` passes.
   * Resolves true when all finished; connections still open are left for stop(). */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    await this.closeListeners();
    while (this.activeConnections() > 0) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await sleep(Math.min(DRAIN_POLL_MS, left));
    }
    return true;
  }

  /** Session entries (sticky, UDP flows) recorded since the last call, named for peers; `dropped`
   * overflowed the native journal since then (`dumpDropped`: records of a full copy that did not fit;
   * `dumpPending`: parts of one that workers have yet to add). Entries of services or backends a
   * reload removed are skipped. */
  takeSessionRecords(): { records: SessionRecord[]; dropped: number; dumpDropped: number; dumpPending: number } {
    if (this.#stopped) return { records: [], dropped: 0, dumpDropped: 0, dumpPending: 0 };
    const taken = this.#native.takeSync();
    const services = new Map<number, ServiceConfig>();
    for (const service of this.#config?.services ?? []) services.set(this.#serviceSlots.get(service.name)!, service);
    const records: SessionRecord[] = [];
    for (const r of decodeSlotRecords(taken.records)) {
      const service = services.get(r.serviceSlot);
      const backend = service?.backends.find((b) => this.#backendSlots.get(backendKey(service.name, b.address.text)) === r.backendSlot);
      if (service === undefined || backend === undefined) continue;
      records.push({ kind: r.kind, service: service.name, backend: backend.address.text, ageMs: r.ageMs, key: r.key, ...(r.dump && { dump: r.dump }) });
    }
    return { records, dropped: taken.dropped, dumpDropped: taken.dumpDropped, dumpPending: taken.dumpPending };
  }

  /** One round of a full copy of the session state for peers (native Engine::dump_sync): the live
   * entries of sync services whose key's top 16 bits are in [from, to) of 65536 come out of later
   * takeSessionRecords() calls flagged `dump`. Returns how many were added at once. */
  dumpSessionRecords(from: number, to: number): number {
    if (this.#stopped) return 0;
    return this.#native.dumpSync(from, to);
  }

  /** Install peers' entries: returns how many took effect and how many name a service or
   * backend this node does not run (configs differ between the nodes). */
  installSessionRecords(records: readonly SessionRecord[]): { installed: number; unknown: number } {
    if (this.#stopped || records.length === 0) return { installed: 0, unknown: 0 };
    const slotted: SlotRecord[] = [];
    let unknown = 0;
    for (const r of records) {
      const serviceSlot = this.#serviceSlots.get(r.service);
      const backendSlot = this.#backendSlots.get(backendKey(r.service, r.backend));
      if (serviceSlot === undefined || backendSlot === undefined) {
        unknown++;
        continue;
      }
      slotted.push({ kind: r.kind, serviceSlot, backendSlot, ageMs: r.ageMs, key: r.key });
    }
    const installed = slotted.length > 0 ? this.#native.installSync(encodeSlotRecords(slotted)) : 0;
    return { installed, unknown };
  }

  /** Close everything and join the worker threads. Idempotent. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const timer of this.#drainTimers.values()) clearTimeout(timer);
    this.#drainTimers.clear();
    for (const timer of this.#retiring.values()) clearTimeout(timer);
    this.#retiring.clear();
    this.#native.stop();
  }

  #serviceSpec(
    service: ServiceConfig,
    acquire: (table: SlotTable, key: string, baselineOf?: (slot: number) => TrafficTotals) => number,
    virtualIps: ReadonlySet<string>,
    sync: boolean,
  ): NativeServiceSpec {
    return {
      slot: acquire(this.#serviceSlots, service.name, (slot) => this.#counters.service(slot)),
      name: service.name,
      protocol: service.protocol,
      freebind: virtualIps.has(service.listen.host),
      maxFlows: service.udp.maxFlows,
      udpResponses: service.udp.responses,
      listenHost: service.listen.host,
      listenPort: service.listen.port,
      balance: service.balance,
      hashKey: service.hashKey,
      maglevTableSize: service.maglevTableSize,
      connectTimeoutMs: service.timeouts.connectMs,
      idleTimeoutMs: service.timeouts.idleMs,
      retries: service.retries,
      queueSize: service.queue.size,
      queueTimeoutMs: service.queue.timeoutMs,
      sticky: service.sticky ? { size: service.sticky.size, timeoutMs: service.sticky.timeoutMs } : null,
      acceptProxy: service.acceptProxy !== undefined,
      acceptProxyFrom: service.acceptProxy?.from ?? null,
      acceptProxyTimeoutMs: service.acceptProxy?.timeoutMs ?? 3000,
      allow: service.allow,
      deny: service.deny,
      clientLimits: service.clientLimits ?? null,
      transparent: service.source === 'client',
      sync,
      backends: service.backends.map((backend) => ({
        slot: acquire(this.#backendSlots, backendKey(service.name, backend.address.text), (slot) =>
          this.#counters.backend(slot),
        ),
        host: backend.address.host,
        port: backend.address.port,
        weight: backend.weight,
        backup: backend.backup,
        maxConnections: backend.maxConnections,
        slowStartMs: backend.slowStartMs,
        sendProxy: backend.sendProxy,
      })),
    };
  }

  /** Frees the slots of services and backends the new config no longer has. */
  #releaseRemoved(config: FulcrumConfig): void {
    const serviceNames = new Set(config.services.map((s) => s.name));
    const backendKeys = new Set(
      config.services.flatMap((s) => s.backends.map((b) => backendKey(s.name, b.address.text))),
    );
    for (const name of [...this.#serviceSlots.keys()]) {
      if (!serviceNames.has(name)) this.#serviceSlots.release(name);
    }
    for (const key of [...this.#backendSlots.keys()]) {
      if (backendKeys.has(key)) {
        // Back before its retirement ended: it keeps its slot and its open connections.
        clearTimeout(this.#retiring.get(key));
        this.#retiring.delete(key);
        continue;
      }
      if (this.#retiring.has(key)) continue;
      const slot = this.#backendSlots.get(key)!;
      if (this.#counters.backend(slot).active > 0) this.#retire(key, slot);
      else this.#freeBackend(key, slot);
    }
  }

  /** A removed backend drains: it takes no new connections (the snapshot no
   * longer has it); its open ones may continue for its service's drain_timeout
   * (the config it was removed from), then are closed and the slot is freed. */
  #retire(key: string, slot: number): void {
    const serviceName = key.slice(0, key.indexOf('\u0000'));
    const timeoutMs = this.#config?.services.find((s) => s.name === serviceName)?.drainTimeoutMs ?? 0;
    const timer = setTimeout(() => {
      this.#retiring.delete(key);
      if (this.#stopped) return;
      this.#native.closeBackendConnections(slot);
      this.#freeBackend(key, slot);
    }, timeoutMs);
    timer.unref();
    this.#retiring.set(key, timer);
  }

  #freeBackend(key: string, slot: number): void {
    this.#backendSlots.release(key);
    this.#states.delete(slot);
  }

  #setState(slot: number, state: BackendState): void {
    clearTimeout(this.#drainTimers.get(slot));
    this.#drainTimers.delete(slot);
    this.#native.setBackendState(slot, NativeBackendState[state]);
    this.#states.set(slot, state);
  }

  #udpServiceStats(name: string, slot: number, traffic: TrafficTotals): UdpServiceStats {
    const u = this.#udpTotals(name, this.#counters.udpService(slot));
    return {
      datagramsIn: u.datagramsIn,
      datagramsOut: u.datagramsOut,
      datagramsDropped: u.datagramsDropped,
      flowsCreated: traffic.accepted,
      flowsActive: traffic.active,
      flowsExpired: u.flowsExpired,
      flowsEvicted: u.flowsEvicted,
      flowsCompleted: u.flowsCompleted,
      flowsMoved: u.flowsMoved,
      flowsDropped: traffic.failed,
    };
  }

  #udpBackendStats(key: string, slot: number): UdpBackendStats {
    const u = this.#udpTotals(key, this.#counters.udpBackend(slot));
    return { datagramsIn: u.datagramsIn, datagramsOut: u.datagramsOut };
  }

  #udpTotals(key: string, raw: UdpTotals): UdpTotals {
    return this.#since(this.#udpBaselines.get(key), raw);
  }

  /** Counters minus the baseline a reused slot started from. */
  #since<T extends Record<string, number>>(base: T | undefined, raw: T): T {
    if (!base) return raw;
    const counted = { ...raw };
    for (const field of Object.keys(raw) as Array<keyof T>) counted[field] = (raw[field]! - base[field]!) as T[keyof T];
    return counted;
  }

  /** Counters minus the baseline a reused slot started from (gauges are not baselined). */
  #traffic(key: string, raw: TrafficTotals): TrafficTotals {
    const base = this.#baselines.get(key);
    if (!base) return raw;
    const counted = { ...raw };
    for (const field of Object.keys(raw) as Array<keyof TrafficTotals>) {
      if (field !== 'active') counted[field] = raw[field] - base[field];
    }
    return counted;
  }

  #onNativeEvents(events: NativeEvent[]): void {
    const serviceNames = new Map<number, string>();
    for (const name of this.#serviceSlots.keys()) serviceNames.set(this.#serviceSlots.get(name)!, name);
    const backendNames = new Map<number, string>();
    for (const key of this.#backendSlots.keys()) {
      backendNames.set(this.#backendSlots.get(key)!, key.slice(key.indexOf('\u0000') + 1));
    }
    for (const event of events) {
      const named: EngineEvent = { type: event.type, worker: event.worker };
      if (event.serviceSlot !== undefined) named.service = serviceNames.get(event.serviceSlot);
      if (event.backendSlot !== undefined) named.backend = backendNames.get(event.backendSlot);
      if (event.code !== undefined) named.code = event.code;
      if (event.type === 'client_refused') {
        named.client = event.client;
        named.reason = this.#counters.admissionField(event.reason ?? -1);
        named.suppressed = event.suppressed;
      }
      this.emit('event', named);
    }
    const dropped = this.#counters.global('eventsDropped');
    if (dropped > this.#eventsDropped) {
      this.emit('event', { type: 'events_dropped', count: dropped - this.#eventsDropped } satisfies EngineEvent);
      this.#eventsDropped = dropped;
    }
  }

  #assertRunning(): void {
    if (this.#stopped) {
      throw Object.assign(new Error('the engine is stopped'), { code: 'FULCRUM_ERR_STOPPED' });
    }
  }
}
