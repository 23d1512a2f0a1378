// An upgrade hands a VRRP Master or Backup from one process to the next
// (src/upgrade/protocol.ts): freeze() in the old, resume() in the new, on a
// manual clock; and the session records that travel beside them.
import t from 'tap';
import { masterDownIntervalMs } from '../../src/ha/state-machine.js';
import { advert, machine } from '../helpers/vrrp-machine.js';
import { decodeSessions, encodeSessions, sessionMessages } from '../../src/upgrade/protocol.js';
import type { SessionRecord } from '../../src/engine/sync-records.js';

t.test('a Master freezes with one last advert, keeps its VIPs, and the next process goes on advertising at once', async (t) => {
  const old = machine({ priority: 200 });
  old.sm.start();
  old.clock.advance(masterDownIntervalMs(200, 100));
  t.equal(old.sm.state, 'master');
  old.log.length = 0;
  old.clock.advance(50);
  const frozen = old.sm.freeze();
  t.same(frozen, { state: 'master', masterAdverIntervalMs: 100 });
  t.same(old.log, [`advert 200 @${old.clock.nowMs}`], 'one advert at its priority: no priority 0, no release, no transition');
  old.clock.advance(1000);
  t.equal(old.log.length, 1, 'silent afterwards');
  t.equal(old.sm.state, 'initialize');
  t.equal(old.sm.freeze(), undefined, 'a second freeze has nothing to give');

  const next = machine({ priority: 200 });
  next.sm.resume(frozen!);
  t.equal(next.sm.state, 'master');
  t.same(next.log, ['advert 200 @0'], 'an advert at once; no take (no GARP), no transition (no notify)');
  next.clock.advance(300);
  t.equal(next.log.filter((l) => l.startsWith('advert 200')).length, 4, 'then one every interval');
  next.sm.receive(advert(250));
  t.equal(next.sm.state, 'backup', 'and behaves as any Master: a higher priority takes over');
  t.ok(next.log.includes('release @300'));
});

t.test("a Backup's Master and the time its Master_Down_Timer had left go over", async (t) => {
  const old = machine({ priority: 100 });
  old.sm.start();
  old.sm.receive(advert(200, '10.0.0.1', 20));
  old.clock.advance(150);
  // The handover carries the timer as a wall-clock time (the two processes'
  // monotonic clocks differ), so the test brackets freeze() and resume() with
  // Date.now(): on a loaded machine milliseconds pass between them.
  const freezing = Date.now();
  const frozen = old.sm.freeze();
  const frozenBy = Date.now();
  const down = masterDownIntervalMs(100, 200);
  t.equal(frozen?.state, 'backup');
  t.equal(frozen?.masterAddress, '10.0.0.1');
  t.equal(frozen?.masterAdverIntervalMs, 200, "the Master's interval it learnt");
  const at = frozen!.masterDownAt!;
  t.ok(at >= freezing + down - 150 - 1 && at <= frozenBy + down - 150 + 1, 'its timer would fire at the same moment');
  old.clock.advance(10_000);
  t.notOk(old.log.some((l) => l.includes('master')), 'the frozen one never takes over');

  const next = machine({ priority: 100 });
  const resuming = Date.now();
  next.sm.resume(frozen!);
  const resumedBy = Date.now();
  t.equal(next.sm.state, 'backup');
  t.equal(next.sm.masterAddress, '10.0.0.1');
  t.same(next.log, [], 'no transition');
  // What was left when resume() read the clock: between these two.
  const leftAtLeast = at - resumedBy;
  const leftAtMost = at - resuming;
  next.clock.advance(leftAtLeast - 10);
  t.equal(next.sm.state, 'backup', 'not before what was left');
  next.clock.advance(leftAtMost - leftAtLeast + 20);
  t.equal(next.sm.state, 'master', 'the Master stayed silent: takes over when the old timer would have');
});

t.test('a Backup whose Master advertises stays Backup across the handover', async (t) => {
  const old = machine();
  old.sm.start();
  old.sm.receive(advert(200));
  const frozen = old.sm.freeze()!;
  const next = machine();
  next.sm.resume(frozen);
  for (let i = 0; i < 10; i++) {
    next.clock.advance(100);
    next.sm.receive(advert(200));
  }
  t.equal(next.sm.state, 'backup');
  t.same(next.log, []);
});

t.test('a new process whose data plane cannot serve gives the Master up as on a fault', async (t) => {
  const next = machine({ priority: 200 });
  next.sm.setFault(true, 'tracking: no backend up');
  next.sm.resume({ state: 'master', masterAdverIntervalMs: 100 });
  t.equal(next.sm.state, 'fault');
  t.same(next.log, ['initialize->fault @0', 'advert 0 @0', 'release @0']);
});

t.test('session records survive the upgrade socket; a message stays below 64 KiB', async (t) => {
  const records: SessionRecord[] = [
    { kind: 'sticky', service: 'web', backend: '10.0.0.21:9000', ageMs: 1200, key: 2n ** 63n + 5n },
    { kind: 'udp', service: 'game', backend: '[2001:db8::1]:7001', ageMs: 0, key: 1n },
  ];
  t.same(decodeSessions(JSON.parse(JSON.stringify(encodeSessions(records)))), records, 'round trip, 64-bit keys exact');
  t.same(decodeSessions([[3, 'x', 'y', 1, '1'], [1, 'web', 'b', 'old', '1'], [1, 'web', 'b', 1, '-1'], 'junk', [2, 'g', 'b', 5, '7']]), [
    { kind: 'udp', service: 'g', backend: 'b', ageMs: 5, key: 7n },
  ], 'malformed entries are skipped, the rest kept');
  const many: SessionRecord[] = Array.from({ length: 5000 }, (_, i) => ({ kind: 'sticky', service: 's'.repeat(100), backend: '10.0.0.1:80', ageMs: i, key: BigInt(i) * 1_000_003n }));
  const messages = sessionMessages(many);
  t.ok(messages.length > 1, `${messages.length} messages`);
  t.ok(messages.every((m) => JSON.stringify(m).length < 65_536), 'each fits one message');
  t.same(messages.flatMap((m) => decodeSessions(m.records)), many, 'all records, in order');
});
