// compare's arithmetic on fake inputs: medians, min–max, ratios to the first
// target, failed runs, the round-robin order, and the table and chart text.
import t from 'tap';
import { formatComparison, formatMeasurementLine, median, runComparison, summarizeComparison, type Measurement } from '../../src/bench/compare.js';
import type { BenchReport } from '../../src/bench/report.js';
import { renderComparisonSvg } from '../../src/bench/svg-chart.js';

const m = (target: string, round: number, value: number, extra: Partial<Measurement> = {}): Measurement => ({ workload: 'tcp-throughput', target, round, value, ...extra });

t.test('median: odd, even, empty', async (t) => {
  t.equal(median([3, 1, 2]), 2);
  t.equal(median([4, 1, 3, 2]), 2.5);
  t.ok(Number.isNaN(median([])));
});

t.test('summaries: median, min–max, ratio to the first target, failures left out', async (t) => {
  const measurements = [
    m('direct', 0, 10e9), m('direct', 1, 12e9), m('direct', 2, 11e9),
    m('fulcrum', 0, 9e9), m('fulcrum', 1, 8e9), m('fulcrum', 2, Number.NaN, { error: 'ECONNRESET' }),
    m('haproxy', 0, 5.5e9), m('haproxy', 1, 5.5e9), m('haproxy', 2, 6.6e9),
  ];
  const [c] = summarizeComparison(['tcp-throughput'], ['direct', 'fulcrum', 'haproxy'], measurements);
  t.same(c?.targets, [
    { target: 'direct', runs: 3, failures: 0, median: 11e9, min: 10e9, max: 12e9, ratio: 1 },
    { target: 'fulcrum', runs: 3, failures: 1, median: 8.5e9, min: 8e9, max: 9e9, ratio: 8.5 / 11 },
    { target: 'haproxy', runs: 3, failures: 0, median: 5.5e9, min: 5.5e9, max: 6.6e9, ratio: 0.5 },
  ]);
  const table = formatComparison(summarizeComparison(['tcp-throughput'], ['direct', 'fulcrum', 'haproxy'], measurements));
  t.match(table, /tcp-throughput \(throughput, higher is better\)/);
  t.match(table, /\| direct +\| +11\.00 Gbit\/s \| 10\.00 Gbit\/s – 12\.00 Gbit\/s \| +1\.00 \| +3 \|/);
  t.match(table, /\| fulcrum +\| +8\.50 Gbit\/s \| .* \| +0\.77 \| 2\/3 ok \|/);
  t.match(table, /\| haproxy +\| +5\.50 Gbit\/s \| .* \| +0\.50 \|/);
});

t.test('latency workloads carry the median p99 too; a target with no success has no ratio', async (t) => {
  const lat = (target: string, round: number, value: number, p99Us: number): Measurement => ({ workload: 'tcp-latency', target, round, value, p99Us });
  const [c] = summarizeComparison(['tcp-latency'], ['direct', 'nginx', 'dead'], [
    lat('direct', 0, 20, 40), lat('direct', 1, 22, 44),
    lat('nginx', 0, 30, 90), lat('nginx', 1, 34, 70),
    { workload: 'tcp-latency', target: 'dead', round: 0, value: Number.NaN, error: 'ECONNREFUSED' },
  ]);
  t.equal(c?.targets[1]?.median, 32);
  t.equal(c?.targets[1]?.p99MedianUs, 80);
  t.equal(c?.targets[1]?.ratio, 32 / 21);
  t.ok(Number.isNaN(c?.targets[2]?.ratio));
  t.equal(c?.metric.better, 'lower');
  const svg = renderComparisonSvg(summarizeComparison(['tcp-latency'], ['direct', 'nginx', 'dead'], [lat('direct', 0, 20, 40), lat('nginx', 0, 30, 60)]), 'a <title> & more');
  t.match(svg, /a &lt;title&gt; &amp; more/);
  t.match(svg, /30\.0 us \(1\.50x\)/);
  t.match(svg, /no successful run/);
});

t.test('runComparison rotates the target order each round and records failures', async (t) => {
  const order: string[] = [];
  const targets = ['a', 'b', 'c'].map((name, i) => ({ name, host: '127.0.0.1', port: 1000 + i }));
  const { measurements, comparisons } = await runComparison(['udp-pps'], targets, 3, async (workload, target) => {
    order.push(target.name);
    if (target.name === 'c') throw new Error('connect ECONNREFUSED');
    const value = target.name === 'a' ? 100 : 50;
    return { primary: { name: 'delivered datagrams/s', value, unit: 'pkt/s', better: 'higher' }, summary: { errors: {} } } as unknown as BenchReport;
  });
  t.same(order, ['a', 'b', 'c', 'b', 'c', 'a', 'c', 'a', 'b']);
  t.equal(measurements.length, 9);
  t.same(comparisons[0]?.targets.map((x) => [x.target, x.median, x.ratio, x.failures]), [['a', 100, 1, 0], ['b', 50, 0.5, 0], ['c', Number.NaN, Number.NaN, 3]]);
  t.match(measurements.find((x) => x.target === 'c')?.error, /ECONNREFUSED/);
});

t.test('progress lines print values with their units, never raw numbers', async (t) => {
  const line = (m: Measurement): string => formatMeasurementLine(m, 3, 12);
  t.equal(line({ workload: 'tcp-throughput', target: 'fulcrum', round: 0, value: 1.89784e10 }), '[  3/12] tcp-throughput round 1 fulcrum: 18.98 Gbit/s');
  t.equal(line({ workload: 'tcp-connrate', target: 'direct', round: 1, value: 41234.6 }), '[  3/12] tcp-connrate round 2 direct: 41,235 conn/s');
  t.equal(line({ workload: 'udp-pps', target: 'nginx', round: 0, value: 250000 }), '[  3/12] udp-pps round 1 nginx: 250,000 pkt/s');
  t.equal(line({ workload: 'tcp-latency', target: 'fulcrum', round: 0, value: 48.25 }), '[  3/12] tcp-latency round 1 fulcrum: 48.3 us');
  t.equal(line({ workload: 'tcp-throughput', target: 'haproxy', round: 2, value: Number.NaN, error: 'ECONNREFUSED' }), '[  3/12] tcp-throughput round 3 haproxy: failed (ECONNREFUSED)');
  t.notMatch(line({ workload: 'tcp-throughput', target: 'x', round: 0, value: 9.41e9 }), /e\+/);
});
