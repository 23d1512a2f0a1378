// Human output of a bench run: one line per interval (with a progress
// indicator, as iperf3 prints them) and a final table.
import type { Workload } from '../engine/native.js';
import { scaleToUnit } from '../units.js';
import type { BenchReport, IntervalRecord, LatencyStats } from './report.js';

/** 9.41 Gbit/s, 812.3 Mbit/s... */
export function formatBits(bitsPerSecond: number): string {
  const { value, unit } = scaleToUnit(bitsPerSecond, 1000, ['bit/s', 'Kbit/s', 'Mbit/s', 'Gbit/s', 'Tbit/s']);
  return `${value.toFixed(value >= 100 ? 1 : 2)} ${unit}`;
}

/** 1.23 GB, 512.0 MB... (decimal units, like the rates). */
export function formatBytes(bytes: number): string {
  const { value, unit, index } = scaleToUnit(bytes, 1000, ['B', 'KB', 'MB', 'GB', 'TB']);
  return `${value.toFixed(index === 0 ? 0 : 2)} ${unit}`;
}

/** 12,345 */
export function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export function formatRate(n: number, unit: string): string {
  return `${n >= 100 ? formatCount(n) : n.toFixed(1)} ${unit}`;
}

export function formatUs(us: number): string {
  return us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(1)} us`;
}

function latencyText(l: LatencyStats | undefined): string {
  if (!l || l.count === 0) return 'no samples';
  return `p50 ${formatUs(l.p50Us)}  p99 ${formatUs(l.p99Us)}  p99.9 ${formatUs(l.p999Us)}  max ${formatUs(l.maxUs)}`;
}

/** `[ 30%] ###.......  2.00-3.00 s  ...`: the progress bar is 10 characters wide. */
export function formatIntervalLine(workload: Workload, record: IntervalRecord, progress: number): string {
  const percent = Math.round(Math.min(1, Math.max(0, progress)) * 100);
  const filled = Math.floor(percent / 10);
  const bar = `${'#'.repeat(filled)}${'.'.repeat(10 - filled)}`;
  const span = `${record.startS.toFixed(2)}-${record.endS.toFixed(2)} s`.padStart(15);
  const head = `[${String(percent).padStart(3)}%] ${bar} ${span}`;
  const errors = record.errors > 0 ? `  errors ${record.errors}` : '';
  switch (workload) {
    case 'tcp-throughput': {
      const perStream = record.streams && record.streams.length > 1
        ? `  (${record.streams.map((s) => `${s.direction === 'send' ? '>' : '<'}${formatBits(s.bitsPerSecond)}`).join(' ')})`
        : '';
      return `${head}  ${formatBytes(record.bytesSent + record.bytesReceived).padStart(10)}  ${formatBits(record.bitsPerSecond).padStart(13)}${perStream}${errors}`;
    }
    case 'tcp-connrate':
      return `${head}  ${formatRate(record.operationsPerSecond, 'conn/s').padStart(14)}  ${latencyText(record.latency)}${errors}`;
    case 'tcp-latency':
    case 'udp-latency':
      return `${head}  ${formatRate(record.operationsPerSecond, 'rt/s').padStart(12)}  ${latencyText(record.latency)}${errors}`;
    case 'udp-pps':
      return `${head}  ${formatRate(record.operationsPerSecond, 'pkt/s').padStart(14)} sent  ${formatRate(record.deliveredPerSecond ?? 0, 'pkt/s').padStart(14)} delivered  ${formatBits(record.bitsPerSecond).padStart(13)}${errors}`;
  }
}

/** Rows of [label, value] printed as an aligned two-column table. */
function table(title: string, rows: Array<[string, string]>): string {
  const width = Math.max(...rows.map(([label]) => label.length));
  return [title, ...rows.map(([label, value]) => `  ${label.padEnd(width)}  ${value}`)].join('\n');
}

/** The final table of a run. */
export function formatSummary(report: BenchReport): string {
  const s = report.summary;
  const rows: Array<[string, string]> = [
    ['target', report.target],
    ['duration', `${s.durationS.toFixed(2)} s`],
  ];
  if (report.workload === 'tcp-throughput' && s.streams) {
    const lines = [
      `  ${'stream'.padEnd(7)}${'direction'.padEnd(10)}${'client bytes'.padStart(16)}${'server bytes'.padStart(16)}${'rate'.padStart(15)}  clean`,
      ...s.streams.map(
        (st) =>
          `  ${String(st.stream).padEnd(7)}${st.direction.padEnd(10)}${formatCount(st.clientBytes).padStart(16)}${formatCount(st.serverBytes).padStart(16)}${formatBits(st.bitsPerSecond).padStart(15)}  ${st.closedCleanly ? 'yes' : 'NO'}`,
      ),
    ];
    if (s.sendBitsPerSecond > 0) rows.push(['send', `${formatBits(s.sendBitsPerSecond)} (${formatBytes(s.bytesSent)})`]);
    if (s.receiveBitsPerSecond > 0) rows.push(['receive', `${formatBits(s.receiveBitsPerSecond)} (${formatBytes(s.bytesReceived)})`]);
    rows.push(['counts agree', s.countsAgree ? 'yes: client and server byte counts are equal' : 'NO: see the streams above']);
    return `${table(`${report.workload} summary`, rows)}\n${lines.join('\n')}${errorsText(s.errors)}`;
  }
  if (report.workload === 'tcp-connrate') {
    rows.push(['connections', formatCount(s.operations)], ['rate', formatRate(s.operationsPerSecond, 'conn/s')]);
  }
  if (report.workload === 'tcp-latency' || report.workload === 'udp-latency') {
    rows.push(['round trips', formatCount(s.operations)], ['rate', formatRate(s.operationsPerSecond, 'rt/s')]);
    if (s.lost !== undefined) rows.push(['lost', formatCount(s.lost)]);
  }
  if (s.latency) {
    const l = s.latency;
    rows.push(
      ['latency p50', formatUs(l.p50Us)],
      ['latency p99', formatUs(l.p99Us)],
      ['latency p99.9', formatUs(l.p999Us)],
      ['latency max', formatUs(l.maxUs)],
      ['latency mean', formatUs(l.meanUs)],
    );
    if (l.dropped > 0) rows.push(['latency note', `${formatCount(l.dropped)} samples past the recorder's cap are not in the percentiles`]);
  }
  if (s.udp) {
    const u = s.udp;
    rows.push(
      ['sent', `${formatCount(u.sent)} (${formatRate(u.sentPerSecond, 'pkt/s')})`],
      ['delivered', `${formatCount(u.delivered)} (${formatRate(u.deliveredPerSecond, 'pkt/s')})`],
      ['lost', `${formatCount(u.lost)} (${u.lossPercent.toFixed(3)}%)`],
      ['reordered', formatCount(u.reordered)],
    );
  }
  return `${table(`${report.workload} summary`, rows)}${errorsText(s.errors)}`;
}

function errorsText(errors: Record<string, number>): string {
  const entries = Object.entries(errors);
  if (entries.length === 0) return '';
  return `\n  errors: ${entries.map(([name, n]) => `${name} ${n}`).join(', ')}`;
}
