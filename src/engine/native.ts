// The one front door to the native addon: the only module that loads it, and
// the TypeScript mirror of everything it exports. The contracts are in
// native/addon/: engine_handle.h (Engine), addon.cc (counterLayout, testing),
// snapshot_reader.h (the snapshot, snapshotSchema), ha_socket.h (VrrpSocket)
// and bench_handles.h (bench). Other modules take the addon typed from
// loadNative(), never cast it.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import type { Balance, HashKey, Protocol, SendProxy } from '../config/types.js';
import type { ConnectionLogConfig } from '../config/connection-log.js';

/** One UDP service's datapath: the kernel path's interfaces and counters, or the relay and why. */
export interface UdpDatapathStatus {
  service: string;
  configured: 'auto' | 'kernel' | 'user';
  datapath: 'kernel' | 'user';
  /** Why not kernel ("datapath: user", "the listen address is a wildcard ..."); "" on kernel. */
  reason: string;
  clientInterface: string;
  backendInterface: string;
  /** Flows in the kernel flow map at the last sweep (once a second). */
  flows: number;
  /** Flows the sweeps ended idle. */
  expired: number;
  stats: Record<
    | 'clientPackets' | 'clientBytes' | 'replyPackets' | 'replyBytes' | 'newFlows' | 'movedFlows'
    | 'passedNoBackend' | 'passedNoNatPort' | 'passedUnsupported' | 'dropped'
    // The admission policies (udp_kernel_policy.h): datagrams refused by allow/deny and over
    // client_limits' datagram_rate; flows ended after udp.responses replies, replies past it.
    | 'denied' | 'overRate' | 'completedFlows' | 'repliesDropped',
    number
  >;
}

export interface NativeBackendSpec {
  slot: number;
  host: string;
  port: number;
  weight: number;
  backup: boolean;
  /** 0: no limit. */
  maxConnections: number;
  /** 0: no ramp. */
  slowStartMs: number;
  /** The PROXY protocol header written to the backend before the client's bytes. */
  sendProxy: SendProxy;
}

export interface NativeServiceSpec {
  slot: number;
  name: string;
  protocol: Protocol;
  /** The listen address is one of ha.virtual_ips: bind it with IP_FREEBIND. */
  freebind: boolean;
  /** An IPv6 listen address takes IPv6 clients only (IPV6_V6ONLY=1); false: dual-stack (set explicitly). */
  ipv6Only: boolean;
  /** protocol: udp: flows at once over every worker (ignored for tcp). */
  maxFlows: number;
  /** protocol: udp: replies that end a flow; 0: only idleness ends it. */
  udpResponses: number;
  /** protocol: udp: kernel (tcx BPF NAT, required), user (the relay) or auto. */
  datapath: 'auto' | 'kernel' | 'user';
  /** protocol: udp, kernel datapath: the NAT source ports, first and how many. */
  natPortFirst: number;
  natPortCount: number;
  listenHost: string;
  listenPort: number;
  balance: Balance;
  hashKey: HashKey;
  maglevTableSize: number;
  connectTimeoutMs: number;
  /** 0: no idle timeout (tcp only). */
  idleTimeoutMs: number;
  /** null: off. */
  tcpKeepalive: { idleMs: number; intervalMs: number; count: number } | null;
  retries: number;
  queueSize: number;
  queueTimeoutMs: number;
  sticky: { size: number; timeoutMs: number } | null;
  /** Clients start with a PROXY protocol header (tcp); null: they do not. `from`: the peers that must send one; null: every peer. */
  acceptProxy: { from: string[] | null; timeoutMs: number } | null;
  /** ACL: CIDR prefixes; the longest one containing the client decides. */
  allow: string[];
  deny: string[];
  /** Per source address; rate and burst: new connections (tcp) or datagrams (udp) per second. 0: none. */
  clientLimits: { maxConnections: number; rate: number; burst: number; tableSize: number } | null;
  /** source: client: connect to backends from the client's own address (IP_TRANSPARENT). */
  transparent: boolean;
  /** Share sticky entries and UDP flow assignments with peers (`sync:`). */
  sync: boolean;
  /** postgres_cancel resolved: a PostgreSQL CancelRequest is also sent to every other backend. */
  pgCancel: boolean;
  /** relay: auto, user or kernel (native/engine/kernel_relay.h). */
  relay: 'auto' | 'user' | 'kernel';
  backends: NativeBackendSpec[];
}

export interface NativeSnapshot {
  services: NativeServiceSpec[];
}

export interface NativeEvent {
  type: 'connect_failed' | 'listener_error' | 'accept_paused' | 'accept_resumed' | 'source_bind_failed' | 'client_refused';
  worker: number;
  serviceSlot?: number;
  backendSlot?: number;
  code?: string;
  /** client_refused: the client ("192.0.2.1:5678", "[2001:db8::1]:5678"), the
   * admission counter that counted it (an index of counterLayout.admission),
   * and this worker's refusals left unreported since its previous such event. */
  client?: string;
  reason?: number;
  suppressed?: number;
}

/**
 * The fields of each counter line, by the names native/engine/counters.h
 * gives them (addon.counterLayout): the one TypeScript list, checked against
 * the layout at load, that the counter reader, the stats, the views and the
 * metrics take their field names from. What each counts: counters.h, and the
 * stats types in stats.ts.
 */
export const COUNTER_FIELDS = {
  global: ['eventsDropped'],
  worker: ['pooledPipes', 'acceptPauses', 'appliedGeneration', 'acceptPaused', 'pgCancelBroadcasts', 'pgCancelSent', 'pgCancelFailed', 'pgCancelSkipped'],
  traffic: ['accepted', 'active', 'failed', 'bytesIn', 'bytesOut', 'queued', 'refused', 'queueTimeouts'],
  udp: ['datagramsIn', 'datagramsOut', 'datagramsDropped', 'flowsExpired', 'flowsEvicted', 'flowsCompleted', 'flowsMoved'],
  admission: ['denied', 'overConnections', 'overRate', 'untracked', 'proxyAccepted', 'proxyMissing', 'proxyMalformed', 'proxyTimeout'],
  relay: ['kernelEntered', 'kernelActive', 'kernelBulkExits', 'fallbackUnavailable', 'fallbackNotEstablished', 'fallbackMapFull', 'fallbackInsertFailed'],
} as const;

export type CounterLine = keyof typeof COUNTER_FIELDS;
export type CounterField<L extends CounterLine> = (typeof COUNTER_FIELDS)[L][number];
/** Each line's field map: field name -> word within the line. */
export type CounterLines = { [L in CounterLine]: Record<CounterField<L>, number> };

/** Offsets and strides in u64 words; field maps give the word within a block. */
export interface CounterLayout extends CounterLines {
  version: number;
  globalOffset: number;
  firstWorkerOffset: number;
  workerStride: number;
  serviceOffset: number;
  backendOffset: number;
  slotStride: number;
  /** protocol: udp services' and their backends' datagram lines. */
  udpServiceOffset: number;
  udpBackendOffset: number;
  /** Every service's admission line (ACL, client limits, PROXY headers). */
  admissionOffset: number;
  /** Every TCP service's kernel relay line (native/engine/kernel_relay.h). */
  relayOffset: number;
  maxServices: number;
  maxBackends: number;
}

/** Backend states as the addon numbers them. */
export const NativeBackendState = { up: 0, down: 1, drain: 2, maint: 3 } as const;

/** Why an operator's action closed a backend's connections (their records' termination). */
export type CloseReason = 'drain' | 'maint' | 'killed' | 'removed';

/** What became of the records the workers handed the connection log. */
export interface ConnectionLogCounters {
  written: number;
  /** A worker's ring was full (the writer could not keep up). */
  dropped: number;
  /** Past connection_log.max_per_second. */
  overCap: number;
  /** Not drawn by connection_log.sample. */
  sampledOut: number;
  /** The output refused a write. */
  writeErrors: number;
}

/** Where each aggregate sits in a service's block of connectionStats (native/engine/connection_stats.h). */
export interface ConnectionStatsLayout {
  /** Termination state names by index (connection_record.h). */
  terminations: string[];
  terminationOffset: number;
  /** Each histogram: its upper bounds (seconds or bytes), then +Inf, then the sum, from `offset`. */
  histograms: { name: string; bounds: number[]; seconds: boolean; offset: number }[];
  wordsPerService: number;
}

export interface NativeEngine {
  /** Returns the snapshot's generation; each worker publishes it in its
   * `appliedGeneration` counter once the snapshot is in effect there. */
  apply(snapshot: NativeSnapshot): number;
  setBackendState(slot: number, state: number): void;
  /** The most connections the backend in `slot` had open at once since it got the slot (exact over workers). */
  backendPeak(slot: number): number;
  /** Clients waiting in the queue of the service in `slot` now, over every worker (0 for none). */
  serviceQueue(slot: number): number;
  /** What each protocol: udp service runs on (udp_kernel_nat.h). */
  udpDatapaths(): UdpDatapathStatus[];
  /** Rebuilds the pickers of the backend's service; returns the new generation. */
  setBackendWeight(slot: number, weight: number): number;
  /** Closes the backend's open connections; `reason` is what their connection records say. */
  closeBackendConnections(slot: number, reason?: CloseReason): void;
  /** Opens the output and makes the settings current; throws (code: errno name) when it cannot be opened. */
  configureConnectionLog(settings: ConnectionLogConfig): void;
  /** Reopens the log file by its path (logrotate); a no-op for other outputs. */
  reopenConnectionLog(): void;
  connectionLogCounters(): ConnectionLogCounters;
  /** Every worker's aggregates summed, per slot: slots.length x layout.wordsPerService numbers. */
  connectionStats(slots: readonly number[]): Float64Array;
  /** CLOCK_MONOTONIC ms of each worker loop's last turn, by worker (0 before its first turn; [] once stopped). */
  workerLoopTimes(): number[];
  /** Tests only: worker `worker`'s loop sleeps `ms` (at most 60000), as a stuck worker. */
  stallWorkerForTest(worker: number, ms: number): void;
  stop(): void;
  readonly counters: ArrayBuffer;
  readonly workers: number;
  /** Session entries recorded since the last call (32-byte records, src/engine/sync-records.ts);
   * `dumpDropped`: dump records that did not fit; `dumpPending`: dump parts workers have yet to add. */
  takeSync(): { records: ArrayBuffer; dropped: number; dumpDropped: number; dumpPending: number };
  /** One round of a full copy for peers: the live entries of sync services whose key's top 16 bits
   * are in [from, to) of 65536 go into the journal as dump records; returns how many were added at once
   * (sticky and adopted; workers add their UDP flows soon after). Throws ESHUTDOWN when stopped. */
  dumpSync(from: number, to: number): number;
  /** Installs peers' entries (the same records, this node's slots); returns how many took effect. */
  installSync(records: Uint8Array): number;
  /** Upgrade: listening sockets the previous Fulcrum handed over, by listener key; the next apply()
   * uses them instead of binding, and closes the ones it does not use. Throws EINVAL for a known key. */
  adoptListeners(key: string, fds: number[]): void;
  /** Every listening socket by listener key ("tcp 127.0.0.1:80"), one fd per worker; still owned by the engine. */
  listenerFds(): { key: string; fds: number[] }[];
  handOverUdpFlows(): void;
}

/** Descriptor passing over a unix socket (SCM_RIGHTS), native/addon/fd_passing.h. */
export interface NativeFdPassing {
  /** A connected SOCK_SEQPACKET pair, close-on-exec, blocking. */
  socketPair(): [number, number];
  /** One message: `text` (1..65536 bytes) and up to `maxFds` descriptors (duplicated into the peer).
   * Returns true once sent; with `dontWait`, false (nothing sent) when the peer's queue is full. */
  send(sock: number, text: string, fds: number[], dontWait?: boolean): boolean;
  /** The next message, or null after `timeoutMs` without one; text '' at end of stream. */
  receive(sock: number, timeoutMs: number): { text: string; fds: number[] } | null;
  close(fd: number): void;
  readonly maxFds: number;
}

/** A number of the snapshot and the values the addon accepts (zeroIsOff: 0 too, for none). */
export interface NativeBound {
  min: number;
  max: number;
  zeroIsOff: boolean;
}

/** The names and bounds the snapshot reader checks with (native/addon/snapshot_reader.cc); a test holds them to the config schema. */
export interface SnapshotSchema {
  enums: { balance: string[]; hashKey: string[]; protocol: string[]; sendProxy: string[]; datapath: string[] };
  /** By scope (service, backend, acceptProxy, sticky, clientLimits), then by snapshot key. */
  bounds: Record<string, Record<string, NativeBound>>;
}

export interface NativeAddon {
  Engine: new (options: { workers: number; maxConnections?: number; onEvents: (events: NativeEvent[]) => void }) => NativeEngine;
  counterLayout: CounterLayout;
  connectionStatsLayout: ConnectionStatsLayout;
  snapshotSchema: SnapshotSchema;
  /** rtnetlink address add/del on an interface: 0 or -errno (-EEXIST, -EADDRNOTAVAIL, -ENODEV, -EPERM). */
  setInterfaceAddress(ifname: string, add: boolean, ip: string, prefixLength: number): number;
  /** Whether this process can use the kernel relay (relay: kernel/auto), probed once; reason: why not. */
  kernelRelaySupport(): { available: boolean; reason: string };
  /** One sd_notify(3) datagram to a unix socket path ('@' first: abstract name): 0 or -errno
   * (-ENOENT, -ECONNREFUSED, -EINVAL for a path that is not absolute/abstract...). */
  sdNotify(socketPath: string, message: string): number;
  testing: {
    /** Backend position per 5-tuple under maglev/five_tuple; tuples are 12-byte
     * records (client IPv4, port, local IPv4, port; network order). */
    maglevAssign(addresses: string[], weights: number[], tableSize: number, tuples: Buffer): Uint32Array;
  };
  /** The native half of a VRRP instance (src/ha/): opens the raw VRRP socket and the ARP socket
   * on an interface (root, or CAP_NET_RAW); throws Error{code} (ENODEV, EPERM...). */
  VrrpSocket: new (options: VrrpSocketOptions) => NativeVrrpSocket;
  /** The load generator and server of `fulcrum bench` (src/bench/). */
  bench: NativeBench;
  fdPassing: NativeFdPassing;
}

// --- VrrpSocket (native/addon/ha_socket.h) ---

export interface NativeVrrpSocket {
  /** Returns bytes sent; throws Error{code} (EAGAIN, ENETUNREACH...). */
  send(destination: string, source: string, payload: Buffer): number;
  /** One gratuitous ARP for `ip` out of the interface. */
  garp(ip: string): void;
  readonly mac: string;
  /** rtnetlink address add/del on the interface: 0 or -errno. */
  setAddress(add: boolean, ip: string, prefixLength: number): number;
  /** Idempotent; joins the reader thread. */
  close(): void;
}

export interface VrrpSocketOptions {
  interface: string;
  /** Join 224.0.0.18 (multicast mode); unicast mode does not. */
  joinGroup: boolean;
  /** Whole IPv4 datagrams, in arrival order; `dropped`: overflowed the native queue since the last batch. */
  onPackets(packets: Buffer[], dropped: number): void;
}

// --- bench (native/addon/bench_handles.h) ---

/** The workloads the native bench client runs. */
export const WORKLOADS = ['tcp-throughput', 'tcp-connrate', 'tcp-latency', 'udp-pps', 'udp-latency'] as const;
export type Workload = (typeof WORKLOADS)[number];
export type Direction = 'send' | 'receive' | 'both';

export function isWorkload(value: string): value is Workload {
  return (WORKLOADS as readonly string[]).includes(value);
}

export interface NativeBenchClientOptions {
  workload: Workload;
  host: string;
  port: number;
  session: number;
  parallel?: number;
  direction?: Direction;
  concurrency?: number;
  messageSize?: number;
  flows?: number;
  /** Datagrams per second over all flows; 0: as fast as possible. */
  rate?: number;
  threads?: number;
  connectTimeoutMs?: number;
  drainTimeoutMs?: number;
  responseTimeoutMs?: number;
}

/** One connection or flow of a bench client. */
export interface NativeBenchUnit {
  kind: 'send' | 'receive' | 'ping-pong' | 'connrate' | 'udp-flow';
  bytesSent: number;
  bytesReceived: number;
  messagesSent: number;
  messagesReceived: number;
  lost: number;
  closedCleanly: boolean;
}

export interface NativeLatency {
  count: number;
  dropped: number;
  minNs: number;
  meanNs: number;
  p50Ns: number;
  p99Ns: number;
  p999Ns: number;
  maxNs: number;
}

export interface NativeBenchSnapshot {
  elapsedNs: number;
  units: NativeBenchUnit[];
  intervalLatency: NativeLatency;
  /** errno name -> count */
  errors: Record<string, number>;
}

export interface NativeBenchResult {
  durationNs: number;
  units: NativeBenchUnit[];
  latency: NativeLatency;
  errors: Record<string, number>;
}

export interface NativeBenchClient {
  start(): Promise<void>;
  snapshot(): NativeBenchSnapshot;
  stop(): Promise<void>;
  result(): NativeBenchResult;
}

export interface NativeBenchServerStats {
  sessions: number;
  connections: number;
  protocolErrors: number;
  datagrams: number;
  malformedDatagrams: number;
  unknownSessionDatagrams: number;
}

export interface NativeBenchServer {
  readonly port: number;
  stats(): NativeBenchServerStats;
  takeLog(): string[];
  close(): void;
}

export interface NativeBench {
  Client: new (options: NativeBenchClientOptions) => NativeBenchClient;
  Server: new (options: { host: string; port: number; threads: number }) => NativeBenchServer;
  protocolVersion: number;
  testing: { latencySummary(samplesNs: Float64Array): NativeLatency };
}

/** The layout version this code reads; the addon must match. */
const SUPPORTED_LAYOUT = 5;

/** What loadNative() checks the addon has (a stale build may lack newer parts); the
 * `satisfies` makes a new member of NativeAddon a compile error until it is listed. */
export const ADDON_EXPORTS = Object.keys({
  Engine: true,
  counterLayout: true,
  connectionStatsLayout: true,
  snapshotSchema: true,
  testing: true,
  VrrpSocket: true,
  setInterfaceAddress: true,
  kernelRelaySupport: true,
  sdNotify: true,
  bench: true,
  fdPassing: true,
} satisfies Record<keyof NativeAddon, true>) as Array<keyof NativeAddon>;

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

let loaded: NativeAddon | undefined;

/**
 * The addon: `FULCRUM_NATIVE` (a path to a .node file, used by the sanitizer
 * builds) or whatever node-gyp-build finds (build/Release, build/Debug,
 * prebuilds/).
 */
export function loadNative(): NativeAddon {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  const override = process.env.FULCRUM_NATIVE;
  const addon = (override
    ? require(resolve(override))
    : (require('node-gyp-build') as (dir: string) => unknown)(packageRoot)) as NativeAddon;
  const missing = ADDON_EXPORTS.filter((name) => addon[name] === undefined);
  if (missing.length > 0) {
    throw new Error(`the native addon has no ${missing.join(', ')}: rebuild with npm run build`);
  }
  if (addon.counterLayout.version !== SUPPORTED_LAYOUT) {
    throw new Error(
      `native addon counter layout ${addon.counterLayout.version}, expected ${SUPPORTED_LAYOUT}: rebuild with npm run build`,
    );
  }
  const differing = counterFieldsDiffering(addon.counterLayout);
  if (differing !== undefined) throw new Error(`native addon counter fields differ from COUNTER_FIELDS: ${differing}`);
  loaded = addon;
  return addon;
}

/** The first counter line whose field names differ from COUNTER_FIELDS, described, or undefined. */
export function counterFieldsDiffering(layout: Record<CounterLine, Record<string, number>>): string | undefined {
  for (const line of Object.keys(COUNTER_FIELDS) as CounterLine[]) {
    const native = Object.keys(layout[line] ?? {}).sort();
    const ours = [...COUNTER_FIELDS[line]].sort();
    if (native.join() !== ours.join()) return `${line}: the addon has ${native.join(', ')}; this code reads ${ours.join(', ')}`;
  }
  return undefined;
}
