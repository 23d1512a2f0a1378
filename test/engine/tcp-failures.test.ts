// What a client sees when something fails: resets travel both ways, refused
// and timed-out backend connects are retried on another backend, a client is
// closed when no backend can be reached, and idle connections time out.
import t from 'tap';
import { deadPort, startBackend } from '../helpers/backends.js';
import { SERVICE, startService } from '../helpers/engine.js';
import { type Conn, delay, KeyStream, KiB, openConn, pingEcho, waitUntil } from '../helpers/traffic.js';

/**
 * Wait (bounded) until Fulcrum closes `conn` from its side (EOF or reset),
 * then finish our half and check the socket closes completely.
 */
async function closedByPeer(conn: Conn, timeoutMs: number): Promise<void> {
  await conn.waitEnd(timeoutMs);
  if (conn.closedAt === undefined) conn.socket.end();
  await conn.waitClosed(2_000);
}

t.test('a backend reset mid-stream reaches the client as ECONNRESET, not EOF', async (t) => {
  const backend = await startBackend(t, 'reset', ['--after', String(16 * KiB)]);
  const { port, service } = await startService(t, { backends: [backend.port] });

  const conn = await openConn(t, port);
  await conn.write(new KeyStream('reset').next(64 * KiB));
  await conn.waitClosed(5_000);
  t.equal(conn.error, 'ECONNRESET', 'the client sees a reset');
  t.equal(conn.endedAt, undefined, 'no clean EOF came first');
  await waitUntil('the connection to be counted closed', () => service().active === 0);
});

t.test('a client reset reaches the backend as a reset', async (t) => {
  const backend = await startBackend(t, 'echo', ['--report']);
  const { port } = await startService(t, { backends: [backend.port] });

  const conn = await openConn(t, port);
  await pingEcho(conn); // the backend connection is established and relaying
  conn.socket.resetAndDestroy();
  const report = await backend.waitForReport(() => true);
  t.equal(report.error, 'ECONNRESET', 'the backend sees a reset');
  t.notOk(report.eof, 'no clean EOF came first');
  t.equal(report.received, 5, 'after exactly the bytes sent');
});

t.test('a refused backend connect is retried on another backend', async (t) => {
  const CONNECTIONS = 20;
  const dead = await deadPort();
  const echo = await startBackend(t, 'echo');
  const { port, service, events } = await startService(t, { backends: [dead, echo.port], retries: 2 });

  for (let i = 0; i < CONNECTIONS; i++) {
    const conn = await openConn(t, port);
    await pingEcho(conn, `ping ${i}\n`);
    conn.socket.end();
    await conn.waitClosed();
  }
  const stats = service();
  const [deadStats, liveStats] = stats.backends;
  t.equal(stats.failed, 0, 'no client was failed');
  t.equal(liveStats?.accepted, CONNECTIONS, 'every connection reached the live backend');
  // The dead backend gets its round-robin turn as a first attempt (every
  // second client, as the clients are sequential); a retry goes to a backend
  // not yet tried and does not take a turn, so the turns stay in step.
  const deadFailed = deadStats?.failed ?? 0;
  t.equal(deadFailed, CONNECTIONS / 2, 'the dead backend was tried on its turns only');
  t.equal(deadStats?.accepted, 0, 'and never established one');
  const failedEvents = () => events.filter((e) => e.type === 'connect_failed');
  await waitUntil('one connect_failed event per refused connect', () => failedEvents().length >= deadFailed);
  t.equal(failedEvents().length, deadFailed, 'one connect_failed event per refused connect');
  const failed = failedEvents();
  t.ok(failed.every((e) => e.code === 'ECONNREFUSED' && e.service === SERVICE && e.backend === `127.0.0.1:${dead}`),
    `connect_failed events name the service, dead backend and ECONNREFUSED: ${JSON.stringify(failed.slice(0, 3))}`);
});

t.test('connect timeout', async (t) => {
  const CONNECT_TIMEOUT = 300;
  const blackhole = await startBackend(t, 'blackhole');

  t.test('a timed-out connect is retried on another backend', async (t) => {
    const echo = await startBackend(t, 'echo');
    const { port, service, events } = await startService(t, {
      backends: [blackhole.port, echo.port],
      connectTimeoutMs: CONNECT_TIMEOUT,
    });
    // Four connections at once: round robin sends two of them to the blackhole first.
    await Promise.all(
      [0, 1, 2, 3].map(async (i) => {
        const conn = await openConn(t, port);
        await pingEcho(conn, `ping ${i}\n`, 5_000);
        conn.socket.end();
        await conn.waitClosed();
      }),
    );
    const [hole, live] = service().backends;
    t.equal(live?.accepted, 4, 'every connection reached the live backend');
    // Usually 2 (alternating first picks); retries move the shared cursor, so
    // under load a late connection can land on the blackhole too.
    const timedOut = hole?.failed ?? 0;
    t.ok(timedOut >= 1 && timedOut <= 4, `the blackhole attempts timed out (${timedOut}) and were retried`);
    t.equal(hole?.accepted, 0, 'the blackhole never established a connection');
    t.equal(service().failed, 0, 'no client was failed');
    const failedEvents = () => events.filter((e) => e.type === 'connect_failed');
    await waitUntil('one connect_failed event per timeout', () => failedEvents().length >= timedOut);
    t.equal(failedEvents().length, timedOut, 'one connect_failed event per timeout');
    t.ok(failedEvents().every((e) => e.code === 'ETIMEDOUT' && e.backend === blackhole.address), 'reported as ETIMEDOUT on the blackhole');
  });

  t.test('with only an unreachable backend, the client is closed after the timeout', async (t) => {
    const { port, service } = await startService(t, {
      backends: [blackhole.port],
      connectTimeoutMs: CONNECT_TIMEOUT,
      retries: 0,
    });
    const conn = await openConn(t, port);
    await closedByPeer(conn, 5_000);
    const after = conn.peerClosedAt! - conn.openedAt;
    t.ok(after >= CONNECT_TIMEOUT - 50, `closed after ${after} ms, not before the connect timeout`);
    t.ok(after < 5_000, 'within a generous bound');
    t.equal(conn.receivedTotal, 0, 'nothing was received');
    await waitUntil('the service to count the failure', () => service().failed === 1);
    t.equal(service().backends[0]?.failed, 1, 'one attempt (retries: 0)');
  });
});

t.test('when every backend is down the client is closed promptly', async (t) => {
  const deadA = await deadPort();
  const deadB = await deadPort();

  t.test('retries: 2 tries three times', async (t) => {
    const { port, service } = await startService(t, { backends: [deadA, deadB], retries: 2 });
    const conn = await openConn(t, port);
    await closedByPeer(conn, 3_000);
    t.equal(conn.receivedTotal, 0, 'nothing was received');
    await waitUntil('the service to count the failure', () => service().failed === 1);
    const attempts = service().backends.reduce((sum, b) => sum + b.failed, 0);
    t.equal(attempts, 3, 'the first attempt and two retries');
  });

  t.test('retries: 0 makes a single attempt', async (t) => {
    const { port, service } = await startService(t, { backends: [deadA, deadB], retries: 0 });
    for (let i = 1; i <= 3; i++) {
      const conn = await openConn(t, port);
      await closedByPeer(conn, 3_000);
      await waitUntil(`the service to count failure ${i}`, () => service().failed === i);
    }
    const attempts = service().backends.map((b) => b.failed);
    t.same(attempts.reduce((a, b) => a + b, 0), 3, `one attempt per client (${attempts.join(', ')})`);
  });
});

t.test('idle timeout closes an idle connection but not an active one', async (t) => {
  const IDLE = 500;
  const echo = await startBackend(t, 'echo');
  const { port, service } = await startService(t, { backends: [echo.port], idleTimeoutMs: IDLE });

  const idle = await openConn(t, port);
  const active = await openConn(t, port);
  await pingEcho(idle);
  const idleSince = Date.now();

  // The active connection exchanges a message every 100 ms for 1.5 s.
  const until = Date.now() + 1_500;
  for (let i = 0; Date.now() < until; i++) {
    await pingEcho(active, `tick ${i}\n`, 2_000);
    await delay(100);
  }
  t.equal(active.closedAt, undefined, 'the active connection is still open after 1.5 s');
  t.equal(active.endedAt, undefined, 'and has not been ended');

  await closedByPeer(idle, 5_000);
  const after = idle.peerClosedAt! - idleSince;
  t.ok(after >= IDLE - 100, `the idle connection was closed after ${after} ms of silence`);
  t.ok(idle.peerClosedAt! < until, 'while the active one kept going');

  await pingEcho(active, 'still here\n');
  active.socket.end();
  await active.waitClosed();
  await waitUntil('no open connections', () => service().active === 0);
});
