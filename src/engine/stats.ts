// What the engine reports: its counters per service and backend, summed over
// the workers, with the state each backend runs in. The field names are the
// counter layout's (COUNTER_FIELDS in native.ts, from native/engine/counters.h);
// the types here only group them.
//
// Traffic (every service and backend):
//   accepted  client connections accepted (service) or connections established to it (backend)
//   active    connections open now
//   failed    service: clients closed because no backend could be reached; backend: failed connect attempts
//   bytesIn   bytes client -> backend; bytesOut: backend -> client
// Queue (services only):
//   queued    clients that waited in the queue for a backend with room
//   refused   clients turned away: every backend full and the queue too, or the queue timeout passed
//   queueTimeouts  the part of `refused` that waited the whole queue timeout
// For a protocol: udp service the traffic fields count flows (accepted =
// flows created, active = flows open, failed = new flows dropped; a
// backend's failed: ICMP unreachable answers and send errors), and `udp`
// holds its datagrams and flow table.
import { COUNTER_FIELDS, type CounterField } from './native.js';
import type { AdmissionTotals, RelayTotals } from './counter-reader.js';

/**
 * up: takes new connections. down: takes none (health checks say so); open
 * ones continue. drain: takes none but sticky clients'; open ones continue
 * until they end (or, when the service has a drain_timeout, until it passes).
 * maint: an operator took it out, sticky clients too; open ones continue.
 * The README's "Taking a backend out" table compares them with HAProxy's.
 */
export type BackendState = 'up' | 'down' | 'drain' | 'maint';

/** The traffic fields only services have. */
export const QUEUE_FIELDS = ['queued', 'refused', 'queueTimeouts'] as const satisfies ReadonlyArray<CounterField<'traffic'>>;
export type QueueField = (typeof QUEUE_FIELDS)[number];
export type ConnectionField = Exclude<CounterField<'traffic'>, QueueField>;
/** The traffic fields every service and backend has, in layout order. */
export const CONNECTION_FIELDS = COUNTER_FIELDS.traffic.filter(
  (field): field is ConnectionField => !(QUEUE_FIELDS as readonly string[]).includes(field),
);

export type TrafficCounters = Record<ConnectionField, number>;

/** A protocol: udp backend's datagrams (its TrafficCounters count flows). */
export type UdpBackendStats = Record<Extract<CounterField<'udp'>, 'datagramsIn' | 'datagramsOut'>, number>;

/**
 * A protocol: udp service's flow table, summed over the workers: the udp
 * counter line (datagramsIn/Out forwarded; datagramsDropped received but not
 * forwarded; flowsExpired after timeouts.idle; flowsEvicted to make room
 * under max_flows; flowsCompleted after udp.responses replies; flowsMoved to
 * another backend because theirs went down, refused or left the config), and
 * the flow counts of the traffic line under their flow names.
 */
export type UdpServiceStats = Record<CounterField<'udp'>, number> & {
  /** Traffic's accepted. */
  flowsCreated: number;
  /** Traffic's active. */
  flowsActive: number;
  /** Traffic's failed: no backend available, max_flows with nothing to evict, no socket. */
  flowsDropped: number;
};

/** Who a service let in: clients refused before any backend was touched, and
 * PROXY protocol headers read. TCP counts connections (each also in the
 * service's `accepted`, never in `failed`); UDP counts datagrams. */
export type AdmissionStats = AdmissionTotals;

/** The kernel relay for one TCP service: its relay: setting and counters
 * (native/engine/counters.h RelayCounter; kernelActive is a gauge). */
export interface RelayStats extends RelayTotals {
  mode: 'auto' | 'user' | 'kernel';
}

export interface BackendStats extends TrafficCounters {
  address: string;
  /** protocol: udp services only. */
  udp?: UdpBackendStats;
  /** The weight in effect (the config's, or one set since with setBackendWeight). */
  weight: number;
  backup: boolean;
  state: BackendState;
  /** The most connections (flows, for udp) open at once since the backend was added (native, exact). */
  peak: number;
}

export interface ServiceStats extends TrafficCounters, Record<QueueField, number> {
  name: string;
  /** Clients waiting in the queue now (a gauge; `queued` counts those that ever waited). */
  queueCurrent: number;
  listen: string;
  protocol: 'tcp' | 'udp';
  /** protocol: udp services only. */
  udp?: UdpServiceStats;
  admission: AdmissionStats;
  /** protocol: tcp: the kernel relay (relay:) in use and what it did. */
  relay?: RelayStats;
  backends: BackendStats[];
}

export interface EngineStats {
  services: ServiceStats[];
  /** Empty pipes kept in the workers' pools (each holds two fds). */
  pooledPipes: number;
  /** Times a worker paused accepting: at the connection budget, or out of file descriptors. */
  acceptPauses: number;
  /** Workers whose accepting is paused now (0: every worker accepts). */
  acceptPaused: number;
  /** PostgreSQL cancel requests sent on to the other backends of a service (postgres_cancel). */
  pgCancel: PgCancelStats;
}

/** postgres_cancel, over every service and worker (native/engine/pg_cancel.h). */
export interface PgCancelStats {
  /** Cancel requests sent on to a service's other backends. */
  broadcasts: number;
  /** Connections of those broadcasts that delivered the request. */
  sent: number;
  /** Connections that did not (refused, timed out, no descriptor, over the in-flight bound). */
  failed: number;
  /** Cancel requests not broadcast (over the per-second bound): relayed only to their own backend. */
  skipped: number;
}

/** `fields` of `from`, in that order (so views and stats keep the layout's order). */
export function pickFields<K extends string>(from: Readonly<Record<K, number>>, fields: readonly K[]): Record<K, number> {
  const picked = {} as Record<K, number>;
  for (const field of fields) picked[field] = from[field];
  return picked;
}

/** A udp service's flow table from its udp counter line and its traffic line (which counts flows). */
export function udpServiceStats(udp: Record<CounterField<'udp'>, number>, traffic: Record<CounterField<'traffic'>, number>): UdpServiceStats {
  return {
    datagramsIn: udp.datagramsIn,
    datagramsOut: udp.datagramsOut,
    datagramsDropped: udp.datagramsDropped,
    flowsCreated: traffic.accepted,
    flowsActive: traffic.active,
    flowsExpired: udp.flowsExpired,
    flowsEvicted: udp.flowsEvicted,
    flowsCompleted: udp.flowsCompleted,
    flowsMoved: udp.flowsMoved,
    flowsDropped: traffic.failed,
  };
}
