// Idle database connections are never cut by default (timeouts.idle is off for
// tcp), and a peer that is gone is found by TCP keepalive instead: with an
// nftables rule that silently drops one side's packets on loopback (the peer
// "vanished": no FIN, no RST), the proxy ends the connection and tells the
// other side within idle + interval x count. The options on the engine's own
// sockets are read back with getsockopt in test/native/tcp_keepalive_test.cc.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Socket } from 'node:net';
import t, { type Test } from 'tap';
import { startBackend, startServer } from '../helpers/backends.js';
import { startService } from '../helpers/engine.js';
import { delay, openConn, pingEcho, waitUntil } from '../helpers/traffic.js';

const NFT = ['/usr/sbin/nft', '/sbin/nft'].find((p) => existsSync(p));

t.test('with the default config an idle connection is never closed; idle: 1s closes one', async (t) => {
  const echo = await startBackend(t, 'echo');
  const quiet = await startService(t, { backends: [echo.port] });
  const explicit = await startService(t, { backends: [echo.port], keys: ['timeouts: {idle: 0}'] });
  const short = await startService(t, { backends: [echo.port], idleTimeoutMs: 1000 });
  const conns = await Promise.all([quiet, explicit, short].map((s) => openConn(t, s.port)));
  for (const conn of conns) await pingEcho(conn);
  await delay(3_000);
  t.equal(conns[0]!.closedAt ?? conns[0]!.endedAt, undefined, 'default: open after 3 s of silence');
  t.equal(conns[1]!.closedAt ?? conns[1]!.endedAt, undefined, 'timeouts.idle: 0: open after 3 s of silence');
  t.not(conns[2]!.endedAt, undefined, 'timeouts.idle: 1s: closed');
  await pingEcho(conns[0]!, 'still here\n');
  await pingEcho(conns[1]!, 'still here\n');
});

t.test('keepalive answered by a live peer keeps an idle connection open', async (t) => {
  const echo = await startBackend(t, 'echo');
  const { port } = await startService(t, { backends: [echo.port], keys: ['tcp_keepalive: {idle: 1s, interval: 1s, count: 2}'] });
  const conn = await openConn(t, port);
  await pingEcho(conn);
  await delay(4_000);  // several probes each way, all answered
  t.equal(conn.closedAt ?? conn.endedAt, undefined, 'open after 4 s of silence');
  await pingEcho(conn, 'still here\n');
});

t.test('a client that stops reading for longer than the keepalive time is not cut (its window is zero, it is alive)', async (t) => {
  // The backend streams; the client reads nothing for 6 s (twice idle +
  // interval x count), then reads on. A TCP_USER_TIMEOUT would have ended it
  // after 3 s of zero-window probes (Linux >= 5.1), as a paused psql would be.
  const backend = await startServer(t, (socket: Socket) => {
    socket.on('error', () => {});
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const pump = (): void => {
      while (!socket.destroyed && socket.write(chunk)) {
        // until the buffers fill
      }
    };
    socket.on('drain', pump);
    pump();
  });
  const { port } = await startService(t, { backends: [backend.port], keys: ['tcp_keepalive: {idle: 1s, interval: 1s, count: 2}'] });
  const conn = await openConn(t, port);
  conn.socket.pause();
  await delay(6_000);
  t.equal(conn.error, undefined, 'no reset while the client was not reading');
  conn.socket.resume();
  const before = conn.receivedTotal;
  await waitUntil('more bytes after the pause', () => conn.receivedTotal > before + 1024 * 1024, 10_000);
  t.equal(conn.error, undefined, 'still open, streaming');
  conn.socket.destroy();
});

/** An nftables table of this test's own that drops every TCP packet to or from `port` on this host; deleted at teardown. */
function dropPort(t: Test, port: number): void {
  const table = `fulcrum_test_${process.pid}_${port}`;
  const nft = (...args: string[]): void => void execFileSync(NFT!, args, { stdio: 'pipe' });
  nft('add', 'table', 'inet', table);
  t.teardown(() => {
    try {
      nft('delete', 'table', 'inet', table);
    } catch {
      // already gone
    }
  });
  nft('add', 'chain', 'inet', table, 'out', '{ type filter hook output priority 0 ; }');
  nft('add', 'rule', 'inet', table, 'out', 'tcp', 'dport', String(port), 'drop');
  nft('add', 'rule', 'inet', table, 'out', 'tcp', 'sport', String(port), 'drop');
}

const KEEPALIVE = 'tcp_keepalive: {idle: 1s, interval: 1s, count: 2}';

t.test('a backend that vanished is found by keepalive and the client is told', { skip: NFT === undefined ? 'no nft' : false }, async (t) => {
  const backend = await startServer(t, (socket: Socket) => socket.on('data', (d) => socket.write(d)));
  const { port, service } = await startService(t, { backends: [backend.port], keys: [KEEPALIVE] });
  const conn = await openConn(t, port);
  await pingEcho(conn);
  // Keepalive counts from the last segment (the echo), not from the drop: nft
  // may take a while to start on a loaded machine, and that time counts too.
  const since = Date.now();
  dropPort(t, backend.port);
  await waitUntil('the proxy to end the client', () => conn.closedAt !== undefined || conn.endedAt !== undefined, 10_000, 20);
  const after = Date.now() - since;
  // 1s idle + 2 x 1s probes = 3s, plus timer slack.
  t.ok(after >= 2_500 && after < 6_000, `client ended ${after} ms after the backend vanished`);
  t.equal(conn.error, 'ECONNRESET', 'with a reset: the stream was broken, not complete');
  await waitUntil('no open connections', () => service().active === 0, 2_000);
});

t.test('a client that vanished is found by keepalive and the backend connection closed', { skip: NFT === undefined ? 'no nft' : false }, async (t) => {
  let backendClosedAt: number | undefined;
  const backend = await startServer(t, (socket: Socket) => {
    socket.on('data', (d) => socket.write(d));
    socket.on('error', () => {});
    socket.on('close', () => (backendClosedAt = Date.now()));
  });
  const { port, service } = await startService(t, { backends: [backend.port], keys: [KEEPALIVE] });
  const conn = await openConn(t, port);
  await pingEcho(conn);
  const since = Date.now(); // from the last segment, as above
  dropPort(t, conn.socket.localPort!);
  await waitUntil('the proxy to close the backend connection', () => backendClosedAt !== undefined, 10_000, 20);
  const after = backendClosedAt! - since;
  t.ok(after >= 2_500 && after < 6_000, `backend connection closed ${after} ms after the client vanished`);
  await waitUntil('no open connections', () => service().active === 0, 2_000);
  conn.socket.destroy();
});
