// Tracking reads the real engine: a tracked service whose backends are all
// down (as BackendControl sets them), or a stopped engine, means this node
// cannot serve; the priority drops by the weight, or weight 0 means Fault.
// The notify runner runs a real script with keepalived's arguments, in order.
import t from 'tap';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BackendControl } from '../../src/control/backend-control.js';
import { checkDataPlane, trackedPriority } from '../../src/ha/tracking.js';
import { NotifyRunner } from '../../src/ha/notify.js';
import { createLogger } from '../../src/logger.js';
import { freePort } from '../helpers/backends.js';
import { serviceConfig, startEngine, SERVICE } from '../helpers/engine.js';

t.test('a tracked service with no backend up, then a stopped engine', async (t) => {
  const { engine } = startEngine(t, 1);
  const config = serviceConfig(await freePort(), { backends: [await freePort(), await freePort()] });
  engine.apply(config);
  const control = new BackendControl(engine);
  control.sync(config.services);
  const settings = { services: [SERVICE], weight: 0 };
  t.same(checkDataPlane(engine, settings), { ok: true, reasons: [] }, 'both backends up');
  const [first, second] = config.services[0]!.backends.map((b) => b.address.text);
  control.setHealth(SERVICE, first!, 'down');
  t.ok(checkDataPlane(engine, settings).ok, 'one backend up is enough');
  control.setAdmin(SERVICE, second!, 'maint');
  const verdict = checkDataPlane(engine, settings);
  t.same(verdict, { ok: false, reasons: [`service ${SERVICE}: no backend up`] }, 'down + maint: cannot serve');
  t.same(trackedPriority(150, settings, verdict), { priority: 150, fault: true }, 'weight 0: Fault');
  t.same(trackedPriority(150, { ...settings, weight: 60 }, verdict), { priority: 90, fault: false }, 'weight 60: 150 - 60');
  t.same(trackedPriority(50, { ...settings, weight: 60 }, verdict), { priority: 1, fault: false }, 'never below 1');
  t.ok(checkDataPlane(engine, { services: [], weight: 0 }).ok, 'untracked services do not count');
  control.setAdmin(SERVICE, second!, 'enabled');
  t.ok(checkDataPlane(engine, settings).ok, 'back to serving');
  engine.stop();
  t.same(checkDataPlane(engine, { services: [], weight: 0 }), { ok: false, reasons: ['engine stopped'] }, 'a stopped engine never serves');
});

t.test('notify: keepalived arguments, in order, failures counted', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-notify-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'calls');
  const script = join(dir, 'notify.sh');
  // Sleeps on MASTER so a run that did not wait for the previous one would write out of order.
  writeFileSync(script, `#!/bin/sh\n[ "$3" = MASTER ] && sleep 0.2\necho "$*" >> ${out}\n[ "$3" = FAULT ] && exit 3\nexit 0\n`);
  chmodSync(script, 0o755);
  const runner = new NotifyRunner(script, 'VI_51', createLogger('silent'));
  void runner.notify('BACKUP', 150);
  void runner.notify('MASTER', 150);
  void runner.notify('FAULT', 150);
  await runner.notify('STOP', 150);
  t.equal(readFileSync(out, 'utf8'), 'INSTANCE VI_51 BACKUP 150\nINSTANCE VI_51 MASTER 150\nINSTANCE VI_51 FAULT 150\nINSTANCE VI_51 STOP 150\n');
  t.equal(runner.runs, 4);
  t.equal(runner.failures, 1, 'the FAULT run exited 3');
  const missing = new NotifyRunner(join(dir, 'absent'), 'VI_51', createLogger('silent'));
  await missing.notify('MASTER', 1);
  t.equal(missing.failures, 1, 'a script that cannot start is a failure, not a crash');
});
