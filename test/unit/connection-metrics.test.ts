// setHistogram() fills a prom-client Histogram's series from aggregates
// counted elsewhere (the engine's), through prom-client's internal per-series
// state: this guards that shape against a prom-client upgrade, by the text
// Prometheus would scrape.
import { Histogram, Registry } from 'prom-client';
import t from 'tap';
import { setHistogram } from '../../src/admin/connection-metrics.js';

t.test('setHistogram: cumulative buckets, sum and count as the exposition format has them', async (t) => {
  const registry = new Registry();
  const histogram = new Histogram({ name: 'x_seconds', help: 'x', labelNames: ['service'], buckets: [0.001, 0.01, 1], registers: [registry] });
  // Per bucket, not cumulative: 2 at <= 1 ms, 0 at <= 10 ms, 3 at <= 1 s, 1 above.
  setHistogram(histogram, { service: 'pg' }, { bounds: [0.001, 0.01, 1], buckets: [2, 0, 3, 1], sum: 4.5, count: 6 });
  setHistogram(histogram, { service: 'redis' }, { bounds: [0.001, 0.01, 1], buckets: [0, 0, 0, 0], sum: 0, count: 0 });
  const text = await registry.metrics();
  for (const line of [
    'x_seconds_bucket{le="0.001",service="pg"} 2',
    'x_seconds_bucket{le="0.01",service="pg"} 2',
    'x_seconds_bucket{le="1",service="pg"} 5',
    'x_seconds_bucket{le="+Inf",service="pg"} 6',
    'x_seconds_sum{service="pg"} 4.5',
    'x_seconds_count{service="pg"} 6',
    'x_seconds_count{service="redis"} 0',
  ]) {
    t.ok(text.split('\n').includes(line), line);
  }
});

t.test('setHistogram: setting a series again replaces it (each scrape sets the totals)', async (t) => {
  const registry = new Registry();
  const histogram = new Histogram({ name: 'y_bytes', help: 'y', labelNames: ['service'], buckets: [64], registers: [registry] });
  setHistogram(histogram, { service: 'a' }, { bounds: [64], buckets: [1, 1], sum: 100, count: 2 });
  setHistogram(histogram, { service: 'a' }, { bounds: [64], buckets: [3, 1], sum: 200, count: 4 });
  const text = await registry.metrics();
  t.ok(text.includes('y_bytes_bucket{le="64",service="a"} 3'));
  t.ok(text.includes('y_bytes_count{service="a"} 4'));
  t.equal(text.split('\n').filter((l) => l.startsWith('y_bytes_count')).length, 1, 'one series');
});
