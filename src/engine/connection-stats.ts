// The connection log's aggregates, read from the engine once per scrape:
// connections by termination state, and the connect, queue, duration and
// bytes histograms of each service (native/engine/connection_stats.h). The
// numbers are every worker's, summed in native code; this module only names
// them by the layout the addon exports, so no bound or name is written twice.
import type { ConnectionStatsLayout } from './native.js';

export interface HistogramData {
  /** Upper bounds (seconds for times, bytes for sizes), ascending; +Inf follows. */
  bounds: readonly number[];
  /** Observations per bucket (not cumulative): bounds.length + 1 entries, the last +Inf. */
  buckets: number[];
  /** Sum of the observations, in seconds or bytes. */
  sum: number;
  count: number;
}

export interface ServiceConnectionStats {
  /** Connections (or flows) ended, by termination state name. */
  terminations: Record<string, number>;
  histograms: Record<string, HistogramData>;
}

/** Names the numbers of one service's block (layout.wordsPerService values from `words`, at `start`). */
export function decodeConnectionStats(layout: ConnectionStatsLayout, words: Float64Array, start: number): ServiceConnectionStats {
  const terminations: Record<string, number> = {};
  layout.terminations.forEach((name, i) => {
    terminations[name] = words[start + layout.terminationOffset + i] ?? 0;
  });
  const histograms: Record<string, HistogramData> = {};
  for (const h of layout.histograms) {
    const at = start + h.offset;
    const buckets = Array.from(words.subarray(at, at + h.bounds.length + 1));
    const rawSum = words[at + h.bounds.length + 1] ?? 0;
    histograms[h.name] = {
      bounds: h.bounds,
      buckets,
      sum: h.seconds ? rawSum / 1e6 : rawSum,
      count: buckets.reduce((a, b) => a + b, 0),
    };
  }
  return { terminations, histograms };
}
