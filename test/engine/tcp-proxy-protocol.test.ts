// The PROXY protocol with real peers: HAProxy (accept-proxy) and nginx
// (listen ... proxy_protocol) as backends report the client address Fulcrum's
// v1 and v2 headers gave them; Fulcrum with accept_proxy behind HAProxy's
// send-proxy-v2 sees (and passes on) the original client; malformed, missing,
// cut-short and slow headers are refused and counted; a header sent a byte at
// a time still works.
import t, { type Test } from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { startBackends } from '../helpers/backends.js';
import { SERVICE, startEngine, startService } from '../helpers/engine.js';
import { checkRelayUsed, RELAYS, type TestRelay } from '../helpers/relays.js';
import { askReporter, haproxyFront, haproxyReporter, nginxReporter } from '../helpers/proxy-peers.js';
import { delay, openConn, pingEcho, waitUntil } from '../helpers/traffic.js';
import { freePort } from '../helpers/backends.js';

const V2_SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

/** A v2 header: ver_cmd, fam, then `block` as the address block (its length is written). */
function v2(verCmd: number, fam: number, block: Buffer): Buffer {
  const head = Buffer.from([verCmd, fam, block.length >> 8, block.length & 0xff]);
  return Buffer.concat([V2_SIG, head, block]);
}

/** IPv4 address block: src, dst, sport, dport. */
function inet4(src: string, dst: string, sport: number, dport: number): Buffer {
  const ip = (s: string): number[] => s.split('.').map(Number);
  return Buffer.from([...ip(src), ...ip(dst), sport >> 8, sport & 0xff, dport >> 8, dport & 0xff]);
}

for (const relay of RELAYS) {
  for (const reporter of ['haproxy', 'nginx'] as const) {
    for (const version of ['v1', 'v2'] as const) {
      // The header goes first, from user space, before the sockets enter the kernel relay.
      t.test(`[relay: ${relay}] send_proxy ${version}: ${reporter} (accept-proxy) sees the client's address and port and where it connected`, async (t) => {
        const peer = reporter === 'haproxy' ? await haproxyReporter(t) : await nginxReporter(t);
        const { port, service } = await startService(t, { backends: [{ port: peer.port, keys: [`send_proxy: ${version}`] }], relay });
        for (const from of ['127.0.0.5', '127.0.0.6']) {
          const { reply, localPort } = await askReporter(t, port, from);
          t.equal(reply, `${from} ${localPort} 127.0.0.1 ${port}`, `${reporter} was told ${from}:${localPort} -> 127.0.0.1:${port}`);
        }
        t.equal(service().backends[0]!.accepted, 2, 'both reached the backend');
        checkRelayUsed(t, relay, service(), 1, 2);
      });
    }
  }
}

t.test('send_proxy over IPv6: TCP6 / INET6 headers name [::1] and the port', async (t) => {
  const peer = await haproxyReporter(t);
  const { engine } = startEngine(t);
  const port = await freePort();
  engine.apply(parseConfig([
    'services:',
    `  - name: ${SERVICE}`,
    `    listen: "[::1]:${port}"`,
    '    backends:',
    `      - address: 127.0.0.1:${peer.port}`,
    '        send_proxy: v1',
    '',
  ].join('\n'), 'v6.yaml'));
  await engine.whenApplied();
  const { Socket } = await import('node:net');
  const socket = new Socket();
  t.teardown(() => socket.destroy());
  const reply = await new Promise<string>((resolve, reject) => {
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
    socket.on('end', () => resolve(text.trimEnd().split('\n').at(-1)!));
    socket.on('error', reject);
    socket.connect({ host: '::1', port }, () => socket.write('GET / HTTP/1.0\r\n\r\n'));
  });
  t.equal(reply, `::1 ${socket.localPort} ::1 ${port}`, 'HAProxy read a TCP6 header from Fulcrum');
});

t.test('accept_proxy behind HAProxy send-proxy-v2: Fulcrum sees the original client, passes it on, and its ACL judges it', async (t) => {
  const reporter = await haproxyReporter(t);
  const fulcrumPort = await freePort();
  const front = await haproxyFront(t, fulcrumPort, 'v2');
  const { engine } = startEngine(t);
  engine.apply(parseConfig([
    'services:',
    `  - name: ${SERVICE}`,
    `    listen: 127.0.0.1:${fulcrumPort}`,
    '    accept_proxy: true',
    '    accept_proxy_from: [127.0.0.1/32]',
    '    deny: [127.0.0.9]',
    '    send_proxy: v1',
    '    backends:',
    `      - address: 127.0.0.1:${reporter.port}`,
    '',
  ].join('\n'), 'front.yaml'));
  await engine.whenApplied();
  const stats = () => engine.stats().services[0]!;

  const { reply, localPort } = await askReporter(t, front.port, '127.0.0.7');
  t.equal(reply, `127.0.0.7 ${localPort} 127.0.0.1 ${front.port}`, 'the backend was told the client behind HAProxy, and the address it connected to');
  t.equal(stats().admission.proxyAccepted, 1, 'one header read');

  // A client the header names as denied: closed before any backend is touched.
  const denied = await openConn(t, front.port, 5_000, '127.0.0.9');
  await denied.write('GET / HTTP/1.0\r\n\r\n');
  await denied.waitEnd();
  t.equal(denied.receivedTotal, 0, 'the denied client got nothing');
  t.equal(stats().admission.denied, 1, 'denied by the address in the header, and counted');

  // A peer not in accept_proxy_from is a direct client: no header is read from it.
  const direct = await askReporter(t, fulcrumPort, '127.0.0.3');
  t.equal(direct.reply, `127.0.0.3 ${direct.localPort} 127.0.0.1 ${fulcrumPort}`, 'a direct client is who accept() says');
  t.equal(stats().backends[0]!.accepted, 2, 'the denied client never reached the backend');
  t.equal(stats().admission.proxyMissing + stats().admission.proxyMalformed, 0, 'no header errors');
});

/** A service with accept_proxy in front of echo backends. */
async function acceptProxyService(t: Test, keys: string[] = [], relay?: TestRelay) {
  const backends = await startBackends(t, 1, 'echo');
  return startService(t, { backends: [backends[0]!.port], keys: ['accept_proxy: true', ...keys], relay });
}

/** Write `bytes`, then wait for Fulcrum to end the connection; resolves what came back. */
async function refused(t: Test, port: number, bytes: Buffer | string, end = false): Promise<number> {
  const conn = await openConn(t, port);
  await conn.write(bytes).catch(() => undefined);
  if (end) conn.socket.end();
  await conn.waitEnd(5_000);
  return conn.receivedTotal;
}

t.test('10 malformed headers are each refused and counted; nothing reaches a backend', async (t) => {
  const { port, service } = await acceptProxyService(t);
  const malformed: Array<[string, Buffer | string]> = [
    ['v1 bare LF', 'PROXY TCP4 192.0.2.1 192.0.2.2 1000 80\nhello'],
    ['v1 two spaces', 'PROXY TCP4 192.0.2.1  192.0.2.2 1000 80\r\nhello'],
    ['v1 port 70000', 'PROXY TCP4 192.0.2.1 192.0.2.2 70000 80\r\nhello'],
    ['v1 protocol TCP5', 'PROXY TCP5 192.0.2.1 192.0.2.2 1000 80\r\nhello'],
    ['v1 TCP6 with IPv4 addresses', 'PROXY TCP6 192.0.2.1 192.0.2.2 1000 80\r\nhello'],
    ['v1 without CRLF in 107 bytes', `PROXY UNKNOWN ${'x'.repeat(120)}`],
    ['v2 version 1', v2(0x11, 0x11, inet4('192.0.2.1', '192.0.2.2', 1000, 80))],
    ['v2 command 15', v2(0x2f, 0x11, inet4('192.0.2.1', '192.0.2.2', 1000, 80))],
    ['v2 family 4', v2(0x21, 0x41, inet4('192.0.2.1', '192.0.2.2', 1000, 80))],
    ['v2 INET block of 4 bytes', v2(0x21, 0x11, Buffer.alloc(4))],
  ];
  for (const [what, bytes] of malformed) t.equal(await refused(t, port, bytes), 0, `${what}: closed, nothing echoed`);
  await waitUntil('the refusals to be counted', () => service().admission.proxyMalformed === 10 && service().active === 0);
  const s = service();
  t.equal(s.admission.proxyMalformed, 10, 'each counted as malformed');
  t.equal(s.accepted, 10, 'each was accepted');
  t.equal(s.failed, 0, 'none counted as a backend failure');
  t.equal(s.backends[0]!.accepted, 0, 'no backend was touched');
});

t.test('missing, cut short and slow headers: closed and counted by kind', async (t) => {
  const { port, service } = await acceptProxyService(t, ['accept_proxy_timeout: 300ms']);
  t.equal(await refused(t, port, 'GET / HTTP/1.0\r\n\r\n'), 0, 'an HTTP request without a header: closed');
  t.equal(await refused(t, port, Buffer.from([0, 0, 0, 8, 4, 210, 22, 47])), 0, 'a PostgreSQL SSLRequest without a header: closed');
  t.equal(await refused(t, port, 'PROXY TCP4 192.0', true), 0, 'the client ends mid-header: closed');
  const slow = await openConn(t, port);
  await slow.write('PROXY ');
  const started = Date.now();
  await slow.waitEnd(5_000);
  const waited = Date.now() - started;
  t.ok(waited >= 250 && waited < 3_000, `a header not complete in accept_proxy_timeout is cut off (after ${waited} ms)`);
  await waitUntil('the refusals to be counted', () => service().active === 0);
  t.same(
    [service().admission.proxyMissing, service().admission.proxyMalformed, service().admission.proxyTimeout],
    [2, 1, 1],
    'missing 2, malformed 1 (cut short), timeout 1',
  );
  t.equal(service().backends[0]!.accepted, 0, 'no backend was touched');
});

for (const relay of RELAYS) {
// The header is read in user space; only then may the sockets enter the kernel relay.
t.test(`[relay: ${relay}] a header sent one byte at a time, and a header with data in one segment, both work`, async (t) => {
  const { port, service } = await acceptProxyService(t, ['accept_proxy_timeout: 5s'], relay);
  const headers: Array<[string, Buffer]> = [
    ['v1', Buffer.from('PROXY TCP4 192.0.2.1 192.0.2.2 1000 80\r\n')],
    ['v2 with TLVs', Buffer.concat([v2(0x21, 0x11, Buffer.concat([inet4('192.0.2.1', '192.0.2.2', 1000, 80), Buffer.from([0x04, 0x00, 0x02, 0xaa, 0xbb])]))])],
  ];
  for (const [what, header] of headers) {
    const conn = await openConn(t, port);
    for (const byte of header) {
      await conn.write(Buffer.from([byte]));
      await delay(3);
    }
    await pingEcho(conn, `after a ${what} header byte by byte\n`);
    t.pass(`${what} header, ${header.length} bytes one at a time: the stream after it is relayed`);
    conn.socket.destroy();

    const together = await openConn(t, port);
    await together.write(Buffer.concat([header, Buffer.from('same segment\n')]));
    t.equal((await together.readLine()), 'same segment', `${what}: bytes in the header's segment are relayed, the header is not`);
    together.socket.destroy();
  }
  t.equal(service().admission.proxyAccepted, 4, 'four headers read');
  checkRelayUsed(t, relay, service(), 1, 4);
});
}

t.test('v2 LOCAL and v1 UNKNOWN: the connection\'s own addresses are passed on', async (t) => {
  const reporter = await haproxyReporter(t);
  const { port, service } = await startService(t, {
    backends: [{ port: reporter.port, keys: ['send_proxy: v2'] }],
    keys: ['accept_proxy: true'],
  });
  for (const [what, header] of [['v2 LOCAL', v2(0x20, 0x00, Buffer.alloc(0))], ['v1 UNKNOWN', Buffer.from('PROXY UNKNOWN\r\n')]] as const) {
    const conn = await openConn(t, port, 5_000, '127.0.0.4');
    await conn.write(Buffer.concat([header, Buffer.from('GET / HTTP/1.0\r\n\r\n')]));
    await conn.waitEnd();
    const reply = (await conn.read(conn.buffered)).toString().trimEnd().split('\n').at(-1);
    t.equal(reply, `127.0.0.4 ${conn.socket.localPort} 127.0.0.1 ${port}`, `${what}: the backend was told the real peer`);
  }
  t.equal(service().admission.proxyAccepted, 2, 'both headers were accepted');
});
