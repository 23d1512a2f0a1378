// One bench run: open a session on the server, start the native load,
// snapshot it once per interval (no per-packet JavaScript), stop it, ask the
// server what it counted, and put both sides' numbers into a BenchReport.
import { setTimeout as sleep } from 'node:timers/promises';
import { loadNative, type NativeBenchSnapshot, type NativeBenchUnit, type NativeLatency, type Workload } from '../engine/native.js';
import { ControlChannel } from './control-channel.js';
import {
  REPORT_VERSION,
  type BenchReport,
  type BenchSummary,
  type IntervalRecord,
  type LatencyStats,
  type PrimaryMetric,
  type RunOptions,
} from './report.js';
import type { ServerResults } from './protocol.js';

/** Defaults per workload for the message size (bytes per write for tcp-throughput). */
export const DEFAULT_MESSAGE_SIZE: Record<Workload, number> = {
  'tcp-throughput': 128 * 1024,
  'tcp-connrate': 64,
  'tcp-latency': 64,
  'udp-pps': 64,
  'udp-latency': 64,
};

/** After a UDP run, how long datagrams still in flight get to arrive before the server is asked. */
const UDP_GRACE_MS = 300;

export interface RunTarget {
  host: string;
  port: number;
  /** Where the control channel (TCP) goes when the target carries only UDP; default: the target. */
  control?: { host: string; port: number };
}

export function formatTarget(target: RunTarget): string {
  return target.host.includes(':') ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
}

export function latencyStats(native: NativeLatency): LatencyStats {
  const us = (ns: number): number => Math.round(ns / 10) / 100;
  return {
    count: native.count,
    dropped: native.dropped,
    minUs: us(native.minNs),
    meanUs: us(native.meanNs),
    p50Us: us(native.p50Ns),
    p99Us: us(native.p99Ns),
    p999Us: us(native.p999Ns),
    maxUs: us(native.maxNs),
  };
}

const sum = (units: NativeBenchUnit[], pick: (u: NativeBenchUnit) => number): number => units.reduce((total, u) => total + pick(u), 0);
const errorTotal = (errors: Record<string, number>): number => Object.values(errors).reduce((a, b) => a + b, 0);

function operationsOf(workload: Workload, units: NativeBenchUnit[]): number {
  // connrate: completed connections; latency: round trips; udp-pps: datagrams sent.
  return workload === 'udp-pps' ? sum(units, (u) => u.messagesSent) : sum(units, (u) => u.messagesReceived);
}

function hasLatency(workload: Workload): boolean {
  return workload === 'tcp-connrate' || workload === 'tcp-latency' || workload === 'udp-latency';
}

/** The interval between two snapshots. */
export function intervalRecord(workload: Workload, before: NativeBenchSnapshot | undefined, after: NativeBenchSnapshot): IntervalRecord {
  const seconds = (after.elapsedNs - (before?.elapsedNs ?? 0)) / 1e9;
  const prev = (i: number): NativeBenchUnit | undefined => before?.units[i];
  const bytesSent = sum(after.units, (u) => u.bytesSent) - sum(before?.units ?? [], (u) => u.bytesSent);
  const bytesReceived = sum(after.units, (u) => u.bytesReceived) - sum(before?.units ?? [], (u) => u.bytesReceived);
  const operations = operationsOf(workload, after.units) - operationsOf(workload, before?.units ?? []);
  const record: IntervalRecord = {
    startS: (before?.elapsedNs ?? 0) / 1e9,
    endS: after.elapsedNs / 1e9,
    bytesSent,
    bytesReceived,
    bitsPerSecond: seconds > 0 ? ((bytesSent + bytesReceived) * 8) / seconds : 0,
    operations,
    operationsPerSecond: seconds > 0 ? operations / seconds : 0,
    errors: errorTotal(after.errors) - errorTotal(before?.errors ?? {}),
  };
  if (hasLatency(workload)) record.latency = latencyStats(after.intervalLatency);
  if (workload === 'tcp-throughput') {
    record.streams = after.units.map((u, stream) => {
      const direction = u.kind === 'receive' ? 'receive' : 'send';
      const bytes = direction === 'send' ? u.bytesSent - (prev(stream)?.bytesSent ?? 0) : u.bytesReceived - (prev(stream)?.bytesReceived ?? 0);
      return { stream, direction, bytes, bitsPerSecond: seconds > 0 ? (bytes * 8) / seconds : 0 };
    });
  }
  return record;
}

/** The totals of a run, from the client's final counters and the server's RESULTS. */
export function buildSummary(
  workload: Workload,
  result: { durationNs: number; units: NativeBenchUnit[]; latency: NativeLatency; errors: Record<string, number> },
  server: ServerResults,
): BenchSummary {
  const seconds = result.durationNs / 1e9;
  const rate = (n: number): number => (seconds > 0 ? n / seconds : 0);
  const units = result.units;
  const operations = operationsOf(workload, units);
  const summary: BenchSummary = {
    durationS: seconds,
    bytesSent: sum(units, (u) => u.bytesSent),
    bytesReceived: sum(units, (u) => u.bytesReceived),
    sendBitsPerSecond: rate(sum(units, (u) => u.bytesSent) * 8),
    receiveBitsPerSecond: rate(sum(units, (u) => u.bytesReceived) * 8),
    operations,
    operationsPerSecond: rate(operations),
    errors: result.errors,
  };
  if (hasLatency(workload)) summary.latency = latencyStats(result.latency);
  if (workload === 'udp-latency') summary.lost = sum(units, (u) => u.lost);
  if (workload === 'tcp-throughput') {
    summary.streams = units.map((u, stream) => {
      const direction = u.kind === 'receive' ? 'receive' : 'send';
      const clientBytes = direction === 'send' ? u.bytesSent : u.bytesReceived;
      const counted = server.streams[stream];
      const serverBytes = counted ? (direction === 'send' ? counted.received : counted.sent) : 0;
      return { stream, direction, clientBytes, serverBytes, bitsPerSecond: rate(clientBytes * 8), closedCleanly: u.closedCleanly };
    });
    summary.countsAgree = summary.streams.every((s) => s.clientBytes === s.serverBytes && s.closedCleanly);
  }
  if (workload === 'udp-pps') {
    const flows = units.map((u, flow) => {
      const counted = server.flows[flow];
      const delivered = counted?.datagrams ?? 0;
      return { flow, sent: u.messagesSent, delivered, lost: Math.max(0, u.messagesSent - delivered), reordered: counted?.reordered ?? 0 };
    });
    const sent = sum(units, (u) => u.messagesSent);
    const delivered = flows.reduce((a, f) => a + f.delivered, 0);
    const lost = flows.reduce((a, f) => a + f.lost, 0);
    summary.udp = {
      sent,
      delivered,
      lost,
      reordered: flows.reduce((a, f) => a + f.reordered, 0),
      lossPercent: sent > 0 ? (lost * 100) / sent : 0,
      sentPerSecond: rate(sent),
      deliveredPerSecond: rate(delivered),
      flows,
    };
  }
  return summary;
}

/** The figure compare ranks by: throughput, connections/s, delivered datagrams/s, or p50 round trip. */
export function primaryMetric(workload: Workload, summary: BenchSummary): PrimaryMetric {
  switch (workload) {
    case 'tcp-throughput':
      return { name: 'throughput', value: summary.sendBitsPerSecond + summary.receiveBitsPerSecond, unit: 'bit/s', better: 'higher' };
    case 'tcp-connrate':
      return { name: 'connections/s', value: summary.operationsPerSecond, unit: 'conn/s', better: 'higher' };
    case 'udp-pps':
      return { name: 'delivered datagrams/s', value: summary.udp?.deliveredPerSecond ?? 0, unit: 'pkt/s', better: 'higher' };
    case 'tcp-latency':
    case 'udp-latency':
      return { name: 'p50 round trip', value: summary.latency?.p50Us ?? 0, unit: 'us', better: 'lower' };
  }
}

export interface RunHooks {
  /** Called once per interval while the run goes on (from the JS thread). */
  onInterval?: (record: IntervalRecord, progress: number) => void;
  /** Aborts the run early (stops cleanly, still reports). */
  signal?: AbortSignal;
}

/** Runs `workload` against the bench server at `target` and reports what both ends counted. */
export async function runWorkload(workload: Workload, target: RunTarget, options: RunOptions, hooks: RunHooks = {}): Promise<BenchReport> {
  const bench = loadNative().bench;
  const control = await ControlChannel.open(target.control?.host ?? target.host, target.control?.port ?? target.port);
  try {
    const client = new bench.Client({
      workload,
      host: target.host,
      port: target.port,
      session: control.session,
      parallel: options.parallel,
      direction: options.direction,
      concurrency: options.concurrency,
      messageSize: options.messageSize,
      flows: options.flows,
      rate: options.rate,
      threads: options.threads,
    });
    await client.start();
    const intervals: IntervalRecord[] = [];
    const durationMs = options.durationS * 1000;
    const startedAt = performance.now();
    let previous: NativeBenchSnapshot | undefined;
    let deliveredSoFar = 0;
    for (let k = 1; ; k++) {
      const boundary = Math.min(k * options.intervalS * 1000, durationMs);
      const wait = startedAt + boundary - performance.now();
      if (wait > 0) await sleep(wait, undefined, { signal: hooks.signal }).catch(() => undefined);
      if (hooks.signal?.aborted) break;
      const snapshot = client.snapshot();
      const record = intervalRecord(workload, previous, snapshot);
      if (workload === 'udp-pps') {
        // What arrived, as the server counts it (iperf3 shows the receiver's side too).
        const counted = (await control.results()).flows.reduce((a, f) => a + f.datagrams, 0);
        record.delivered = counted - deliveredSoFar;
        record.deliveredPerSecond = record.endS > record.startS ? record.delivered / (record.endS - record.startS) : 0;
        deliveredSoFar = counted;
      }
      previous = snapshot;
      intervals.push(record);
      hooks.onInterval?.(record, boundary / durationMs);
      if (boundary >= durationMs) break;
    }
    await client.stop();
    const result = client.result();
    if (workload === 'udp-pps') await sleep(UDP_GRACE_MS);
    const server = await control.results();
    const summary = buildSummary(workload, result, server);
    return {
      version: REPORT_VERSION,
      workload,
      target: formatTarget(target),
      options,
      intervals,
      summary,
      primary: primaryMetric(workload, summary),
    };
  } finally {
    control.close();
  }
}
