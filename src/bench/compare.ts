// `fulcrum bench compare`: the same workload against several targets (the
// direct path first, then proxies), interleaved round by round with the order
// rotated each round, so a change in machine load hits every target alike.
// Summaries are the median over rounds, min-max, and the ratio of each
// target's median to the first target's.
import type { Workload } from '../engine/native.js';
import type { BenchReport, PrimaryMetric } from './report.js';
import { formatBits, formatCount, formatUs } from './format.js';

export interface CompareTarget {
  name: string;
  host: string;
  port: number;
  /** The control channel's address when the target carries only UDP. */
  control?: { host: string; port: number };
}

/** One run of one workload against one target. */
export interface Measurement {
  workload: Workload;
  target: string;
  round: number;
  /** The primary metric (see PrimaryMetric); NaN when the run failed. */
  value: number;
  /** Latency workloads: the run's p99 in microseconds. */
  p99Us?: number;
  error?: string;
}

export interface TargetSummary {
  target: string;
  runs: number;
  failures: number;
  median: number;
  min: number;
  max: number;
  /** median / the first target's median (NaN when either is missing). */
  ratio: number;
  /** Latency workloads: median of the runs' p99. */
  p99MedianUs?: number;
}

export interface WorkloadComparison {
  workload: Workload;
  metric: Omit<PrimaryMetric, 'value'>;
  targets: TargetSummary[];
}

/** Median (mean of the middle two for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The metric each workload is ranked by (same as primaryMetric, without a value). */
export function metricOf(workload: Workload): Omit<PrimaryMetric, 'value'> {
  switch (workload) {
    case 'tcp-throughput':
      return { name: 'throughput', unit: 'bit/s', better: 'higher' };
    case 'tcp-connrate':
      return { name: 'connections/s', unit: 'conn/s', better: 'higher' };
    case 'udp-pps':
      return { name: 'delivered datagrams/s', unit: 'pkt/s', better: 'higher' };
    case 'tcp-latency':
    case 'udp-latency':
      return { name: 'p50 round trip', unit: 'us', better: 'lower' };
  }
}

/** Per workload and target (in the order given): median, min-max, ratio to the first target. */
export function summarizeComparison(workloads: readonly Workload[], targets: readonly string[], measurements: readonly Measurement[]): WorkloadComparison[] {
  return workloads.map((workload) => {
    const rows = targets.map((target) => {
      const runs = measurements.filter((m) => m.workload === workload && m.target === target);
      const values = runs.filter((m) => Number.isFinite(m.value)).map((m) => m.value);
      const p99s = runs.flatMap((m) => (m.p99Us !== undefined && Number.isFinite(m.value) ? [m.p99Us] : []));
      const row: TargetSummary = {
        target,
        runs: runs.length,
        failures: runs.length - values.length,
        median: median(values),
        min: values.length ? Math.min(...values) : Number.NaN,
        max: values.length ? Math.max(...values) : Number.NaN,
        ratio: Number.NaN,
      };
      if (p99s.length > 0) row.p99MedianUs = median(p99s);
      return row;
    });
    const base = rows[0]?.median ?? Number.NaN;
    for (const row of rows) row.ratio = Number.isFinite(base) && base > 0 && Number.isFinite(row.median) ? row.median / base : Number.NaN;
    return { workload, metric: metricOf(workload), targets: rows };
  });
}

/** One progress line of `bench compare`: `[  3/12] tcp-throughput round 1 fulcrum: 17.70 Gbit/s`, with units as the table has them. */
export function formatMeasurementLine(m: Measurement, index: number, total: number): string {
  const value = Number.isFinite(m.value) ? formatMetric(m.value, metricOf(m.workload).unit) : 'failed';
  return `[${String(index).padStart(3)}/${total}] ${m.workload} round ${m.round + 1} ${m.target}: ${value}${m.error ? ` (${m.error})` : ''}`;
}

/** A value of `unit` for people. */
export function formatMetric(value: number, unit: string): string {
  if (!Number.isFinite(value)) return '–';
  if (unit === 'bit/s') return formatBits(value);
  if (unit === 'us') return formatUs(value);
  return `${formatCount(value)} ${unit}`;
}

/** A Markdown table per workload (readable in a terminal, valid in RESULTS.md). */
export function formatComparison(comparisons: readonly WorkloadComparison[]): string {
  const blocks = comparisons.map((c) => {
    const latency = c.metric.unit === 'us';
    const headers = ['target', `median ${c.metric.name}`, 'min–max', `ratio to ${c.targets[0]?.target ?? 'first'}`];
    if (latency) headers.push('median p99');
    headers.push('runs');
    const rows = c.targets.map((t) => {
      const row = [
        t.target,
        formatMetric(t.median, c.metric.unit),
        `${formatMetric(t.min, c.metric.unit)} – ${formatMetric(t.max, c.metric.unit)}`,
        Number.isFinite(t.ratio) ? t.ratio.toFixed(2) : '–',
      ];
      if (latency) row.push(t.p99MedianUs !== undefined ? formatUs(t.p99MedianUs) : '–');
      row.push(t.failures > 0 ? `${t.runs - t.failures}/${t.runs} ok` : String(t.runs));
      return row;
    });
    const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (cells: string[]): string => `| ${cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join(' | ')} |`;
    const rule = `|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
    const better = c.metric.better === 'higher' ? 'higher is better' : 'lower is better';
    return [`${c.workload} (${c.metric.name}, ${better})`, '', line(headers), rule, ...rows.map(line)].join('\n');
  });
  return blocks.join('\n\n');
}

export type WorkloadRunner = (workload: Workload, target: CompareTarget) => Promise<BenchReport>;

export interface CompareHooks {
  onMeasurement?: (m: Measurement, index: number, total: number) => void;
}

/**
 * Runs every workload `rounds` times against every target. Round r visits the
 * targets rotated by r. A failed run is recorded (value NaN, error) and the
 * comparison goes on.
 */
export async function runComparison(
  workloads: readonly Workload[],
  targets: readonly CompareTarget[],
  rounds: number,
  run: WorkloadRunner,
  hooks: CompareHooks = {},
): Promise<{ measurements: Measurement[]; comparisons: WorkloadComparison[] }> {
  const measurements: Measurement[] = [];
  const total = workloads.length * rounds * targets.length;
  for (const workload of workloads) {
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < targets.length; k++) {
        const target = targets[(k + round) % targets.length]!;
        let m: Measurement;
        try {
          const report = await run(workload, target);
          m = { workload, target: target.name, round, value: report.primary.value };
          if (report.summary.latency) m.p99Us = report.summary.latency.p99Us;
          const errors = Object.entries(report.summary.errors);
          if (errors.length > 0) m.error = errors.map(([name, n]) => `${name} ${n}`).join(', ');
        } catch (err) {
          m = { workload, target: target.name, round, value: Number.NaN, error: err instanceof Error ? err.message : String(err) };
        }
        measurements.push(m);
        hooks.onMeasurement?.(m, measurements.length, total);
      }
    }
  }
  return { measurements, comparisons: summarizeComparison(workloads, targets.map((t) => t.name), measurements) };
}
