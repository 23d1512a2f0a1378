// The shape of a bench run's results: what `--json` prints (documented in
// README.md, "fulcrum bench") and what the table is formatted from.
import type { Direction, Workload } from '../engine/native.js';

export const REPORT_VERSION = 1;

/** Latency percentiles in microseconds (nearest-rank over every sample). */
export interface LatencyStats {
  count: number;
  /** Samples past the recorder's cap (16 Mi per load thread): counted, not in the percentiles. */
  dropped: number;
  minUs: number;
  meanUs: number;
  p50Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
}

export interface StreamInterval {
  stream: number;
  direction: 'send' | 'receive';
  bytes: number;
  bitsPerSecond: number;
}

/** One line of interval output. */
export interface IntervalRecord {
  startS: number;
  endS: number;
  /** Payload bytes the client wrote and read in this interval. */
  bytesSent: number;
  bytesReceived: number;
  /** (bytesSent + bytesReceived) * 8 / interval length. */
  bitsPerSecond: number;
  /** Connections completed (tcp-connrate), round trips (latency), datagrams sent (udp-pps). */
  operations: number;
  operationsPerSecond: number;
  /** Latency of the operations completed in this interval (connrate and latency workloads). */
  latency?: LatencyStats;
  /** tcp-throughput: each stream. */
  streams?: StreamInterval[];
  /** udp-pps: datagrams the server counted in this interval (asked over the control channel). */
  delivered?: number;
  deliveredPerSecond?: number;
  /** Errors counted in this interval (see summary.errors for their names). */
  errors: number;
}

export interface StreamSummary {
  stream: number;
  direction: 'send' | 'receive';
  /** Bytes this client wrote (send) or read (receive). */
  clientBytes: number;
  /** Bytes the server read (send) or wrote (receive), from its RESULTS. */
  serverBytes: number;
  bitsPerSecond: number;
  /** The stream ended with both sides' EOF (the counts are final). */
  closedCleanly: boolean;
}

export interface UdpFlowSummary {
  flow: number;
  sent: number;
  delivered: number;
  lost: number;
  reordered: number;
}

export interface UdpSummary {
  sent: number;
  delivered: number;
  /** sent - delivered (datagrams the server never counted). */
  lost: number;
  /** Datagrams that arrived after one with a higher sequence number. */
  reordered: number;
  lossPercent: number;
  sentPerSecond: number;
  deliveredPerSecond: number;
  flows: UdpFlowSummary[];
}

export interface BenchSummary {
  durationS: number;
  bytesSent: number;
  bytesReceived: number;
  sendBitsPerSecond: number;
  receiveBitsPerSecond: number;
  operations: number;
  operationsPerSecond: number;
  latency?: LatencyStats;
  /** udp-latency: requests whose reply did not come within the response timeout. */
  lost?: number;
  streams?: StreamSummary[];
  /** tcp-throughput: every stream's client and server counts are equal. */
  countsAgree?: boolean;
  udp?: UdpSummary;
  /** errno name -> count (ECONNREFUSED, ECONNRESET, ETIMEDOUT...). */
  errors: Record<string, number>;
}

/** The figure `bench compare` ranks targets by. */
export interface PrimaryMetric {
  name: string;
  value: number;
  unit: string;
  better: 'higher' | 'lower';
}

export interface RunOptions {
  durationS: number;
  intervalS: number;
  parallel: number;
  direction: Direction;
  concurrency: number;
  messageSize: number;
  flows: number;
  /** udp-pps datagrams per second over all flows; 0: as fast as possible. */
  rate: number;
  threads: number;
}

export interface BenchReport {
  version: typeof REPORT_VERSION;
  workload: Workload;
  target: string;
  options: RunOptions;
  intervals: IntervalRecord[];
  summary: BenchSummary;
  primary: PrimaryMetric;
}
