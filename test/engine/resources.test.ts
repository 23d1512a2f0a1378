// Resources stay bounded in the engine (in this process): after many TCP
// connections or UDP flows come and go, the only file descriptors left are
// the pipe pools' (TCP); every flow's socket is given back when it ends.
// (test/process/fd-shortage.test.ts: what happens when descriptors run out.)
import t from 'tap';
import type { Test } from 'tap';
import { readdirSync } from 'node:fs';
import { startBackend } from '../helpers/backends.js';
import { startService } from '../helpers/engine.js';
import { openConn, pingEcho, runBounded, waitUntil } from '../helpers/traffic.js';
import { startUdpBackend, startUdpService, udpClient } from '../helpers/udp.js';

/** Open file descriptors of this process (the engine runs in it). */
function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** One short connection: connect, echo a few bytes, close from our side, wait until closed. */
async function shortConnection(t: Test, port: number, i: number): Promise<void> {
  const conn = await openConn(t, port);
  await pingEcho(conn, `hello ${i}\n`);
  conn.socket.end();
  await conn.waitClosed(5_000);
  conn.socket.destroy();
}

t.test('no file descriptor leaks after 10,000 connections', { timeout: 120_000 }, async (t) => {
  const CONNECTIONS = 10_000;
  const CONCURRENCY = 50;
  const echo = await startBackend(t, 'echo');
  const { engine, port, service } = await startService(t, { backends: [echo.port] });

  // Warm up: fill the pipe pools and let Node open whatever it opens lazily.
  await runBounded(200, CONCURRENCY, (i) => shortConnection(t, port, i));
  await waitUntil('warm-up connections to close', () => engine.activeConnections() === 0, 10_000);
  const fdsBefore = openFds();
  const pooledBefore = engine.stats().pooledPipes;

  const started = Date.now();
  await runBounded(CONNECTIONS, CONCURRENCY, (i) => shortConnection(t, port, i));
  t.comment(`${CONNECTIONS} connections in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  await waitUntil('every connection to close', () => engine.activeConnections() === 0, 10_000);

  // The only descriptors the engine may keep after its connections are gone
  // are pooled (empty) pipes, two fds each. Counters are read live; wait
  // (bounded) for the workers' last releases to be published.
  const accounted = () => openFds() - fdsBefore === 2 * (engine.stats().pooledPipes - pooledBefore);
  await waitUntil('fds to match the pipe pools', accounted, 5_000).catch(() => undefined);
  const fdsAfter = openFds();
  const pooledAfter = engine.stats().pooledPipes;
  t.equal(fdsAfter - fdsBefore, 2 * (pooledAfter - pooledBefore),
    `fd growth (${fdsBefore} -> ${fdsAfter}) is exactly the pooled pipes' (${pooledBefore} -> ${pooledAfter}) two fds each`);
  const stats = service();
  t.equal(stats.accepted, CONNECTIONS + 200, 'every connection was accepted');
  t.equal(stats.failed, 0, 'none failed');
  t.equal(stats.active, 0, 'none is open');
});

t.test('no file descriptor leaks after 2,000 flows come and go', { timeout: 120_000 }, async (t) => {
  const backend = await startUdpBackend(t, 'echo');
  const { port, service } = await startUdpService(t, { backends: [backend.port], keys: ['timeouts: {idle: 200ms}', 'max_flows: 500'] });
  const oneFlow = async (i: number): Promise<void> => {
    const client = await udpClient(t);
    await client.request(`flow ${i}`, port);
    await new Promise<void>((resolve) => client.socket.close(() => resolve()));
  };
  await runBounded(100, 20, oneFlow); // warm-up
  await waitUntil('warm-up flows to expire', () => service().udp?.flowsActive === 0, 5_000);
  const before = openFds();
  await runBounded(2000, 50, (i) => oneFlow(i + 100));
  const during = service().udp!;
  // A client port the kernel hands out again within the idle timeout finds
  // its predecessor's flow still open, so a few flows serve two clients.
  t.ok(during.flowsCreated >= 1900, `about 2,100 flows created (${during.flowsCreated})`);
  await waitUntil('every flow to end', () => service().udp?.flowsActive === 0, 10_000);
  const after = openFds();
  t.ok(after <= before + 2, `file descriptors after the flows ended: ${after}, before: ${before}`);
  t.equal(service().backends[0]!.active, 0, 'the backend holds no flow');
});
