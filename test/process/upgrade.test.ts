// Upgrade without refusing a connection (`fulcrum upgrade`, SIGUSR2) and the
// listen-address lock, as real processes on 127.0.0.1.
//
// The new process inherits the old one's stdout/stderr, so its log lines land
// in the old CliProcess's `logs` too (told apart by `pid`), and that
// CliProcess's pipes stay open until the new process exits: the old one's end
// is watched through its 'exit' event, and the new one is stopped by its pid
// before the test ends (teardown too, if the test failed before).
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import t, { type Test } from 'tap';
import { freePort, startEchoServer, startServer } from '../helpers/backends.js';
import { http } from '../helpers/admin.js';
import { runCli, startCli, writeConfig, type CliProcess } from '../helpers/cli.js';
import { HOST, openConn, waitUntil } from '../helpers/traffic.js';
import { freeUdpPort, startUdpBackend, udpClient } from '../helpers/udp.js';

function yaml(listenPort: number, adminPort: number, backendPort: number, extra: readonly string[] = []): string {
  return [
    'workers: 2',
    'drain_timeout: 30s',
    'log:',
    '  level: info',
    'admin:',
    `  listen: ${HOST}:${adminPort}`,
    'services:',
    '  - name: echo',
    `    listen: ${HOST}:${listenPort}`,
    '    backends:',
    `      - address: ${HOST}:${backendPort}`,
    ...extra,
    '',
  ].join('\n');
}

/** Start `fulcrum run` on free ports and wait for its admin API. */
async function startRun(t: Test, backendPort: number): Promise<{ proc: CliProcess; port: number; admin: string; file: string }> {
  const port = await freePort();
  const adminPort = await freePort();
  const file = writeConfig(t, yaml(port, adminPort, backendPort));
  const proc = startCli(t, ['run', '-c', file]);
  await proc.waitForLog('listening');
  await proc.waitForLog('admin API listening');
  return { proc, port, admin: `http://${HOST}:${adminPort}`, file };
}

/** True while `pid` runs. An exited process whose parent (the old Fulcrum) is gone may stay a zombie
 * here, where PID 1 does not reap: that counts as gone. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}

/** Stop a process this test started through an upgrade (by its pid) and wait until it is gone. */
async function stopPid(pid: number | undefined): Promise<void> {
  if (pid === undefined || !alive(pid)) return;
  process.kill(pid, 'SIGKILL');
  await waitUntil(`pid ${pid} gone`, () => !alive(pid), 5_000);
}

/** One short echo exchange on a new connection: 'ok', 'refused', or what went wrong. */
function exchange(port: number): Promise<string> {
  return new Promise((resolve) => {
    const payload = randomBytes(32);
    const socket = netConnect({ host: HOST, port });
    const chunks: Buffer[] = [];
    let settled = false;
    const done = (outcome: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => done('timeout'), 5_000);
    socket.on('connect', () => socket.write(payload));
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      const got = Buffer.concat(chunks);
      if (got.length >= payload.length) done(got.equals(payload) ? 'ok' : 'mismatch');
    });
    socket.on('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED' ? 'refused' : (err.code ?? err.message)));
    socket.on('close', () => done('closed early'));
  });
}

t.test('upgrade under load: no connection refused or failed, an open transfer finishes on the old process', async (t) => {
  const backend = await startEchoServer(t);
  const { proc, port, admin } = await startRun(t, backend.port);
  const oldPid = proc.child.pid!;
  let newPid: number | undefined;
  t.teardown(() => stopPid(newPid));
  const oldExit = once(proc.child, 'exit');

  // A transfer open across the upgrade: part before, the rest after the handover.
  const long = await openConn(t, port);
  const before = randomBytes(256 * 1024);
  await long.write(before);
  t.ok((await long.read(before.length)).equals(before), 'transfer: first 256 KiB echoed before the upgrade');

  // Clients connecting continuously, 4 at a time, until stopped (at most 60 s or 20,000 connections).
  const outcomes = new Map<string, number>();
  let stop = false;
  let total = 0;
  const deadline = Date.now() + 60_000;
  const client = async (): Promise<void> => {
    while (!stop && Date.now() < deadline && total < 20_000) {
      total++;
      const outcome = await exchange(port);
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
  };
  const clients = Promise.all([client(), client(), client(), client()]);
  await waitUntil('some connections before the upgrade', () => total >= 50, 10_000);

  const upgrade = await runCli(t, ['upgrade', '--admin', admin.slice('http://'.length)], 60_000);
  t.equal(upgrade.code, 0, `fulcrum upgrade exits 0 (${upgrade.stderr.trim()})`);
  const match = /new process (\d+) is serving/.exec(upgrade.stdout);
  t.ok(match, `prints the new pid: ${upgrade.stdout.trim()}`);
  newPid = match ? Number(match[1]) : undefined;
  t.not(newPid, oldPid);

  // Keep connecting for a while after the handover, while the old process drains.
  const atHandover = total;
  // Bounded by count and time; a slow (sanitized, shared) machine gets the time it needs.
  await waitUntil('connections after the upgrade', () => total >= atHandover + 100, 30_000).catch((err: Error) => {
    throw new Error(`${err.message}; outcomes so far: ${JSON.stringify(Object.fromEntries(outcomes))}`);
  });

  // The transfer goes on through the old process, byte-exact, then ends; the old one then exits.
  const after = randomBytes(1024 * 1024);
  await long.write(after);
  t.ok((await long.read(after.length, 20_000)).equals(after), 'transfer: 1 MiB more echoed byte-exact after the handover');
  long.socket.end();
  await long.waitEnd();
  t.equal(long.error, undefined, 'the transfer ends cleanly');
  const [code] = await Promise.race([oldExit, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('old process still running')), 15_000))]);
  t.equal(code, 0, 'the old process exits 0 once drained');
  t.notOk(alive(oldPid), 'the old pid is gone');
  stop = true;
  await clients;

  t.same(Object.fromEntries(outcomes), { ok: total }, `${total} connections through the upgrade: all answered byte-exact, 0 refused, 0 failed`);
  t.ok(proc.logs.some((l) => l.pid === oldPid && l.msg === 'drained: all connections finished'), 'the old process drained');

  // The new process owns the admin API and serves the traffic.
  const status = await http(admin, 'GET', '/api/status');
  t.equal(status.status, 200);
  t.equal(status.json.pid, newPid, 'the admin API answers from the new process');
  t.ok(status.json.services[0].accepted > 0, `the new process accepted ${status.json.services[0].accepted} connections`);
  t.equal(await exchange(port), 'ok', 'a connection after the old one exited');
  t.ok(proc.logs.some((l) => l.pid === newPid && l.msg === 'upgrade: adopting the listening sockets of the previous process'));

  // SIGUSR2 upgrades again (the new process is not our child: signalled by its pid).
  process.kill(newPid!, 'SIGUSR2');
  const second = await proc.waitForLog('upgrade: the new process is ready', (l) => l.pid === newPid, 30_000);
  const third = second.newPid as number;
  const previous = newPid!;
  newPid = third;
  t.teardown(() => stopPid(third));
  await waitUntil('the second old process exits', () => !alive(previous), 15_000);
  t.notOk(alive(previous), 'SIGUSR2: the previous process is gone');
  t.equal((await http(admin, 'GET', '/api/status')).json.pid, third, 'SIGUSR2: the newest process answers the admin API');
  t.equal(await exchange(port), 'ok');
  await stopPid(third);
});

t.test('a new process that fails to start: the old one keeps serving, fulcrum upgrade exits 1 with the reason', async (t) => {
  const backend = await startEchoServer(t);
  const { proc, port, admin, file } = await startRun(t, backend.port);
  const oldPid = proc.child.pid!;
  // The new process reads the file again: add a service on an address another process holds.
  const busy = await startServer(t, (socket) => socket.end());
  const adminPort = Number(new URL(admin).port);
  writeFileSync(file, yaml(port, adminPort, backend.port, [
    '  - name: taken',
    `    listen: ${HOST}:${busy.port}`,
    '    backends:',
    `      - address: ${HOST}:${backend.port}`,
  ]));
  const upgrade = await runCli(t, ['upgrade', '--admin', `${HOST}:${adminPort}`], 60_000);
  t.equal(upgrade.code, 1, 'exit 1');
  t.match(upgrade.stderr, new RegExp(`upgrade failed: .*cannot listen on 127\\.0\\.0\\.1:${busy.port} \\(service taken\\).*held by pid ${process.pid}`), `says why: ${upgrade.stderr.trim()}`);
  t.equal(proc.exit, undefined, 'the old process still runs');
  t.equal(await exchange(port), 'ok', 'and still serves');
  t.equal((await http(admin, 'GET', '/api/status')).json.pid, oldPid, 'and answers its admin API');
  t.ok(proc.logs.some((l) => l.pid === oldPid && typeof l.msg === 'string' && l.msg.startsWith('upgrade failed, this process keeps serving')));

  // A config that no longer validates: the new process exits at once.
  writeFileSync(file, 'services: [\n');
  const broken = await runCli(t, ['upgrade', '--admin', `${HOST}:${adminPort}`], 60_000);
  t.equal(broken.code, 1);
  t.match(broken.stderr, /upgrade failed: the new process exited with code 2 before it was ready/);
  t.equal(await exchange(port), 'ok', 'still serving after the second failure');

  proc.signal('SIGTERM');
  await once(proc.child, 'exit');
});

t.test('listen-address lock: a second fulcrum run on the same address fails and names the holder', async (t) => {
  const backend = await startEchoServer(t);
  const udpBackend = await startUdpBackend(t, 'echo');
  const udpPort = await freeUdpPort();
  const tcpPort = await freePort();
  const config = (adminPort: number): string =>
    [
      'workers: 2',
      'log:',
      '  level: info',
      'admin:',
      `  listen: ${HOST}:${adminPort}`,
      'services:',
      '  - name: echo',
      `    listen: ${HOST}:${tcpPort}`,
      '    backends:',
      `      - address: ${HOST}:${backend.port}`,
      '  - name: game',
      '    protocol: udp',
      `    listen: ${HOST}:${udpPort}`,
      '    backends:',
      `      - address: ${HOST}:${udpBackend.port}`,
      '',
    ].join('\n');
  const firstFile = writeConfig(t, config(await freePort()));
  const first = startCli(t, ['run', '-c', firstFile]);
  await first.waitForLog('admin API listening');
  const holder = `held by pid ${first.child.pid} \\(${process.execPath.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} \\S*cli\\.js run -c ${firstFile.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\)`;

  // TCP (the first service) and UDP (alone in its config).
  const second = await runCli(t, ['run', '-c', writeConfig(t, config(await freePort()))]);
  t.equal(second.code, 1, 'TCP: the second instance exits 1');
  t.match(second.stderr, new RegExp(`^fulcrum: cannot listen on 127\\.0\\.0\\.1:${tcpPort} \\(service echo\\): address already in use \\(EADDRINUSE\\); ${holder}\\n$`), second.stderr);
  const udpOnly = config(await freePort()).replace(/ {2}- name: echo\n(.*\n){3}/, '');
  t.notMatch(udpOnly, /name: echo/);
  const third = await runCli(t, ['run', '-c', writeConfig(t, udpOnly)]);
  t.equal(third.code, 1, 'UDP: the second instance exits 1');
  t.match(third.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${udpPort} \\(service game\\): address already in use \\(EADDRINUSE\\); ${holder}`), third.stderr);

  // The first one took all the traffic all along.
  const udp = await udpClient(t);
  const reply = await udp.request('ping', udpPort);
  t.equal(reply.data.toString(), 'ping', 'UDP still answered by the first instance');
  t.equal(await exchange(tcpPort), 'ok');

  // A reload that adds a listen address someone else holds is rejected, naming it.
  const other = await startServer(t, (socket) => socket.end());
  const reloadFile = writeConfig(t, config(await freePort()).replace('services:\n', `services:\n  - name: extra\n    listen: ${HOST}:${other.port}\n    backends:\n      - address: ${HOST}:${backend.port}\n`));
  const adminPort = Number(/admin:\n {2}listen: 127\.0\.0\.1:(\d+)/.exec(readFileSync(firstFile, 'utf8'))![1]);
  writeFileSync(firstFile, readFileSync(reloadFile, 'utf8').replace(/admin:\n {2}listen: \S+/, `admin:\n  listen: ${HOST}:${adminPort}`));
  const reload = await runCli(t, ['reload', '-c', firstFile]);
  t.equal(reload.code, 2, 'reload rejected');
  t.match(reload.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${other.port} \\(service extra\\): address already in use \\(EADDRINUSE\\); held by pid ${process.pid} `), reload.stderr);
  t.equal(await exchange(tcpPort), 'ok', 'the running config stays');

  first.signal('SIGTERM');
  await first.waitForExit();
});
