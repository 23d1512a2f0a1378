// Small transfers are copied (recv into the worker's buffer, send on) and take
// no pipe; a direction whose read fills that buffer switches to splice. These
// tests check that both paths, and the switch between them, keep every byte in
// order, keep half-closes, and take pipes only for bulk streams: real echo
// backend processes, real sockets, the engine in this process. All with
// relay: user: the kernel relay has its own tests (kernel-relay.test.ts).
import t from 'tap';
import { startBackend, startBackends } from '../helpers/backends.js';
import { startService } from '../helpers/engine.js';
import { delay, KeyStream, MiB, openConn, sha256, waitUntil, type Conn } from '../helpers/traffic.js';

/** Sends `rounds` messages of 1..`maxSize` bytes (keystream of `seed`) and checks each echo before the next. */
async function pingPong(conn: Conn, seed: string, rounds: number, maxSize: number): Promise<number> {
  const data = new KeyStream(seed);
  const sizes = new KeyStream(`${seed}-sizes`).next(rounds * 2);
  let total = 0;
  for (let i = 0; i < rounds; i++) {
    const size = 1 + (sizes.readUInt16LE(i * 2) % maxSize);
    const message = data.next(size);
    await conn.write(message);
    const back = await conn.read(size);
    if (!back.equals(message)) throw new Error(`${seed}: round ${i} (${size} bytes) came back different`);
    total += size;
  }
  return total;
}

t.test('small request/response exchanges are relayed byte for byte and take no pipe', async (t) => {
  const backends = await startBackends(t, 2, 'echo');
  const { port, service, engine } = await startService(t, { backends: backends.map((b) => b.port), relay: 'user' });

  const totals = await Promise.all(
    [0, 1, 2, 3].map(async (i) => {
      const conn = await openConn(t, port);
      const sent = await pingPong(conn, `small-${i}`, 200, 1000);
      conn.socket.end();
      await conn.waitEnd();
      t.equal(conn.error, undefined, `connection ${i}: no error`);
      t.equal(conn.buffered, 0, `connection ${i}: nothing after the echoes`);
      return sent;
    }),
  );
  const total = totals.reduce((a, b) => a + b, 0);
  await waitUntil('the connections to close', () => engine.activeConnections() === 0);
  const stats = service();
  t.equal(stats.bytesIn, total, 'bytesIn counts every byte sent');
  t.equal(stats.bytesOut, total, 'bytesOut counts every byte echoed');
  t.equal(stats.failed, 0, 'nothing failed');
  t.equal(engine.stats().pooledPipes, 0, 'no pipe was ever made: small transfers are copied');
});

t.test('a stream that starts small and becomes large switches to splice and stays byte-exact', async (t) => {
  const backend = await startBackend(t, 'echo');
  const { port, service, engine } = await startService(t, { backends: [backend.port], relay: 'user' });

  const conn = await openConn(t, port);
  let total = await pingPong(conn, 'before', 100, 2000);
  t.equal(engine.stats().pooledPipes, 0, 'the small start took no pipe');

  const BULK = 24 * MiB;
  const bulk = new KeyStream('bulk').next(BULK);
  const [, back] = await Promise.all([conn.write(bulk), conn.read(BULK, 60_000)]);
  t.ok(back.equals(bulk), '24 MiB come back byte for byte');
  total += BULK;

  total += await pingPong(conn, 'after', 100, 2000);
  t.pass('small messages after the bulk transfer still echo exactly');
  conn.socket.end();
  await conn.waitEnd();
  t.equal(conn.error, undefined, 'no error');
  await waitUntil('the connection to close', () => engine.activeConnections() === 0);
  t.ok(engine.stats().pooledPipes >= 1, `the bulk transfer went through pipes (${engine.stats().pooledPipes} pooled)`);
  const stats = service();
  t.equal(stats.bytesIn, total, 'bytesIn exact across both paths');
  t.equal(stats.bytesOut, total, 'bytesOut exact across both paths');
});

t.test('a server that speaks first with a small greeting: greeting, EOF, then the client is heard', async (t) => {
  const GREETING = 40;
  const REQUEST = 300;
  const backend = await startBackend(t, 'send-and-end', ['--bytes', String(GREETING), '--seed', 'hello', '--report']);
  const { port } = await startService(t, { backends: [backend.port], relay: 'user' });

  const conn = await openConn(t, port);
  const greeting = await conn.read(GREETING);
  t.ok(greeting.equals(new KeyStream('hello').next(GREETING)), 'the greeting arrives before the client says anything');
  await conn.waitEnd();
  t.equal(conn.closedAt, undefined, 'the backend EOF arrives; the client side stays open');

  const request = new KeyStream('late').next(REQUEST);
  await conn.write(request);
  conn.socket.end();
  const report = await backend.waitForReport(() => true);
  t.equal(report.received, REQUEST, 'the backend received the small request sent after its EOF');
  t.equal(report.sha256, sha256(request), 'byte for byte');
  t.ok(report.eof, 'then the client EOF');
  t.equal(report.error, null, 'no reset');
  await conn.waitClosed();
  t.equal(conn.error, undefined, 'the client closes cleanly');
});

t.test('a small request and its EOF arriving together are both relayed', async (t) => {
  const REPLY = 100;
  const backend = await startBackend(t, 'reply-after-eof', ['--bytes', String(REPLY), '--seed', 'answer']);
  const { port } = await startService(t, { backends: [backend.port], relay: 'user' });

  // Data and FIN in one go, so the proxy often sees both in one wakeup: the
  // short read of the data must not be taken as "drained" and lose the EOF.
  for (let i = 0; i < 20; i++) {
    const conn = await openConn(t, port);
    conn.socket.end(new KeyStream(`req-${i}`).next(64));
    const reply = await conn.read(REPLY);
    t.ok(reply.equals(new KeyStream('answer').next(REPLY)), `connection ${i}: reply after the EOF`);
    t.equal(await conn.readLine(), '64', `connection ${i}: the backend got 64 bytes, then the EOF`);
    await conn.waitClosed();
    t.equal(conn.error, undefined, `connection ${i}: clean close`);
  }
});

/** Writes 2,000-byte chunks of `seed`'s keystream, 1 ms apart, for `ms`; a write that the relay does not take ends it early. */
async function pacedWrites(conn: Conn, seed: string, ms: number): Promise<{ chunks: Buffer[]; sent: number }> {
  const stream = new KeyStream(seed);
  const chunks: Buffer[] = [];
  let sent = 0;
  const started = Date.now();
  while (Date.now() - started < ms) {
    const chunk = stream.next(2000);
    chunks.push(chunk);
    sent += chunk.length;
    // Not awaited beyond 300 ms: once the path is full, writes queue in the client.
    const stalled = await Promise.race([conn.write(chunk).then(() => false), delay(300).then(() => true)]);
    if (stalled) break;
    await delay(1);
  }
  return { chunks, sent };
}

// Paced small writes reach the relay one by one (short reads: the copy path)
// while the far side does not read; as its buffers fill, sends are cut short
// and the rest waits in a pipe, reads fill the buffer and the direction turns
// to splice. Either way every byte must arrive, in order, once it reads.
t.test('a client that stops reading: echoes back up and arrive intact once it reads again', { timeout: 60_000 }, async (t) => {
  const backend = await startBackend(t, 'echo');
  const { port, engine } = await startService(t, { backends: [backend.port], relay: 'user' });

  const conn = await openConn(t, port);
  conn.socket.pause();
  const { chunks, sent } = await pacedWrites(conn, 'backlog', 1_500);
  t.ok(conn.receivedTotal < sent, `the paused client has not received everything yet (${conn.receivedTotal} of ${sent} bytes)`);
  conn.socket.resume();
  const back = await conn.read(sent, 30_000);
  t.ok(back.equals(Buffer.concat(chunks)), `all ${sent} bytes come back in order, byte for byte`);
  conn.socket.end();
  await conn.waitClosed();
  t.equal(conn.error, undefined, 'no error');
  await waitUntil('the connection to close', () => engine.activeConnections() === 0);
});

t.test('a backend that reads late: what it cannot take yet waits and arrives intact', { timeout: 60_000 }, async (t) => {
  const backend = await startBackend(t, 'read-later', ['--after', '2000', '--report']);
  const { port, engine } = await startService(t, { backends: [backend.port], relay: 'user' });

  const conn = await openConn(t, port);
  const { chunks, sent } = await pacedWrites(conn, 'parked', 1_500);
  conn.socket.end();
  const report = await backend.waitForReport(() => true, 30_000);
  t.equal(report.received, sent, `the backend received all ${sent} bytes`);
  t.equal(report.sha256, sha256(Buffer.concat(chunks)), 'in order, byte for byte');
  t.ok(report.eof, 'then the EOF');
  await conn.waitClosed();
  t.equal(conn.error, undefined, 'clean close');
  await waitUntil('the connection to close', () => engine.activeConnections() === 0);
});
