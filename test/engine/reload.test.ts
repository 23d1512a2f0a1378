// What a reload does, in this process: Engine.apply keeps the listeners that
// stay, starts new ones, closes removed ones and never touches connections
// already open, and a failed apply names the service and changes nothing;
// through the runtime, a removed backend drains (no new connections; open ones
// continue until they end, or until its service's drain_timeout when it has
// one, then are closed), a backend
// re-added before that keeps its connections, an added backend starts with the
// health source's 'reload' verdict, and concurrent reloads run one after the
// other. (test/process/reload.test.ts reloads a running `fulcrum run`.)
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { once } from 'node:events';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import type { FulcrumConfig } from '../../src/config/types.js';
import type { HealthVerdict } from '../../src/control/backend-control.js';
import { StaticHealth } from '../../src/control/static-health.js';
import { Engine } from '../../src/engine/engine.js';
import { startServer } from '../helpers/backends.js';
import { startRuntime } from '../helpers/admin.js';
import { type Conn, connectOutcome, delay, openConn, pingEcho } from '../helpers/traffic.js';

/** A backend that greets with its name, then echoes. */
async function namedBackend(t: Test, name: string): Promise<number> {
  const { port } = await startServer(t, (socket) => {
    socket.write(`${name}\n`);
    socket.pipe(socket);
  });
  return port;
}

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

/** `drainTimeout` null: the service has none, and the top-level one (SIGTERM's) is 1s. */
const yaml = (backends: number[], drainTimeout: string | null = '1s') => (port: number): string =>
  [
    'workers: 2',
    ...(drainTimeout === null ? ['drain_timeout: 1s'] : []),
    'services:',
    '  - name: svc',
    `    listen: 127.0.0.1:${port}`,
    ...(drainTimeout === null ? [] : [`    drain_timeout: ${drainTimeout}`]),
    '    backends:',
    ...backends.map((p) => `      - address: 127.0.0.1:${p}`),
    '',
  ].join('\n');

/** Open connections until one reaches backend `name`; the others are closed. */
async function connectTo(t: Test, port: number, name: string): Promise<Conn> {
  for (let i = 0; i < 10; i++) {
    const conn = await openConn(t, port);
    if ((await conn.readLine()) === name) return conn;
    conn.socket.destroy();
  }
  throw new Error(`no connection reached ${name}`);
}

t.test('a removed backend drains as drain does: open connections continue until they end', async (t) => {
  const a = await namedBackend(t, 'a');
  const b = await namedBackend(t, 'b');
  const { runtime, port, write } = await startRuntime(t, yaml([a, b], null));
  const onA = await connectTo(t, port, 'a');
  write(yaml([b], null)(port));
  t.match(await runtime.reload('api'), { ok: true, removed: [`svc/127.0.0.1:${a}`] });
  for (let i = 0; i < 3; i++) {
    const conn = await openConn(t, port);
    t.equal(await conn.readLine(), 'b', 'new connections avoid the removed backend');
    conn.socket.destroy();
  }
  await delay(1_600);
  t.equal(onA.describe(), 'open', 'still open after the top-level drain_timeout (1s), which is for SIGTERM only');
  const payload = randomBytes(32 * 1024).toString('hex') + '\n';
  await pingEcho(onA, payload);
  t.pass('and relays 64 KiB byte-exact');
});

t.test('a removed backend with a service drain_timeout: open connections close after it', async (t) => {
  const a = await namedBackend(t, 'a');
  const b = await namedBackend(t, 'b');
  const { runtime, port, write } = await startRuntime(t, yaml([a, b], '1s'));
  const onA = await connectTo(t, port, 'a');

  write(yaml([b], '1s')(port));
  const removedAt = Date.now();
  t.match(await runtime.reload('api'), { ok: true, removed: [`svc/127.0.0.1:${a}`] });
  await pingEcho(onA, 'still relayed after the reload\n');
  for (let i = 0; i < 4; i++) {
    const conn = await openConn(t, port);
    t.equal(await conn.readLine(), 'b', 'new connections avoid the removed backend');
    conn.socket.destroy();
  }
  await onA.waitEnd(5_000);
  const closedAfter = Date.now() - removedAt;
  t.ok(closedAfter >= 900 && closedAfter < 4_000, `closed after the drain timeout (${closedAfter} ms)`);
});

t.test('a backend removed and re-added before its drain ends keeps its connections', async (t) => {
  const a = await namedBackend(t, 'a');
  const b = await namedBackend(t, 'b');
  const { runtime, port, write } = await startRuntime(t, yaml([a, b], '1s'));
  const onA = await connectTo(t, port, 'a');
  write(yaml([b], '1s')(port));
  t.match(await runtime.reload('api'), { ok: true });
  write(yaml([a, b], '1s')(port));
  t.match(await runtime.reload('api'), { ok: true, added: [`svc/127.0.0.1:${a}`] });
  await delay(1_500);
  await pingEcho(onA, 'kept\n');
  t.equal(onA.describe(), 'open', 'not closed by the cancelled drain');
  t.equal(runtime.engine.stats().services[0]!.backends.find((x) => x.address === `127.0.0.1:${a}`)?.active, 1, 'its counters kept the connection');
});

t.test("an added backend starts with the health source's reload verdict", async (t) => {
  const a = await namedBackend(t, 'a');
  const b = await namedBackend(t, 'b');
  const verdicts: string[] = [];
  class PendingHealth extends StaticHealth {
    override initialVerdict(service: string, backend: string, reason?: 'start' | 'reload'): HealthVerdict {
      verdicts.push(`${reason ?? ''} ${service}/${backend}`);
      return reason === 'reload' ? 'down' : 'up';
    }
  }
  const { runtime, port, write } = await startRuntime(t, yaml([a]), { health: new PendingHealth() });
  write(yaml([a, b])(port));
  await runtime.reload('api');
  t.same(verdicts, [`start svc/127.0.0.1:${a}`, `reload svc/127.0.0.1:${b}`]);
  t.match(runtime.control.status('svc', `127.0.0.1:${b}`), { health: 'down', effective: 'down' }, 'down until its first passing check');
  for (let i = 0; i < 3; i++) {
    const conn = await openConn(t, port);
    t.equal(await conn.readLine(), 'a');
    conn.socket.destroy();
  }
  runtime.control.setHealth('svc', `127.0.0.1:${b}`, 'up');
  const seen = new Set<string>();
  for (let i = 0; i < 4; i++) {
    const conn = await openConn(t, port);
    seen.add(await conn.readLine());
    conn.socket.destroy();
  }
  t.same([...seen].sort(), ['a', 'b'], 'in rotation once it passes');
});

t.test('reloads are serialized: concurrent ones never interleave', async (t) => {
  const a = await namedBackend(t, 'a');
  let inFlight = 0;
  let maxInFlight = 0;
  const order: string[] = [];
  const load = async (file: string): Promise<FulcrumConfig> => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    order.push('load');
    await delay(30);
    const config = await loadConfig(file);
    inFlight--;
    order.push('loaded');
    return config;
  };
  const { runtime } = await startRuntime(t, yaml([a]), { load });
  // Record each apply too: a reload's apply comes before the next one's load.
  const apply = runtime.engine.apply.bind(runtime.engine);
  runtime.engine.apply = (config: FulcrumConfig): void => {
    order.push('apply');
    apply(config);
  };
  const outcomes = await Promise.all(Array.from({ length: 6 }, (_, i) => runtime.reload(i % 2 ? 'api' : 'signal')));
  t.equal(maxInFlight, 1, 'never two loads at once');
  t.same(outcomes.map((o) => (o.ok ? o.generation : -1)), [2, 3, 4, 5, 6, 7], 'generations in request order');
  t.equal(runtime.generation, 7);
  t.same(order, Array.from({ length: 6 }, () => ['load', 'loaded', 'apply']).flat(), 'load, apply, then the next');
});

t.test('a reload that throws unexpectedly resolves as rejected (a SIGHUP handler cannot take a rejection)', async (t) => {
  const a = await namedBackend(t, 'a');
  let fail = false;
  class FailingHealth extends StaticHealth {
    override update(config: FulcrumConfig): void {
      if (fail) throw new Error('health checker exploded');
      super.update(config);
    }
  }
  const { runtime } = await startRuntime(t, yaml([a]), { health: new FailingHealth() });
  fail = true;
  t.same(await runtime.reload('signal'), { ok: false, errors: ['reload failed: health checker exploded'] });
  fail = false;
  t.match(await runtime.reload('signal'), { ok: true }, 'the next reload runs');
});
