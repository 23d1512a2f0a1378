// The kernel relay's own cases (native/engine/kernel_relay.h,
// tcp_kernel_relay.cc), beyond the TCP tests that run in both relays: when
// relay: auto hands a connection to the kernel and when it does not, a bulk
// stream that leaves the kernel exactly, a client whose data and FIN come
// before the relay is set up, idle timeout and a slow receiver while the
// kernel has the bytes, a backend reset, engine stop.
import t from 'tap';
import { startBackend, startBackends } from '../helpers/backends.js';
import { serviceConfig, startService } from '../helpers/engine.js';
import { delay, echoStream, KeyStream, MiB, openConn, pingEcho, waitUntil } from '../helpers/traffic.js';

t.test('relay: auto hands a request/response session to the kernel, not a one-shot connection', async (t) => {
  const [backend] = await startBackends(t, 1, 'echo');
  const { port, service, engine } = await startService(t, { backends: [backend!.port], relay: 'auto' });
  const oneShot = await openConn(t, port);
  await pingEcho(oneShot, 'once\n');
  oneShot.socket.end();
  await oneShot.waitClosed();
  t.equal(service().relay?.kernelEntered, 0, 'one request and reply: the connection stayed in user space');

  const session = await openConn(t, port);
  for (let i = 0; i < 4; i++) await pingEcho(session, `warm-up ${i}\n`);
  await waitUntil('the session to enter the kernel relay', () => service().relay?.kernelActive === 1);
  for (let i = 0; i < 200; i++) await pingEcho(session, `request ${i} ${'x'.repeat(i)}\n`);
  t.pass('200 requests and replies crossed the kernel relay, each byte-exact');
  session.socket.end();
  await session.waitClosed();
  await waitUntil('the connection to close', () => engine.activeConnections() === 0);
  const stats = service();
  const expected = 'once\n'.length + [0, 1, 2, 3].reduce((n, i) => n + `warm-up ${i}\n`.length, 0) +
    Array.from({ length: 200 }, (_, i) => `request ${i} ${'x'.repeat(i)}\n`.length).reduce((a, b) => a + b, 0);
  t.equal(stats.bytesIn, expected, 'bytes in: user-space and kernel bytes counted, exactly');
  t.equal(stats.bytesOut, expected, 'bytes out, exactly');
  t.equal(stats.relay?.kernelEntered, 1, 'one connection entered');
  t.equal(stats.relay?.kernelActive, 0, 'and left the maps when it closed');
});

t.test('relay: auto: a session that turns bulk leaves the kernel for splice, nothing lost or reordered', async (t) => {
  const [backend] = await startBackends(t, 1, 'echo');
  const { port, service, engine } = await startService(t, { backends: [backend!.port], relay: 'auto' });
  const conn = await openConn(t, port);
  for (let i = 0; i < 5; i++) await pingEcho(conn, `hello ${i}\n`);
  await waitUntil('the session to enter the kernel relay', () => service().relay?.kernelActive === 1);
  // 32 MiB each way in one go, checked against the stream sent.
  const BYTES = 32 * MiB;
  const stream = new KeyStream('bulk').next(BYTES);
  const [, echoed] = await Promise.all([conn.write(stream), conn.read(BYTES, 60_000)]);
  t.ok(echoed.equals(stream), '32 MiB come back byte-exact across the exit');
  await pingEcho(conn, 'after the exit\n');
  const relay = service().relay!;
  t.equal(relay.kernelBulkExits, 1, 'the program reported it bulk once; it left the kernel');
  t.equal(relay.kernelActive, 0, 'no longer in the kernel');
  conn.socket.end();
  await conn.waitClosed();
  await waitUntil('the connection to close', () => engine.activeConnections() === 0);
  const hello = [0, 1, 2, 3, 4].reduce((n, i) => n + `hello ${i}\n`.length, 0) + 'after the exit\n'.length;
  t.equal(service().bytesIn, hello + BYTES, 'bytes in counted exactly across kernel and user space');
  t.equal(service().bytesOut, hello + BYTES, 'bytes out counted exactly');
});

t.test('relay: kernel: data sent together with the FIN before the relay is set up', async (t) => {
  const REPLY = 64 * 1024;
  const backend = await startBackend(t, 'reply-after-eof', ['--bytes', String(REPLY), '--seed', 'reply']);
  const { port, service } = await startService(t, { backends: [backend.port], relay: 'kernel' });
  for (let i = 0; i < 5; i++) {
    const conn = await openConn(t, port);
    conn.socket.end(new KeyStream(`early-${i}`).next(3000));
    const reply = await conn.read(REPLY);
    t.ok(reply.equals(new KeyStream('reply').next(REPLY)), `connection ${i}: the reply arrives whole`);
    t.equal(await conn.readLine(), '3000', `connection ${i}: the backend got all 3000 bytes before the FIN`);
    await conn.waitEnd();
  }
  const relay = service().relay!;
  t.equal(relay.fallbackUnavailable + relay.fallbackInsertFailed + relay.fallbackMapFull, 0, `none stayed out for want of the kernel relay (${relay.kernelEntered} entered, ${relay.fallbackNotEstablished} already closing)`);
});

t.test('relay: kernel: the idle timeout counts bytes the kernel moved, and closes an idle connection', async (t) => {
  const [backend] = await startBackends(t, 1, 'echo');
  const { port, service, events } = await startService(t, { backends: [backend!.port], relay: 'kernel', idleTimeoutMs: 400 });
  const busy = await openConn(t, port);
  const idle = await openConn(t, port);
  await waitUntil('both in the kernel relay', () => service().relay?.kernelActive === 2);
  const started = Date.now();
  // One request every 150 ms for 1.5 s: never idle for 400 ms, all in the kernel.
  while (Date.now() - started < 1_500) {
    await pingEcho(busy, 'tick\n');
    await delay(150);
  }
  await idle.waitEnd(2_000);
  t.ok(idle.peerClosedAt !== undefined, 'the idle connection was closed');
  t.equal(busy.peerClosedAt, undefined, 'the busy one lives on: the bytes the kernel moved count as activity');
  await pingEcho(busy, 'still here\n');
  t.ok(events !== undefined);
});

t.test('relay: kernel: a client that stops reading while the backend streams 200 MB: memory bounded, nothing lost', { timeout: 90_000 }, async (t) => {
  const BYTES = 200 * 1000 * 1000;
  const backend = await startBackend(t, 'send-and-end', ['--bytes', String(BYTES), '--seed', 'stream', '--after', '300']);
  const { port, service } = await startService(t, { backends: [backend.port], relay: 'kernel' });
  const conn = await openConn(t, port);
  await waitUntil('the connection in the kernel relay', () => service().relay?.kernelActive === 1);
  conn.socket.pause();
  const before = process.memoryUsage.rss();
  await delay(5_000);
  const during = process.memoryUsage.rss();
  t.ok(during - before < 64 * MiB, `RSS grew ${Math.round((during - before) / MiB)} MiB while the client did not read (bounded by socket buffers)`);
  conn.socket.resume();
  const data = await conn.read(BYTES, 60_000);
  t.ok(data.equals(new KeyStream('stream').next(BYTES)), 'all 200 MB arrive byte-exact');
  await conn.waitEnd();
});

t.test('relay: kernel: a backend reset reaches the client as a reset, after the bytes before it', async (t) => {
  const backend = await startBackend(t, 'reset', ['--after', '5000']);
  const { port, service } = await startService(t, { backends: [backend.port], relay: 'kernel' });
  const conn = await openConn(t, port);
  await waitUntil('the connection in the kernel relay', () => service().relay?.kernelActive === 1);
  conn.socket.write(Buffer.alloc(6000, 1));
  await conn.waitClosed();
  t.match(conn.error, /ECONNRESET|EPIPE/, `the client sees the reset (${conn.error})`);
});

t.test('relay: kernel: engine stop closes connections in the kernel relay', async (t) => {
  const [backend] = await startBackends(t, 1, 'echo');
  const { port, service, engine } = await startService(t, { backends: [backend!.port], relay: 'kernel' });
  const conns = await Promise.all(Array.from({ length: 20 }, () => openConn(t, port)));
  await waitUntil('20 in the kernel relay', () => service().relay?.kernelActive === 20);
  for (const conn of conns) await pingEcho(conn, 'hi\n');
  engine.stop();
  await Promise.all(conns.map((conn) => conn.waitEnd()));
  t.pass('every client connection was closed');
});

t.test('relay: kernel: a reload (backends re-weighted, one added) leaves connections in the kernel relay working', async (t) => {
  const backends = await startBackends(t, 2, 'echo');
  const first = { backends: [backends[0]!.port], relay: 'kernel' as const };
  const { port, service, engine } = await startService(t, first);
  const conns = await Promise.all(Array.from({ length: 5 }, () => openConn(t, port)));
  await waitUntil('5 in the kernel relay', () => service().relay?.kernelActive === 5);
  engine.apply(serviceConfig(port, { backends: [{ port: backends[0]!.port, weight: 3 }, backends[1]!.port], relay: 'kernel' }));
  await engine.whenApplied();
  for (const [i, conn] of conns.entries()) await pingEcho(conn, `after the reload ${i}\n`);
  t.equal(service().relay?.kernelActive, 5, 'still in the kernel relay after the reload');
  const fresh = await openConn(t, port);
  await pingEcho(fresh, 'a new connection\n');
  t.pass('new connections are served by the reloaded service');
});
