// Fulcrum under systemd, against a real unix datagram socket standing in for
// $NOTIFY_SOCKET: sdNotify itself (paths, abstract names, errors), then a real
// `fulcrum run` through its life: READY=1 only with health verdicts in,
// WATCHDOG=1 at WATCHDOG_USEC/2, STATUS= updates, RELOADING=1 + MONOTONIC_USEC
// then READY=1 on a reload, nothing (and exit 2) on a rejected one, STOPPING=1
// on SIGTERM. Then the unit file (`fulcrum systemd-unit`, systemd-analyze
// verify) and journald's priority prefixes.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { deadPort, freePort, startEchoServer } from '../helpers/backends.js';
import { CLI, runCli, startCli, tempDir, writeConfig } from '../helpers/cli.js';
import { NotifyListener, type Notification } from '../helpers/notify-listener.js';
import { openConn } from '../helpers/traffic.js';
import { NotifyError, sdNotify } from '../../src/systemd/notify.js';
import { Waiters } from '../helpers/waiters.js';

t.test('sdNotify sends one datagram to a path or an abstract name, and reports why it could not', async (t) => {
  t.equal(sdNotify({ READY: 1 }, undefined, {}), false, 'no NOTIFY_SOCKET: a no-op');

  const listener = await NotifyListener.start(t);
  t.equal(sdNotify({ READY: 1, STATUS: 'one\ntwo' }, undefined, { NOTIFY_SOCKET: listener.socket }), true);
  const got = await listener.waitFor('the datagram', () => true);
  t.equal(got.data, 'READY=1\nSTATUS=one two\n', 'byte for byte');

  const name = `@fulcrum-test-${process.pid}-${Date.now()}`;
  const abstract = await NotifyListener.start(t, name);
  t.equal(sdNotify({ STATUS: 'abstract' }, undefined, { NOTIFY_SOCKET: name }), true);
  t.equal((await abstract.waitFor('the datagram', () => true)).data, 'STATUS=abstract\n');

  const errors: NotifyError[] = [];
  const missing = join(tempDir(t), 'nobody.sock');
  t.equal(sdNotify({ READY: 1 }, (e) => errors.push(e), { NOTIFY_SOCKET: missing }), false);
  t.equal(sdNotify({ READY: 1 }, (e) => errors.push(e), { NOTIFY_SOCKET: 'relative.sock' }), false);
  t.match(errors, [
    { code: 'ENOENT', socket: missing, message: `cannot notify systemd at ${missing}: ENOENT` },
    { code: 'EINVAL', socket: 'relative.sock' },
  ]);
});

function configText(o: { admin: number; listen: number; backends: number[]; balance?: string }): string {
  return [
    'workers: 2',
    'drain_timeout: 5s',
    'log: { level: info }',
    `admin: { listen: 127.0.0.1:${o.admin} }`,
    'services:',
    '  - name: echo',
    `    listen: 127.0.0.1:${o.listen}`,
    `    balance: ${o.balance ?? 'roundrobin'}`,
    '    health_check: { type: tcp, interval: 300ms, timeout: 200ms }',
    '    backends:',
    ...o.backends.map((p) => `      - address: 127.0.0.1:${p}`),
    '',
  ].join('\n');
}

const isReady = (n: Notification): boolean => n.fields.READY === '1';
const isWatchdog = (n: Notification): boolean => n.fields.WATCHDOG === '1';

/** Wait until `count` watchdog pings arrived after index `from`; returns them. */
async function watchdogPings(listener: NotifyListener, from: number, count: number): Promise<Notification[]> {
  await listener.waitFor(`${count} watchdog pings`, () => listener.received.slice(from).filter(isWatchdog).length >= count, from);
  return listener.received.slice(from).filter(isWatchdog).slice(0, count);
}

t.test('a fulcrum run tells systemd ready, watchdog, status, reload and stop', async (t) => {
  const listener = await NotifyListener.start(t);
  const echo = await startEchoServer(t);
  const dead = await deadPort();
  const [listen, admin] = [await freePort(), await freePort()];
  const file = writeConfig(t, configText({ admin, listen, backends: [echo.port, dead] }));
  const proc = startCli(t, ['run', '-c', file], { env: { NOTIFY_SOCKET: listener.socket, WATCHDOG_USEC: '200000' } });

  const ready = await listener.waitFor('READY=1', isReady);
  t.ok(proc.hasLog('listening'), 'READY=1 after every listener is bound');
  t.equal(ready.fields.STATUS, '1 service, 1/2 backends up, 0 connections', 'and after both first health verdicts');
  t.notOk(listener.received.slice(0, listener.received.indexOf(ready)).some(isReady), 'one READY=1 at start');

  // Watchdog: asked for 200 ms, pinged every 100 ms (never faster than asked, at a bounded pace).
  const pings = await watchdogPings(listener, 0, 6);
  const gaps = pings.slice(1).map((p, i) => (p.at - pings[i]!.at) * 1000);
  t.ok(gaps.every((g) => g >= 60), `ping gaps near 100 ms, none much shorter: ${gaps.map((g) => g.toFixed(0)).join(' ')}`);
  t.ok(gaps.every((g) => g < 1000), 'and none near the 200 ms deadline times 5');

  // STATUS follows the connections (recomputed every 2 s, sent when it changed).
  const conn = await openConn(t, listen, 5_000);
  const busy = await listener.waitFor('STATUS with the open connection', (n) => n.fields.STATUS === '1 service, 1/2 backends up, 1 connection');
  t.notOk('READY' in busy.fields, 'a status update is only STATUS=');
  conn.socket.destroy();

  // A reload that applies: RELOADING=1 with the monotonic time, then READY=1.
  let mark = listener.received.length;
  writeFileSync(file, configText({ admin, listen, backends: [echo.port, dead], balance: 'leastconn' }));
  const reloaded = await runCli(t, ['reload', '-c', file]);
  t.equal(reloaded.code, 0, `reload exits 0: ${reloaded.stderr}`);
  const reloading = await listener.waitFor('RELOADING=1', (n) => n.fields.RELOADING === '1', mark);
  const usec = Number(reloading.fields.MONOTONIC_USEC);
  t.ok(Number.isSafeInteger(usec) && Math.abs(usec / 1e6 - reloading.at) < 5, `MONOTONIC_USEC ${usec} is CLOCK_MONOTONIC (arrived at ${reloading.at} s)`);
  const after = await listener.waitFor('READY=1 after the reload', isReady, listener.received.indexOf(reloading));
  t.ok(after.at >= reloading.at, 'READY=1 follows RELOADING=1');

  // A rejected config: `fulcrum reload` (ExecReload) exits non-zero, and systemd hears nothing of it.
  mark = listener.received.length;
  writeFileSync(file, 'services: [ this is not a config\n');
  const rejected = await runCli(t, ['reload', '-c', file]);
  t.not(rejected.code, 0, 'a rejected reload makes ExecReload fail');
  t.match(rejected.stderr, /reload rejected|cannot|config/);
  await watchdogPings(listener, mark, 3);
  const since = listener.received.slice(mark);
  t.notOk(since.some((n) => 'RELOADING' in n.fields || isReady(n)), `no RELOADING=1, no READY flap: ${JSON.stringify(since.map((n) => n.data))}`);

  // SIGTERM: STOPPING=1 while it drains, then a clean exit.
  mark = listener.received.length;
  proc.signal('SIGTERM');
  const stopping = await listener.waitFor('STOPPING=1', (n) => n.fields.STOPPING === '1', mark);
  t.match(stopping.fields.STATUS, /^draining: 1 service/);
  t.same(await proc.waitForExit(15_000), { code: 0, signal: null });
});

t.test('the workers answer the liveness probe: every loop turned within the last second or two', async (t) => {
  const { Engine } = await import('../../src/engine/engine.js');
  const { monotonicMs, stuckWorkers } = await import('../../src/systemd/service-notifier.js');
  const engine = Engine.start({ workers: 3 });
  t.teardown(() => engine.stop());
  const waiters = new Waiters();
  const poll = setInterval(() => waiters.notify(), 20);
  t.teardown(() => clearInterval(poll));
  await waiters.wait('every worker to turn once', () => (engine.workerLoopTimesMs().every((at) => at > 0) ? true : undefined), 5_000);
  const times = engine.workerLoopTimesMs();
  t.equal(times.length, 3);
  t.same(stuckWorkers(times, monotonicMs()), [], `loop times ${times.join(' ')} vs now ${monotonicMs()} (same clock)`);
  t.ok(times.every((at) => Math.abs(monotonicMs() - at) < 3000), 'CLOCK_MONOTONIC on both sides');
  engine.stop();
  t.same(engine.workerLoopTimesMs(), [], 'a stopped engine has no workers to probe');
});

t.test('a stuck engine worker silences the watchdog until it answers again', async (t) => {
  const { startRuntime, memoryLogger } = await import('../helpers/admin.js');
  const { serviceYaml } = await import('../helpers/engine.js');
  const { ServiceNotifier } = await import('../../src/systemd/service-notifier.js');
  const echo = await startEchoServer(t);
  const { runtime } = await startRuntime(t, (port) => serviceYaml(port, { backends: [echo.port] }), { workers: 2 });
  const logs: Array<Record<string, unknown>> = [];
  const pings: number[] = [];
  const waiters = new Waiters();
  const notifier = ServiceNotifier.start({
    runtime,
    logger: memoryLogger(logs),
    env: { WATCHDOG_USEC: '200000' },
    send: (fields) => {
      if (fields.WATCHDOG === 1) pings.push(Date.now());
      waiters.notify();
      return true;
    },
  })!;
  t.teardown(() => notifier.close());
  // Log lines arrive without a send: look again every 20 ms.
  const poll = setInterval(() => waiters.notify(), 20);
  t.teardown(() => clearInterval(poll));
  const count = (n: number): Promise<true> => waiters.wait(`${n} pings`, () => (pings.length >= n ? true : undefined), 5_000);
  const logged = (msg: string): Promise<Record<string, unknown>> =>
    waiters.wait(`log "${msg}"`, () => logs.find((l) => l.msg === msg), 10_000);
  await count(3);

  const stalledAt = Date.now();
  runtime.engine.stallWorkerForTest(1, 6500);
  const stuck = await logged('engine worker stuck: systemd watchdog pings stopped');
  t.same(stuck.workers, [1], 'the stuck worker is named');
  const silentFrom = Date.now();
  t.ok(silentFrom - stalledAt >= 4900 && silentFrom - stalledAt < 6400, `detected after the 5 s stale time, while stuck (${silentFrom - stalledAt} ms)`);
  const before = pings.length;
  await new Promise((resolve) => setTimeout(resolve, 600));
  t.equal(pings.length, before, 'no WATCHDOG=1 while the worker is stuck');
  await logged('engine workers answer again: systemd watchdog pings resumed');
  await count(before + 2);
  t.ok(pings[before]! - stalledAt >= 6400, 'pings resume once the worker turns again');
});

t.test('fulcrum systemd-unit prints a unit that systemd-analyze verify accepts', async (t) => {
  const config = writeConfig(t, configText({ admin: 1, listen: 2, backends: [3] }));
  const result = await runCli(t, ['systemd-unit', '-c', config]);
  t.equal(result.code, 0, result.stderr);
  const unit = result.stdout;
  t.match(unit, /^Type=notify$/m);
  t.match(unit, /^NotifyAccess=main$/m);
  t.match(unit, new RegExp(`^ExecStart=${process.execPath} ${CLI} run -c ${config}$`, 'm'), 'this node, this fulcrum, this config');
  t.match(unit, new RegExp(`^ExecReload=${process.execPath} ${CLI} reload -c ${config}$`, 'm'));
  t.match(unit, /^WatchdogSec=\d+s$/m);
  t.match(unit, /^LimitNOFILE=\d+$/m);
  t.match(unit, /^AmbientCapabilities=CAP_NET_BIND_SERVICE /m);
  t.notMatch(unit, /@[A-Z]+@/, 'no placeholder left');

  const analyze = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p));
  if (analyze === undefined) {
    t.skip('systemd-analyze is not installed (apt package systemd, listed in .ci/apt/service.list)');
    return;
  }
  const dir = tempDir(t);
  const path = join(dir, 'fulcrum.service');
  writeFileSync(path, unit);
  const verified = spawnSync(analyze, ['verify', path], { encoding: 'utf8', timeout: 30_000 });
  t.equal(verified.status, 0, 'systemd-analyze verify exits 0');
  t.equal(verified.stderr.trim(), '', 'and has nothing to say about it');
  // The same check on a broken copy does complain: the assertion above can fail.
  const broken = join(dir, 'broken.service');
  writeFileSync(broken, unit.replace('Type=notify', 'Type=notfiy'));
  t.match(spawnSync(analyze, ['verify', broken], { encoding: 'utf8', timeout: 30_000 }).stderr, /notfiy/);
});

t.test('under journald each log line starts with its syslog priority', async (t) => {
  const echo = await startEchoServer(t);
  const dead = await deadPort();
  const file = writeConfig(t, configText({ admin: await freePort(), listen: await freePort(), backends: [echo.port, dead] }));
  // JOURNAL_STREAM names stdout's device:inode, as systemd sets it.
  const child = spawn('sh', ['-c', 'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/$$/fd/1) exec "$0" "$@"', process.execPath, CLI, 'run', '-c', file], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  let out = '';
  const waiters = new Waiters();
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    waiters.notify();
  });
  const line = (re: RegExp): Promise<string> =>
    waiters.wait(`a line ${re}`, () => out.split('\n').find((l) => re.test(l)), 15_000, undefined, (m) => new Error(`${m}\n${out}`));
  t.match(await line(/"msg":"listening"/), /^<6>\{"level":"info",/);
  t.match(await line(/"msg":"backend down"/), /^<4>\{"level":"warn",/);
  t.ok(out.split('\n').filter((l) => l !== '').every((l) => /^<[2-7]>\{/.test(l)), 'every line');
  child.kill('SIGTERM');
});
