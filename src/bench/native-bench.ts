// The bench part of the addon (native/addon/bench_handles.h): its TypeScript mirror.
import { loadNative } from '../engine/native.js';

export const WORKLOADS = ['tcp-throughput', 'tcp-connrate', 'tcp-latency', 'udp-pps', 'udp-latency'] as const;
export type Workload = (typeof WORKLOADS)[number];
export type Direction = 'send' | 'receive' | 'both';

export function isWorkload(value: string): value is Workload {
  return (WORKLOADS as readonly string[]).includes(value);
}

export interface NativeClientOptions {
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

export interface NativeUnit {
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

export interface NativeSnapshot {
  elapsedNs: number;
  units: NativeUnit[];
  intervalLatency: NativeLatency;
  /** errno name -> count */
  errors: Record<string, number>;
}

export interface NativeResult {
  durationNs: number;
  units: NativeUnit[];
  latency: NativeLatency;
  errors: Record<string, number>;
}

export interface NativeBenchClient {
  start(): Promise<void>;
  snapshot(): NativeSnapshot;
  stop(): Promise<void>;
  result(): NativeResult;
}

export interface NativeServerStats {
  sessions: number;
  connections: number;
  protocolErrors: number;
  datagrams: number;
  malformedDatagrams: number;
  unknownSessionDatagrams: number;
}

export interface NativeBenchServer {
  readonly port: number;
  stats(): NativeServerStats;
  takeLog(): string[];
  close(): void;
}

export interface NativeBench {
  Client: new (options: NativeClientOptions) => NativeBenchClient;
  Server: new (options: { host: string; port: number; threads: number }) => NativeBenchServer;
  protocolVersion: number;
  testing: { latencySummary(samplesNs: Float64Array): NativeLatency };
}

export function loadBench(): NativeBench {
  const addon = loadNative() as unknown as { bench?: NativeBench };
  if (!addon.bench) throw new Error('the native addon has no bench harness: rebuild with npm run build');
  return addon.bench;
}
