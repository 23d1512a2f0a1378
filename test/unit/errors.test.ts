// The error registry (src/errors.ts): every Fulcrum error is a FulcrumError
// with a stable code, the codes are unique and the README lists each one.
// (test/engine/errors.test.ts: the places that fail throw them.)
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseEndpoint } from '../../src/config/address.js';
import type { Endpoint } from '../../src/config/types.js';
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
