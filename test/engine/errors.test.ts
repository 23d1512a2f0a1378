// The places that fail throw their registry errors (src/errors.ts), with
// their codes: a demo backend on a busy port, an unusable admin address, a
// health check against a closed port, and the engine and backend control
// asked about a backend the config lacks, given a weight out of range, or
// called after stop. (test/unit/errors.test.ts: the registry itself.)
import t from 'tap';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { parseEndpoint } from '../../src/config/address.js';
import { parseConfig } from '../../src/config/load.js';
import type { Endpoint } from '../../src/config/types.js';
import { resolveTarget } from '../../src/commands/admin-client.js';
import { BackendControl } from '../../src/control/backend-control.js';
import { startDemoBackends } from '../../src/demo-backends.js';
import { Engine } from '../../src/engine/engine.js';
import { converse } from '../../src/health/conversation.js';
import { freePort } from '../helpers/backends.js';

function endpoint(text: string): Endpoint {
  const parsed = parseEndpoint(text, 'listen');
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.endpoint;
}

t.test('a demo backend on a busy port rejects with DemoBackendError', async (t) => {
  const busy = createServer();
  busy.listen(0, '127.0.0.1');
  await once(busy, 'listening');
  t.teardown(() => busy.close());
  const port = (busy.address() as { port: number }).port;
  const address = endpoint(`127.0.0.1:${port}`);
  await t.rejects(startDemoBackends([address]), {
    code: 'FULCRUM_ERR_DEMO_BACKEND',
    errnoName: 'EADDRINUSE',
    address,
    message: `demo backend 127.0.0.1:${port} cannot listen: the port is busy (EADDRINUSE)`,
  });
});

t.test('an unusable admin address rejects with AdminUnreachable', async (t) => {
  await t.rejects(resolveTarget({ admin: 'not an address', config: undefined, tokenFile: undefined }), {
    code: 'FULCRUM_ERR_ADMIN_UNREACHABLE',
    message: /^admin address: /,
  });
});

t.test('a check against a closed port fails with CheckFailure', async (t) => {
  const closed = createServer();
  closed.listen(0, '127.0.0.1');
  await once(closed, 'listening');
  const port = (closed.address() as { port: number }).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  await t.rejects(
    converse('127.0.0.1', port, 1000, async () => undefined),
    { code: 'FULCRUM_ERR_CHECK_FAILED', message: 'ECONNREFUSED connecting' },
  );
});

t.test('a backend the config lacks, a weight out of range and a stopped engine throw their registry errors', async (t) => {
  const [listen, backend] = [await freePort(), await freePort()];
  const engine = Engine.start({ workers: 1 });
  t.teardown(() => engine.stop());
  const config = parseConfig(`services:\n  - name: svc\n    listen: 127.0.0.1:${listen}\n    backends: [{address: 127.0.0.1:${backend}}]\n`, 'errors.yaml');
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
