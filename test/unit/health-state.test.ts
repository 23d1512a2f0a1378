// The pure parts of the health checker: the rise/fall table of CheckState,
// jitter bounds, and the outlier detector's counting, growth, decay and share.
import t from 'tap';
import { CheckState, HISTORY_LENGTH, jittered } from '../../src/health/check-state.js';
import { countFailure, ejectionAllowance, endEjection, newOutlierState } from '../../src/health/outlier-detector.js';

const RULES = { rise: 2, fall: 3 };
const rec = (ok: boolean) => ({ at: 0, ok, latencyMs: 1, detail: ok ? 'pass' : 'fail' });

t.test('CheckState follows the table at the top of check-state.ts', async (t) => {
  const s = new CheckState('up');
  t.equal(s.changing, true, 'provisional: fast checks');
  t.equal(s.record(rec(true), RULES), false, 'first pass settles it up');
  t.equal(s.changing, false);
  t.equal(s.record(rec(false), RULES), false);
  t.equal(s.changing, true, 'a failure while up: fast checks');
  t.equal(s.record(rec(false), RULES), false);
  t.equal(s.record(rec(false), RULES), true, 'the third failure in a row takes it down');
  t.equal(s.status, 'down');
  t.equal(s.record(rec(true), RULES), false);
  t.equal(s.record(rec(false), RULES), false, 'a failure resets the passes');
  t.equal(s.record(rec(true), RULES), false);
  t.equal(s.record(rec(true), RULES), true, 'rise passes in a row bring it up');
  const dead = new CheckState('up');
  t.equal(dead.record(rec(false), RULES), true, 'provisional up: one failure decides');
  const added = new CheckState('down');
  t.equal(added.record(rec(true), RULES), true, 'provisional down (added by reload): one pass decides');
  for (let i = 0; i < HISTORY_LENGTH + 5; i++) added.record(rec(true), RULES);
  t.equal(added.history.length, HISTORY_LENGTH, 'history is bounded');
});

t.test('jitter stays within ± its share and spreads', async (t) => {
  const draws = Array.from({ length: 2000 }, () => jittered(1000, 0.1));
  t.ok(draws.every((d) => d >= 900 && d <= 1100), 'within ±10%');
  t.ok(Math.min(...draws) < 920 && Math.max(...draws) > 1080, 'covers the range');
  t.equal(jittered(1000, 0), 1000, 'jitter 0 is exact');
});

t.test('outlier detector: counts in a row, resets on a success, grows, caps, decays, respects the share', async (t) => {
  const config = { consecutiveFailures: 3, baseEjectionMs: 1000, maxEjectionMs: 2500, maxEjectionPercent: 50 };
  const s = newOutlierState();
  t.equal(countFailure(s, config, 10, 0, 0, 4), undefined);
  t.equal(countFailure(s, config, 10, 0, 0, 4), undefined);
  t.equal(countFailure(s, config, 11, 0, 0, 4), undefined, 'a connection got through in between: the count starts again');
  t.equal(s.consecutive, 1);
  countFailure(s, config, 11, 0, 0, 4);
  t.same(countFailure(s, config, 11, 0, 0, 4), { ejectMs: 1000 }, 'third in a row: ejected for base');
  t.equal(countFailure(s, config, 11, 10, 1, 4), undefined, 'no counting while ejected');
  endEjection(s, 1000);
  for (let i = 0; i < 2; i++) countFailure(s, config, 11, 1100, 0, 4);
  t.same(countFailure(s, config, 11, 1100, 0, 4), { ejectMs: 2000 }, 'second: 2 × base');
  endEjection(s, 3100);
  for (let i = 0; i < 2; i++) countFailure(s, config, 11, 3200, 0, 4);
  t.same(countFailure(s, config, 11, 3200, 0, 4), { ejectMs: 2500 }, 'third: capped at max');
  endEjection(s, 5700);
  // 2.5 base periods without ejection: the multiplier decays by 2 (3 → 1), so the next is 2 × base.
  for (let i = 0; i < 2; i++) countFailure(s, config, 11, 8200, 0, 4);
  t.same(countFailure(s, config, 11, 8200, 0, 4), { ejectMs: 2000 }, 'decayed');
  const other = newOutlierState();
  for (let i = 0; i < 2; i++) countFailure(other, config, 0, 0, 2, 4);
  t.same(countFailure(other, config, 0, 0, 2, 4), { skipped: true }, 'two of four already ejected: stays in');
  t.same([ejectionAllowance(4, 50), ejectionAllowance(3, 50), ejectionAllowance(1, 10), ejectionAllowance(5, 0), ejectionAllowance(10, 100)], [2, 1, 1, 0, 10]);
});

t.test('credentials: env and file sources; errors name the source, never a secret; a FIFO does not hang', async (t) => {
  const { readPassword } = await import('../../src/health/credentials.js');
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const { execFileSync } = await import('node:child_process');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-health-cred-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'fulcrum.yaml');
  process.env.FULCRUM_TEST_CRED = 'from-env';
  t.equal(await readPassword({ env: 'FULCRUM_TEST_CRED' }, config), 'from-env');
  await t.rejects(readPassword({ env: 'FULCRUM_TEST_CRED_UNSET' }, config), { message: 'password: environment variable FULCRUM_TEST_CRED_UNSET is not set' });
  writeFileSync(join(dir, 'pw'), 'from-file\n');
  t.equal(await readPassword({ file: 'pw' }, config), 'from-file', 'relative to the config file; one trailing newline dropped');
  writeFileSync(join(dir, 'pw2'), 'two\n\n');
  t.equal(await readPassword({ file: 'pw2' }, config), 'two\n', 'only one newline dropped');
  await t.rejects(readPassword({ file: 'missing' }, config), { message: `password: cannot read ${join(dir, 'missing')} (ENOENT)` });
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  await t.rejects(readPassword({ file: 'fifo' }, config), { message: `password: ${join(dir, 'fifo')} is not a regular file` });
  t.equal(await readPassword(undefined, config), undefined);
});
