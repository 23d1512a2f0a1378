// A [::]:PORT listener, in this process: dual-stack by default (an IPv4 client
// is served, byte-exact, and shown as its IPv4 address; for protocol: udp
// answered from the IPv4 address it sent to), IPv6-only with
// `ipv6_only: true`; an IPv4 client hashes the same through it as through an
// IPv4 listener (balance: source). `fulcrum check`'s overlap rule is in
// test/unit/config.test.ts; the native formatter in test/native/engine_test.cc.
import { randomBytes } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import t, { type Test } from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { Engine, type EngineEvent } from '../../src/engine/engine.js';
import { freePort, startEchoServer, startIdBackends } from '../helpers/backends.js';
import { waitUntil } from '../helpers/traffic.js';
import { startUdpBackend, startUdpService, udpClient } from '../helpers/udp.js';

/** Start an engine with `yaml(port)` on a free port (retried on EADDRINUSE); stopped at teardown. */
async function startWith(t: Test, yaml: (port: number) => string): Promise<{ engine: Engine; port: number; events: EngineEvent[] }> {
  const engine = Engine.start({ workers: 2 });
  const events: EngineEvent[] = [];
  engine.on('event', (event: EngineEvent) => events.push(event));
  t.teardown(() => engine.stop());
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      engine.apply(parseConfig(yaml(port), 'dual-stack.yaml'));
      await engine.whenApplied();
      return { engine, port, events };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 5) throw err;
    }
  }
}

const dualYaml = (backend: number, extra: readonly string[] = []) => (port: number): string =>
  ['workers: 2', 'log: {level: warn}', 'services:', '  - name: dual', `    listen: "[::]:${port}"`, ...extra.map((k) => `    ${k}`),
    '    backends:', `      - address: 127.0.0.1:${backend}`, ''].join('\n');

/** Connect from `from` to `host`:`port`, send `payload`, read as many bytes back; resolves them, the errno name, or 'closed'. */
function echoOnce(t: Test, host: string, port: number, payload: Buffer, from?: string): Promise<Buffer | string> {
  return new Promise((resolve) => {
    const socket = netConnect({ host, port, localAddress: from });
    t.teardown(() => socket.destroy());
    const chunks: Buffer[] = [];
    let got = 0;
    const timer = setTimeout(() => {
      socket.destroy();
      resolve('timeout');
    }, 5_000);
    socket.on('connect', () => socket.write(payload));
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      got += chunk.length;
      if (got >= payload.length) {
        clearTimeout(timer);
        socket.destroy();
        resolve(Buffer.concat(chunks));
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(err.code ?? err.message);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve('closed');
    });
  });
}

t.test('[::]:PORT is dual-stack by default: an IPv4 client gets its bytes back exactly', async (t) => {
  const echo = await startEchoServer(t);
  const { engine, port } = await startWith(t, dualYaml(echo.port));
  const payload = randomBytes(256 * 1024);
  const overIpv4 = await echoOnce(t, '127.0.0.1', port, payload);
  t.ok(Buffer.isBuffer(overIpv4) && overIpv4.equals(payload), `IPv4 client through [::]:${port}: 256 KiB echoed byte-exact (${Buffer.isBuffer(overIpv4) ? 'bytes' : overIpv4})`);
  const overIpv6 = await echoOnce(t, '::1', port, payload);
  t.ok(Buffer.isBuffer(overIpv6) && overIpv6.equals(payload), 'and an IPv6 client too');
  t.match(engine.stats().services[0], { accepted: 2, listen: `[::]:${port}` });
});

t.test('ipv6_only: true refuses IPv4 clients and serves IPv6 ones', async (t) => {
  const echo = await startEchoServer(t);
  const { port } = await startWith(t, dualYaml(echo.port, ['ipv6_only: true']));
  const payload = randomBytes(4096);
  t.equal(await echoOnce(t, '127.0.0.1', port, payload), 'ECONNREFUSED', 'the IPv4 client is refused');
  const overIpv6 = await echoOnce(t, '::1', port, payload);
  t.ok(Buffer.isBuffer(overIpv6) && overIpv6.equals(payload), 'the IPv6 client is served');
});

t.test('an IPv4 client refused through [::] is named by its IPv4 address', async (t) => {
  const echo = await startEchoServer(t);
  const { port, events } = await startWith(t, dualYaml(echo.port, ['deny: [127.0.0.9/32]']));
  t.match(await echoOnce(t, '127.0.0.1', port, Buffer.from('x'), '127.0.0.9'), /^(ECONNRESET|closed)$/, 'denied by an IPv4 prefix');
  await waitUntil('the refusal is reported', () => events.some((e) => e.type === 'client_refused'));
  const refused = events.find((e) => e.type === 'client_refused')!;
  t.match(refused.client, /^127\.0\.0\.9:\d+$/, `client ${refused.client}, not [::ffff:127.0.0.9]:port`);
});

t.test('balance: source: an IPv4 client reaches the same backend through [::] as through an IPv4 listener', async (t) => {
  const backends = await startIdBackends(t, 4);
  const backendLines = backends.flatMap((b) => [`      - address: ${b.address}`]);
  const { port } = await startWith(t, (p) =>
    ['workers: 2', 'log: {level: warn}', 'services:',
      '  - name: v4', `    listen: 127.0.0.1:${p}`, '    balance: source', '    backends:', ...backendLines,
      '  - name: dual', `    listen: "[::]:${p + 1}"`, '    balance: source', '    backends:', ...backendLines, ''].join('\n'));
  const clients = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6', '127.0.0.7', '127.0.0.8', '127.0.0.9'];
  const name = async (listenPort: number, from: string): Promise<string> => {
    const reply = await echoOnce(t, '127.0.0.1', listenPort, Buffer.from('?'), from);
    return Buffer.isBuffer(reply) ? reply.toString().split('\n')[0]! : reply;
  };
  const viaV4 = [];
  const viaDual = [];
  for (const from of clients) {
    viaV4.push(await name(port, from));
    viaDual.push(await name(port + 1, from));
  }
  t.equal(new Set(viaV4).size > 1, true, `clients spread over backends (${viaV4.join('')})`);
  t.strictSame(viaDual, viaV4, 'each client lands on the same backend either way');
});

t.test('protocol: udp on [::]:PORT takes IPv4 clients too, and answers from the IPv4 address they sent to', async (t) => {
  const backend = await startUdpBackend(t, 'echo');
  const { port } = await startUdpService(t, { backends: [backend.port], host: '[::]' });
  const client = await udpClient(t);
  const payload = randomBytes(1200);
  const reply = await client.request(payload, port, '127.0.0.1', 5, 1000);
  t.ok(reply.data.equals(payload), 'byte for byte');
  t.strictSame([reply.address, reply.port], ['127.0.0.1', port], 'from 127.0.0.1 and the service port');
});
