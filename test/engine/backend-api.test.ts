// Backends added and removed at run time through the admin API (and the
// `fulcrum backend` / `fulcrum config dump` commands on top of it): an added
// backend takes traffic once applied, says it came from the API, and lasts
// until the next reload (the file wins); a removed one drains (open
// connections go on); invalid input is a 4xx with a reason and changes
// nothing; under a steady client loop, adding and removing fail no connection.
import t, { type Test } from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { http, startRuntime, TOKEN, type RuntimeUnderTest } from '../helpers/admin.js';
import { startServer } from '../helpers/backends.js';
import { runCli } from '../helpers/cli.js';
import { openConn, pingEcho, waitUntil } from '../helpers/traffic.js';

async function namedBackend(t: Test, name: string): Promise<number> {
  const { port } = await startServer(t, (socket) => {
    socket.on('error', () => {});
    socket.write(`${name}\n`);
    socket.pipe(socket);
  });
  return port;
}

const yaml = (backend: number) => (listen: number) =>
  `services:\n  - name: db\n    listen: 127.0.0.1:${listen}\n    balance: roundrobin\n    backends:\n      - address: 127.0.0.1:${backend}\n        weight: 2\n`;

const post = (rt: RuntimeUnderTest, path: string, body: unknown) => http(rt.base, 'POST', path, { body: JSON.stringify(body) });

async function addresses(rt: RuntimeUnderTest): Promise<string[]> {
  const r = await http(rt.base, 'GET', '/api/services/db');
  return r.json.backends.map((b: { address: string }) => b.address);
}

async function answering(t: Test, port: number, n: number): Promise<Set<string>> {
  const names = new Set<string>();
  for (let i = 0; i < n; i++) {
    const conn = await openConn(t, port);
    names.add(await conn.readLine(5_000));
    conn.socket.destroy();
  }
  return names;
}

t.test('add, remove: applied, visible, drained; the next reload rebuilds from the file', async (t) => {
  const [a, b] = [await namedBackend(t, 'a'), await namedBackend(t, 'b')];
  const rt = await startRuntime(t, yaml(a));
  const added = await post(rt, '/api/services/db/backends', { address: `127.0.0.1:${b}`, weight: 3, health_check: { type: 'none' } });
  t.equal(added.status, 201, added.text);
  t.equal(added.json.backend.origin, 'api');
  t.equal(added.json.backend.weight, 3);
  t.equal(added.json.backend.state, 'up', 'no health check: up at once');
  t.match(added.json.note, /next reload rebuilds the backends from the config file/);
  t.ok(added.json.appliedMs < 1000, `applied in ${added.json.appliedMs} ms`);
  t.comment(`add applied in ${added.json.appliedMs} ms`);
  t.same(await answering(t, rt.port, 4), new Set(['a', 'b']), 'the added backend takes traffic');

  // An open connection to it when it is removed goes on (it drains).
  let held;
  for (let i = 0; i < 4 && held === undefined; i++) {
    const conn = await openConn(t, rt.port);
    if ((await conn.readLine(5_000)) === 'b') held = conn;
    else conn.socket.destroy();
  }
  const removed = await http(rt.base, 'DELETE', `/api/services/db/backends/127.0.0.1:${b}`);
  t.equal(removed.status, 200, removed.text);
  t.equal(removed.json.draining, 1, 'one open connection drains');
  t.comment(`remove applied in ${removed.json.appliedMs} ms`);
  t.same(await addresses(rt), [`127.0.0.1:${a}`]);
  t.same(await answering(t, rt.port, 3), new Set(['a']), 'no new connection reaches it');
  await pingEcho(held!, 'draining\n');
  t.pass('its open connection goes on');

  // Added again, then a reload: the file wins.
  t.equal((await post(rt, '/api/services/db/backends', { address: `127.0.0.1:${b}` })).status, 201);
  const reload = await post(rt, '/api/reload', {});
  t.equal(reload.status, 200);
  t.match(reload.json.warnings, [/1 backend added through the admin API dropped/]);
  t.same(await addresses(rt), [`127.0.0.1:${a}`], 'after the reload: the file\'s backends');
  t.ok(rt.logs.some((l) => String(l.msg).includes(`backend 127.0.0.1:${b} added to db through the admin API`)), 'the log says it');
});

t.test('invalid input: a 4xx with a reason, nothing changed', async (t) => {
  const [a, b] = [await namedBackend(t, 'a'), await namedBackend(t, 'b')];
  const rt = await startRuntime(t, yaml(a));
  const before = await addresses(rt);
  const cases: Array<[string, string, string, unknown, number, RegExp]> = [
    ['bad address', 'POST', '/api/services/db/backends', { address: '300.1.1.1:5432' }, 400, /bad address "300\.1\.1\.1:5432"/],
    ['no port', 'POST', '/api/services/db/backends', { address: '127.0.0.1' }, 400, /expected host:port|bad address/],
    ['a host name', 'POST', '/api/services/db/backends', { address: 'db.example:5432' }, 400, /is a host name: the API takes an IP address/],
    ['no address', 'POST', '/api/services/db/backends', { weight: 2 }, 400, /missing "address"/],
    ['unknown key', 'POST', '/api/services/db/backends', { address: `127.0.0.1:${b}`, wieght: 2 }, 400, /unknown key "wieght"/],
    ['bad weight', 'POST', '/api/services/db/backends', { address: `127.0.0.1:${b}`, weight: 999 }, 400, /weight/],
    ['bad health check', 'POST', '/api/services/db/backends', { address: `127.0.0.1:${b}`, health_check: { type: 'carrier-pigeon' } }, 400, /type/],
    ['check credentials', 'POST', '/api/services/db/backends', { address: `127.0.0.1:${b}`, health_check: { type: 'postgres', user: 'x', password_file: '/etc/shadow' } }, 400, /cannot be set through the API/],
    ['not an object', 'POST', '/api/services/db/backends', [1, 2], 400, /expected a JSON object/],
    ['unknown service', 'POST', '/api/services/nope/backends', { address: `127.0.0.1:${b}` }, 404, /no service nope/],
    ['duplicate', 'POST', '/api/services/db/backends', { address: `127.0.0.1:${a}` }, 409, /already a backend of service db \(from the config file\)/],
    ['remove a file backend', 'DELETE', `/api/services/db/backends/127.0.0.1:${a}`, undefined, 409, /it is in the config file/],
    ['remove an unknown backend', 'DELETE', `/api/services/db/backends/127.0.0.1:${b}`, undefined, 404, /no backend/],
  ];
  for (const [what, method, path, body, status, reason] of cases) {
    const r = await http(rt.base, method, path, body === undefined ? {} : { body: JSON.stringify(body) });
    t.equal(r.status, status, `${what}: ${status}`);
    t.match(r.json?.error?.message, reason, `${what}: ${r.json?.error?.message}`);
  }
  t.same(await addresses(rt), before, 'nothing changed');
  t.equal(rt.runtime.apiBackends().size, 0);
});

t.test('under a steady client loop, add and remove fail no connection', async (t) => {
  const [a, b] = [await namedBackend(t, 'a'), await namedBackend(t, 'b')];
  const rt = await startRuntime(t, yaml(a));
  let stop = false;
  let ok = 0;
  const failures: string[] = [];
  const seen = new Set<string>();
  // 4 clients, each: connect, read the greeting, echo a line, close; at most 10 s or 4,000 connections.
  const deadline = Date.now() + 10_000;
  const client = async (): Promise<void> => {
    while (!stop && Date.now() < deadline && ok + failures.length < 4_000) {
      try {
        const conn = await openConn(t, rt.port, 2_000);
        seen.add(await conn.readLine(2_000));
        await pingEcho(conn, 'x\n', 2_000);
        conn.socket.destroy();
        ok++;
      } catch (err) {
        failures.push(err instanceof Error ? err.message : String(err));
      }
    }
  };
  const clients = Promise.all([client(), client(), client(), client()]);
  const timings: number[] = [];
  for (let round = 0; round < 3; round++) {
    await waitUntil('some traffic', () => ok > (round + 1) * 20, 5_000, 5);
    const add = await post(rt, '/api/services/db/backends', { address: `127.0.0.1:${b}` });
    t.equal(add.status, 201);
    timings.push(add.json.appliedMs);
    const floor = ok;
    await waitUntil('traffic with the added backend', () => ok > floor + 20, 5_000, 5);
    const del = await http(rt.base, 'DELETE', `/api/services/db/backends/127.0.0.1:${b}`);
    t.equal(del.status, 200);
    timings.push(del.json.appliedMs);
  }
  stop = true;
  await clients;
  t.same(failures, [], `0 failed connections of ${ok + failures.length}`);
  t.ok(seen.has('b'), 'the added backend took connections');
  t.comment(`apply times (ms) add/remove x3: ${timings.join(', ')}; max ${Math.max(...timings)}`);
});

t.test('config dump: the file with the API backends; valid config; admin.token redacted', async (t) => {
  const [a, b] = [await namedBackend(t, 'a'), await namedBackend(t, 'b')];
  const rt = await startRuntime(t, (listen) => `# the demo\nadmin:\n  token: ${TOKEN}\n` + yaml(a)(listen));
  const headers = { token: TOKEN };
  const add = await http(rt.base, 'POST', '/api/services/db/backends', { ...headers, body: JSON.stringify({ address: `127.0.0.1:${b}`, backup: true, send_proxy: 'v2' }) });
  t.equal(add.status, 201, add.text);
  const dump = await http(rt.base, 'GET', '/api/config/dump', headers);
  t.equal(dump.status, 200);
  t.match(dump.headers['content-type'], /yaml/);
  t.match(dump.text, /# the demo/, 'comments kept');
  t.notMatch(dump.text, TOKEN, 'the token is not handed out');
  const config = parseConfig(dump.text, rt.file);
  t.same(config.services[0]!.backends.map((x) => [x.address.text, x.backup, x.sendProxy]), [[`127.0.0.1:${a}`, false, 'none'], [`127.0.0.1:${b}`, true, 'v2']], 'valid input with both backends');
});

t.test('the CLI: fulcrum backend add|weight|maint|remove, fulcrum config dump', async (t) => {
  const [a, b] = [await namedBackend(t, 'a'), await namedBackend(t, 'b')];
  const rt = await startRuntime(t, yaml(a));
  const admin = ['--admin', rt.base.replace('http://', '')];
  const addr = `127.0.0.1:${b}`;
  const added = await runCli(t, ['backend', 'add', 'db', addr, '--weight', '4', ...admin]);
  t.equal(added.code, 0, added.stderr);
  t.match(added.stdout, new RegExp(`added ${addr} to db \\(state up\\) in [\\d.]+ ms\\nnote: runtime change: the next reload rebuilds`));
  // Independent of each other: run together (each is a node process).
  const [weight, maint, dump, duplicate, fileRemove, usage] = await Promise.all([
    runCli(t, ['backend', 'weight', 'db', addr, '7', ...admin]),
    runCli(t, ['backend', 'maint', 'db', `127.0.0.1:${a}`, ...admin]),
    runCli(t, ['config', 'dump', ...admin]),
    runCli(t, ['backend', 'add', 'db', addr, ...admin]),
    runCli(t, ['backend', 'remove', 'db', `127.0.0.1:${a}`, ...admin]),
    runCli(t, ['backend', 'frobnicate', 'db', addr, ...admin]),
  ]);
  t.equal(weight.code, 0, weight.stderr);
  t.match(weight.stdout, `db ${addr}: weight 7`);
  t.equal(maint.code, 0, maint.stderr);
  t.match(maint.stdout, `db 127.0.0.1:${a}: maint`);
  t.equal(dump.code, 0, dump.stderr);
  t.match(dump.stdout, `- address: ${addr}`);
  t.equal(duplicate.code, 1, 'a duplicate: exit 1');
  t.match(duplicate.stderr, /already a backend of service db \(from the admin API\) \(HTTP 409\)/);
  t.equal(fileRemove.code, 1);
  t.match(fileRemove.stderr, /in the config file/);
  t.equal(usage.code, 2, 'usage error');
  t.match(usage.stderr, /unknown action 'frobnicate'/);
  const removed = await runCli(t, ['backend', 'remove', 'db', addr, ...admin]);
  t.equal(removed.code, 0, removed.stderr);
  t.match(removed.stdout, `removed ${addr} from db: it drains`);
  const state = await http(rt.base, 'GET', `/api/services/db/backends/127.0.0.1:${a}`);
  t.equal(state.json.backend.admin, 'maint');
});

/** Which backend each client address lands on now (one connection each, closed). */
async function placements(t: Test, port: number, clients: readonly string[]): Promise<string[]> {
  const names: string[] = [];
  for (const from of clients) {
    const conn = await openConn(t, port, 5_000, from);
    names.push(await conn.readLine(5_000));
    conn.socket.destroy();
  }
  return names;
}

t.test('placements of the backends that stay do not move: sticky clients, Maglev on the client address', async (t) => {
  const ports = [await namedBackend(t, 'a'), await namedBackend(t, 'b'), await namedBackend(t, 'c')];
  const d = await namedBackend(t, 'd');
  const clients = Array.from({ length: 16 }, (_, i) => `127.0.0.${10 + i}`);
  const backends = ports.map((p) => `      - address: 127.0.0.1:${p}\n`).join('');
  for (const mode of ['sticky', 'maglev'] as const) {
    const settings = mode === 'sticky' ? '    balance: roundrobin\n    sticky:\n      key: source\n' : '    balance: maglev\n    hash_key: source\n';
    const rt = await startRuntime(t, (listen) => `services:\n  - name: db\n    listen: 127.0.0.1:${listen}\n${settings}    backends:\n${backends}`);
    const before = await placements(t, rt.port, clients);
    t.equal((await post(rt, '/api/services/db/backends', { address: `127.0.0.1:${d}` })).status, 201);
    const during = await placements(t, rt.port, clients);
    const moved = during.filter((name, i) => name !== before[i] && name !== 'd').length;
    if (mode === 'sticky') t.same(during, before, 'sticky: every client keeps its backend when one is added');
    else t.comment(`maglev: ${during.filter((n) => n === 'd').length} of 16 clients moved to the added backend, ${moved} between the others`);
    t.equal((await http(rt.base, 'DELETE', `/api/services/db/backends/127.0.0.1:${d}`)).status, 200);
    const after = await placements(t, rt.port, clients);
    t.same(after.map((n, i) => (during[i] === 'd' ? before[i] : n)), before, `${mode}: the clients of the backends that stayed are where they were after the removal`);
    if (mode === 'maglev') t.same(after, before, 'maglev: the same table as before the addition');
  }
});
