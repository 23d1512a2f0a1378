// The admin API over real HTTP, in front of a real engine relaying real
// connections: auth (no token, wrong token, right token, loopback-only without
// one), every endpoint, and the errors a client can provoke.
import t, { type Test } from 'tap';
import { connect } from 'node:net';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { startServer } from '../helpers/backends.js';
import { TOKEN, http, startRuntime } from '../helpers/admin.js';
import { openConn } from '../helpers/traffic.js';

/** A backend that greets each connection with its name, then echoes. */
async function namedBackend(t: Test, name: string): Promise<number> {
  const { port } = await startServer(t, (socket) => {
    socket.write(`${name}\n`);
    socket.pipe(socket);
  });
  return port;
}

interface YamlOptions {
  backends: number[];
  token?: string;
  drainTimeout?: string;
}

function yaml(o: YamlOptions): (port: number) => string {
  return (port) =>
    [
      'workers: 2',
      'log: { level: info }',
      ...(o.token ? ['admin:', `  token: ${o.token}`] : []),
      'services:',
      '  - name: svc',
      `    listen: 127.0.0.1:${port}`,
      ...(o.drainTimeout ? [`    drain_timeout: ${o.drainTimeout}`] : []),
      '    backends:',
      ...o.backends.map((p) => `      - address: 127.0.0.1:${p}`),
      '',
    ].join('\n');
}

/** Which backend names `n` new connections reach. */
async function landings(t: Test, port: number, n: number): Promise<string[]> {
  const names: string[] = [];
  for (let i = 0; i < n; i++) {
    const conn = await openConn(t, port);
    names.push(await conn.readLine());
    conn.socket.destroy();
  }
  return names;
}

t.test('auth: a configured token is required on every request but the page shell', async (t) => {
  const a = await namedBackend(t, 'a');
  const { base } = await startRuntime(t, yaml({ backends: [a], token: TOKEN }));

  for (const path of ['/api/status', '/api/services', '/api/services/svc', '/metrics']) {
    const none = await http(base, 'GET', path);
    t.equal(none.status, 401, `${path} without a token: 401`);
    t.equal(none.json?.error?.code, 'unauthorized');
    t.match(none.headers['www-authenticate'], /^Bearer realm="fulcrum"/);
    t.notMatch(none.text, /127\.0\.0\.1/, 'no state leaks in the error');

    const wrong = await http(base, 'GET', path, { token: `${TOKEN}x` });
    t.equal(wrong.status, 401, `${path} with a wrong token: 401`);
    t.equal(wrong.json?.error?.code, 'invalid_token');
    t.match(wrong.headers['www-authenticate'], /error="invalid_token"/);

    const basic = await http(base, 'GET', path, { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` });
    t.equal(basic.status, 401, `${path} with Basic instead of Bearer: 401`);

    const right = await http(base, 'GET', path, { token: TOKEN });
    t.equal(right.status, 200, `${path} with the token: 200`);
  }
  const lower = await http(base, 'GET', '/api/status', { authorization: `bearer ${TOKEN}` });
  t.equal(lower.status, 200, 'the scheme name is case-insensitive (RFC 7235)');

  const post = await http(base, 'POST', `/api/services/svc/backends/127.0.0.1:${a}/drain`);
  t.equal(post.status, 401, 'an action without the token is refused');
  const reload = await http(base, 'POST', '/api/reload');
  t.equal(reload.status, 401, 'reload without the token is refused');

  const page = await http(base, 'GET', '/');
  t.equal(page.status, 200, 'the status page shell loads without a token (it asks for one)');
  t.match(page.headers['content-type'], /^text\/html/);
  t.notMatch(page.text, new RegExp(`127\\.0\\.0\\.1:${a}`), 'the shell carries no state');
});

t.test('auth: without a token the API serves loopback clients, and refuses foreign Host names', async (t) => {
  const a = await namedBackend(t, 'a');
  const { base } = await startRuntime(t, yaml({ backends: [a] }));
  t.equal((await http(base, 'GET', '/api/status')).status, 200);
  t.equal((await http(base, 'GET', '/api/status', { headers: { Host: 'localhost:9090' } })).status, 200);
  const rebound = await http(base, 'GET', '/api/status', { headers: { Host: 'evil.example:9090' } });
  t.equal(rebound.status, 403, 'a DNS name in Host (DNS rebinding) is refused');
  t.equal(rebound.json?.error?.code, 'forbidden_host');
  const form = await http(base, 'POST', `/api/services/svc/backends/127.0.0.1:${a}/drain`, { contentType: 'application/x-www-form-urlencoded', body: 'x=1' });
  t.equal(form.status, 415, 'a cross-site form POST (not JSON) is refused');
});

t.test('curl -X POST without a Content-Type: every action with an empty body is accepted', async (t) => {
  const a = await namedBackend(t, 'a');
  const { base, admin } = await startRuntime(t, yaml({ backends: [a] }));
  const backend = `/api/services/svc/backends/127.0.0.1:${a}`;
  // What `curl -X POST URL` sends, byte for byte: no Content-Type, no Content-Length, no body.
  const curl = (path: string): Promise<string> =>
    new Promise((resolve) => {
      const socket = connect({ host: '127.0.0.1', port: admin.address.port });
      let answer = '';
      socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
      socket.on('close', () => resolve(answer));
      socket.on('error', () => undefined);
      socket.write(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:${admin.address.port}\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\nConnection: close\r\n\r\n`);
    });
  for (const [action, state] of [['drain', 'drain'], ['maint', 'maint'], ['disable', 'maint'], ['enable', 'enabled']] as const) {
    const answer = await curl(`${backend}/${action}`);
    t.match(answer, /^HTTP\/1\.1 200 /, `${action}: 200`);
    t.equal((await http(base, 'GET', backend)).json.backend.admin, state, `${action} applied`);
  }
  t.match(await curl('/api/reload'), /^HTTP\/1\.1 200 /, 'reload: 200');
  const weight = await curl(`${backend}/weight`);
  t.match(weight, /^HTTP\/1\.1 400 /, 'weight needs its body: 400, not 415');
  t.match(weight, /"code": "bad_weight"/);
  // The status page's own requests (same origin) still work, with or without the JSON type.
  const sameOrigin = await http(base, 'POST', `${backend}/drain`, { contentType: null, headers: { Origin: base } });
  t.equal(sameOrigin.status, 200, 'an empty POST from the same origin is accepted');
});

t.test('auth: listening beyond loopback without a token is a config error', async (t) => {
  const config = (admin: string): string =>
    `admin:\n${admin}services:\n  - name: s\n    listen: 127.0.0.1:7000\n    backends:\n      - address: 127.0.0.1:7001\n`;
  for (const listen of ['"*:9090"', '"[::]:9090"', '10.1.2.3:9090', '"[2001:db8::1]:9090"']) {
    const err = (() => {
      try {
        parseConfig(config(`  listen: ${listen}\n`), 'open.yaml');
        return undefined;
      } catch (e) {
        return e;
      }
    })();
    t.ok(err instanceof ConfigError, `${listen} without a token is rejected`);
    t.match((err as Error).message, /^open\.yaml:2:11: admin\.listen .* is not a loopback address: set admin\.token or admin\.token_file/);
  }
  t.equal(parseConfig(config(`  listen: "*:9090"\n  token: ${TOKEN}\n`), 'ok.yaml').admin.token, TOKEN, 'with a token it loads');
  t.same(parseConfig(config('  listen: 127.0.0.2:9091\n'), 'ok.yaml').admin.listen.text, '127.0.0.2:9091', 'any 127/8 address is loopback');
  t.same(parseConfig(config('  listen: "[::1]:9091"\n'), 'ok.yaml').admin.listen.text, '[::1]:9091', '::1 is loopback');
  t.equal(parseConfig('services:\n  - name: s\n    listen: 127.0.0.1:7000\n    backends:\n      - address: 127.0.0.1:7001\n', 'd.yaml').admin.listen.text, '127.0.0.1:8406', 'default 127.0.0.1:9090');
});

t.test('every endpoint', async (t) => {
  const a = await namedBackend(t, 'a');
  const b = await namedBackend(t, 'b');
  const A = `127.0.0.1:${a}`;
  const B = `127.0.0.1:${b}`;
  const { base, port, runtime, write, file } = await startRuntime(t, yaml({ backends: [a, b], token: TOKEN }));
  const get = (path: string) => http(base, 'GET', path, { token: TOKEN });
  const post = (path: string, body?: string) => http(base, 'POST', path, { token: TOKEN, body });
  const engineState = (address: string): string | undefined =>
    runtime.engine.stats().services[0]!.backends.find((x) => x.address === address)?.state;

  // Traffic first, so counters have something to show.
  t.same((await landings(t, port, 4)).sort(), ['a', 'a', 'b', 'b'], 'round robin over both');

  await t.test('GET /api/status', async (t) => {
    const res = await get('/api/status');
    t.equal(res.status, 200);
    t.match(res.headers['content-type'], /^application\/json/);
    t.match(res.json, { pid: process.pid, config: file, generation: 1, workers: 2, lastReload: null, ha: null });
    t.type(res.json.version, 'string');
    t.equal(res.json.services.length, 1);
    t.match(res.json.services[0], { name: 'svc', listen: `127.0.0.1:${port}`, balance: 'roundrobin', accepted: 4, backendsUp: 2 });
  });

  await t.test('GET /api/services and /api/services/:service', async (t) => {
    const list = await get('/api/services');
    t.equal(list.status, 200);
    t.same(list.json.services.map((s: { name: string }) => s.name), ['svc']);
    const one = await get('/api/services/svc');
    t.equal(one.status, 200);
    t.equal(one.json.name, 'svc');
    t.same(one.json.backends.map((x: { address: string }) => x.address), [A, B]);
    for (const backend of one.json.backends) {
      t.match(backend, { state: 'up', health: 'up', admin: 'enabled', weight: 1, backup: false, accepted: 2, failed: 0 });
      t.match(backend.check, { type: 'none', history: [] });
      t.equal(backend.bytesOut, 4, 'two greetings ("a\\n") counted backend to client');
    }
  });

  await t.test('GET /api/services/:service/backends/:backend', async (t) => {
    const res = await get(`/api/services/svc/backends/${encodeURIComponent(A)}`);
    t.equal(res.status, 200);
    t.equal(res.json.service, 'svc');
    t.match(res.json.backend, { address: A, state: 'up', health: 'up', admin: 'enabled', accepted: 2 });
    t.equal((await get(`/api/services/svc/backends/${A}`)).status, 200, 'the address needs no escaping');
  });

  await t.test('POST drain: the engine drains it and new connections avoid it', async (t) => {
    const res = await post(`/api/services/svc/backends/${A}/drain`);
    t.equal(res.status, 200);
    t.match(res.json.backend, { address: A, state: 'drain', admin: 'drain', health: 'up' });
    t.ok(Date.now() - res.json.backend.since < 1_000, 'since: the state changed just now');
    const other = (await get(`/api/services/svc/backends/${B}`)).json.backend;
    t.ok(other.since <= res.json.backend.since && other.since >= runtime.startedAt, 'the other backend has been up since the start');
    t.equal(engineState(A), 'drain');
    t.same(await landings(t, port, 4), ['b', 'b', 'b', 'b']);
  });

  await t.test('POST enable: back in rotation', async (t) => {
    const res = await post(`/api/services/svc/backends/${A}/enable`, '{}');
    t.equal(res.status, 200);
    t.match(res.json.backend, { state: 'up', admin: 'enabled' });
    t.equal(engineState(A), 'up');
    t.ok((await landings(t, port, 4)).includes('a'));
  });

  await t.test('POST disable and maint: maintenance', async (t) => {
    for (const action of ['disable', 'maint']) {
      const res = await post(`/api/services/svc/backends/${B}/${action}`);
      t.equal(res.status, 200, action);
      t.match(res.json.backend, { state: 'maint', admin: 'maint' });
      t.equal(engineState(B), 'maint');
      t.same(await landings(t, port, 3), ['a', 'a', 'a']);
    }
    // Health going down underneath does not override the operator.
    runtime.control.setHealth('svc', B, 'down');
    t.equal(engineState(B), 'maint', 'maint stays while health is down');
    await post(`/api/services/svc/backends/${B}/enable`);
    t.equal(engineState(B), 'down', 'enabled again: health decides (down)');
    runtime.control.setHealth('svc', B, 'up');
    t.equal(engineState(B), 'up');
  });

  await t.test('POST weight', async (t) => {
    const res = await post(`/api/services/svc/backends/${B}/weight`, '{"weight": 0}');
    t.equal(res.status, 200);
    t.equal(res.json.backend.weight, 0);
    t.equal(runtime.engine.stats().services[0]!.backends.find((x) => x.address === B)?.weight, 0);
    t.same(await landings(t, port, 3), ['a', 'a', 'a'], 'weight 0 takes no new connections');
    const back = await post(`/api/services/svc/backends/${B}/weight`, '{"weight": 256}');
    t.equal(back.json.backend.weight, 256);
  });

  await t.test('POST reload: applied, then an invalid file rejected with its reasons', async (t) => {
    const c = await namedBackend(t, 'c');
    write(yaml({ backends: [b, c], token: TOKEN })(port));
    const res = await post('/api/reload');
    t.equal(res.status, 200);
    t.match(res.json, { ok: true, generation: 2 });
    t.same(res.json.added, [`svc/127.0.0.1:${c}`]);
    t.same(res.json.removed, [`svc/${A}`]);
    const after = await get('/api/services/svc');
    t.same(after.json.backends.map((x: { address: string }) => x.address), [B, `127.0.0.1:${c}`]);
    t.same((await landings(t, port, 4)).sort(), ['b', 'b', 'c', 'c'], 'the new backend set serves');

    write('services:\n  - name: svc\n    listen: nowhere\n    backends: []\n');
    const bad = await post('/api/reload');
    t.equal(bad.status, 422);
    t.equal(bad.json.ok, false);
    t.match(bad.json.errors.join('\n'), new RegExp(`${file}:3:13: bad listen address "nowhere"`));
    t.match(bad.json.errors.join('\n'), /backends must not be empty/);
    const status = await get('/api/status');
    t.equal(status.json.generation, 2, 'the running config stays');
    t.match(status.json.lastReload, { trigger: 'api', outcome: { ok: false } });
    t.same((await landings(t, port, 2)).sort(), ['b', 'c'], 'and keeps serving');
  });

  await t.test('GET /api/ha without HA: 404', async (t) => {
    const res = await get('/api/ha');
    t.equal(res.status, 404);
    t.equal(res.json.error.code, 'not_found');
  });

  await t.test('GET / and /metrics', async (t) => {
    const page = await get('/');
    t.equal(page.status, 200);
    t.match(page.text, /<title>Fulcrum status<\/title>/);
    t.notMatch(page.text, /<script src=|<link /, 'self-contained: no external script or stylesheet');
    const head = await http(base, 'HEAD', '/');
    t.equal(head.status, 200);
    t.equal(head.text, '');
    const metrics = await get('/metrics');
    t.equal(metrics.status, 200);
    t.match(metrics.headers['content-type'], /^text\/plain; version=0\.0\.4/);
    t.match(metrics.text, /^fulcrum_service_connections_total\{service="svc"\} \d+$/m);
  });
});

t.test('errors: clear 4xx JSON for every mistake', async (t) => {
  const a = await namedBackend(t, 'a');
  const A = `127.0.0.1:${a}`;
  const { base } = await startRuntime(t, yaml({ backends: [a] }));
  const cases: Array<{ what: string; method: string; path: string; body?: string | Buffer; contentType?: string | null; status: number; code: string; message?: RegExp; allow?: string; headers?: Record<string, string> }> = [
    { what: 'unknown service', method: 'GET', path: '/api/services/nope', status: 404, code: 'not_found', message: /no service nope; services: svc/ },
    { what: 'unknown service (action)', method: 'POST', path: `/api/services/nope/backends/${A}/drain`, status: 404, code: 'not_found' },
    { what: 'unknown backend', method: 'GET', path: '/api/services/svc/backends/127.0.0.1:1', status: 404, code: 'not_found', message: new RegExp(`no backend 127.0.0.1:1 in service svc; it has ${A}`) },
    { what: 'unknown backend (action)', method: 'POST', path: '/api/services/svc/backends/127.0.0.1:1/drain', status: 404, code: 'not_found' },
    { what: 'unknown action', method: 'POST', path: `/api/services/svc/backends/${A}/explode`, status: 404, code: 'not_found', message: /expected drain, enable, disable, maint, shutdown-sessions or weight/ },
    { what: 'unknown path', method: 'GET', path: '/api/nothing', status: 404, code: 'not_found' },
    { what: 'unknown top-level path', method: 'GET', path: '/favicon.ico', status: 404, code: 'not_found' },
    { what: 'too deep', method: 'GET', path: `/api/services/svc/backends/${A}/drain/more`, status: 404, code: 'not_found' },
    { what: 'bad percent-encoding', method: 'GET', path: '/api/services/%E0%A4%A', status: 400, code: 'bad_path' },
    { what: 'weight missing', method: 'POST', path: `/api/services/svc/backends/${A}/weight`, body: '{}', status: 400, code: 'bad_weight', message: /integer from 0 to 256, got null/ },
    { what: 'weight negative', method: 'POST', path: `/api/services/svc/backends/${A}/weight`, body: '{"weight": -1}', status: 400, code: 'bad_weight' },
    { what: 'weight too big', method: 'POST', path: `/api/services/svc/backends/${A}/weight`, body: '{"weight": 257}', status: 400, code: 'bad_weight' },
    { what: 'weight fractional', method: 'POST', path: `/api/services/svc/backends/${A}/weight`, body: '{"weight": 1.5}', status: 400, code: 'bad_weight' },
    { what: 'weight a string', method: 'POST', path: `/api/services/svc/backends/${A}/weight`, body: '{"weight": "2"}', status: 400, code: 'bad_weight', message: /got "2"/ },
    { what: 'weight body not an object', method: 'POST', path: `/api/services/svc/backends/${A}/weight`, body: '7', status: 400, code: 'bad_weight' },
    { what: 'bad JSON', method: 'POST', path: `/api/services/svc/backends/${A}/weight`, body: '{"weight": ', status: 400, code: 'bad_json' },
    { what: 'bad JSON (reload)', method: 'POST', path: '/api/reload', body: 'reload please', status: 400, code: 'bad_json' },
    { what: 'a body without content type', method: 'POST', path: `/api/services/svc/backends/${A}/drain`, contentType: null, body: '{}', status: 415, code: 'unsupported_media_type' },
    { what: 'an empty POST from another origin', method: 'POST', path: `/api/services/svc/backends/${A}/drain`, contentType: null, headers: { Origin: 'https://evil.example' }, status: 403, code: 'cross_origin' },
    { what: 'an empty POST from an opaque origin', method: 'POST', path: '/api/reload', contentType: null, headers: { Origin: 'null' }, status: 403, code: 'cross_origin' },
    { what: 'text/plain', method: 'POST', path: '/api/reload', contentType: 'text/plain', body: '{}', status: 415, code: 'unsupported_media_type' },
    { what: 'body too large', method: 'POST', path: '/api/reload', body: Buffer.alloc(17 * 1024, 0x20), status: 413, code: 'body_too_large' },
    { what: 'GET on an action', method: 'GET', path: `/api/services/svc/backends/${A}/drain`, status: 405, code: 'method_not_allowed', allow: 'POST' },
    { what: 'POST on status', method: 'POST', path: '/api/status', status: 405, code: 'method_not_allowed', allow: 'GET' },
    { what: 'GET on reload', method: 'GET', path: '/api/reload', status: 405, code: 'method_not_allowed', allow: 'POST' },
    { what: 'DELETE a file backend', method: 'DELETE', path: `/api/services/svc/backends/${A}`, status: 409, code: 'not_removable', message: /in the config file/ },
    { what: 'PUT a backend', method: 'PUT', path: `/api/services/svc/backends/${A}`, status: 405, code: 'method_not_allowed', allow: 'GET' },
    { what: 'PUT an action', method: 'PUT', path: `/api/services/svc/backends/${A}/drain`, status: 405, code: 'method_not_allowed', allow: 'POST' },
    { what: 'POST metrics', method: 'POST', path: '/metrics', status: 405, code: 'method_not_allowed', allow: 'GET' },
  ];
  for (const c of cases) {
    const res = await http(base, c.method, c.path, { body: c.body, contentType: c.contentType, ...(c.headers && { headers: c.headers }) });
    t.equal(res.status, c.status, `${c.what}: ${c.status}`);
    t.equal(res.json?.error?.code, c.code, `${c.what}: code ${c.code}`);
    t.type(res.json?.error?.message, 'string');
    if (c.message) t.match(res.json?.error?.message, c.message);
    if (c.allow) t.equal(res.headers.allow, c.allow, `${c.what}: Allow ${c.allow}`);
  }
  // Nothing of that changed any state.
  const after = await http(base, 'GET', `/api/services/svc/backends/${A}`);
  t.match(after.json.backend, { state: 'up', admin: 'enabled', weight: 1 });
});

t.test('errors: a body too large without Content-Length is cut at the limit', async (t) => {
  const a = await namedBackend(t, 'a');
  const { admin } = await startRuntime(t, yaml({ backends: [a] }));
  const { request } = await import('node:http');
  const status = await new Promise<number>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: admin.address.port, method: 'POST', path: '/api/reload', headers: { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' || err.code === 'EPIPE' ? undefined : reject(err)));
    // 64 KiB in chunks, more than the 16 KiB limit; the server answers before the end.
    let sent = 0;
    const pump = (): void => {
      while (sent < 64 * 1024) {
        sent += 4096;
        if (!req.write(Buffer.alloc(4096, 0x20))) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
  t.equal(status, 413);
});

t.test('a reload asked for while stopping is refused with 503', async (t) => {
  const a = await namedBackend(t, 'a');
  const { base, runtime } = await startRuntime(t, yaml({ backends: [a] }));
  await runtime.closeListeners();
  const res = await http(base, 'POST', '/api/reload');
  t.equal(res.status, 503);
  t.equal(res.json.error.code, 'stopping');
  t.match(await runtime.reload('signal'), { ok: false, errors: ['fulcrum is stopping: reload refused'] });
  t.equal(runtime.generation, 1);
});

t.test('a reload that changes the token applies it at once', async (t) => {
  const a = await namedBackend(t, 'a');
  const { base, port, write } = await startRuntime(t, yaml({ backends: [a], token: TOKEN }));
  const next = 'rotated-token-9876543210-zyxwvu';
  write(yaml({ backends: [a], token: next })(port));
  const res = await http(base, 'POST', '/api/reload', { token: TOKEN });
  t.equal(res.status, 200);
  t.same(res.json.changed, ['admin.token']);
  t.notMatch(res.text, new RegExp(`${next}|${TOKEN}`), 'the answer does not echo a token');
  t.equal((await http(base, 'GET', '/api/status', { token: TOKEN })).status, 401, 'the old token no longer works');
  t.equal((await http(base, 'GET', '/api/status', { token: next })).status, 200, 'the new one does');
});

t.test('the admin API on IPv6 loopback', async (t) => {
  const a = await namedBackend(t, 'a');
  const { runtime } = await startRuntime(t, yaml({ backends: [a] }));
  const { AdminServer } = await import('../../src/admin/server.js');
  const { createLogger } = await import('../../src/logger.js');
  const admin = new AdminServer(runtime, createLogger('fatal'));
  await admin.listen({ host: '::1', port: 0, family: 6, text: '[::1]:0' });
  t.teardown(() => admin.close());
  t.match(admin.url, /^http:\/\/\[::1\]:\d+$/);
  const res = await http(admin.url, 'GET', '/api/services/svc');
  t.equal(res.status, 200, 'Host [::1]:port is an IP literal');
  t.equal(res.json.backends[0].address, `127.0.0.1:${a}`);
});

t.test('hostile input: malformed HTTP gets 400 and the API keeps serving', async (t) => {
  const a = await namedBackend(t, 'a');
  const { base, admin } = await startRuntime(t, yaml({ backends: [a] }));
  const { connect } = await import('node:net');
  const raw = (bytes: string): Promise<string> =>
    new Promise((resolve) => {
      const socket = connect({ host: '127.0.0.1', port: admin.address.port });
      let answer = '';
      socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
      socket.on('close', () => resolve(answer));
      socket.on('error', () => undefined);
      socket.end(bytes);
    });
  t.match(await raw('GARBAGE\r\n\r\n'), /^HTTP\/1\.1 400 Bad Request/);
  t.match(await raw(`GET /api/status HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`), /^HTTP\/1\.1 431 /, 'oversized headers');
  t.match(await raw('POST /api/reload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 99999999\r\n\r\n{'), /^HTTP\/1\.1 413 /, 'a declared oversized body is refused before it is read');
  t.equal((await http(base, 'GET', '/api/status')).status, 200, 'still serving');
});
