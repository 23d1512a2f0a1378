// Engine.apply as a reload: a failed apply names the service and changes
// nothing; a successful one keeps listeners that stay, starts new ones, closes
// removed ones, and never touches connections already open.
import t, { type Test } from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { parseConfig } from '../src/config/load.js';
import { Engine } from '../src/engine/engine.js';

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
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.write(`${name}\n`);
    socket.pipe(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return (server.address() as net.AddressInfo).port;
}

/** Ports free right now (bound to 0, then released). */
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

/** A client that reads line by line. */
async function client(t: Test, port: number): Promise<{ line: () => Promise<string>; socket: net.Socket }> {
  const socket = net.connect(port, '127.0.0.1');
  t.teardown(() => socket.destroy());
  await once(socket, 'connect');
  socket.setEncoding('utf8');
  let buffered = '';
  const waiting: Array<(line: string) => void> = [];
  const flush = (): void => {
    let index;
    while (waiting.length > 0 && (index = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, index);
      buffered = buffered.slice(index + 1);
      waiting.shift()!(line);
    }
  };
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    flush();
  });
  const line = () =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no line within 5 s')), 5000);
      waiting.push((l) => {
        clearTimeout(timer);
        resolve(l);
      });
      flush();
    });
  return { line, socket };
}

async function refused(port: number): Promise<boolean> {
  const socket = net.connect(port, '127.0.0.1');
  try {
    await once(socket, 'connect');
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ECONNREFUSED';
  } finally {
    socket.destroy();
  }
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
  const before = await client(t, first!);
  t.equal(await before.line(), 'one', 'the first config serves');

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
  const after = await client(t, first!);
  t.equal(await after.line(), 'one', 'the running service still accepts');
  before.socket.write('still here\n');
  t.equal(await before.line(), 'still here', 'and the open connection still relays');
});

t.test('a reload keeps listeners that stay and never touches open connections', async (t) => {
  const oldBackend = await namedBackend(t, 'old');
  const newBackend = await namedBackend(t, 'new');
  const [kept, added] = await freePorts(2);
  const engine = Engine.start({ workers: 2 });
  t.teardown(() => engine.stop());

  engine.apply(configOf([{ name: 'kept', port: kept!, backends: [oldBackend] }]));
  const open = await client(t, kept!);
  t.equal(await open.line(), 'old');

  // Same listener, new backend list, plus a new service.
  engine.apply(configOf([
    { name: 'kept', port: kept!, backends: [newBackend] },
    { name: 'added', port: added!, backends: [oldBackend] },
  ]));
  await engine.whenApplied();
  t.equal(await (await client(t, kept!)).line(), 'new', 'new connections use the new backend list');
  t.equal(await (await client(t, added!)).line(), 'old', 'the added service serves');
  open.socket.write('ping\n');
  t.equal(await open.line(), 'ping', 'the connection opened before the reload still relays to its backend');

  // Remove the kept service: its listener closes, its open connection goes on.
  engine.apply(configOf([{ name: 'added', port: added!, backends: [oldBackend] }]));
  await engine.whenApplied();
  t.ok(await refused(kept!), 'the removed service refuses new connects');
  open.socket.write('pong\n');
  t.equal(await open.line(), 'pong', 'and its open connection still relays');
  t.equal(await (await client(t, added!)).line(), 'old', 'the remaining service serves');
});
