// The connection log's metrics: per service, histograms of connect time,
// queue wait, session duration and bytes per session, connections ended by
// termination state, and what became of the log's records. Filled at each
// scrape from the engine's native aggregates (one call), never per
// connection in JS: prom-client's Histogram type is used for its exposition,
// with its series set from the aggregates (setHistogram) instead of observed
// one value at a time.
import { Counter, Histogram, type Registry } from 'prom-client';
import type { HistogramData, ServiceConnectionStats } from '../engine/connection-stats.js';
import { loadNative, type ConnectionLogCounters } from '../engine/native.js';

/** What the metrics read at each scrape (the engine, through the runtime). */
export interface ConnectionMetricsSource {
  connectionStats(): Map<string, ServiceConnectionStats>;
  connectionLogCounters(): ConnectionLogCounters;
}

const HISTOGRAMS: readonly { native: string; name: string; help: string }[] = [
  { native: 'connect', name: 'fulcrum_connection_connect_seconds', help: 'Time to connect to the backend that took the connection (TCP), per service.' },
  { native: 'queue', name: 'fulcrum_connection_queue_seconds', help: 'Time a connection waited in the service queue for a backend with room (only connections that waited).' },
  { native: 'duration', name: 'fulcrum_connection_duration_seconds', help: 'Session duration, accept to close (TCP) or first datagram to end (UDP flows), of sessions that reached a backend.' },
  { native: 'bytes', name: 'fulcrum_connection_bytes', help: 'Bytes per session, both directions together, of sessions that reached a backend.' },
];

const RECORD_RESULTS: readonly { key: keyof ConnectionLogCounters; result: string }[] = [
  { key: 'written', result: 'written' },
  { key: 'dropped', result: 'dropped' },
  { key: 'overCap', result: 'over_cap' },
  { key: 'sampledOut', result: 'sampled_out' },
  { key: 'writeErrors', result: 'write_error' },
];

/** prom-client's per-series state of a Histogram (lib/histogram.js, v15): what observe() accumulates. */
interface HistogramSeries {
  labels: Record<string, string>;
  bucketValues: Record<number, number>;
  sum: number;
  count: number;
}

/**
 * Sets the series of `histogram` for `labels` to aggregates counted
 * elsewhere. prom-client has no public call for this; zero() creates the
 * series and its hashMap holds it (test/unit/connection-metrics.test.ts
 * guards the shape against a prom-client upgrade).
 */
export function setHistogram(histogram: Histogram, labels: Record<string, string>, data: HistogramData): void {
  histogram.zero(labels);
  const series = Object.values((histogram as unknown as { hashMap: Record<string, HistogramSeries> }).hashMap).find((s) =>
    Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (series === undefined) throw new Error(`internal: prom-client did not create the series ${JSON.stringify(labels)}`);
  data.bounds.forEach((bound, i) => {
    series.bucketValues[bound] = data.buckets[i] ?? 0;
  });
  series.sum = data.sum;
  series.count = data.count;
}

export function registerConnectionMetrics(registry: Registry, source: () => ConnectionMetricsSource | undefined): void {
  const layout = loadNative().connectionStatsLayout;
  // One read of the engine per scrape, shared by every metric below.
  let stats = new Map<string, ServiceConnectionStats>();
  let scraped = 0;
  const read = (): Map<string, ServiceConnectionStats> => {
    const now = Date.now();
    if (now !== scraped) {
      scraped = now;
      stats = source()?.connectionStats() ?? new Map();
    }
    return stats;
  };
  for (const spec of HISTOGRAMS) {
    const bounds = layout.histograms.find((h) => h.name === spec.native)?.bounds;
    if (bounds === undefined) throw new Error(`internal: the addon has no ${spec.native} histogram`);
    new Histogram({
      name: spec.name,
      help: spec.help,
      labelNames: ['service'],
      buckets: [...bounds],
      registers: [registry],
      collect(this: Histogram) {
        this.reset();
        for (const [service, s] of read()) {
          const data = s.histograms[spec.native];
          if (data !== undefined) setHistogram(this, { service }, data);
        }
      },
    });
  }
  new Counter({
    name: 'fulcrum_connections_ended_total',
    help: 'Connections (TCP) and flows (UDP) ended, by termination state (see the README, "Connection log"): who ended them and why.',
    labelNames: ['service', 'termination'],
    registers: [registry],
    collect(this: Counter) {
      this.reset();
      for (const [service, s] of read()) {
        for (const [termination, count] of Object.entries(s.terminations)) {
          if (count > 0) this.inc({ service, termination }, count);
        }
      }
    },
  });
  new Counter({
    name: 'fulcrum_connection_log_records_total',
    help: 'Connection log records by result: written, dropped (a ring was full), over_cap (max_per_second), sampled_out (sample), write_error.',
    labelNames: ['result'],
    registers: [registry],
    collect(this: Counter) {
      this.reset();
      const counters = source()?.connectionLogCounters();
      if (counters === undefined) return;
      for (const { key, result } of RECORD_RESULTS) this.inc({ result }, counters[key]);
    },
  });
}
