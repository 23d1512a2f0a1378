// Bytes through the TCP relay arrive exactly, in order, in both directions,
// and half-closes travel through: real echo backend processes, real sockets,
// the engine in this process. Every test runs in both relays (user space and
// the kernel relay, helpers/relays.ts).
import t from 'tap';
import { startBackend, startBackends } from '../helpers/backends.js';
import { startService } from '../helpers/engine.js';
import { checkRelayUsed, RELAYS, untilInKernel } from '../helpers/relays.js';
import { echoStream, KeyStream, MiB, openConn, runBounded, sha256, waitUntil } from '../helpers/traffic.js';

for (const relay of RELAYS) {
t.test(`[relay: ${relay}] one connection each, byte-exact from 1 B to 64 MiB`, { timeout: 120_000 }, async (t) => {
  const backends = await startBackends(t, 1, 'echo');
  const { port, service, engine } = await startService(t, { backends: [backends[0]!.port], relay });
  const sizes = [1, 64, 4095, 4096, 4097, 65_537, MiB + 3, 64 * MiB];
  for (const size of sizes) {
    // Sent once the connection is in the relay under test (the kernel relay
    // takes a connection at its first quiet moment after connect).
    const conn = await openConn(t, port);
    await untilInKernel(relay, service);
    const sent = new KeyStream(`sizes-${relay}-${size}`).next(size);
    const [, echoed] = await Promise.all([conn.write(sent), conn.read(size, 60_000)]);
    t.ok(echoed.equals(sent), `${size} bytes come back, byte-exact`);
    conn.socket.end();
    await conn.waitEnd();
    await waitUntil('the connection to close', () => engine.activeConnections() === 0);
  }
  await waitUntil('all relayed connections to close', () => engine.activeConnections() === 0, 5_000);
  const stats = service();
  const total = sizes.reduce((sum, n) => sum + n, 0);
  t.equal(stats.bytesIn, total, 'bytesIn counts every byte client -> backend');
  t.equal(stats.bytesOut, total, 'bytesOut counts every byte backend -> client');
  checkRelayUsed(t, relay, stats, sizes.length);
});

t.test(`[relay: ${relay}] 50 concurrent connections (8 under a sanitizer) each get exactly their own 64 MiB back`, { timeout: 280_000 }, async (t) => {
  // A sanitized build checks memory, not volume: fewer connections there.
  const CONNECTIONS = process.env.FULCRUM_SANITIZER ? 8 : 50;
  const BYTES = 64 * MiB;
  const backends = await startBackends(t, 3, 'echo');
  const { port, service, engine } = await startService(t, { backends: backends.map((b) => b.port), relay });

  const started = Date.now();
  let peakRss = process.memoryUsage.rss();
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 250);
  t.teardown(() => clearInterval(sampler));
  // Each connection streams its own keystream (seed relay-i) and checks every
  // chunk that comes back against the regenerated stream.
  await runBounded(CONNECTIONS, CONNECTIONS, async (i) => {
    const result = await echoStream(t, port, `relay-${i}`, BYTES, 250_000);
    if (result.received !== BYTES) throw new Error(`connection ${i} got ${result.received} bytes`);
  });
  clearInterval(sampler);
  t.comment(`relayed ${CONNECTIONS} x 64 MiB both ways in ${((Date.now() - started) / 1000).toFixed(1)} s, peak RSS ${Math.round(peakRss / MiB)} MiB`);
  // Nothing is stored: 3.2 GiB went each way, and the client side stays far below that.
  t.ok(peakRss < 1024 * MiB, `memory stays bounded (peak RSS ${Math.round(peakRss / MiB)} MiB)`);

  // Counters settle once every relay has closed.
  await waitUntil('all relayed connections to close', () => engine.activeConnections() === 0, 5_000);
  const stats = service();
  t.equal(stats.accepted, CONNECTIONS, 'every connection was accepted');
  t.equal(stats.failed, 0, 'no connection failed');
  t.equal(stats.bytesIn, CONNECTIONS * BYTES, 'bytesIn counts every byte client -> backend');
  t.equal(stats.bytesOut, CONNECTIONS * BYTES, 'bytesOut counts every byte backend -> client');
  t.equal(stats.backends.reduce((sum, b) => sum + b.accepted, 0), CONNECTIONS, 'backend accepted counts add up');
  t.equal(stats.backends.reduce((sum, b) => sum + b.bytesIn, 0), CONNECTIONS * BYTES, 'backend bytesIn add up');
  t.equal(stats.backends.reduce((sum, b) => sum + b.bytesOut, 0), CONNECTIONS * BYTES, 'backend bytesOut add up');
  checkRelayUsed(t, relay, stats, CONNECTIONS);
});

for (const [REQUEST, REPLY] of [[64, 64], [MiB, 4 * MiB], [4 * MiB, 64]] as const) {
t.test(`[relay: ${relay}] client half-close (${REQUEST} B request): the backend replies ${REPLY} B after the client EOF, then ends`, async (t) => {
  const backend = await startBackend(t, 'reply-after-eof', ['--bytes', String(REPLY), '--seed', 'reply']);
  const { port, service } = await startService(t, { backends: [backend.port], relay });

  const conn = await openConn(t, port);
  await untilInKernel(relay, service);
  await conn.write(new KeyStream('request').next(REQUEST));
  conn.socket.end();

  const reply = await conn.read(REPLY);
  t.ok(reply.equals(new KeyStream('reply').next(REPLY)), 'the 4 MiB reply arrives byte for byte');
  t.equal(await conn.readLine(), String(REQUEST), 'the backend received all 1 MiB before the EOF');
  await conn.waitEnd();
  t.ok(conn.endedAt !== undefined, 'then EOF');
  t.equal(conn.error, undefined, 'no socket error');
  t.equal(conn.buffered, 0, 'nothing after the reply');
  await conn.waitClosed();
  checkRelayUsed(t, relay, service());
});
}

for (const [GREETING, REQUEST] of [[64, 64], [256 * 1024, 4 * MiB]] as const) {
t.test(`[relay: ${relay}] backend half-closes first (${GREETING} B): the client can still send ${REQUEST} B, and the backend receives it`, async (t) => {
  // In the kernel relay the greeting and the FIN come once the connection is in it.
  const after = relay === 'kernel' ? ['--after', '300'] : [];
  const backend = await startBackend(t, 'send-and-end', ['--bytes', String(GREETING), '--seed', 'greeting', '--report', ...after]);
  const { port, service } = await startService(t, { backends: [backend.port], relay });

  const conn = await openConn(t, port);
  const greeting = await conn.read(GREETING);
  t.ok(greeting.equals(new KeyStream('greeting').next(GREETING)), 'the greeting arrives byte for byte');
  await conn.waitEnd();
  t.ok(conn.endedAt !== undefined, 'the backend EOF reaches the client');
  t.equal(conn.closedAt, undefined, 'the client side stays open for writing');

  const request = new KeyStream('late-request').next(REQUEST);
  await conn.write(request);
  conn.socket.end();
  const report = await backend.waitForReport(() => true);
  t.equal(report.received, REQUEST, 'the backend received every byte sent after its EOF');
  t.equal(report.sha256, sha256(request), 'byte for byte');
  t.ok(report.eof, 'then the client EOF');
  t.equal(report.error, null, 'no reset');
  await conn.waitClosed();
  t.equal(conn.error, undefined, 'the client closes cleanly');
  checkRelayUsed(t, relay, service());
});
}
}
