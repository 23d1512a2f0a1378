// The health checker through real Fulcrum traffic: backends are real
// processes (test/fixtures/backend.mjs in `id` mode, which greets each
// connection with its name), killed and restarted by PID; clients connect
// through the engine and read which backend they reached.
import t, { type Test } from 'tap';
import { startBackend, startIdBackends, whoAnswers } from '../helpers/backends.js';
import { startHealth, stateChanges } from '../helpers/health.js';
import { delay, HOST } from '../helpers/traffic.js';

const INTERVAL_MS = 200;
const RISE = 2;
const FALL = 3;

function yaml(listen: number, ports: number[], check: string, extraService: string[] = []): string {
  return [
    'workers: 2',
    'services:',
    '  - name: svc',
    `    listen: ${HOST}:${listen}`,
    '    balance: roundrobin',
    `    health_check: ${check}`,
    ...extraService.map((l) => `    ${l}`),
    '    backends:',
    ...ports.map((p) => `      - address: ${HOST}:${p}`),
    '',
  ].join('\n');
}

const TCP_CHECK = `{type: tcp, interval: ${INTERVAL_MS}ms, fast_interval: ${INTERVAL_MS}ms, timeout: 150ms, rise: ${RISE}, fall: ${FALL}, jitter: 0}`;

async function names(t: Test, port: number, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(await whoAnswers(t, port));
  return out;
}

t.test('a killed backend is marked down after fall checks, gets no new connection, and is back after rise checks', async (t) => {
  const backends = await startIdBackends(t, 3);
  const ports = backends.map((b) => b.port);
  const h = await startHealth(t, (listen) => yaml(listen, ports, TCP_CHECK));
  const victim = backends[1]!;
  // Every backend passes its first check and takes traffic.
  for (const b of backends) await h.waitHealth(b.address, 'up', 2_000);
  await delay(INTERVAL_MS * 2);
  t.same(new Set(await names(t, h.port, 6)), new Set(['a', 'b', 'c']), 'all three backends take connections while healthy');

  process.kill(victim.pid, 'SIGKILL');
  const killedAt = Date.now();
  const downAfter = await h.waitHealth(victim.address, 'down', 5_000);
  const downMs = Date.now() - killedAt;
  t.comment(`marked down ${downMs} ms after the kill (fall ${FALL} × interval ${INTERVAL_MS} ms = ${FALL * INTERVAL_MS} ms)`);
  t.ok(downAfter >= 0);
  // The first failing check comes at most one interval after the kill, then fall-1 more at the (fast) interval.
  t.ok(downMs >= (FALL - 1) * INTERVAL_MS - 20, `not before fall-1 intervals after the first failure (${downMs} ms)`);
  t.ok(downMs <= FALL * INTERVAL_MS + 1_500, `within fall × interval plus slack for a busy machine (${downMs} ms)`);
  const victimHistory = h.monitor.snapshot().find((b) => b.backend === victim.address)!;
  const failures = victimHistory.history.filter((r) => !r.ok);
  t.equal(failures.length, FALL, `exactly fall (${FALL}) failed checks recorded when it went down`);
  t.match(failures[0]!.detail, /ECONNREFUSED/, 'the failure says why');

  const seen = await names(t, h.port, 12);
  t.notOk(seen.includes('b'), `no new connection reaches the down backend (${seen.join('')})`);
  t.same(new Set(seen), new Set(['a', 'c']), 'the others take them');
  t.equal(h.engine.stats().services[0]!.backends[1]!.state, 'down', 'the engine runs it as down');

  await startBackend(t, 'id', ['--name', 'b', '--port', String(victim.port)]);
  const restartedAt = Date.now();
  await h.waitHealth(victim.address, 'up', 5_000);
  const upMs = Date.now() - restartedAt;
  t.comment(`back up ${upMs} ms after the restart (rise ${RISE} × interval ${INTERVAL_MS} ms = ${RISE * INTERVAL_MS} ms)`);
  t.ok(upMs >= (RISE - 1) * INTERVAL_MS - 20, `not before rise-1 intervals after the first pass (${upMs} ms)`);
  t.ok(upMs <= RISE * INTERVAL_MS + 1_500, `within rise × interval plus slack for a busy machine (${upMs} ms)`);
  t.ok((await names(t, h.port, 6)).includes('b'), 'the restarted backend takes connections again');

  const changes = stateChanges(h.logs, victim.address);
  t.same(changes.map((c) => c.health), ['down', 'up'], 'one log line per state change');
  t.match(changes[0]!.reason, /tcp check failed: ECONNREFUSED/, 'the down line gives the reason');
  t.match(changes[1]!.reason, /tcp check passed/, 'the up line gives the reason');
});

t.test('the operator wins over health: a drained backend stays out when its check passes, and health returns when enabled', async (t) => {
  const backends = await startIdBackends(t, 2);
  const h = await startHealth(t, (listen) => yaml(listen, backends.map((b) => b.port), TCP_CHECK));
  const a = backends[0]!.address;
  await h.waitHealth(a, 'up', 2_000);
  h.control.setAdmin('svc', a, 'maint');
  await delay(INTERVAL_MS * 3);
  t.equal(h.control.status('svc', a).effective, 'maint', 'passing checks do not bring a backend in maintenance back');
  t.notOk((await names(t, h.port, 4)).includes('a'), 'no connection reaches it');
  process.kill(backends[0]!.pid, 'SIGKILL');
  await h.waitHealth(a, 'down', 3_000);
  t.equal(h.control.status('svc', a).effective, 'maint', 'a failing check does not change maint either');
  h.control.setAdmin('svc', a, 'enabled');
  t.equal(h.control.status('svc', a).effective, 'down', 'enabled again: health decides (down)');
});

t.test('first check at start: a dead backend is down after one failed check, not fall', async (t) => {
  const [alive] = await startIdBackends(t, 1);
  const dead = (await startIdBackends(t, 1))[0]!;
  process.kill(dead.pid, 'SIGKILL');
  await delay(50);
  const h = await startHealth(t, (listen) => yaml(listen, [alive!.port, dead.port], `{type: tcp, interval: 1s, fast_interval: 1s, timeout: 200ms, fall: 3, jitter: 0}`));
  t.equal(h.health(alive!.address), 'up', 'up at start (HAProxy: servers start up)');
  const ms = await h.waitHealth(dead.address, 'down', 2_000);
  t.ok(ms < 1_900, `the first failed check takes it down at once, not after fall checks (${ms} ms)`);
  t.equal(h.monitor.snapshot().find((b) => b.backend === dead.address)!.history.length, 1, 'after one check');
});

t.test('reload: an added backend is down until its first passing check, a removed one stops being checked, changed settings take effect', async (t) => {
  const backends = await startIdBackends(t, 3);
  const [a, b, c] = backends.map((x) => x.port) as [number, number, number];
  let listen = 0;
  const h = await startHealth(t, (port) => {
    listen = port;
    return yaml(port, [a, b], TCP_CHECK);
  });
  await h.waitHealth(backends[0]!.address, 'up', 2_000);
  const historyOfA = h.monitor.snapshot().find((x) => x.backend === backends[0]!.address)!.history.length;

  h.reload(yaml(listen, [a, c], TCP_CHECK));
  t.equal(h.health(backends[2]!.address), 'down', 'the added backend starts down');
  t.equal(h.engine.stats().services[0]!.backends[1]!.state, 'down', 'and the engine runs it down: no connection before its first check');
  t.notOk(h.monitor.snapshot().some((x) => x.backend === backends[1]!.address), 'the removed backend is gone');
  const upMs = await h.waitHealth(backends[2]!.address, 'up', 2_000);
  t.comment(`added backend up ${upMs} ms after the reload (one passing check)`);
  t.ok(h.monitor.snapshot().find((x) => x.backend === backends[0]!.address)!.history.length >= historyOfA, 'the kept backend keeps its history');

  // Changed settings: rise 1 / fall 1 and a port nothing listens on → down on the next check.
  const before = h.monitor.snapshot().find((x) => x.backend === backends[0]!.address)!.history.length;
  h.reload(yaml(listen, [a, c], `{type: tcp, interval: ${INTERVAL_MS}ms, fast_interval: ${INTERVAL_MS}ms, timeout: 150ms, rise: 1, fall: 1, jitter: 0, port: 1}`));
  await h.waitHealth(backends[0]!.address, 'down', 2_000);
  const after = h.monitor.snapshot().find((x) => x.backend === backends[0]!.address)!;
  t.ok(after.history.length > before, 'history carried over the settings change');
  t.match(after.history.at(-1)!.detail, /ECONNREFUSED/, 'the new port is checked');

  // A reload that removes the check: always up.
  h.reload(yaml(listen, [a, c], '{type: none}'));
  t.equal(h.health(backends[0]!.address), 'up', 'no active check: up at once');
  t.equal(h.monitor.snapshot().find((x) => x.backend === backends[0]!.address)!.checkType, 'none');
  await delay(INTERVAL_MS * 2);
  t.equal(h.health(backends[0]!.address), 'up', 'and stays up (no check runs)');
});

function passiveYaml(listen: number, ports: number[]): string {
  return [
    'workers: 1',
    'services:',
    '  - name: svc',
    `    listen: ${HOST}:${listen}`,
    '    balance: roundrobin',
    '    retries: 3',
    '    passive: {consecutive_failures: 3, base_ejection: 400ms, max_ejection: 1s, max_ejection_percent: 50}',
    '    backends:',
    ...ports.map((p) => `      - address: ${HOST}:${p}`),
    '',
  ].join('\n');
}

/** Connect through Fulcrum until `done()` (bounded); failed connects are what passive health counts. */
async function trafficUntil(t: Test, port: number, done: () => boolean, timeoutMs = 3_000): Promise<number> {
  const until = Date.now() + timeoutMs;
  let connections = 0;
  while (Date.now() < until && !done()) {
    await whoAnswers(t, port).catch(() => undefined);
    connections++;
  }
  return connections;
}

t.test('passive ejection: consecutive connect failures eject a backend for a cool-down that grows with each ejection', async (t) => {
  const backends = await startIdBackends(t, 3);
  // No active check: passive health alone decides.
  const h = await startHealth(t, (listen) => passiveYaml(listen, backends.map((b) => b.port)), 1);
  const victim = backends[0]!.address;
  process.kill(backends[0]!.pid, 'SIGKILL');
  await delay(50);
  const n = await trafficUntil(t, h.port, () => h.health(victim) === 'down');
  t.equal(h.health(victim), 'down', `ejected after ${n} client connections`);
  const firstLine = h.logs.lines.find((l) => l.backend === victim && l.health === 'down')!;
  t.match(firstLine.reason, /ejected for 400 ms \(ejection 1\) after 3 connect failures in a row \(last ECONNREFUSED\)/, 'the log says why and for how long');
  t.equal(h.engine.stats().services[0]!.backends[0]!.state, 'down', 'the engine runs it as down');
  t.notOk((await names(t, h.port, 6)).includes('a'), 'no connection is sent to it while ejected');
  const firstUp = await h.waitHealth(victim, 'up', 2_000);
  const firstMs = Date.now() - Date.parse(firstLine.time as string);
  t.comment(`first ejection lasted ${firstMs} ms (base_ejection 400 ms)`);
  t.ok(firstMs >= 390 && firstMs <= 1_400, `first ejection lasts base_ejection (${firstMs} ms, waited ${firstUp})`);

  await trafficUntil(t, h.port, () => h.health(victim) === 'down');
  const secondLine = h.logs.lines.filter((l) => l.backend === victim && l.health === 'down')[1]!;
  t.match(secondLine.reason, /ejected for 800 ms \(ejection 2\)/, 'the second ejection lasts 2 × base_ejection');
  await h.waitHealth(victim, 'up', 2_000);
  const secondMs = Date.now() - Date.parse(secondLine.time as string);
  t.comment(`second ejection lasted ${secondMs} ms (2 × base = 800 ms)`);
  t.ok(secondMs >= 790 && secondMs <= 1_800, `measured ${secondMs} ms`);

  await trafficUntil(t, h.port, () => h.health(victim) === 'down');
  const thirdLine = h.logs.lines.filter((l) => l.backend === victim && l.health === 'down')[2]!;
  t.match(thirdLine.reason, /ejected for 1000 ms \(ejection 3\)/, 'the third is capped at max_ejection (1s, not 1.2s)');
  t.equal(h.monitor.snapshot().find((x) => x.backend === victim)!.ejections, 3, 'three ejections counted');
});

t.test('passive ejection never ejects more than max_ejection_percent of a service', async (t) => {
  const backends = await startIdBackends(t, 4);
  const h = await startHealth(t, (listen) => passiveYaml(listen, backends.map((b) => b.port)), 1);
  for (const b of backends.slice(0, 3)) process.kill(b.pid, 'SIGKILL');
  await delay(50);
  const ejectedNow = (): number => h.monitor.snapshot().filter((x) => x.ejectedUntil !== undefined).length;
  await trafficUntil(t, h.port, () => h.logs.lines.some((l) => /stays in/.test(l.msg)));
  t.equal(ejectedNow(), 2, 'two of four backends ejected (max_ejection_percent 50), though three fail');
  t.ok(h.logs.lines.some((l) => /stays in: 2 of 4 backends are already ejected \(max_ejection_percent 50\)/.test(l.msg)), 'the skipped ejection is logged');
  const downs = h.control.list().filter((s) => s.health === 'down').length;
  t.equal(downs, 2, 'BackendControl holds two down verdicts');
});

t.test('passive ejection counts connect timeouts too: a backend whose accept queue is full is ejected (ETIMEDOUT)', async (t) => {
  // A process that listens with a backlog of 1 and then never accepts again
  // (its event loop is blocked in Atomics.wait, without spinning): once the queue is full, the kernel drops new
  // SYNs and connects to it time out. Killed by PID at teardown.
  const { spawn } = await import('node:child_process');
  const stuck = spawn(process.execPath, ['-e', `require('net').createServer().listen({ port: 0, host: '${HOST}', backlog: 1 }, function () { console.log(this.address().port); setTimeout(() => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0), 100); });`], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    if (stuck.exitCode === null) stuck.kill('SIGKILL');
  });
  const stuckPort = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the stuck listener did not start')), 5_000);
    stuck.stdout!.once('data', (chunk: Buffer) => {
      clearTimeout(timer);
      resolve(Number(chunk.toString().trim()));
    });
  });
  await delay(200);
  // Fill its accept queue (these sockets are never accepted).
  const { connect } = await import('node:net');
  const fillers = Array.from({ length: 4 }, () => connect({ host: HOST, port: stuckPort }).on('error', () => undefined));
  t.teardown(() => fillers.forEach((s) => s.destroy()));
  await delay(200);
  const [good] = await startIdBackends(t, 1);
  const h = await startHealth(t, (listen) =>
    [
      'workers: 1',
      'services:',
      '  - name: svc',
      `    listen: ${HOST}:${listen}`,
      '    timeouts: {connect: 150ms}',
      '    retries: 1',
      '    passive: {consecutive_failures: 2, base_ejection: 2s, max_ejection_percent: 50}',
      '    backends:',
      `      - address: ${HOST}:${stuckPort}`,
      `      - address: ${good!.address}`,
      '',
    ].join('\n'),
    1,
  );
  const stuckAddress = `${HOST}:${stuckPort}`;
  const n = await trafficUntil(t, h.port, () => h.health(stuckAddress) === 'down', 5_000);
  t.equal(h.health(stuckAddress), 'down', `ejected after ${n} client connections`);
  t.match(stateChanges(h.logs, stuckAddress)[0]!.reason, /after 2 connect failures in a row \(last ETIMEDOUT\)/, 'the timeouts counted');
  t.same(new Set(await names(t, h.port, 4)), new Set(['a']), 'while ejected every connection goes to the good backend at once');
});
