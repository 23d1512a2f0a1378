// PostgreSQL cancel requests through a service with two real PostgreSQL
// servers (Debian's postgresql, each its own initdb, run as the postgres user
// in a temp dir). A session runs SELECT pg_sleep(30) through Fulcrum and is
// cancelled through Fulcrum, as psql's Ctrl-C does: a new connection carrying
// a 16-byte CancelRequest, which balancing sends to either server. With
// postgres_cancel (auto, from the postgres health check) the request is also
// sent to the other server, so every cancel works under roundrobin and
// leastconn; with postgres_cancel: off, the cancels that land on the other
// server are lost and the query runs on.
//
// Then, with in-process backends that record their bytes: what each backend
// receives (a PROXY header first where send_proxy says so, also after an
// accept_proxy header from the client), that other first messages are not
// broadcast, and that a backend that never answers costs a connect timeout,
// counted, and no descriptor.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { startPostgresServers } from '../helpers/db-servers.js';
import { TOKEN, http, startRuntime } from '../helpers/admin.js';
import { startServer } from '../helpers/backends.js';
import { startService } from '../helpers/engine.js';
import { startHealth, type HealthHarness } from '../helpers/health.js';
import { cancelRequest, pgSession, sendCancel, startupMessage } from '../helpers/pg-wire.js';
import { parsePrometheus, sampleValue } from '../helpers/prometheus.js';
import { delay, HOST, waitUntil } from '../helpers/traffic.js';

const ROUNDS = 20;
// With postgres_cancel: off every lost cancel costs CANCEL_BOUND_MS: fewer rounds say the same.
const OFF_ROUNDS = 8;
// A cancel that works ends the query within this; one that was lost leaves it sleeping.
const CANCEL_BOUND_MS = 2000;

const { servers, sql } = await startPostgresServers(t, 2);

/** Whether server process `pid` runs pg_sleep now, on either server (PIDs are unique on this machine). */
function sleeping(pid: number): boolean {
  const query = `SELECT count(*) FROM pg_stat_activity WHERE pid = ${pid} AND state = 'active' AND query LIKE 'SELECT pg_sleep%'`;
  return servers.some((server) => sql(server, query) === '1');
}

/** Fulcrum in front of both servers, with a postgres health check (so postgres_cancel: auto is on). */
async function pgService(t: Test, balance: string, keys: string[] = []): Promise<HealthHarness> {
  const h = await startHealth(t, (listen) =>
    [
      'services:',
      '  - name: pg',
      `    listen: ${HOST}:${listen}`,
      `    balance: ${balance}`,
      ...keys.map((key) => `    ${key}`),
      '    health_check: {type: postgres, interval: 1s, timeout: 500ms, rise: 1, fall: 2}',
      '    backends:',
      ...servers.map((server) => `      - address: ${HOST}:${server.port}`),
      '',
    ].join('\n'),
  );
  for (const server of servers) await h.waitHealth(`${HOST}:${server.port}`, 'up', 5_000);
  return h;
}

/** A connection that stays open, taking a balancing turn (and, for leastconn, a place). */
function spacer(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: HOST, port }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/**
 * `rounds` times: a session through `port` starts pg_sleep(30) and is cancelled
 * through `port`. On odd rounds a spacer connection is opened between the two,
 * so that under roundrobin the cancel lands on the session's own server on
 * odd rounds and on the other server on even rounds. Returns how many
 * queries ended with SQLSTATE 57014 (canceled) within CANCEL_BOUND_MS.
 */
async function cancelRounds(t: Test, h: HealthHarness, rounds = ROUNDS): Promise<number> {
  const port = h.port;
  // Connections the backends have accepted: a spacer has taken its turn once this grows.
  const established = (): number => h.engine.stats().services[0]!.backends.reduce((sum, b) => sum + b.accepted, 0);
  let cancelled = 0;
  for (let round = 0; round < rounds; round++) {
    const session = await pgSession(port, 'postgres', 'postgres');
    const spacers: Socket[] = [];
    try {
      const running = session.query('SELECT pg_sleep(30)', 5_000 + CANCEL_BOUND_MS + 500).catch((err: Error) => ({ ok: false, sqlstate: undefined, message: err.message }));
      // The query must be running when the cancel arrives (a cancel for an idle session does nothing).
      await waitUntil('pg_sleep running', () => sleeping(session.pid), 2_000, 10);
      if (round % 2 === 1) {
        // Connected is not yet balanced (a worker picks after accept): wait for the pick, so the cancel comes after it.
        const before = established();
        spacers.push(await spacer(port));
        await waitUntil('the spacer balanced', () => established() > before, 2_000, 5);
      }
      const started = Date.now();
      await sendCancel(port, session.pid, session.secret);
      const result = await Promise.race([running, delay(CANCEL_BOUND_MS).then(() => ({ ok: false, sqlstate: undefined, message: 'still running' }))]);
      const ms = Date.now() - started;
      if (result.sqlstate === '57014') {
        cancelled++;
      } else {
        t.comment(`round ${round}: not cancelled (${result.sqlstate ?? result.message} after ${ms} ms)`);
        // Stop the sleeping query on whichever server runs it, straight to the servers.
        for (const server of servers) await sendCancel(server.port, session.pid, session.secret);
        await running;
      }
    } finally {
      session.close();
      for (const socket of spacers) socket.destroy();
    }
  }
  return cancelled;
}

t.test('roundrobin: every cancel reaches the session, 20 of 20', async (t) => {
  const h = await pgService(t, 'roundrobin');
  const cancelled = await cancelRounds(t, h);
  t.comment(`postgres_cancel auto, roundrobin: ${cancelled}/${ROUNDS} cancelled`);
  t.equal(cancelled, ROUNDS, 'every query cancelled within 2 s');
  const stats = h.engine.stats().pgCancel;
  t.equal(stats.broadcasts, ROUNDS, 'each cancel was broadcast once');
  await waitUntil('every broadcast connection ended', () => h.engine.stats().pgCancel.sent === ROUNDS, 2_000);
  t.equal(h.engine.stats().pgCancel.failed, 0, 'none failed');
});

t.test('leastconn: every cancel reaches the session, 20 of 20', async (t) => {
  const h = await pgService(t, 'leastconn');
  const cancelled = await cancelRounds(t, h);
  t.comment(`postgres_cancel auto, leastconn: ${cancelled}/${ROUNDS} cancelled`);
  t.equal(cancelled, ROUNDS, 'every query cancelled within 2 s');
  t.equal(h.engine.stats().pgCancel.broadcasts, ROUNDS);
});

t.test('postgres_cancel: off loses the cancels that land on the other server', async (t) => {
  const h = await pgService(t, 'roundrobin', ['postgres_cancel: off']);
  const cancelled = await cancelRounds(t, h, OFF_ROUNDS);
  t.comment(`postgres_cancel off, roundrobin: ${cancelled}/${OFF_ROUNDS} cancelled`);
  // Even rounds land on the other server: those are lost.
  t.equal(cancelled, OFF_ROUNDS / 2, 'only the cancels balanced to the session’s own server work');
  t.equal(h.engine.stats().pgCancel.broadcasts, 0, 'nothing broadcast');
});

t.test('postgres_cancel: off under leastconn loses cancels too', async (t) => {
  const h = await pgService(t, 'leastconn', ['postgres_cancel: off']);
  const cancelled = await cancelRounds(t, h, OFF_ROUNDS);
  t.comment(`postgres_cancel off, leastconn: ${cancelled}/${OFF_ROUNDS} cancelled`);
  // Even rounds: the session's server has one connection more, so the cancel goes to the other one.
  t.ok(cancelled <= OFF_ROUNDS / 2, 'at least every even round is lost');
});

// ------------------------------------------------------------ recorded bytes

/** A backend that records every byte of each connection it accepts. */
async function recordingBackend(t: Test): Promise<{ port: number; connections: Buffer[][] }> {
  const connections: Buffer[][] = [];
  const { port } = await startServer(t, (socket) => {
    const chunks: Buffer[] = [];
    connections.push(chunks);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => socket.end());
  });
  return { port, connections };
}

const bytesOf = (connection: Buffer[]): Buffer => Buffer.concat(connection);

/** Writes `bytes` on a new connection to port, then closes after a moment. */
async function sendAndClose(port: number, bytes: Buffer): Promise<void> {
  const socket = await spacer(port);
  socket.on('error', () => undefined);
  socket.write(bytes);
  await delay(100);
  socket.end();
}

t.test('what each backend receives: the request, after a PROXY header where send_proxy says so', async (t) => {
  const a = await recordingBackend(t);
  const b = await recordingBackend(t);
  const c = await recordingBackend(t);
  const run = await startService(t, {
    backends: [{ port: a.port, keys: ['send_proxy: v1'] }, b.port, c.port],
    keys: ['postgres_cancel: broadcast', 'accept_proxy: true'],
  });
  const request = cancelRequest(4242, 0xdeadbeef);
  const header = `PROXY TCP4 192.0.2.7 ${HOST} 5555 ${run.port}\r\n`;
  // The client is a proxy in front: its header, then the CancelRequest.
  await sendAndClose(run.port, Buffer.concat([Buffer.from(header), request]));
  await waitUntil('a connection on each backend', () => [a, b, c].every((x) => x.connections.length === 1), 3_000);
  await waitUntil('all bytes in', () => bytesOf(c.connections[0]!).length === 16 && bytesOf(b.connections[0]!).length === 16, 3_000);
  // Round robin sent the client's own connection to a (the first turn); b and c got the broadcast.
  t.strictSame(bytesOf(a.connections[0]!), Buffer.concat([Buffer.from(header), request]), 'a: its PROXY header naming the client, then the request');
  t.strictSame(bytesOf(b.connections[0]!), request, 'b: the 16 bytes, nothing else');
  t.strictSame(bytesOf(c.connections[0]!), request, 'c: the 16 bytes, nothing else');
  await waitUntil('sent counted', () => run.engine.stats().pgCancel.sent === 2, 2_000);
  t.strictSame(run.engine.stats().pgCancel, { broadcasts: 1, sent: 2, failed: 0, skipped: 0 });

  // Now b's turn: a gets the broadcast, with its header naming the same client.
  await sendAndClose(run.port, Buffer.concat([Buffer.from(header), request]));
  await waitUntil('a second connection on each backend', () => [a, b, c].every((x) => x.connections.length === 2), 3_000);
  await waitUntil('a got its bytes', () => bytesOf(a.connections[1]!).length === header.length + 16, 3_000);
  t.strictSame(bytesOf(a.connections[1]!), Buffer.concat([Buffer.from(header), request]), 'a: header then request, by broadcast');

  // Not cancel requests: a StartupMessage, an SSLRequest, 16 other bytes, a request with more after it.
  const ssl = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
  const others = [startupMessage('app', 'app'), ssl, Buffer.from('GET / HTTP/1.1\r\n'), Buffer.concat([request, Buffer.from('x')])];
  for (const bytes of others) await sendAndClose(run.port, Buffer.concat([Buffer.from(header), bytes]));
  await waitUntil('relayed', () => a.connections.length + b.connections.length + c.connections.length === 6 + others.length, 3_000);
  await delay(200);
  t.equal(a.connections.length + b.connections.length + c.connections.length, 6 + others.length, 'each went to one backend only');
  t.equal(run.engine.stats().pgCancel.broadcasts, 2, 'none of them was broadcast');
});

t.test('a protocol 3.2 request (PostgreSQL 18, a longer key) is broadcast whole', async (t) => {
  const a = await recordingBackend(t);
  const b = await recordingBackend(t);
  const run = await startService(t, { backends: [a.port, b.port], keys: ['postgres_cancel: broadcast'] });
  // length 44: code, pid, then a 32-byte key.
  const request = Buffer.concat([Buffer.from([0, 0, 0, 44]), cancelRequest(99, 0).subarray(4, 12), Buffer.alloc(32, 0x5a)]);
  await sendAndClose(run.port, request);
  await waitUntil('both got it', () => a.connections.length === 1 && b.connections.length === 1 && bytesOf(b.connections[0]!).length === 44 && bytesOf(a.connections[0]!).length === 44, 3_000);
  t.strictSame(bytesOf(a.connections[0]!), request, 'relayed');
  t.strictSame(bytesOf(b.connections[0]!), request, 'broadcast');
  t.equal(run.engine.stats().pgCancel.broadcasts, 1);
});

/**
 * A listening socket that never accepts (python3, backlog 0), with its accept
 * queue filled: further connects to it get no answer at all, as from a
 * server that is down behind a firewall that drops.
 */
async function silentPort(t: Test): Promise<number> {
  const child = spawn('python3', ['-c', "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(120)"], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
    child.once('exit', () => reject(new Error('python3 exited')));
  });
  // Fill the accept queue (backlog 0 takes one; the second may hang in SYN_SENT).
  for (let i = 0; i < 2; i++) {
    const socket = connect({ host: HOST, port });
    socket.on('error', () => undefined);
    t.teardown(() => socket.destroy());
  }
  await delay(200);
  return port;
}

t.test('a backend that never answers costs one connect timeout and is counted as failed', async (t) => {
  const a = await recordingBackend(t);
  const silent = await silentPort(t);
  const run = await startService(t, {
    backends: [a.port, silent],
    connectTimeoutMs: 300,
    keys: ['postgres_cancel: broadcast'],
  });
  const started = Date.now();
  await sendAndClose(run.port, cancelRequest(1, 2));
  await waitUntil('the silent backend counted as failed', () => run.engine.stats().pgCancel.failed === 1, 3_000);
  const ms = Date.now() - started;
  t.ok(ms >= 250 && ms < 1500, `ended by the connect timeout (${ms} ms)`);
  t.strictSame(run.engine.stats().pgCancel, { broadcasts: 1, sent: 0, failed: 1, skipped: 0 });
  t.strictSame(bytesOf(a.connections[0]!), cancelRequest(1, 2), 'the client’s own connection still relayed');
});

t.test('at most 50 broadcasts a second per service and worker; the rest are relayed only', async (t) => {
  const a = await recordingBackend(t);
  const b = await recordingBackend(t);
  // One worker, so the bound is one bucket.
  const run = await startService(t, { backends: [a.port, b.port], keys: ['postgres_cancel: broadcast'] }, 1);
  const burst = 60;
  await Promise.all(Array.from({ length: burst }, (_, i) => sendAndClose(run.port, cancelRequest(i, i))));
  await waitUntil('every cancel counted', () => {
    const s = run.engine.stats().pgCancel;
    return s.broadcasts + s.skipped === burst;
  }, 3_000);
  const stats = run.engine.stats().pgCancel;
  t.ok(stats.broadcasts <= 50 && stats.broadcasts >= 40, `broadcasts within the bound (${stats.broadcasts})`);
  t.equal(stats.skipped, burst - stats.broadcasts, 'the others skipped');
  await waitUntil('every relayed connection in', () => a.connections.length + b.connections.length === burst + stats.broadcasts, 3_000);
});

t.test('/metrics counts broadcasts and the connections they made', async (t) => {
  const a = await recordingBackend(t);
  const b = await recordingBackend(t);
  const { base, port, runtime } = await startRuntime(t, (listen) =>
    [
      `admin: { token: ${TOKEN} }`,
      'services:',
      '  - name: pg',
      `    listen: ${HOST}:${listen}`,
      '    postgres_cancel: broadcast',
      '    backends:',
      `      - address: ${HOST}:${a.port}`,
      `      - address: ${HOST}:${b.port}`,
      '',
    ].join('\n'),
  );
  await sendAndClose(port, cancelRequest(7, 8));
  await waitUntil('sent', () => runtime.engine.stats().pgCancel.sent === 1, 3_000);
  const res = await http(base, 'GET', '/metrics', { token: TOKEN });
  const m = parsePrometheus(res.text);
  t.equal(sampleValue(m, 'fulcrum_pg_cancel_broadcasts_total', {}), 1);
  t.equal(sampleValue(m, 'fulcrum_pg_cancel_connections_total', { result: 'sent' }), 1);
  t.equal(sampleValue(m, 'fulcrum_pg_cancel_connections_total', { result: 'failed' }), 0);
  t.equal(sampleValue(m, 'fulcrum_pg_cancel_skipped_total', {}), 0);
});
