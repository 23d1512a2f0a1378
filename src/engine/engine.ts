// The data plane as the control plane sees it. Owns the native engine (its
// threads and sockets) and wires its parts: slots for services and backends
// (slots.ts), the native snapshot of a config (snapshot.ts), counters read
// from shared memory less the baselines of reused slots (counter-reader.ts,
// baselines.ts) and reported as stats (stats.ts), and worker events re-emitted
// with names instead of slots.
import { EventEmitter } from 'node:events';
import { availableParallelism } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_CONNECTION_LOG } from '../config/connection-log.js';
import { SCHEMA_BOUNDS } from '../config/raw-types.js';
import type { FulcrumConfig, ServiceConfig } from '../config/types.js';
import { EngineStopped, OutOfRange, UnknownBackend } from '../errors.js';
import { CounterBaselines } from './baselines.js';
import { CounterReader, type AdmissionField } from './counter-reader.js';
import { decodeConnectionStats, type ServiceConnectionStats } from './connection-stats.js';
import { addKernelPolicyCounts } from './udp-kernel-policy-counts.js';
import { loadNative, NativeBackendState, type ConnectionLogCounters, type NativeEngine, type NativeEvent, type UdpDatapathStatus } from './native.js';
import { backendKey } from './backend-key.js';
import type { ConnectionBudget } from './fd-budget.js';
import { EngineSlots } from './slots.js';
import { snapshot } from './snapshot.js';
import {
  pickFields,
  CONNECTION_FIELDS,
  udpServiceStats,
  type BackendState,
  type BackendStats,
  type EngineStats,
  type ServiceStats,
} from './stats.js';
import { decodeSlotRecords, encodeSlotRecords, type SessionRecord, type SlotRecord } from './sync-records.js';

/** Something the data plane reports (batched, delivered on the JS thread). */
export interface EngineEvent {
  /** The worker events (NativeEvent's, named as native/engine/event_sink.h names them), and events_dropped. */
  type: NativeEvent['type'] | 'events_dropped';
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
  /** Stop accepting at budget.maxConnections open TCP connections (src/engine/fd-budget.ts); no cap without it. */
  budget?: ConnectionBudget;
}

const DRAIN_POLL_MS = 50;
const APPLY_BOUND_MS = 5000;

/**
 * The data plane. Owns the native engine's threads and sockets; the JS side
 * only hands it configs and reads counters. Emits 'event' (EngineEvent).
 */
export class Engine extends EventEmitter {
  readonly #native: NativeEngine;
  readonly #counters: CounterReader;
  readonly #slots: EngineSlots;
  readonly #baselines: CounterBaselines;
  readonly #states = new Map<number, BackendState>();
  /** Weights set at run time, by backend slot (the config's weight otherwise). */
  readonly #weights = new Map<number, number>();
  /** Drained backends' pending forced close (services with a drain_timeout), by slot. */
  readonly #drainTimers = new Map<number, NodeJS.Timeout>();
  #config: FulcrumConfig | undefined;
  #eventsDropped = 0;
  /** Generation of the last snapshot handed to the workers. */
  #generation = 0;
  #stopped = false;

  /** The connection budget the engine runs with, if any. */
  readonly budget: ConnectionBudget | undefined;

  private constructor(native: NativeEngine, budget: ConnectionBudget | undefined) {
    super();
    this.#native = native;
    this.budget = budget;
    const { counterLayout } = loadNative();
    this.#counters = new CounterReader(native.counters, counterLayout, native.workers);
    this.#baselines = new CounterBaselines(this.#counters);
    this.#slots = new EngineSlots(counterLayout, {
      activeConnections: (slot) => this.#counters.backend(slot).active,
      closeConnections: (slot) => this.#native.closeBackendConnections(slot, 'removed'),
      freed: (slot) => this.#states.delete(slot),
    });
  }

  static start(options: EngineOptions = {}): Engine {
    const addon = loadNative();
    const workers = options.workers ?? availableParallelism();
    let engine: Engine | undefined;
    const native = new addon.Engine({ workers, maxConnections: options.budget?.maxConnections ?? 0, onEvents: (events) => {
        if (engine) engine.#onNativeEvents(events);
      },
    });
    engine = new Engine(native, options.budget);
    return engine;
  }

  /** What each protocol: udp service runs on: the kernel datapath (with its counters) or the relay, and why. */
  udpDatapaths(): UdpDatapathStatus[] {
    if (this.#stopped) return [];
    return this.#native.udpDatapaths();
  }

  get workers(): number {
    return this.#native.workers;
  }

  /** When each worker's event loop last turned (CLOCK_MONOTONIC ms, as
   * monotonicMs() reads it; 0 before its first turn). An idle worker still
   * turns at least once a second, so an old value means a stuck worker. */
  workerLoopTimesMs(): number[] {
    return this.#stopped ? [] : this.#native.workerLoopTimes();
  }

  /** Tests only: worker `worker`'s event loop sleeps `ms` (the watchdog's stuck-worker test). */
  stallWorkerForTest(worker: number, ms: number): void {
    this.#assertRunning();
    this.#native.stallWorkerForTest(worker, ms);
  }

  /** Bind new listeners, keep ones that stay, close removed ones; open connections are untouched.
   * Throws an Error whose `code` is the errno name (EADDRINUSE...) and, when a
   * listener failed, whose `service` names its service; the running config
   * stays in place. */
  apply(config: FulcrumConfig): void {
    this.#assertRunning();
    const assignment = this.#slots.assign(config);
    for (const fresh of assignment.fresh) this.#baselines.capture(fresh);
    const built = snapshot(config, assignment.slots);
    try {
      // The log's output first: a file that cannot be opened rejects the config whole.
      this.#native.configureConnectionLog(config.connectionLog);
      this.#generation = this.#native.apply(built);
    } catch (error) {
      assignment.rollback();
      for (const { key } of assignment.fresh) this.#baselines.forget(key);
      this.#native.configureConnectionLog(this.#config?.connectionLog ?? { ...DEFAULT_CONNECTION_LOG, output: 'off' });
      throw error;
    }
    // New backends start up (a reused slot may still say down).
    for (const service of built.services) {
      for (const backend of service.backends) {
        if (!this.#states.has(backend.slot)) this.#setState(backend.slot, 'up');
      }
    }
    this.#slots.settle(config, this.#config);
    // A new config's weights are the config's.
    this.#weights.clear();
    this.#config = config;
  }

  /** Set a backend's state. `drain` takes it out of rotation (sticky clients
   * still reach it); its open connections continue until they end, unless the
   * service has a drain_timeout: then those still open after it are closed. */
  setBackendState(service: string, backend: string, state: BackendState): void {
    this.#assertRunning();
    const slot = this.#slotOf(service, backend);
    this.#setState(slot, state);
    if (state !== 'drain') return;
    const timeoutMs = this.#config!.services.find((s) => s.name === service)!.drainTimeoutMs;
    if (timeoutMs === 0) return;
    const timer = setTimeout(() => {
      this.#drainTimers.delete(slot);
      if (!this.#stopped && this.#states.get(slot) === 'drain') this.#native.closeBackendConnections(slot, 'drain');
    }, timeoutMs);
    timer.unref();
    this.#drainTimers.set(slot, timer);
  }

  /** Change a backend's weight (0..256) at run time; 0 takes no new
   * connections. Its service's pickers are rebuilt; open connections and
   * listeners are untouched. The config's weight returns on the next apply(). */
  setBackendWeight(service: string, backend: string, weight: number): void {
    this.#assertRunning();
    const { minimum, maximum } = SCHEMA_BOUNDS['backend.weight'];
    if (!Number.isInteger(weight) || weight < minimum || weight > maximum) {
      throw new OutOfRange(`weight must be an integer from ${minimum} to ${maximum}, got ${weight}`);
    }
    const slot = this.#slotOf(service, backend);
    this.#generation = this.#native.setBackendWeight(slot, weight);
    this.#weights.set(slot, weight);
  }

  #slotOf(service: string, backend: string): number {
    const slot = this.#slots.backendSlot(service, backend);
    if (slot === undefined) throw new UnknownBackend(service, backend);
    return slot;
  }

  /** True once stop() ran: the data plane serves nothing (HA tracking reads it). */
  get stopped(): boolean {
    return this.#stopped;
  }

  stats(): EngineStats {
    // Only udp services have kernel counts (HA tracking and session rates read stats() often).
    const udp = (this.#config?.services ?? []).some((s) => s.protocol === 'udp');
    const kernel = this.#stopped || !udp ? [] : this.#native.udpDatapaths();
    const services = (this.#config?.services ?? []).map((service) =>
      addKernelPolicyCounts(this.#serviceStats(service), kernel.find((d) => d.service === service.name)));
    return {
      services,
      pooledPipes: this.#counters.worker('pooledPipes'),
      acceptPauses: this.#counters.worker('acceptPauses'),
      acceptPaused: this.#counters.worker('acceptPaused'),
      pgCancel: {
        broadcasts: this.#counters.worker('pgCancelBroadcasts'),
        sent: this.#counters.worker('pgCancelSent'),
        failed: this.#counters.worker('pgCancelFailed'),
        skipped: this.#counters.worker('pgCancelSkipped'),
      },
    };
  }

  /** Close every open connection of a backend now (HAProxy's `shutdown sessions server`).
   * Their records say `maint` or `drain` when the backend is in that state, else `killed`. */
  shutdownSessions(service: string, backend: string): void {
    this.#assertRunning();
    const slot = this.#slotOf(service, backend);
    const state = this.#states.get(slot);
    this.#native.closeBackendConnections(slot, state === 'maint' ? 'maint' : state === 'drain' ? 'drain' : 'killed');
  }

  /** Reopen the connection log's file (SIGUSR1, `fulcrum reopen-logs`, for logrotate). Throws when it cannot be opened. */
  reopenConnectionLog(): void {
    if (!this.#stopped) this.#native.reopenConnectionLog();
  }

  /** What became of the connection records (written, dropped, over the cap...). */
  connectionLogCounters(): ConnectionLogCounters {
    return this.#native.connectionLogCounters();
  }

  /** Per running service: connections by termination state and the timing histograms. */
  connectionStats(): Map<string, ServiceConnectionStats> {
    const layout = loadNative().connectionStatsLayout;
    const services = (this.#config?.services ?? []).map((s) => ({ name: s.name, slot: this.#slots.serviceSlot(s.name)! }));
    const words = this.#native.connectionStats(services.map((s) => s.slot));
    return new Map(services.map((s, i) => [s.name, decodeConnectionStats(layout, words, i * layout.wordsPerService)]));
  }

  /** Connections open across all services. */
  activeConnections(): number {
    let active = 0;
    for (const slot of this.#slots.serviceNames().keys()) active += this.#counters.service(slot).active;
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

  /** Upgrade: sockets the previous Fulcrum handed over (src/upgrade/), taken by the first apply(). */
  adoptListeners(key: string, fds: number[]): void {
    this.#native.adoptListeners(key, fds);
  }

  /** Every listening socket by listener key, to hand to the next Fulcrum on upgrade. */
  listenerFds(): { key: string; fds: number[] }[] {
    return this.#stopped ? [] : this.#native.listenerFds();
  }

  /** Upgrade: the next Fulcrum adopted the kernel UDP datapath's pinned flows;
   * detach this process's programs, keeping the flows and their pins. */
  handOverUdpFlows(): void {
    if (!this.#stopped) this.#native.handOverUdpFlows();
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
    for (const service of this.#config?.services ?? []) services.set(this.#slots.serviceSlot(service.name)!, service);
    const records: SessionRecord[] = [];
    for (const r of decodeSlotRecords(taken.records)) {
      const service = services.get(r.serviceSlot);
      const backend = service?.backends.find((b) => this.#slots.backendSlot(service.name, b.address.text) === r.backendSlot);
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
      const serviceSlot = this.#slots.serviceSlot(r.service);
      const backendSlot = this.#slots.backendSlot(r.service, r.backend);
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
    this.#slots.stop();
    this.#native.stop();
  }

  #serviceStats(service: ServiceConfig): ServiceStats {
    const slot = this.#slots.serviceSlot(service.name)!;
    const udp = service.protocol === 'udp';
    const traffic = this.#baselines.serviceTraffic(service.name, slot);
    return {
      name: service.name,
      listen: service.listen.text,
      protocol: service.protocol,
      queueCurrent: this.#native.serviceQueue(slot),
      ...traffic,
      ...(udp ? { udp: udpServiceStats(this.#baselines.serviceUdp(service.name, slot), traffic) } : {}),
      admission: this.#baselines.admission(service.name, slot),
      ...(udp ? {} : { relay: { mode: service.relay, ...this.#baselines.relay(service.name, slot) } }),
      backends: service.backends.map((backend): BackendStats => {
        const key = backendKey(service.name, backend.address.text);
        const backendSlot = this.#slots.backendSlot(service.name, backend.address.text)!;
        const backendUdp = udp ? this.#baselines.backendUdp(key, backendSlot) : undefined;
        return {
          address: backend.address.text,
          weight: this.#weights.get(backendSlot) ?? backend.weight,
          backup: backend.backup,
          state: this.#states.get(backendSlot) ?? 'up',
          peak: this.#native.backendPeak(backendSlot),
          ...pickFields(this.#baselines.backendTraffic(key, backendSlot), CONNECTION_FIELDS),
          ...(backendUdp ? { udp: { datagramsIn: backendUdp.datagramsIn, datagramsOut: backendUdp.datagramsOut } } : {}),
        };
      }),
    };
  }

  #setState(slot: number, state: BackendState): void {
    clearTimeout(this.#drainTimers.get(slot));
    this.#drainTimers.delete(slot);
    this.#native.setBackendState(slot, NativeBackendState[state]);
    this.#states.set(slot, state);
  }

  #onNativeEvents(events: NativeEvent[]): void {
    const serviceNames = this.#slots.serviceNames();
    const backendNames = this.#slots.backendAddresses();
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
    if (this.#stopped) throw new EngineStopped();
  }
}
