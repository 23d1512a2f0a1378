// Engine.apply as a reload: a failed apply names the service and changes
// nothing; a successful one keeps listeners that stay, starts new ones, closes
// removed ones, and never touches connections already open.
import t, { type Test } from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { parseConfig } from '../../src/config/load.js';
import { BackendControl } from '../../src/control/backend-control.js';
import { Engine } from '../../src/engine/engine.js';
import { startServer } from '../helpers/backends.js';
import { connectOutcome, openConn } from '../helpers/traffic.js';

interface Service {
  name: string;
  port: number;
  backends: number[];
}

const configOf = (services: Service[]) =>
  parseConfig(
    [
      'workers: 2',
      'services:',
      ...services.flatMap((s) => [
        `  - name: ${s.name}`,
        `    listen: 127.0.0.1:${s.port}`,
        '    backends:',
        ...s.backends.map((b) => `      - address: 127.0.0.1:${b}`),
      ]),
    ].join('\n'),
    'reload.yaml',
  );

/** A backend that greets with its name, then echoes. */
async function namedBackend(t: Test, name: string): Promise<number> {
  const { port } = await startServer(t, (socket) => {
    socket.write(`${name}\n`);
    socket.pipe(socket);
  });
  return port;
}

/** Ports free right now: all bound to 0 at once (so they differ), then released. */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, async () => {
      const server = net.createServer().listen(0, '127.0.0.1');
      await once(server, 'listening');
      return server;
    }),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

async function greeting(t: Test, port: number): Promise<string> {
  return (await openConn(t, port)).readLine();
}

t.test('a failed apply names the service and leaves the running config', async (t) => {
  const backend = await namedBackend(t, 'one');
  const [first, second] = await freePorts(2);
  const squatter = net.createServer().listen({ port: second, host: '127.0.0.1', exclusive: true });
  await once(squatter, 'listening');
  t.teardown(() => squatter.close());

  const engine = Engine.start({ workers: 2 });
  t.teardown(() => engine.stop());
  engine.apply(configOf([{ name: 'first', port: first!, backends: [backend] }]));
  const before = await openConn(t, first!);
  t.equal(await before.readLine(), 'one', 'the first config serves');

  const error = (() => {
    try {
      engine.apply(configOf([
        { name: 'first', port: first!, backends: [backend] },
        { name: 'second', port: second!, backends: [backend] },
      ]));
    } catch (e) {
      return e as NodeJS.ErrnoException & { service?: string };
    }
    return undefined;
  })();
  t.equal(error?.code, 'EADDRINUSE');
  t.equal(error?.service, 'second', 'the error names the service whose listener failed');
  t.match(error?.message, `bind 127.0.0.1:${second} for service second`);
  t.strictSame(engine.stats().services.map((s) => s.name), ['first'], 'stats still show the running config');
  t.equal(await greeting(t, first!), 'one', 'the running service still accepts');
  before.socket.write('still here\n');
  t.equal(await before.readLine(), 'still here', 'and the open connection still relays');
});

t.test('a reload keeps listeners that stay and never touches open connections', async (t) => {
  const oldBackend = await namedBackend(t, 'old');
  const newBackend = await namedBackend(t, 'new');
  const [kept, added] = await freePorts(2);
  const engine = Engine.start({ workers: 2 });
  t.teardown(() => engine.stop());

  engine.apply(configOf([{ name: 'kept', port: kept!, backends: [oldBackend] }]));
  const open = await openConn(t, kept!);
  t.equal(await open.readLine(), 'old');

  // Same listener, new backend list, plus a new service.
  engine.apply(configOf([
    { name: 'kept', port: kept!, backends: [newBackend] },
    { name: 'added', port: added!, backends: [oldBackend] },
  ]));
  await engine.whenApplied();
  t.equal(await greeting(t, kept!), 'new', 'new connections use the new backend list');
  t.equal(await greeting(t, added!), 'old', 'the added service serves');
  open.socket.write('ping\n');
  t.equal(await open.readLine(), 'ping', 'the connection opened before the reload still relays to its backend');

  // Remove the kept service: its listener closes, its open connection goes on.
  engine.apply(configOf([{ name: 'added', port: added!, backends: [oldBackend] }]));
  await engine.whenApplied();
  t.equal(await connectOutcome(t, kept!), 'ECONNREFUSED', 'the removed service refuses new connects');
  open.socket.write('pong\n');
  t.equal(await open.readLine(), 'pong', 'and its open connection still relays');
  t.equal(await greeting(t, added!), 'old', 'the remaining service serves');
});

t.test('a backend the config lacks, a weight out of range and a stopped engine throw their registry errors', async (t) => {
  const [listen, backend] = await freePorts(2);
  const engine = Engine.start({ workers: 1 });
  t.teardown(() => engine.stop());
  const config = configOf([{ name: 'svc', port: listen!, backends: [backend!] }]);
  engine.apply(config);
  await engine.whenApplied();
  t.throws(() => engine.setBackendState('svc', '127.0.0.1:1', 'drain'), {
    name: 'UnknownBackend', code: 'FULCRUM_ERR_NOT_FOUND', message: 'no backend 127.0.0.1:1 in service svc',
  });
  t.throws(() => engine.setBackendWeight('svc', `127.0.0.1:${backend}`, 257), {
    name: 'OutOfRange', code: 'FULCRUM_ERR_RANGE', message: 'weight must be an integer from 0 to 256, got 257',
  });
  const control = new BackendControl(engine);
  t.throws(() => control.setAdmin('nope', '127.0.0.1:1', 'drain'), { name: 'UnknownBackend', code: 'FULCRUM_ERR_NOT_FOUND' });
  engine.stop();
  t.throws(() => engine.apply(config), { name: 'EngineStopped', code: 'FULCRUM_ERR_STOPPED', message: 'the engine is stopped' });
});
