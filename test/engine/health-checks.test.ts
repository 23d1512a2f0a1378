// tcp, send_expect, http and udp checks against real servers on loopback
// (started here on port 0): what passes, what fails and the detail it gives,
// the hard timeout, and that every check closes its socket. Then one type
// driving the monitor through Fulcrum: an HTTP backend answering 503 is taken
// out of rotation.
import { createSocket } from 'node:dgram';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import { createServer, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { buildHealthCheck } from '../../src/config/health-check.js';
import { runProbe } from '../../src/health/probe.js';
import { freePort, startIdBackends, whoAnswers } from '../helpers/backends.js';
import { startHealth, stateChanges } from '../helpers/health.js';
import { delay, HOST, waitUntil } from '../helpers/traffic.js';

function probe(port: number, keys: Record<string, unknown>) {
  return runProbe({ host: HOST, port, check: buildHealthCheck({ timeout: '500ms', ...keys }, undefined)!, password: undefined });
}

/** A TCP server whose connections run `onConnection`; counts connections opened and closed (to prove checks close theirs). */
async function tcpServer(t: Test, onConnection: (socket: Socket) => void): Promise<{ port: number; opened: () => number; open: () => number }> {
  const sockets = new Set<Socket>();
  let opened = 0;
  const server = createServer((socket) => {
    opened++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket)).on('error', () => undefined);
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as { port: number }).port, opened: () => opened, open: () => sockets.size };
}

t.test('tcp: a listening port passes, a closed one fails at once with ECONNREFUSED', async (t) => {
  const server = await tcpServer(t, (s) => s.resume());
  const ok = await probe(server.port, { type: 'tcp' });
  t.same(ok, { ok: true, detail: 'connected' });
  await waitUntil('the check closed its socket', () => server.open() === 0, 1_000);
  const closed = await freePort();
  const started = Date.now();
  const refused = await probe(closed, { type: 'tcp' });
  t.same(refused, { ok: false, detail: 'ECONNREFUSED connecting' });
  t.ok(Date.now() - started < 200, 'refused without waiting for the timeout');
});

t.test('send_expect: string, hex and regex expectations; a mismatch says what came back', async (t) => {
  // A line server: "PING\r\n" → "+PONG\r\n", anything else → "-ERR\r\n" and close.
  const server = await tcpServer(t, (socket) => {
    let seen = '';
    socket.on('data', (chunk: Buffer) => {
      seen += chunk.toString('latin1');
      if (!seen.includes('\r\n')) return;
      if (seen.startsWith('PING\r\n')) socket.write('+PONG\r\n');
      else socket.end('-ERR unknown\r\n');
    });
  });
  t.same(await probe(server.port, { type: 'send_expect', send: 'PING\r\n', expect: '+PONG' }), { ok: true, detail: 'got "+PONG"' });
  t.same(await probe(server.port, { type: 'send_expect', send_hex: '50 49 4e 47 0d 0a', expect_hex: '2b504f4e47' }), { ok: true, detail: 'got "0x2b504f4e47"' });
  t.same(await probe(server.port, { type: 'send_expect', send: 'PING\r\n', expect_regex: '^\\+PO+NG\\r\\n$' }), { ok: true, detail: 'got /^\\+PO+NG\\r\\n$/' });
  const closedEarly = await probe(server.port, { type: 'send_expect', send: 'HELLO\r\n', expect: '+PONG' });
  t.same(closedEarly, { ok: false, detail: 'connection closed waiting for "+PONG" after 14 bytes of an incomplete reply; got "-ERR unknown.." (14 bytes)' });
  const started = Date.now();
  const wrong = await probe(server.port, { type: 'send_expect', send: 'PING\r\n', expect: 'READY', timeout: '300ms' });
  const took = Date.now() - started;
  t.same(wrong, { ok: false, detail: 'timeout after 300 ms waiting for "READY"; got "+PONG.." (7 bytes)' });
  t.ok(took >= 290 && took < 800, `the hard timeout bounds the check (${took} ms)`);
  await waitUntil('every check closed its socket', () => server.open() === 0, 1_000);
  t.equal(server.opened(), 5, 'one connection per check');
});

t.test('http: GET path with Host and Connection: close; the status decides', async (t) => {
  const requests: Array<{ method: string; url: string; host: string; connection: string }> = [];
  const server = createHttpServer((req: IncomingMessage, res) => {
    requests.push({ method: req.method!, url: req.url!, host: req.headers.host!, connection: String(req.headers.connection) });
    const status = req.url === '/healthz' ? 200 : req.url === '/empty' ? 204 : req.url === '/moved' ? 301 : 503;
    res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 204 ? undefined : 'body');
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as { port: number }).port;
  t.same(await probe(port, { type: 'http', path: '/healthz' }), { ok: true, detail: 'HTTP 200 OK' });
  t.same(requests[0], { method: 'GET', url: '/healthz', host: `${HOST}:${port}`, connection: 'close' });
  t.same(await probe(port, { type: 'http', path: '/moved' }), { ok: true, detail: 'HTTP 301 Moved Permanently' }, '3xx passes by default (HAProxy)');
  t.same(await probe(port, { type: 'http', path: '/down' }), { ok: false, detail: 'HTTP 503 Service Unavailable, expected 200 to 399' });
  t.same(await probe(port, { type: 'http', path: '/moved', expect_status: [200, 204] }), { ok: false, detail: 'HTTP 301 Moved Permanently, expected 200 or 204' });
  t.same(await probe(port, { type: 'http', path: '/empty', expect_status: 204, host: 'api.example' }), { ok: true, detail: 'HTTP 204 No Content' });
  t.equal(requests.at(-1)!.host, 'api.example');
  // The body decides too, when an expectation is given (a status page that says "ok" or "degraded").
  t.same(await probe(port, { type: 'http', path: '/healthz', expect: 'body' }), { ok: true, detail: 'HTTP 200 OK, body has "body"' });
  const noMatch = await probe(port, { type: 'http', path: '/healthz', expect_regex: '^bo.y$' });
  t.equal(noMatch.ok, false, 'the regex runs over the response as sent (headers first): ^ is not the body');
  t.match(noMatch.detail, /^HTTP 200 OK, but no \/\^bo\.y\$\/ in the response \(\d+ bytes\)$/);
  t.same(await probe(port, { type: 'http', path: '/healthz', expect_regex: '^content-type: text/plain\\r\\n[\\s\\S]*\\r\\n\\r\\n[\\s\\S]*body' }), {
    ok: true,
    detail: 'HTTP 200 OK, body has /^content-type: text\\/plain\\r\\n[\\s\\S]*\\r\\n\\r\\n[\\s\\S]*body/',
  }, 'the regex sees the headers after the status line, then the body');
  t.same((await probe(port, { type: 'http', path: '/down', expect: 'body' })).ok, false, 'the status is checked first');
  // Not HTTP at all.
  const redis = await tcpServer(t, (s) => s.end('-ERR wrong protocol\r\n'));
  t.same(await probe(redis.port, { type: 'http' }), { ok: false, detail: 'not an HTTP response: "-ERR wrong protocol"' });
});

t.test('udp: a datagram gets a reply; a mismatch times out; a closed port fails at once (ICMP port unreachable)', async (t) => {
  const echo = createSocket('udp4');
  echo.on('message', (msg, from) => echo.send(Buffer.concat([Buffer.from('echo:'), msg]), from.port, from.address));
  await new Promise<void>((resolve) => echo.bind(0, HOST, resolve));
  t.teardown(() => echo.close());
  const port = echo.address().port;
  t.same(await probe(port, { type: 'udp', send: 'ping' }), { ok: true, detail: 'reply of 9 bytes' });
  t.same(await probe(port, { type: 'udp', send_hex: '00ff', expect_hex: '6563686f3a00ff' }), { ok: true, detail: 'got "0x6563686f3a00ff"' });
  const started = Date.now();
  const wrong = await probe(port, { type: 'udp', send: 'ping', expect: 'pong', timeout: '300ms' });
  t.same(wrong, { ok: false, detail: 'timeout after 300 ms waiting for a reply; got "echo:ping" (9 bytes)' });
  t.ok(Date.now() - started >= 290);
  // A UDP port nobody listens on: bind one, close it.
  const gone = createSocket('udp4');
  await new Promise<void>((resolve) => gone.bind(0, HOST, resolve));
  const closedPort = gone.address().port;
  await new Promise<void>((resolve) => gone.close(() => resolve()));
  const refusedAt = Date.now();
  const refused = await probe(closedPort, { type: 'udp', send: 'ping', timeout: '1s' });
  t.same(refused, { ok: false, detail: 'ECONNREFUSED (ICMP port unreachable)' });
  t.ok(Date.now() - refusedAt < 500, `no wait for the timeout (${Date.now() - refusedAt} ms)`);
});

t.test('through Fulcrum: an HTTP backend answering 503 is taken out of rotation, and back when it answers 200', async (t) => {
  let healthy = true;
  const id = await startIdBackends(t, 2);
  // The HTTP check runs on a side port of each backend (health_check.port), as many services do.
  const sides = await Promise.all(
    id.map(async (_, i) => {
      const server = createHttpServer((_req, res) => res.writeHead(i === 1 && !healthy ? 503 : 200).end());
      await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
      t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
      return (server.address() as { port: number }).port;
    }),
  );
  const h = await startHealth(t, (listen) =>
    [
      'services:',
      '  - name: web',
      `    listen: ${HOST}:${listen}`,
      '    health_check: {type: http, path: /health, interval: 150ms, fast_interval: 100ms, timeout: 150ms, rise: 2, fall: 2}',
      '    backends:',
      ...id.map((b, i) => `      - address: ${b.address}\n        health_check: {port: ${sides[i]}}`),
      '',
    ].join('\n'),
  );
  await h.waitHealth(id[1]!.address, 'up', 2_000);
  healthy = false;
  await h.waitHealth(id[1]!.address, 'down', 2_000);
  const seen = new Set<string>();
  for (let i = 0; i < 6; i++) seen.add(await whoAnswers(t, h.port));
  t.same([...seen], ['a'], 'only the healthy backend takes connections');
  t.match(stateChanges(h.logs, id[1]!.address).at(-1)!.reason, /http check failed: HTTP 503 Service Unavailable/);
  healthy = true;
  await h.waitHealth(id[1]!.address, 'up', 2_000);
  await delay(10);
  for (let i = 0; i < 6; i++) seen.add(await whoAnswers(t, h.port));
  t.same([...seen].sort(), ['a', 'b'], 'back in rotation');
});

/** A PostgreSQL ErrorResponse with SQLSTATE `code` and message `text`. */
function pgError(code: string, text: string): Buffer {
  const body = Buffer.from(`SFATAL\0C${code}\0M${text}\0\0`, 'utf8');
  const head = Buffer.alloc(5);
  head.write('E', 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

/** A MySQL error packet as a greeting: 0xff, code, '#', SQLSTATE, message. */
function mysqlErrorGreeting(code: number, text: string): Buffer {
  const payload = Buffer.concat([Buffer.from([0xff, code & 0xff, code >> 8]), Buffer.from(`#08004${text}`, 'latin1')]);
  const head = Buffer.alloc(4);
  head.writeUIntLE(payload.length, 0, 3);
  return Buffer.concat([head, payload]);
}

t.test('hostile or unready servers: each protocol check fails with a clear detail and closes its socket', async (t) => {
  const cases: Array<{ name: string; type: string; reply: Buffer; detail: RegExp; keys?: Record<string, unknown> }> = [
    { name: 'postgres starting up', type: 'postgres', reply: pgError('57P03', 'the database system is starting up'), detail: /^startup refused: 57P03 the database system is starting up$/ },
    { name: 'postgres too many connections', type: 'postgres', reply: pgError('53300', 'sorry, too many clients already'), detail: /^startup refused: 53300 sorry, too many clients already$/ },
    { name: 'postgres: garbage length', type: 'postgres', reply: Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'), detail: /^not a PostgreSQL message \(length/ },
    { name: 'mysql too many connections', type: 'mysql', reply: mysqlErrorGreeting(1040, 'Too many connections'), detail: /^server refused: 1040 Too many connections$/ },
    { name: 'mysql: not a greeting', type: 'mysql', reply: Buffer.from([5, 0, 0, 0, 9, 1, 2, 3, 4]), detail: /^not a MySQL greeting \(protocol 9\)$/ },
    { name: 'redis loading', type: 'redis', reply: Buffer.from('-LOADING Redis is loading the dataset in memory\r\n'), detail: /^PING: LOADING Redis is loading/ },
    { name: 'redis: not RESP', type: 'redis', reply: Buffer.from('SSH-2.0-OpenSSH_9.2\r\n'), detail: /^not a redis reply \(starts with "S"\)$/ },
    { name: 'redis: absurd array', type: 'redis', reply: Buffer.from('*99999999\r\n'), detail: /^bad redis array length$/ },
  ];
  for (const c of cases) {
    const server = await tcpServer(t, (socket) => {
      socket.once('data', () => socket.write(c.reply));
      if (c.type === 'mysql') socket.write(c.reply); // MySQL servers speak first
    });
    const result = await probe(server.port, { type: c.type, ...c.keys });
    t.equal(result.ok, false, c.name);
    t.match(result.detail, c.detail, `${c.name}: ${result.detail}`);
    await waitUntil(`${c.name}: the check closed its socket`, () => server.open() === 0, 1_000);
  }
  // A server that never stops talking: the check stops reading at 1 MiB.
  const flood = await tcpServer(t, (socket) => {
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    const pump = (): void => {
      while (!socket.destroyed && socket.write(chunk));
      if (!socket.destroyed) socket.once('drain', pump);
    };
    pump();
  });
  const flooded = await probe(flood.port, { type: 'send_expect', expect: 'OK', timeout: '2s' });
  t.equal(flooded.ok, false);
  t.match(flooded.detail, /^reply larger than 1048576 bytes waiting for "OK"/);
  await waitUntil('the flooded check closed its socket', () => flood.open() === 0, 2_000);
});
