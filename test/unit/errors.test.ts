// The error registry (src/errors.ts): every Fulcrum error is a FulcrumError
// with a stable code, the codes are unique and the README lists each one, and
// the places that fail throw them with their code.
import t from 'tap';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { parseEndpoint } from '../../src/config/address.js';
import type { Endpoint } from '../../src/config/types.js';
import { resolveTarget } from '../../src/commands/admin-client.js';
import { startDemoBackends } from '../../src/demo-backends.js';
import {
  AdminUnreachable,
  ApiError,
  BenchError,
  BirdError,
  CheckFailure,
  ConfigError,
  DemoBackendError,
  EngineStopped,
  ERROR_CODES,
  FulcrumError,
  OutOfRange,
  UnknownBackend,
  UsageError,
} from '../../src/errors.js';
import { converse } from '../../src/health/conversation.js';

function endpoint(text: string): Endpoint {
  const parsed = parseEndpoint(text, 'listen');
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.endpoint;
}

t.test('every error class is a FulcrumError with its own code and name', async (t) => {
  const cases: Array<[FulcrumError, string, string]> = [
    [new ConfigError([{ file: 'f.yaml', line: 1, column: 1, message: 'm' }]), 'FULCRUM_ERR_CONFIG', 'ConfigError'],
    [new UsageError('missing command'), 'FULCRUM_ERR_USAGE', 'UsageError'],
    [new BenchError('refused'), 'FULCRUM_ERR_BENCH', 'BenchError'],
    [new ApiError(404, 'not_found', 'no service x'), 'FULCRUM_ERR_ADMIN_API', 'ApiError'],
    [new AdminUnreachable('cannot reach'), 'FULCRUM_ERR_ADMIN_UNREACHABLE', 'AdminUnreachable'],
    [new CheckFailure('PING answered "x"'), 'FULCRUM_ERR_CHECK_FAILED', 'CheckFailure'],
    [new DemoBackendError(endpoint('127.0.0.1:7001'), 'EADDRINUSE', undefined), 'FULCRUM_ERR_DEMO_BACKEND', 'DemoBackendError'],
    [new UnknownBackend('db', '127.0.0.1:5432'), 'FULCRUM_ERR_NOT_FOUND', 'UnknownBackend'],
    [new OutOfRange('weight must be an integer from 0 to 256, got 300'), 'FULCRUM_ERR_RANGE', 'OutOfRange'],
    [new EngineStopped(), 'FULCRUM_ERR_STOPPED', 'EngineStopped'],
    [new BirdError('bird exited at start: syntax error'), 'FULCRUM_ERR_BIRD', 'BirdError'],
  ];
  for (const [err, code, name] of cases) {
    t.ok(err instanceof FulcrumError && err instanceof Error, `${name} is a FulcrumError`);
    t.equal(err.code, code, `${name}.code`);
    t.equal(err.name, name);
  }
  t.strictSame(cases.map(([, code]) => code).sort(), Object.values(ERROR_CODES).sort(), 'one class per code');
});

t.test('ApiError keeps the API code, status and headers apart from the registry code', async (t) => {
  const err = new ApiError(405, 'method_not_allowed', 'GET /api/reload: use POST', { Allow: 'POST' });
  t.equal(err.status, 405);
  t.equal(err.apiCode, 'method_not_allowed');
  t.strictSame(err.headers, { Allow: 'POST' });
  t.equal(err.message, 'GET /api/reload: use POST');
});

t.test('codes are unique FULCRUM_ERR_ names and the README table lists exactly them', async (t) => {
  const codes = Object.values(ERROR_CODES);
  t.equal(new Set(codes).size, codes.length);
  for (const code of codes) t.match(code, /^FULCRUM_ERR_[A-Z_]+$/);
  const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');
  const section = readme.split('### Error codes')[1]?.split(/\n#/)[0] ?? '';
  const documented = [...section.matchAll(/^\| `(FULCRUM_ERR_[A-Z_]+)` \|/gm)].map((m) => m[1]);
  t.strictSame(documented.sort(), [...codes].sort());
});

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
