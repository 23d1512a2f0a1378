// The RFC 5798 section 6.4 state machine, driven event by event on a manual
// clock: no sockets, every timer fire and every action observed.
import t from 'tap';
import { masterDownIntervalMs, skewTimeMs } from '../../src/ha/state-machine.js';
import { advert, machine } from '../helpers/vrrp-machine.js';

t.test('the formulas of RFC 5798 6.1', async (t) => {
  t.equal(skewTimeMs(100, 1000), 609.375);
  t.equal(masterDownIntervalMs(100, 1000), 3609.375);
  t.equal(skewTimeMs(254, 100), 0.78125);
  t.equal(masterDownIntervalMs(150, 100), 300 + (106 * 100) / 256);
});

t.test('alone: Backup, then Master after Master_Down_Interval, adverts every interval', async (t) => {
  const { sm, clock, log } = machine();
  sm.start();
  t.equal(sm.state, 'backup');
  const down = masterDownIntervalMs(100, 100);
  clock.advance(down - 1);
  t.equal(sm.state, 'backup', 'not before Master_Down_Interval');
  clock.advance(1);
  t.equal(sm.state, 'master');
  t.same(log, ['initialize->backup @0', `advert 100 @${down}`, `backup->master @${down}`, `take @${down}`], 'advert before the addresses');
  clock.advance(300);
  t.equal(log.filter((l) => l.startsWith('advert 100')).length, 4, 'an advert every 100ms');
});

t.test('Backup: adverts of an equal or higher priority keep it Backup; their interval is learned', async (t) => {
  const { sm, clock } = machine();
  sm.start();
  for (let i = 0; i < 20; i++) {
    clock.advance(250);
    sm.receive(advert(200, '10.0.0.1', 25));
  }
  t.equal(sm.state, 'backup');
  t.equal(sm.masterAdverIntervalMs, 250, 'Master_Adver_Interval from the advert');
  t.equal(sm.masterAddress, '10.0.0.1');
  clock.advance(masterDownIntervalMs(100, 250) - 1);
  t.equal(sm.state, 'backup', 'the learned interval sets the down timer');
  clock.advance(1);
  t.equal(sm.state, 'master');
});

t.test('Backup: priority 0 from the Master: take over after Skew_Time', async (t) => {
  const { sm, clock } = machine();
  sm.start();
  clock.advance(50);
  sm.receive(advert(200));
  clock.advance(50);
  sm.receive(advert(0));
  clock.advance(Math.ceil(skewTimeMs(100, 100)));
  t.equal(sm.state, 'master', `Master ${Math.ceil(skewTimeMs(100, 100))}ms after the priority-0 advert`);
});

t.test('Backup with preempt: a lower-priority Master is ignored, so it takes over', async (t) => {
  const { sm, clock } = machine({ priority: 150 });
  sm.start();
  for (let i = 0; i < 10; i++) {
    clock.advance(100);
    sm.receive(advert(100));
  }
  t.equal(sm.state, 'master', 'preempted');
});

t.test('Backup without preempt: a lower-priority Master keeps it Backup', async (t) => {
  const { sm, clock } = machine({ priority: 150, preempt: false });
  sm.start();
  for (let i = 0; i < 30; i++) {
    clock.advance(100);
    sm.receive(advert(100));
  }
  t.equal(sm.state, 'backup');
});

t.test('preempt_delay holds off the preemption for that long', async (t) => {
  const { sm, clock } = machine({ priority: 150, preemptDelayMs: 1000 });
  sm.start();
  let tookAt: number | undefined;
  for (let i = 0; i < 30 && tookAt === undefined; i++) {
    clock.advance(100);
    if (sm.state === 'master') tookAt = clock.nowMs;
    else sm.receive(advert(100));
  }
  t.ok(tookAt !== undefined && tookAt >= 1100 && tookAt <= 1100 + masterDownIntervalMs(150, 100) + 100, `preempted at ${tookAt}ms, after the 1s delay`);
});

t.test('Master: yields to a higher priority, or to an equal one with a greater address', async (t) => {
  for (const [priority, source, yields] of [
    [101, '10.0.0.1', true],
    [99, '10.0.0.9', false],
    [100, '10.0.0.3', true],
    [100, '10.0.0.1', false],
  ] as const) {
    const { sm, clock, log } = machine();
    sm.start();
    clock.advance(1000);
    t.equal(sm.state, 'master');
    sm.receive(advert(priority, source));
    t.equal(sm.state, yields ? 'backup' : 'master', `priority ${priority} from ${source}`);
    if (yields) t.ok(log.includes(`release @${clock.nowMs}`), 'released the addresses');
  }
});

t.test('Master: a priority-0 advert is answered at once', async (t) => {
  const { sm, clock, log } = machine();
  sm.start();
  clock.advance(1000);
  const before = log.length;
  sm.receive(advert(0));
  t.same(log.slice(before), [`advert 100 @${clock.nowMs}`]);
});

t.test('stop: a Master sends priority 0 and releases; timers stop', async (t) => {
  const { sm, clock, log } = machine();
  sm.start();
  clock.advance(1000);
  sm.stop();
  t.equal(sm.state, 'initialize');
  t.same(log.slice(-3), [`advert 0 @${clock.nowMs}`, `release @${clock.nowMs}`, `master->initialize @${clock.nowMs}`]);
  const count = log.length;
  clock.advance(5000);
  t.equal(log.length, count, 'nothing after stop');
  sm.receive(advert(200));
  t.equal(sm.state, 'initialize', 'adverts after stop are ignored');
});

t.test('tracking: a lower priority is advertised at once; a fault leaves Master; recovery starts over', async (t) => {
  const { sm, clock, log } = machine({ priority: 150 });
  sm.start();
  clock.advance(1000);
  sm.setPriority(90);
  t.equal(log.at(-1), `advert 90 @${clock.nowMs}`);
  t.equal(sm.priority, 90);
  sm.setFault(true, 'engine stopped');
  t.equal(sm.state, 'fault');
  t.same(log.slice(-3), [`advert 0 @${clock.nowMs}`, `release @${clock.nowMs}`, `master->fault @${clock.nowMs}`]);
  clock.advance(5000);
  t.equal(sm.state, 'fault', 'stays in Fault: no timer takes it out');
  sm.setFault(false, 'recovered');
  t.equal(sm.state, 'backup');
  clock.advance(1000);
  t.equal(sm.state, 'master');
});
