// Running out of file descriptors (a real `fulcrum run` under a low
// RLIMIT_NOFILE): TCP accepting pauses instead of crashing or spinning, says
// why, keeps serving what it accepted and resumes once descriptors are free;
// UDP drops new flows (counted) without harming the flows that have sockets,
// until expiring flows free some. (test/engine/resources.test.ts: no leaks.)
import t from 'tap';
import type { Test } from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { startBackend } from '../helpers/backends.js';
import { CLI, startFulcrum } from '../helpers/cli.js';
import { serviceYaml } from '../helpers/engine.js';
import { type Conn, delay, openConn, pingEcho } from '../helpers/traffic.js';
import { startUdpBackend, startUdpFulcrum, udpClient, type UdpClient } from '../helpers/udp.js';

/** CPU time (user + system) of a process in seconds, from /proc/PID/stat. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name, which may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticksPerSecond = 100; // USER_HZ: 100 on every Linux ABI Node supports
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}

/** Connect and echo a line within timeoutMs; undefined when Fulcrum does not serve it in time. */
async function tryServed(t: Test, port: number, i: number, timeoutMs: number): Promise<Conn | undefined> {
  let conn: Conn;
  try {
    conn = await openConn(t, port, timeoutMs);
  } catch {
    return undefined; // the listen queue is full too
  }
  try {
    await pingEcho(conn, `hold ${i}\n`, timeoutMs);
    return conn;
  } catch {
    conn.socket.destroy();
    return undefined;
  }
}

t.test('running out of file descriptors pauses accepting, without crashing or spinning', { timeout: 90_000 }, async (t) => {
  if (!existsSync(CLI)) {
    t.fail(`${CLI} is missing: compile first (npx tsc -p .; npm test does)`);
    return;
  }
  const MAX_CONNECTIONS = 200;
  const echo = await startBackend(t, 'echo');
  const { proc: cli, port } = await startFulcrum(t, (p) => serviceYaml(p, { backends: [echo.port] }, 2, 'info'), { nofile: 96 });
  const pid = cli.child.pid!;
  const alive = (): boolean => cli.exit === undefined;

  // Open connections until one is not served within 3 s (generous: only the last one waits).
  const held: Conn[] = [];
  let saturated = false;
  for (let i = 0; i < MAX_CONNECTIONS && !saturated; i++) {
    const conn = await tryServed(t, port, i, 3_000);
    if (conn) held.push(conn);
    else saturated = true;
  }
  t.ok(saturated, `fulcrum stopped serving new connections after ${held.length} (fd limit 96)\n`);
  t.ok(held.length > 0, 'it served some before');
  await cli.waitForLog('accept_paused', undefined, 5_000).catch((err: Error) => t.fail(err.message));
  const paused = cli.logs.find((l) => l.msg === 'accept_paused');
  // At the connection budget sized from the limit (or, failing that, at EMFILE).
  t.match(paused, { reason: /^(connection_budget|EMFILE|ENFILE)$/, why: /raise the file descriptor limit/ }, 'it says why: the file descriptor limit');

  // Saturated, it must idle: a busy loop on a listener it cannot accept from
  // would burn a whole core.
  const cpuBefore = cpuSeconds(pid);
  await delay(1_000);
  const cpuUsed = cpuSeconds(pid) - cpuBefore;
  t.ok(alive(), 'the process is alive');
  t.ok(cpuUsed < 0.2, `it is not spinning: ${cpuUsed.toFixed(2)} s of CPU in 1 s while saturated`);

  // Those it did accept still work.
  await pingEcho(held[0]!, 'still served\n', 5_000);

  for (const conn of held) conn.socket.destroy();
  await Promise.all(held.map((conn) => conn.waitClosed(5_000)));

  // Accepting resumes once descriptors are free again.
  const conn = await openConn(t, port, 5_000);
  await pingEcho(conn, 'after\n', 5_000);
  t.pass('a new connection is served again');
  t.ok(alive(), 'the process is still alive');
  // The line follows the engine's event, which may come just after the connection is served.
  t.ok(await cli.waitForLog('accept_resumed', () => true, 5_000), 'and logged accept_resumed');
});

t.test('out of file descriptors: new flows are dropped, flows with sockets go on, expiry frees room', { timeout: 120_000 }, async (t) => {
  const backend = await startUdpBackend(t, 'echo');
  const { proc: cli, port } = await startUdpFulcrum(t, backend.port, ['timeouts: {idle: 1500ms}'], 96);
  const alive = (): boolean => cli.exit === undefined;
  const served: UdpClient[] = [];
  let refused = 0;
  for (let i = 0; i < 150 && refused < 3; i++) {
    const client = await udpClient(t);
    try {
      await client.request(`flow ${i}`, port, undefined, 2, 150);
      served.push(client);
    } catch {
      refused++;
    }
  }
  t.ok(refused >= 3, `new flows stopped being served after ${served.length} (fd limit 96)`);
  t.ok(served.length > 0, 'some were served before');
  t.ok(alive(), 'fulcrum is still running');
  // The flows that have sockets still work.
  const recent = served.slice(-5);
  for (const client of recent) {
    const reply = await client.request('still here', port, undefined, 3, 300);
    t.equal(reply.data.toString(), 'still here', 'a flow opened before the shortage still works');
  }
  // Once flows expire, their sockets are free again for new ones.
  await delay(2_000);
  const late = await udpClient(t);
  const reply = await late.request('after expiry', port, undefined, 10, 300);
  t.equal(reply.data.toString(), 'after expiry', 'a new flow is served once idle ones have expired');
  t.ok(alive(), 'and fulcrum never stopped');
});
