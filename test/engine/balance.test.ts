// Backend choice is exact: round robin rotates strictly, weighted round robin
// follows nginx's smooth algorithm cycle by cycle, and two workers share one
// cursor so the distribution stays exact. `id` backends name themselves on
// connect, so each connection tells which backend it reached. Every engine
// here runs two workers, so even the sequential checks cross workers.
import t from 'tap';
import { type Backend, startBackends } from '../helpers/backends.js';
import { startService } from '../helpers/engine.js';
import { openConn, runBounded } from '../helpers/traffic.js';
import type { Test } from 'tap';

const NAMES = ['a', 'b', 'c'];

function startIdBackends(t: Test): Promise<Backend[]> {
  return startBackends(t, NAMES.length, 'id', (i) => ['--name', NAMES[i]!]);
}

/** Connect, read the backend's name, close; resolves the name. */
async function whoAnswers(t: Test, port: number): Promise<string> {
  const conn = await openConn(t, port);
  const name = await conn.readLine(5_000);
  conn.socket.end();
  await conn.waitClosed(5_000);
  return name;
}

async function sequential(t: Test, port: number, count: number): Promise<string[]> {
  const names: string[] = [];
  for (let i = 0; i < count; i++) names.push(await whoAnswers(t, port));
  return names;
}

/** One cycle of nginx's smooth weighted round robin (ties go to the earlier backend). */
function smoothCycle(weights: readonly number[]): number[] {
  const total = weights.reduce((a, b) => a + b, 0);
  const current = weights.map(() => 0);
  const cycle: number[] = [];
  for (let step = 0; step < total; step++) {
    let best = 0;
    for (let i = 0; i < weights.length; i++) {
      current[i]! += weights[i]!;
      if (current[i]! > current[best]!) best = i;
    }
    current[best]! -= total;
    cycle.push(best);
  }
  return cycle;
}

function counts(names: readonly string[]): Record<string, number> {
  const out: Record<string, number> = Object.fromEntries(NAMES.map((n) => [n, 0]));
  for (const name of names) out[name] = (out[name] ?? 0) + 1;
  return out;
}

t.test('the reference cycles: 5,1,1 is a a b a c a a, 3,2,1 is a b a c b a', async (t) => {
  t.same(smoothCycle([5, 1, 1]).map((i) => NAMES[i]).join(' '), 'a a b a c a a');
  t.same(smoothCycle([3, 2, 1]).map((i) => NAMES[i]).join(' '), 'a b a c b a');
});

t.test('roundrobin: 30 sequential connections rotate strictly, 10 each', async (t) => {
  const backends = await startIdBackends(t);
  const { port, service } = await startService(t, { backends: backends.map((b) => b.port), balance: 'roundrobin' });
  const names = await sequential(t, port, 30);
  t.same(counts(names), { a: 10, b: 10, c: 10 }, 'exactly 10 each');
  t.same(names, Array.from({ length: 30 }, (_, i) => NAMES[i % 3]), `strict rotation: ${names.join(' ')}`);
  t.same(service().backends.map((b) => b.accepted), [10, 10, 10], 'the backend counters agree');
});

for (const weights of [
  [5, 1, 1],
  [3, 2, 1],
]) {
  t.test(`weighted ${weights.join(',')}: every cycle is nginx's smooth sequence`, async (t) => {
    const CYCLES = 4;
    const cycleLength = weights.reduce((a, b) => a + b, 0);
    const backends = await startIdBackends(t);
    const { port, service } = await startService(t, {
      backends: backends.map((b, i) => ({ port: b.port, weight: weights[i]! })),
      balance: 'weighted',
    });
    const names = await sequential(t, port, CYCLES * cycleLength);
    const expectedCycle = smoothCycle(weights).map((i) => NAMES[i]!);
    for (let k = 0; k < CYCLES; k++) {
      const cycle = names.slice(k * cycleLength, (k + 1) * cycleLength);
      t.same(cycle, expectedCycle, `cycle ${k + 1}: ${cycle.join(' ')}`);
      t.same(counts(cycle), Object.fromEntries(NAMES.map((n, i) => [n, weights[i]])), `cycle ${k + 1} counts equal the weights`);
    }
    t.same(service().backends.map((b) => b.accepted), weights.map((w) => w * CYCLES), 'the backend counters agree');
  });
}

t.test('two workers share the cursor: concurrent connections still split exactly by weight', async (t) => {
  const weights = [5, 1, 1];
  const CYCLES = 10;
  const backends = await startIdBackends(t);
  const { engine, port, service } = await startService(t, {
    backends: backends.map((b, i) => ({ port: b.port, weight: weights[i]! })),
    balance: 'weighted',
  }, 2);
  t.equal(engine.workers, 2, 'the engine runs two workers');
  // Concurrent connections from many source ports spread over both workers'
  // SO_REUSEPORT listeners; whatever order the picks happen in, every pick
  // advances the one shared cursor, so the totals are whole cycles.
  const names: string[] = [];
  await runBounded(CYCLES * 7, 14, async () => {
    names.push(await whoAnswers(t, port));
  });
  t.same(counts(names), { a: 5 * CYCLES, b: CYCLES, c: CYCLES }, 'exactly k x weight each');
  t.same(service().backends.map((b) => b.accepted), weights.map((w) => w * CYCLES), 'the backend counters agree');
});
