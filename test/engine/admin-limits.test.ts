// The admin port cannot be used to pin descriptors: at most
// admin.max_connections are open at once (one more is closed as soon as it is
// accepted, and said in one log line), and a connection that sends nothing is
// closed after the headers timeout.
import { connect, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { ADMIN_HEADERS_TIMEOUT_MS } from '../../src/admin/server.js';
import { http, startRuntime } from '../helpers/admin.js';
import { startBackends } from '../helpers/backends.js';
import { delay, waitUntil } from '../helpers/traffic.js';

const CAP = 8;

function yaml(backend: string, maxConnections?: number) {
  return (port: number): string =>
    [
      ...(maxConnections === undefined ? [] : ['admin:', `  max_connections: ${maxConnections}`]),
      'services:',
      '  - name: s',
      `    listen: 127.0.0.1:${port}`,
      '    backends:',
      `      - address: ${backend}`,
      '',
    ].join('\n');
}

interface Idle {
  socket: Socket;
  closedAt: number | undefined;
  bytes: number;
}

/** Open a socket to the admin port that never sends anything; resolves once connected. */
function idleSocket(t: Test, port: number): Promise<Idle> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const idle: Idle = { socket, closedAt: undefined, bytes: 0 };
    t.teardown(() => void socket.destroy());
    socket.on('data', (chunk: Buffer) => (idle.bytes += chunk.length));
    socket.on('error', () => {});
    socket.on('close', () => (idle.closedAt = Date.now()));
    socket.once('connect', () => resolve(idle));
    socket.once('error', reject);
  });
}

t.test('past admin.max_connections a new connection is closed at once; the API answers once they are released', async (t) => {
  const [backend] = await startBackends(t, 1, 'echo');
  const { base, admin, logs } = await startRuntime(t, yaml(backend!.address, CAP));
  const held: Idle[] = [];
  for (let i = 0; i < CAP; i++) held.push(await idleSocket(t, admin.address.port));
  const extra: Idle[] = [];
  const opened = Date.now();
  for (let i = 0; i < 4; i++) extra.push(await idleSocket(t, admin.address.port));
  await waitUntil('the extra connections closed', () => extra.every((e) => e.closedAt !== undefined), 2_000, 10);
  t.ok(extra.every((e) => e.closedAt! - opened < 1_000 && e.bytes === 0), 'each extra one closed within a second, without an answer');
  t.ok(held.every((h) => h.closedAt === undefined), `the first ${CAP} stay open`);
  t.equal(logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('admin connection refused')).length, 1, 'one log line says why');

  for (const h of held) h.socket.destroy();
  await waitUntil('the server saw them close', () => held.every((h) => h.closedAt !== undefined), 2_000, 10);
  // The server counts a connection until its close is processed: allow a moment.
  let status = 0;
  for (let i = 0; i < 20 && status !== 200; i++) {
    status = (await http(base, 'GET', '/api/status').catch(() => ({ status: 0 }))).status;
    if (status !== 200) await delay(50);
  }
  t.equal(status, 200, 'a normal request works once they are released');
});

t.test('a connection that sends nothing is closed after the headers timeout', async (t) => {
  const [backend] = await startBackends(t, 1, 'echo');
  const { base, admin } = await startRuntime(t, yaml(backend!.address));
  const opened = Date.now();
  const idle = await idleSocket(t, admin.address.port);
  await waitUntil('the idle connection closed', () => idle.closedAt !== undefined, ADMIN_HEADERS_TIMEOUT_MS + 3_000, 50);
  const after = idle.closedAt! - opened;
  t.ok(after >= ADMIN_HEADERS_TIMEOUT_MS - 100 && after <= ADMIN_HEADERS_TIMEOUT_MS + 2_000, `closed after ${after} ms`);
  t.equal((await http(base, 'GET', '/api/status')).status, 200, 'the API still answers');
});

t.test('admin.max_connections defaults to 256 and changing it takes a restart', async (t) => {
  const [backend] = await startBackends(t, 1, 'echo');
  const { runtime, write } = await startRuntime(t, yaml(backend!.address));
  t.equal(runtime.config().admin.maxConnections, 256);
  write(yaml(backend!.address, 16)(runtime.config().services[0]!.listen.port));
  const outcome = await runtime.reload('api');
  t.match(outcome, { ok: true, warnings: ['admin.max_connections changed: takes effect after a restart'] });
  t.equal(runtime.config().admin.maxConnections, 256, 'the running value stays');
});
