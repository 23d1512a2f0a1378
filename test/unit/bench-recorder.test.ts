// The latency recorder's percentiles are exact (nearest rank over every
// sample), checked on synthetic distributions through the addon, which runs
// the same recorder the load threads use.
import t from 'tap';
import { loadNative } from '../../src/engine/native.js';
import { latencyStats } from '../../src/bench/run-client.js';

const summary = (samples: number[]) => loadNative().bench.testing.latencySummary(Float64Array.from(samples));

function shuffled(values: number[]): number[] {
  // A fixed LCG, so a failure reproduces.
  let seed = 12345;
  const out = [...values];
  for (let i = out.length - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const j = seed % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

t.test('1..1000 in random order: p50 500, p99 990, p99.9 999, max 1000', async (t) => {
  const s = summary(shuffled(Array.from({ length: 1000 }, (_, i) => i + 1)));
  t.same(s, { count: 1000, dropped: 0, minNs: 1, meanNs: 500, p50Ns: 500, p99Ns: 990, p999Ns: 999, maxNs: 1000 });
});

t.test('1..100000: p99.9 is the 99900th sample', async (t) => {
  const s = summary(shuffled(Array.from({ length: 100_000 }, (_, i) => (i + 1) * 1000)));
  t.equal(s.p50Ns, 50_000_000);
  t.equal(s.p99Ns, 99_000_000);
  t.equal(s.p999Ns, 99_900_000);
  t.equal(s.maxNs, 100_000_000);
});

t.test('a skewed distribution: the tail shows only where it is', async (t) => {
  // 989 fast samples, 10 slow ones, 1 outlier: p99 is still fast (990th sample),
  // p99.9 (999th) is slow, max is the outlier.
  const samples = [...Array<number>(989).fill(10_000), ...Array<number>(10).fill(2_000_000), 50_000_000];
  const s = summary(shuffled(samples));
  t.equal(s.p50Ns, 10_000);
  t.equal(s.p99Ns, 2_000_000, 'the 990th of 1000 sorted samples is the first slow one');
  t.equal(s.p999Ns, 2_000_000);
  t.equal(s.maxNs, 50_000_000);
  t.equal(s.minNs, 10_000);
});

t.test('small and empty samples', async (t) => {
  t.same(summary([7]), { count: 1, dropped: 0, minNs: 7, meanNs: 7, p50Ns: 7, p99Ns: 7, p999Ns: 7, maxNs: 7 });
  t.same(summary([]), { count: 0, dropped: 0, minNs: 0, meanNs: 0, p50Ns: 0, p99Ns: 0, p999Ns: 0, maxNs: 0 });
  // Two samples: the median by nearest rank is the lower one.
  t.equal(summary([200, 100]).p50Ns, 100);
});

t.test('microsecond conversion keeps two decimals', async (t) => {
  const l = latencyStats(summary([12_345, 67_891]));
  t.equal(l.p50Us, 12.35);
  t.equal(l.maxUs, 67.89);
});
