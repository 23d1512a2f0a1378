// Bytes through the TCP relay arrive exactly, in order, in both directions,
// and half-closes travel through: real echo backend processes, real sockets,
// the engine in this process.
import t from 'tap';
import { startBackend, startBackends } from '../helpers/backends.js';
import { startService } from '../helpers/engine.js';
import { echoStream, KeyStream, MiB, openConn, runBounded, sha256, waitUntil } from '../helpers/traffic.js';

t.test('50 concurrent connections each get exactly their own 64 MiB back', { timeout: 280_000 }, async (t) => {
  const CONNECTIONS = 50;
  const BYTES = 64 * MiB;
  const backends = await startBackends(t, 3, 'echo');
  const { port, service, engine } = await startService(t, { backends: backends.map((b) => b.port) });

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
});

t.test('client half-close: the backend replies after the client EOF, then ends', async (t) => {
  const REQUEST = 1 * MiB;
  const REPLY = 4 * MiB;
  const backend = await startBackend(t, 'reply-after-eof', ['--bytes', String(REPLY), '--seed', 'reply']);
  const { port } = await startService(t, { backends: [backend.port] });

  const conn = await openConn(t, port);
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
});

t.test('backend half-closes first: the client can still send, and the backend receives it', async (t) => {
  const GREETING = 256 * 1024;
  const REQUEST = 2 * MiB;
  const backend = await startBackend(t, 'send-and-end', ['--bytes', String(GREETING), '--seed', 'greeting', '--report']);
  const { port } = await startService(t, { backends: [backend.port] });

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
});
