// The connection log: each termination state provoked with real sockets, and
// its record's fields checked (bytes exact, durations plausible, who ended it
// and why). Records go to a file here (test/helpers/connection-log.ts);
// syslog and the flood are in connection-log-output.test.ts.
import { createConnection } from 'node:net';
import t from 'tap';
import { deadPort, startBackend } from '../helpers/backends.js';
import { recordFile, type LogRecord } from '../helpers/connection-log.js';
import { http, startRuntime } from '../helpers/admin.js';
import { SERVICE, serviceConfig, serviceYaml, startService } from '../helpers/engine.js';
import { type Conn, delay, HOST, KeyStream, KiB, openConn, pingEcho, waitUntil } from '../helpers/traffic.js';
import { startUdpBackend, startUdpService, udpClient, UDP_SERVICE } from '../helpers/udp.js';

/** Fields every ended TCP record has, whatever its state. */
function checkCommon(t: Tap.Test, r: LogRecord, port: number): void {
  t.equal(r.type, 'tcp');
  t.equal(r.event, 'end');
  t.equal(r.service, SERVICE);
  t.equal(r.listen, `${HOST}:${port}`);
  t.match(r.client, /^127\.0\.0\.1:\d+$/, 'the client address and port');
  t.ok(Date.parse(r.time) >= Date.parse(r.start), 'ends after it starts');
  t.ok(Math.abs(Date.parse(r.time) - Date.now()) < 60_000, 'wall-clock time, now');
  t.ok(r.duration_ms >= 0 && r.duration_ms < 60_000, `a plausible duration (${r.duration_ms} ms)`);
}

/** Wait (bounded) until Fulcrum ends `conn` (EOF or reset), then finish our half. */
async function closedByFulcrum(conn: Conn, timeoutMs = 5_000): Promise<void> {
  await conn.waitEnd(timeoutMs);
  if (conn.closedAt === undefined) conn.socket.end();
  await conn.waitClosed(2_000);
}

type Tap = typeof t;
declare namespace Tap {
  type Test = Parameters<Parameters<Tap['test']>[1]>[0];
}

t.test('client_closed: the client sends its FIN first; bytes each way exact', async (t) => {
  const log = recordFile(t);
  const backend = await startBackend(t, 'echo');
  const { port } = await startService(t, { backends: [backend.port], connectionLog: log.keys });
  const conn = await openConn(t, port);
  const payload = new KeyStream('closed').next(10 * KiB);
  await conn.write(payload);
  await conn.read(payload.length);
  conn.socket.end();
  await conn.waitClosed();
  const r = await log.waitFor('a client_closed record', (x) => x.termination === 'client_closed');
  checkCommon(t, r, port);
  t.equal(r.backend, `${HOST}:${backend.port}`);
  t.equal(r.bytes_in, payload.length, 'bytes in exact');
  t.equal(r.bytes_out, payload.length, 'bytes out exact');
  t.equal(r.attempts, 1);
  t.ok(r.connect_ms! > 0 && r.connect_ms! < 5_000, `a connect time (${r.connect_ms} ms)`);
  t.equal(r.queue_ms, 0, 'never queued');
  t.equal(r.proxy_client, undefined, 'no PROXY header');
});

t.test('backend_closed: the backend sends its FIN first', async (t) => {
  const log = recordFile(t);
  const backend = await startBackend(t, 'send-and-end', ['--bytes', '3000', '--seed', 'x']);
  const { port } = await startService(t, { backends: [backend.port], connectionLog: log.keys });
  const conn = await openConn(t, port);
  await conn.read(3000);
  await conn.waitEnd();
  conn.socket.end();
  await conn.waitClosed();
  const r = await log.waitFor('a backend_closed record', (x) => x.termination === 'backend_closed');
  checkCommon(t, r, port);
  t.equal(r.bytes_out, 3000);
  t.equal(r.bytes_in, 0);
});

t.test('client_reset and backend_reset', async (t) => {
  const log = recordFile(t);
  const echo = await startBackend(t, 'echo');
  const resetting = await startBackend(t, 'reset', ['--after', '100']);
  const { port: echoPort } = await startService(t, { backends: [echo.port], connectionLog: log.keys });
  const conn = await openConn(t, echoPort);
  await pingEcho(conn);
  conn.socket.resetAndDestroy();
  const clientReset = await log.waitFor('a client_reset record', (x) => x.termination === 'client_reset');
  checkCommon(t, clientReset, echoPort);
  t.equal(clientReset.bytes_in, 5);

  const log2 = recordFile(t);
  const { port } = await startService(t, { backends: [resetting.port], connectionLog: log2.keys });
  const conn2 = await openConn(t, port);
  await conn2.write(Buffer.alloc(1000));
  await closedByFulcrum(conn2);
  const backendReset = await log2.waitFor('a backend_reset record', (x) => x.termination === 'backend_reset');
  checkCommon(t, backendReset, port);
  t.equal(backendReset.backend, `${HOST}:${resetting.port}`);
});

t.test('idle_timeout', async (t) => {
  const log = recordFile(t);
  const backend = await startBackend(t, 'echo');
  const { port } = await startService(t, { backends: [backend.port], idleTimeoutMs: 300, connectionLog: log.keys });
  const conn = await openConn(t, port);
  await pingEcho(conn);
  await closedByFulcrum(conn);
  const r = await log.waitFor('an idle_timeout record', (x) => x.termination === 'idle_timeout');
  checkCommon(t, r, port);
  t.ok(r.duration_ms >= 250, `lasted the idle timeout (${r.duration_ms} ms)`);
});

t.test('connect_failed and connect_timeout: every try failed; attempts counted', async (t) => {
  const log = recordFile(t);
  const dead1 = await deadPort();
  const dead2 = await deadPort();
  const { port } = await startService(t, { backends: [dead1, dead2], retries: 1, connectionLog: log.keys });
  const conn = await openConn(t, port);
  await closedByFulcrum(conn);
  const r = await log.waitFor('a connect_failed record', (x) => x.termination === 'connect_failed');
  checkCommon(t, r, port);
  t.equal(r.attempts, 2, 'the first try and one retry');
  t.match(r.backend, /^127\.0\.0\.1:\d+$/, 'names the last backend tried');
  t.equal(r.bytes_in + r.bytes_out, 0);

  const log2 = recordFile(t);
  const blackhole = await startBackend(t, 'blackhole');
  const { port: port2 } = await startService(t, { backends: [blackhole.port], retries: 0, connectTimeoutMs: 200, connectionLog: log2.keys });
  const conn2 = await openConn(t, port2);
  await closedByFulcrum(conn2);
  const r2 = await log2.waitFor('a connect_timeout record', (x) => x.termination === 'connect_timeout');
  t.equal(r2.attempts, 1);
  t.ok(r2.duration_ms >= 150, `waited the connect timeout (${r2.duration_ms} ms)`);
});

t.test('no_backend: none is up', async (t) => {
  const log = recordFile(t);
  const backend = await startBackend(t, 'echo');
  const { port, engine } = await startService(t, { backends: [backend.port], connectionLog: log.keys });
  engine.setBackendState(SERVICE, `${HOST}:${backend.port}`, 'down');
  const conn = await openConn(t, port);
  await closedByFulcrum(conn);
  const r = await log.waitFor('a no_backend record', (x) => x.termination === 'no_backend');
  checkCommon(t, r, port);
  t.equal(r.backend, null);
  t.equal(r.attempts, 0);
});

t.test('queue_full and queue_timeout; a queued connection records its wait', async (t) => {
  const log = recordFile(t);
  const backend = await startBackend(t, 'echo');
  const { port } = await startService(t, {
    backends: [{ port: backend.port, keys: ['max_connections: 1'] }],
    keys: ['queue: {size: 1, timeout: 400ms}'],
    connectionLog: log.keys,
  }, 1);
  const holder = await openConn(t, port);
  await pingEcho(holder);
  const queued = await openConn(t, port); // waits in the queue, then times out
  await delay(50);
  const refused = await openConn(t, port); // the queue is full
  await closedByFulcrum(refused);
  const full = await log.waitFor('a queue_full record', (x) => x.termination === 'queue_full');
  checkCommon(t, full, port);
  await closedByFulcrum(queued);
  const timedOut = await log.waitFor('a queue_timeout record', (x) => x.termination === 'queue_timeout');
  t.ok(timedOut.queue_ms! >= 350, `waited the queue timeout (${timedOut.queue_ms} ms)`);

  // A queued connection that gets its place: its wait is in its record.
  const waiting = await openConn(t, port);
  await delay(100);
  holder.socket.end();
  await pingEcho(waiting);
  waiting.socket.end();
  await waiting.waitClosed();
  const served = await log.waitFor('the queued connection served', (x) => x.termination === 'client_closed' && x.queue_ms! > 0);
  t.ok(served.queue_ms! >= 50 && served.queue_ms! < 400, `its queue wait (${served.queue_ms} ms)`);
  t.equal(served.bytes_in, 5);
});

t.test('denied and client_limit: refused clients get a record', async (t) => {
  const log = recordFile(t);
  const backend = await startBackend(t, 'echo');
  const { port } = await startService(t, { backends: [backend.port], keys: ['allow: [10.0.0.0/8]'], connectionLog: log.keys });
  const conn = await openConn(t, port);
  await closedByFulcrum(conn);
  const denied = await log.waitFor('a denied record', (x) => x.termination === 'denied');
  t.equal(denied.service, SERVICE);
  t.equal(denied.backend, null);
  t.match(denied.client, /^127\.0\.0\.1:\d+$/);

  const log2 = recordFile(t);
  const { port: port2 } = await startService(t, { backends: [backend.port], keys: ['client_limits: {max_connections: 1}'], connectionLog: log2.keys });
  const first = await openConn(t, port2);
  await pingEcho(first);
  const second = await openConn(t, port2);
  await closedByFulcrum(second);
  const limited = await log2.waitFor('a client_limit record', (x) => x.termination === 'client_limit');
  t.equal(limited.backend, null);
});

t.test('PROXY header missing, malformed, late; a good one names the client', async (t) => {
  const log = recordFile(t);
  const backend = await startBackend(t, 'echo');
  const { port } = await startService(t, {
    backends: [backend.port],
    keys: ['accept_proxy: true', 'accept_proxy_timeout: 300ms'],
    connectionLog: log.keys,
  });
  const missing = await openConn(t, port);
  await missing.write('GET / HTTP/1.0\r\n\r\n');
  await closedByFulcrum(missing);
  await log.waitFor('a proxy_missing record', (x) => x.termination === 'proxy_missing');
  const malformed = await openConn(t, port);
  await malformed.write('PROXY TCP4 nonsense\r\n');
  await closedByFulcrum(malformed);
  await log.waitFor('a proxy_malformed record', (x) => x.termination === 'proxy_malformed');
  const late = await openConn(t, port);
  await late.write('PROXY TCP4 ');
  await closedByFulcrum(late);
  const timeout = await log.waitFor('a proxy_timeout record', (x) => x.termination === 'proxy_timeout');
  t.ok(timeout.duration_ms >= 250, `waited the header timeout (${timeout.duration_ms} ms)`);

  const good = await openConn(t, port);
  await good.write('PROXY TCP4 192.0.2.7 127.0.0.1 4567 80\r\nping\n');
  await good.read(5);
  good.socket.end();
  await good.waitClosed();
  const named = await log.waitFor('a record naming the PROXY client', (x) => x.proxy_client !== undefined);
  t.equal(named.proxy_client, '192.0.2.7:4567');
  t.match(named.client, /^127\.0\.0\.1:\d+$/, 'client: the peer that connected (the proxy in front)');
  t.equal(named.bytes_in, 5, 'the header is not counted as client bytes');
});

t.test('drain and removed: connections an operator or a reload closed', async (t) => {
  const log = recordFile(t);
  const backend = await startBackend(t, 'echo');
  const { port, engine } = await startService(t, {
    backends: [backend.port],
    keys: ['drain_timeout: 200ms'],
    connectionLog: log.keys,
  });
  const conn = await openConn(t, port);
  await pingEcho(conn);
  engine.setBackendState(SERVICE, `${HOST}:${backend.port}`, 'drain');
  await closedByFulcrum(conn);
  const drained = await log.waitFor('a drain record', (x) => x.termination === 'drain');
  checkCommon(t, drained, port);
  t.equal(drained.bytes_in, 5);
});

t.test('removed: a backend a reload removed, closed after its service drain_timeout', async (t) => {
  const log = recordFile(t);
  const kept = await startBackend(t, 'echo');
  const removed = await startBackend(t, 'echo');
  const { port, engine } = await startService(t, {
    backends: [removed.port, kept.port],
    keys: ['drain_timeout: 200ms'],
    connectionLog: log.keys,
  });
  const conn = await openConn(t, port); // round robin: the first backend
  await pingEcho(conn);
  engine.apply(serviceConfig(port, { backends: [kept.port], keys: ['drain_timeout: 200ms'], connectionLog: log.keys }));
  await closedByFulcrum(conn);
  const r = await log.waitFor('a removed record', (x) => x.termination === 'removed');
  checkCommon(t, r, port);
  t.equal(r.backend, `${HOST}:${removed.port}`);
});

t.test('maint and killed: an operator shuts a backend\'s sessions (admin API shutdown-sessions); the status view counts how they ended', async (t) => {
  const log = recordFile(t);
  const backend = await startBackend(t, 'echo');
  const { base, port } = await startRuntime(t, (listen) => serviceYaml(listen, { backends: [backend.port], connectionLog: log.keys }));
  const address = `${HOST}:${backend.port}`;
  const shut = async (): Promise<void> => {
    const r = await http(base, 'POST', `/api/services/${SERVICE}/backends/${address}/shutdown-sessions`);
    t.equal(r.status, 200, 'shutdown-sessions answers 200');
  };
  const killed = await openConn(t, port);
  await pingEcho(killed);
  await shut();
  await closedByFulcrum(killed);
  const k = await log.waitFor('a killed record', (x) => x.termination === 'killed');
  checkCommon(t, k, port);

  const inMaint = await openConn(t, port);
  await pingEcho(inMaint);
  t.equal((await http(base, 'POST', `/api/services/${SERVICE}/backends/${address}/maint`)).status, 200);
  await delay(100);
  t.notOk(inMaint.closedAt, 'maint alone keeps the open connection');
  await shut();
  await closedByFulcrum(inMaint);
  await log.waitFor('a maint record', (x) => x.termination === 'maint');

  const status = (await http(base, 'GET', '/api/status')).json as { services: Array<{ ended: Record<string, number> }> };
  t.same(status.services[0]!.ended, { killed: 1, maint: 1 }, 'the status view counts how connections ended');
});

t.test('shutdown: connections open when the engine stops', async (t) => {
  const log = recordFile(t);
  const backend = await startBackend(t, 'echo');
  const { port, engine } = await startService(t, { backends: [backend.port], connectionLog: log.keys });
  const conn = await openConn(t, port);
  await pingEcho(conn);
  engine.stop();
  // The writer thread flushes what the workers left before the engine's stop returns.
  const r = log.records().find((x) => x.termination === 'shutdown');
  t.ok(r, 'written by the time stop() returned');
  t.equal(r?.bytes_out, 5);
});

t.test('interim records of a long connection, every interval', async (t) => {
  const log = recordFile(t, ['interval: 1s']);
  const backend = await startBackend(t, 'echo');
  const { port } = await startService(t, { backends: [backend.port], connectionLog: log.keys });
  const conn = await openConn(t, port);
  await pingEcho(conn);
  await waitUntil('two interim records', () => log.records().filter((r) => r.event === 'interim').length >= 2, 6_000);
  const interim = log.records().filter((r) => r.event === 'interim');
  t.equal(interim[0]!.termination, undefined, 'an interim record has no termination');
  t.equal(interim[0]!.bytes_in, 5, 'the bytes so far');
  t.ok(interim[1]!.duration_ms > interim[0]!.duration_ms, 'its duration grows');
  conn.socket.end();
  await conn.waitClosed();
  await log.waitFor('the end record', (r) => r.event === 'end');
});

t.test('UDP flows: idle, responses_done, evicted; datagrams and bytes each way', async (t) => {
  const log = recordFile(t);
  const echo = await startUdpBackend(t, 'echo');
  const { port } = await startUdpService(t, { backends: [echo.port], keys: ['timeouts: {idle: 300ms}'], connectionLog: log.keys });
  const client = await udpClient(t);
  await client.request('one', port);
  await client.request('three', port);
  const idle = await log.waitFor('an idle UDP record', (x) => x.type === 'udp' && x.termination === 'idle_timeout');
  t.equal(idle.service, UDP_SERVICE);
  t.equal(idle.client, `${HOST}:${client.port}`);
  t.equal(idle.backend, `${HOST}:${echo.port}`);
  t.equal(idle.datagrams_in, 2);
  t.equal(idle.datagrams_out, 2);
  t.equal(idle.bytes_in, 8);
  t.equal(idle.bytes_out, 8);
  t.ok(idle.duration_ms >= 250, `lasted the idle timeout (${idle.duration_ms} ms)`);

  const log2 = recordFile(t);
  const { port: port2 } = await startUdpService(t, { backends: [echo.port], keys: ['udp: {responses: 1}', 'max_flows: 1'], connectionLog: log2.keys });
  const a = await udpClient(t);
  await a.request('query', port2);
  const done = await log2.waitFor('a responses_done record', (x) => x.termination === 'responses_done');
  t.equal(done.datagrams_out, 1);
  t.equal(done.bytes_in, 5);

  const log3 = recordFile(t);
  const { port: port3 } = await startUdpService(t, { backends: [echo.port], keys: ['max_flows: 1'], connectionLog: log3.keys }, 1);
  const first = await udpClient(t);
  const second = await udpClient(t);
  await first.request('a', port3);
  await second.request('b', port3);
  const evicted = await log3.waitFor('an evicted record', (x) => x.termination === 'evicted');
  t.equal(evicted.client, `${HOST}:${first.port}`, 'the flow idle the longest made room');

  // The flow's only backend goes down: its next datagram finds no other.
  const log4 = recordFile(t);
  const { port: port4, engine } = await startUdpService(t, { backends: [echo.port], connectionLog: log4.keys });
  const mover = await udpClient(t);
  await mover.request('x', port4);
  engine.setBackendState(UDP_SERVICE, `${HOST}:${echo.port}`, 'down');
  await mover.send('y', port4);
  const moved = await log4.waitFor('a backend_moved record', (x) => x.termination === 'backend_moved');
  t.equal(moved.datagrams_in, 1, 'what the flow carried before');
  t.equal(moved.backend, null, 'its backend was let go');
});

t.test('a connection that never reaches the relay is still one record (no double count)', async (t) => {
  const log = recordFile(t);
  const dead = await deadPort();
  const { port } = await startService(t, { backends: [dead], retries: 0, connectionLog: log.keys });
  for (let i = 0; i < 5; i++) {
    const socket = createConnection({ host: HOST, port });
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('close', resolve));
  }
  await waitUntil('5 records', () => log.records().length >= 5);
  await delay(100);
  t.equal(log.records().length, 5, 'one record per connection');
});
