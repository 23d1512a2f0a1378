// DNS discovery against a real DNS server (dnsmasq on a loopback port, from
// records files the test rewrites): a backend entry `address: NAME:PORT`
// becomes a backend per A/AAAA record, `srv: NAME` one per SRV target (port,
// weight, priority -> backup from the record); records added appear, removed
// ones drain (their open connections continue), re-weighted ones change; the
// re-resolve interval is the answer's TTL within min_ttl/max_ttl; a stopped
// server keeps the last good answer and says so (status, /metrics, log); a
// name that never resolves at start leaves the service running on its other
// backends, with the failure in the status.
import t, { type Test } from 'tap';
import net from 'node:net';
import { http, startRuntime, type RuntimeUnderTest } from '../helpers/admin.js';
import { startServer } from '../helpers/backends.js';
import { startDnsmasq } from '../helpers/dnsmasq.js';
import { freePort } from '../helpers/backends.js';
import { openConn, pingEcho, waitUntil } from '../helpers/traffic.js';
import { formatStatus } from '../../src/commands/status.js';

/** A server on `host:port` that greets with its name, then echoes. */
async function namedOn(t: Test, host: string, port: number, name: string): Promise<void> {
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.write(`${name}\n`);
    socket.pipe(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
}

/** A server on 127.0.0.1, a free port, that greets with its name. */
async function namedBackend(t: Test, name: string): Promise<number> {
  const { port } = await startServer(t, (socket) => {
    socket.write(`${name}\n`);
    socket.pipe(socket);
  });
  return port;
}

async function status(rt: RuntimeUnderTest): Promise<any> {
  const r = await http(rt.base, 'GET', '/api/status');
  return r.json;
}

async function backendsOf(rt: RuntimeUnderTest, service: string): Promise<Array<{ address: string; origin: string; weight: number; backup: boolean; state: string }>> {
  const s = (await status(rt)).services.find((x: { name: string }) => x.name === service);
  return s.backends;
}

/** Wait (bounded) until the service's backend addresses are `expected` (in any order). */
async function waitForBackends(rt: RuntimeUnderTest, service: string, expected: string[], timeoutMs = 8_000): Promise<void> {
  let last: string[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    last = (await backendsOf(rt, service)).map((b) => b.address).sort();
    if (JSON.stringify(last) === JSON.stringify([...expected].sort())) return;
    if (Date.now() > deadline) throw new Error(`backends of ${service}: ${last.join(', ')}; expected ${[...expected].sort().join(', ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Names that answer a fresh connection to `port`, over `n` connections. */
async function answering(t: Test, port: number, n: number): Promise<Set<string>> {
  const names = new Set<string>();
  for (let i = 0; i < n; i++) {
    const conn = await openConn(t, port);
    names.add(await conn.readLine(5_000));
    conn.socket.destroy();
  }
  return names;
}

t.test('A/AAAA: records added appear, removed ones drain, the TTL sets the interval', async (t) => {
  const port = await freePort();
  await namedOn(t, '127.0.0.2', port, 'two');
  await namedOn(t, '127.0.0.3', port, 'three');
  await namedOn(t, '127.0.0.4', port, 'four');
  await namedOn(t, '::1', port, 'six');
  const dns = await startDnsmasq(t, { 'db.fulcrum.test': ['127.0.0.2', '127.0.0.3', '::1'] }, {}, 1);
  const rt = await startRuntime(t, (listen) => `resolvers:\n  servers: [${dns.server}]\n  min_ttl: 100ms\n  retry: 200ms\nservices:\n  - name: db\n    listen: 127.0.0.1:${listen}\n    balance: roundrobin\n    backends:\n      - address: db.fulcrum.test:${port}\n`);
  const label = `db.fulcrum.test:${port}`;
  await waitForBackends(rt, 'db', [`127.0.0.2:${port}`, `127.0.0.3:${port}`, `[::1]:${port}`]);
  const backends = await backendsOf(rt, 'db');
  t.same(new Set(backends.map((b) => b.origin)), new Set([`dns ${label}`]), 'each backend says it came from the name');
  t.same(await answering(t, rt.port, 6), new Set(['two', 'three', 'six']), 'traffic reaches every address');

  // The TTL (1 s, from dnsmasq) sets when the name is asked again: between min_ttl (100ms) and max_ttl (5m).
  const entry = (await status(rt)).services[0].dns[0];
  t.equal(entry.name, label);
  t.equal(entry.ttlSeconds, 1);
  t.equal(entry.nextAt - entry.lastAnswerAt, 1000, 're-resolved at the TTL');
  t.notOk(entry.error);

  // A connection open to .2 when .2 leaves the records: it drains, the connection goes on.
  let held;
  for (let i = 0; i < 6 && held === undefined; i++) {
    const conn = await openConn(t, rt.port);
    if ((await conn.readLine(5_000)) === 'two') held = conn;
    else conn.socket.destroy();
  }
  t.ok(held, 'a connection reached .2');
  await dns.setHosts({ 'db.fulcrum.test': ['127.0.0.3', '127.0.0.4', '::1'] });
  const changedAt = Date.now();
  await waitForBackends(rt, 'db', [`127.0.0.3:${port}`, `127.0.0.4:${port}`, `[::1]:${port}`], 5_000);
  t.ok(Date.now() - changedAt < 2_500, `the change was seen within the TTL (${Date.now() - changedAt} ms)`);
  t.same(await answering(t, rt.port, 6), new Set(['three', 'four', 'six']), 'the new address takes traffic, the removed one none');
  await pingEcho(held!, 'still here\n');
  t.pass('the connection to the removed address goes on (drain)');
  t.ok(rt.logs.some((l) => String(l.msg).startsWith(`dns: ${label} gives 3 addresses`)), 'the log says what the name gives');
  const table = formatStatus(await status(rt));
  t.match(table, `127.0.0.4:${port} (dns ${label})`, 'fulcrum status: the origin beside the address');
  t.match(table, new RegExp(`dns ${label.replace(/\./g, '\\.')}: 3 addresses, last answer \\d+m \\d+s ago \\(ttl 1s\\), last failure never`), 'fulcrum status: the name\'s line');
});

t.test('the TTL is held to min_ttl and max_ttl', async (t) => {
  const port = await namedBackend(t, 'a');
  const dns = await startDnsmasq(t, { 'one.fulcrum.test': ['127.0.0.1'] }, {}, 1);
  const floor = await startRuntime(t, (listen) => `resolvers:\n  servers: [${dns.server}]\n  min_ttl: 1500ms\nservices:\n  - name: s\n    listen: 127.0.0.1:${listen}\n    backends:\n      - address: one.fulcrum.test:${port}\n`);
  await waitForBackends(floor, 's', [`127.0.0.1:${port}`]);
  let entry = (await status(floor)).services[0].dns[0];
  t.equal(entry.nextAt - entry.lastAnswerAt, 1500, 'TTL 1s below min_ttl 1500ms: asked again after 1500ms');
  const ceiling = await startRuntime(t, (listen) => `resolvers:\n  servers: [${dns.server}]\n  min_ttl: 100ms\n  max_ttl: 300ms\nservices:\n  - name: s\n    listen: 127.0.0.1:${listen}\n    backends:\n      - address: one.fulcrum.test:${port}\n`);
  await waitForBackends(ceiling, 's', [`127.0.0.1:${port}`]);
  entry = (await status(ceiling)).services[0].dns[0];
  t.equal(entry.nextAt - entry.lastAnswerAt, 300, 'TTL 1s above max_ttl 300ms: asked again after 300ms');
  // Over ~1.2 s at a 300 ms interval: about 4 more resolutions, not dozens.
  const before = entry.resolutions;
  await new Promise((r) => setTimeout(r, 1_200));
  const after = (await status(ceiling)).services[0].dns[0].resolutions;
  t.ok(after - before >= 3 && after - before <= 5, `resolutions in 1.2 s at 300 ms: ${after - before}`);
});

t.test('SRV: port, weight and priority from the records; re-weighted, removed; the server stopped keeps the last answer', async (t) => {
  const [pa, pb, pc] = [await namedBackend(t, 'a'), await namedBackend(t, 'b'), await namedBackend(t, 'c')];
  const name = '_game._tcp.fulcrum.test';
  const dns = await startDnsmasq(t, { 'host1.fulcrum.test': ['127.0.0.1'] }, {
    [name]: [
      { target: 'host1.fulcrum.test', port: pa, priority: 0, weight: 10 },
      { target: 'host1.fulcrum.test', port: pb, priority: 0, weight: 1000 },
      { target: 'host1.fulcrum.test', port: pc, priority: 5, weight: 1 },
    ],
  }, 1);
  const rt = await startRuntime(t, (listen) => `resolvers:\n  servers: [${dns.server}]\n  min_ttl: 100ms\n  retry: 200ms\n  timeout: 200ms\n  tries: 1\nservices:\n  - name: game\n    listen: 127.0.0.1:${listen}\n    balance: weighted\n    backends:\n      - srv: ${name}\n`);
  const addr = (p: number): string => `127.0.0.1:${p}`;
  await waitForBackends(rt, 'game', [addr(pa), addr(pb), addr(pc)]);
  const view = new Map((await backendsOf(rt, 'game')).map((b) => [b.address, b]));
  t.equal(view.get(addr(pa))!.weight, 10, "the record's weight");
  t.equal(view.get(addr(pb))!.weight, 256, 'a weight above 256 is capped');
  t.equal(view.get(addr(pc))!.backup, true, 'a higher priority is a backup');
  t.equal(view.get(addr(pa))!.backup, false);
  t.equal(view.get(addr(pa))!.origin, `dns srv:${name}`);
  const first = await answering(t, rt.port, 8);
  t.ok(first.has('b') && !first.has('c'), `the backup takes nothing while primaries are up (${[...first].join(', ')})`);

  // Re-weighted, and c removed.
  await dns.setSrv({ [name]: [
    { target: 'host1.fulcrum.test', port: pa, priority: 0, weight: 50 },
    { target: 'host1.fulcrum.test', port: pb, priority: 0, weight: 5 },
  ] });
  await waitForBackends(rt, 'game', [addr(pa), addr(pb)]);
  const deadline = Date.now() + 5_000;
  let weights: number[] = [];
  while (Date.now() < deadline) {
    weights = (await backendsOf(rt, 'game')).sort((x, y) => x.address.localeCompare(y.address)).map((b) => b.weight);
    const byAddr = new Map((await backendsOf(rt, 'game')).map((b) => [b.address, b.weight]));
    if (byAddr.get(addr(pa)) === 50 && byAddr.get(addr(pb)) === 5) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const byAddr = new Map((await backendsOf(rt, 'game')).map((b) => [b.address, b.weight]));
  t.same([byAddr.get(addr(pa)), byAddr.get(addr(pb))], [50, 5], `re-weighted from the records (${weights.join(', ')})`);

  // The server stops: the last good answer stays, the failure shows.
  await dns.stop();
  await waitUntil('a failed resolution', () => rt.runtime.dns.status()[0]!.error !== undefined, 5_000);
  const entry = (await status(rt)).services[0].dns[0];
  t.ok(entry.lastFailureAt >= entry.lastAnswerAt, 'the failure time is after the last answer');
  t.match(entry.error, /ETIMEOUT|ECONNREFUSED/, `the reason: ${entry.error}`);
  t.same(entry.addresses.sort(), [addr(pa), addr(pb)].sort(), 'the last good answer is kept');
  const kept = await answering(t, rt.port, 4);
  t.ok(kept.size > 0 && [...kept].every((n) => n === 'a' || n === 'b'), `traffic goes on to the last good answer (${[...kept].join(', ')})`);
  t.ok(rt.logs.some((l) => l.level === 'warn' && String(l.msg).startsWith(`dns: cannot resolve srv:${name}`) && String(l.msg).includes('keeping the last good answer (2 addresses)')), 'the log says it');
  const metrics = (await http(rt.base, 'GET', '/metrics')).text;
  t.match(metrics, new RegExp(`fulcrum_dns_failing\\{service="game",name="srv:${name.replace(/\./g, '\\.')}"\\} 1`), '/metrics: failing');
  t.match(metrics, /fulcrum_dns_last_failure_timestamp_seconds\{service="game",name="srv:[^"]+"\} \d/, '/metrics: when it last failed');
  t.match(metrics, /fulcrum_backend_info\{service="game",backend="127\.0\.0\.1:\d+",origin="dns",dns_name="srv:_game\._tcp\.fulcrum\.test"\} 1/, '/metrics: the origin');

  // Back: resolving works again, the error clears.
  await dns.start();
  await waitUntil('resolving again', () => rt.runtime.dns.status()[0]!.error === undefined, 5_000);
  t.pass('the failure clears when the server answers again');
});

t.test('a name that never resolves at start: the service starts on its other backends, the failure is clear', async (t) => {
  const file = await namedBackend(t, 'file');
  const dns = await startDnsmasq(t, {}, {}, 1);
  const rt = await startRuntime(t, (listen) => `resolvers:\n  servers: [${dns.server}]\n  retry: 200ms\nservices:\n  - name: s\n    listen: 127.0.0.1:${listen}\n    backends:\n      - address: 127.0.0.1:${file}\n      - address: nowhere.fulcrum.test:5432\n`);
  await waitUntil('the failure', () => rt.runtime.dns.status()[0]?.error !== undefined, 5_000);
  t.same(await answering(t, rt.port, 2), new Set(['file']), 'the file backend serves');
  const s = (await status(rt)).services[0];
  t.equal(s.dns[0].name, 'nowhere.fulcrum.test:5432');
  t.match(s.dns[0].error, /nowhere\.fulcrum\.test: ENOTFOUND/);
  t.same(s.dns[0].addresses, []);
  t.equal(s.backends.length, 1);
  t.equal(s.backends[0].origin, 'file');
  t.ok(rt.logs.some((l) => l.level === 'warn' && String(l.msg).includes('no address yet')), 'logged as a warning');
  const table = formatStatus(await status(rt));
  t.match(table, /dns nowhere\.fulcrum\.test:5432: FAILING: nowhere\.fulcrum\.test: ENOTFOUND \(no such name\); no address yet, last answer never, last failure \d+m \d+s ago/, 'fulcrum status says it');
});

t.test('a reload keeps the answers of the entries it keeps, and drops those of the entries it removes', async (t) => {
  const [a, b] = [await namedBackend(t, 'a'), await namedBackend(t, 'b')];
  const dns = await startDnsmasq(t, { 'one.fulcrum.test': ['127.0.0.1'] }, {}, 1);
  const text = (listen: number, extra: string) => `resolvers:\n  servers: [${dns.server}]\n  min_ttl: 30s\nservices:\n  - name: s\n    listen: 127.0.0.1:${listen}\n    backends:\n      - address: one.fulcrum.test:${a}\n${extra}`;
  let listenPort = 0;
  const rt = await startRuntime(t, (listen) => {
    listenPort = listen;
    return text(listen, '');
  });
  await waitForBackends(rt, 's', [`127.0.0.1:${a}`]);
  const resolutions = rt.runtime.dns.status()[0]!.resolutions;
  rt.write(text(listenPort, `      - address: 127.0.0.1:${b}\n`));
  t.equal((await http(rt.base, 'POST', '/api/reload', { body: '{}' })).status, 200);
  // No wait: the kept entry's answer is in the reloaded set at once (min_ttl 30s: not asked again).
  t.same((await backendsOf(rt, 's')).map((x) => [x.address, x.origin]).sort(), [[`127.0.0.1:${a}`, `dns one.fulcrum.test:${a}`], [`127.0.0.1:${b}`, 'file']].sort());
  t.equal(rt.runtime.dns.status()[0]!.resolutions, resolutions, 'not resolved again by the reload');
  rt.write(`services:\n  - name: s\n    listen: 127.0.0.1:${listenPort}\n    backends:\n      - address: 127.0.0.1:${b}\n`);
  t.equal((await http(rt.base, 'POST', '/api/reload', { body: '{}' })).status, 200);
  t.same((await backendsOf(rt, 's')).map((x) => x.address), [`127.0.0.1:${b}`], 'the removed entry\'s backends are gone');
  t.same(rt.runtime.dns.status(), [], 'and its watch stopped');
});
