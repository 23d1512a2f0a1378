// The state the admin API, the status page and `fulcrum status` show: the
// engine's counters (read from shared memory, summed at call time), each
// backend's health, operator and effective state from BackendControl, and the
// health checker's history. One function builds it so every view agrees.
import type { RelayStats } from '../engine/stats.js';
import type { UdpDatapathStatus } from '../engine/native.js';
import type { ServiceConnectionStats } from '../engine/connection-stats.js';
import { backendKey } from '../engine/backend-key.js';
import { kernelPolicyNotes } from '../config/udp-datapath.js';
import type { ConnectionBudget } from '../engine/fd-budget.js';
import {
  pickFields,
  CONNECTION_FIELDS,
  QUEUE_FIELDS,
  type AdmissionStats,
  type BackendState,
  type EngineStats,
  type QueueField,
  type TrafficCounters,
  type UdpBackendStats,
  type UdpServiceStats,
} from '../engine/stats.js';
import type { AdminState, HealthVerdict } from '../control/backend-control.js';
import type { AnnounceStatus, CheckRecord, HaStatus, SyncStatus } from '../control/types.js';
import type { FulcrumRuntime, ReloadRecord } from '../runtime.js';
import type { ServiceConfig } from '../config/types.js';
import { originText } from '../discovery/backend-set.js';
import type { DnsEntryStatus } from '../discovery/dns-discovery.js';

/** The engine's counters of a backend (TrafficCounters: accepted, active, failed, bytesIn, bytesOut) come after these fields. */
export interface BackendView extends TrafficCounters {
  address: string;
  /** What the engine runs with: up, down, drain or maint. */
  state: BackendState;
  health: HealthVerdict;
  admin: AdminState;
  weight: number;
  backup: boolean;
  /** Where it came from: `file`, `api` (added through the admin API) or `dns NAME` (an answer for a name of the file). */
  origin: string;
  /** Epoch ms since which `state` has held (or since the backend was added). */
  since: number;
  /** The most connections open at once since the backend was added (exact, kept by the engine). */
  peak: number;
  /** Its max_connections; 0: no limit. */
  maxConnections: number;
  /** New connections per second over the last second, and the highest such rate since start. */
  sessionRate: number;
  sessionRateMax: number;
  /** Times it went down (checks, ejection) and the milliseconds it spent down (control/downtime.ts). */
  downTransitions: number;
  downtimeMs: number;
  check: {
    type: string;
    rise: number;
    fall: number;
    role?: 'primary' | 'replica';
    ejectedUntil?: number;
    ejections: number;
    history: CheckRecord[];
  };
  /** protocol: udp services only: datagrams each way. */
  udp?: UdpBackendStats;
}

/** The engine's counters of a service (TrafficCounters, then queued, refused, queueTimeouts) come after its balance. */
export interface ServiceView extends TrafficCounters, Record<QueueField, number> {
  name: string;
  listen: string;
  balance: string;
  /** Backends whose effective state is up. */
  backendsUp: number;
  /** Clients waiting in the service's queue now (`queued` counts every one that waited). */
  queueCurrent: number;
  /** New connections (udp: flows) per second over the last second, and the highest such rate since start. */
  sessionRate: number;
  sessionRateMax: number;
  /** protocol: udp services only: the flow table's counters. */
  udp?: UdpServiceStats;
  /** protocol: udp services only: the kernel datapath (tcx BPF NAT) with its counters, or the relay and why. */
  datapath?: UdpDatapathStatus & { policies?: string[] };
  /** Connections (udp: flows) ended since start, by termination state (connection log; only states with a count). */
  ended: Record<string, number>;
  /** Clients refused before any backend (ACL, client limits) and PROXY headers read. */
  admission: AdmissionStats;
  /** The service has accept_proxy, allow/deny or client_limits (the views show `admission` then). */
  guarded: boolean;
  /** protocol: tcp: the relay: setting and the kernel relay's counters. */
  relay?: RelayStats;
  backends: BackendView[];
  /** Backend names of this service being resolved (DNS discovery): addresses, last answer, last failure. */
  dns: DnsEntryStatus[];
}

export interface StatusView {
  version: string;
  pid: number;
  config: string;
  generation: number;
  startedAt: number;
  now: number;
  workers: number;
  lastReload: ReloadRecord | null;
  ha: HaStatus | null;
  /** BGP announcement through BIRD (`announce:`). */
  announce: AnnounceStatus | null;
  /** Session sharing with peers (`sync:`). */
  sync: SyncStatus | null;
  /** The connection budget from RLIMIT_NOFILE (src/engine/fd-budget.ts), with the connections open and the workers paused now; null without a limit. */
  connectionBudget: (ConnectionBudget & { open: number; acceptPaused: number }) | null;
  services: ServiceView[];
}

/** `stats`: an engine.stats() the caller already read (one read of the counters per request). */
export function servicesView(runtime: FulcrumRuntime, stats: EngineStats = runtime.engine.stats()): ServiceView[] {
  const config = runtime.config();
  const control = new Map(runtime.control.list().map((s) => [backendKey(s.service, s.backend), s]));
  const health = new Map(runtime.health.snapshot().map((h) => [backendKey(h.service, h.backend), h]));
  const connections: Map<string, ServiceConnectionStats> = runtime.engine.stopped ? new Map() : runtime.engine.connectionStats();
  const dns = runtime.dns.status();
  const datapaths = new Map(runtime.engine.udpDatapaths().map((d) => [d.service, d]));
  return stats.services.map((service): ServiceView => {
    const serviceConfig = config.services.find((s) => s.name === service.name);
    const backends = service.backends.map((b): BackendView => {
      const configured = serviceConfig?.backends.find((c) => c.address.text === b.address);
      const status = control.get(backendKey(service.name, b.address));
      const checked = health.get(backendKey(service.name, b.address));
      const rate = runtime.rates.backend(service.name, b.address);
      return {
        address: b.address,
        state: status?.effective ?? b.state,
        health: status?.health ?? 'up',
        admin: status?.admin ?? 'enabled',
        weight: b.weight,
        backup: b.backup,
        origin: originText(configured?.origin),
        since: runtime.stateSince(service.name, b.address),
        peak: b.peak,
        maxConnections: configured?.maxConnections ?? 0,
        sessionRate: rate.rate,
        sessionRateMax: rate.max,
        ...runtime.backendDowntime(service.name, b.address),
        check: {
          type: checked?.checkType ?? 'none',
          rise: checked?.rise ?? 0,
          fall: checked?.fall ?? 0,
          ...(checked?.role ? { role: checked.role } : {}),
          ...(checked?.ejectedUntil ? { ejectedUntil: checked.ejectedUntil } : {}),
          ejections: checked?.ejections ?? 0,
          history: checked?.history ?? [],
        },
        ...pickFields(b, CONNECTION_FIELDS),
        ...(b.udp ? { udp: b.udp } : {}),
      };
    });
    return {
      name: service.name,
      listen: service.listen,
      balance: serviceConfig?.balance ?? 'roundrobin',
      ...pickFields(service, CONNECTION_FIELDS),
      ...pickFields(service, QUEUE_FIELDS),
      backendsUp: backends.filter((b) => b.state === 'up').length,
      queueCurrent: service.queueCurrent,
      sessionRate: runtime.rates.service(service.name).rate,
      sessionRateMax: runtime.rates.service(service.name).max,
      ...(service.udp ? { udp: service.udp } : {}),
      ...(datapaths.has(service.name) ? { datapath: withPolicyNotes(datapaths.get(service.name)!, serviceConfig) } : {}),
      ended: Object.fromEntries(Object.entries(connections.get(service.name)?.terminations ?? {}).filter(([, n]) => n > 0)),
      admission: service.admission,
      guarded: serviceConfig !== undefined && isGuarded(serviceConfig),
      ...(service.relay ? { relay: service.relay } : {}),
      backends,
      dns: dns.filter((d) => d.service === service.name),
    };
  });
}

function isGuarded(service: ServiceConfig): boolean {
  return service.acceptProxy !== undefined || service.allow.length > 0 || service.deny.length > 0 || service.clientLimits !== undefined;
}

export function statusView(runtime: FulcrumRuntime, version: string): StatusView {
  const config = runtime.config();
  const budget = runtime.engine.budget;
  const stats = runtime.engine.stats();
  return {
    version,
    pid: process.pid,
    config: config.file,
    generation: runtime.generation,
    startedAt: runtime.startedAt,
    now: Date.now(),
    workers: runtime.engine.workers,
    lastReload: runtime.lastReload ?? null,
    ha: runtime.ha?.status() ?? null,
    announce: runtime.announce?.status() ?? null,
    sync: runtime.sync?.status() ?? null,
    connectionBudget: budget === undefined ? null : { ...budget, open: runtime.engine.activeConnections(), acceptPaused: stats.acceptPaused },
    services: servicesView(runtime, stats),
  };
}

/** The kernel datapath's status with how it enforces the service's policies (README, Kernel UDP datapath). */
function withPolicyNotes(datapath: UdpDatapathStatus, service: ServiceConfig | undefined): UdpDatapathStatus & { policies?: string[] } {
  if (datapath.datapath !== 'kernel' || service === undefined) return datapath;
  const policies = kernelPolicyNotes(service);
  return policies.length > 0 ? { ...datapath, policies } : datapath;
}
