// What a backend's state and settings do to real connections (in this
// process): backups take over and give back, slow start ramps, drain and
// maint keep open connections (drain closes them only after a service
// drain_timeout; sticky clients still reach a drained backend),
// max_connections queues or refuses (counted), weights change at run time,
// and sticky clients keep their backend across a reload.
import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import { land, startIdBackends, whoAnswers } from '../helpers/backends.js';
import { checkRelayUsed, RELAYS, untilInKernel } from '../helpers/relays.js';
import { SERVICE, serviceConfig, startService } from '../helpers/engine.js';
import { delay, openConn, waitUntil, type Conn } from '../helpers/traffic.js';

async function sequence(t: Test, port: number, count: number): Promise<string> {
  let names = '';
  for (let i = 0; i < count; i++) names += await whoAnswers(t, port);
  return names;
}

t.test('backup: takes over only while no primary is up, and gives back', async (t) => {
  const backends = await startIdBackends(t);
  const { port, engine } = await startService(t, {
    backends: [backends[0]!.port, backends[1]!.port, { port: backends[2]!.port, keys: ['backup: true'] }],
  });
  t.equal(await sequence(t, port, 4), 'abab', 'primaries only while they are up');
  engine.setBackendState(SERVICE, backends[0]!.address, 'down');
  t.equal(await sequence(t, port, 3), 'bbb', 'one primary up is enough: the backup stays idle');
  engine.setBackendState(SERVICE, backends[1]!.address, 'down');
  t.equal(await sequence(t, port, 3), 'ccc', 'no primary up: the backup takes over');
  engine.setBackendState(SERVICE, backends[0]!.address, 'up');
  t.equal(await sequence(t, port, 3), 'aaa', 'a primary back: the backup gives back');
});

t.test('slow start: a backend that comes back ramps its share', async (t) => {
  const backends = await startIdBackends(t, 2);
  const { port, engine } = await startService(t, {
    backends: backends.map((b) => ({ port: b.port, keys: ['slow_start: 3s'] })),
  });
  engine.setBackendState(SERVICE, backends[0]!.address, 'down');
  engine.setBackendState(SERVICE, backends[0]!.address, 'up');
  const cameBack = Date.now();
  // Early window: the first 600 ms (ramp at most 20%: a takes at most ~10% of turns).
  let early = '';
  while (Date.now() - cameBack < 600 && early.length < 400) early += await whoAnswers(t, port);
  await delay(Math.max(0, 3_100 - (Date.now() - cameBack)));
  const late = await sequence(t, port, 40);
  const share = (names: string) => names.split('').filter((n) => n === 'a').length / names.length;
  t.ok(share(early) < 0.2, `early share of a: ${share(early).toFixed(2)} over ${early.length} connections`);
  t.equal(share(late), 0.5, 'after the ramp, a is back to its full half');
});

/** Write `bytes` random bytes on an id backend's connection and read them back, byte-exact. */
async function relaysExactly(t: Test, conn: Conn, bytes = 64 * 1024): Promise<void> {
  const payload = randomBytes(bytes);
  await conn.write(payload);
  t.ok((await conn.read(bytes, 5_000)).equals(payload), `${bytes} random bytes echoed byte-exact`);
}

// HAProxy's drain: no new connections, open ones continue until they end. The
// top-level drain_timeout (1s here) is the SIGTERM bound only: before issue 21
// a service without its own drain_timeout took it, and closed the connection.
for (const relay of RELAYS) {
t.test(`[relay: ${relay}] drain: no new connections; open ones continue past every timeout (no service drain_timeout)`, async (t) => {
  const backends = await startIdBackends(t, 2);
  const { port, engine, service } = await startService(t, {
    backends: backends.map((b) => b.port),
    topKeys: ['drain_timeout: 1s'],
    relay,
  });
  const open = await land(t, port);
  t.equal(open.name, 'a');
  await untilInKernel(relay, service);
  engine.setBackendState(SERVICE, backends[0]!.address, 'drain');
  t.equal(await sequence(t, port, 4), 'bbbb', 'the drained backend takes no new connection');
  await delay(1_600);
  t.equal(open.conn.describe(), 'open', 'still open after the top-level drain_timeout (1s)');
  await relaysExactly(t, open.conn);
  t.match(service().backends[0], { state: 'drain', active: 1 });
  checkRelayUsed(t, relay, service());
});

t.test(`[relay: ${relay}] drain with a service drain_timeout: open connections are closed once it passes (forced close, opt-in)`, async (t) => {
  const backends = await startIdBackends(t, 2);
  const { port, engine, service } = await startService(t, {
    backends: backends.map((b) => b.port),
    keys: ['drain_timeout: 1s'],
    relay,
  });
  const open = await land(t, port);
  t.equal(open.name, 'a');
  await untilInKernel(relay, service);
  engine.setBackendState(SERVICE, backends[0]!.address, 'drain');
  const drainedAt = Date.now();
  await relaysExactly(t, open.conn);
  await open.conn.waitEnd(5_000);
  const after = Date.now() - drainedAt;
  t.ok(after >= 900 && after < 4_000, `closed after the service's drain_timeout (${after} ms)`);
});

t.test(`[relay: ${relay}] maint: no new connections; open ones continue, even with a drain_timeout`, async (t) => {
  const backends = await startIdBackends(t, 2);
  const { port, engine, service } = await startService(t, {
    backends: backends.map((b) => b.port),
    keys: ['drain_timeout: 500ms'],
    relay,
  });
  const open = await land(t, port);
  t.equal(open.name, 'a');
  await untilInKernel(relay, service);
  engine.setBackendState(SERVICE, backends[0]!.address, 'maint');
  t.equal(await sequence(t, port, 4), 'bbbb', 'the backend in maint takes no new connection');
  await delay(1_200);
  t.equal(open.conn.describe(), 'open', 'still open after the drain_timeout: it applies to drain only');
  await relaysExactly(t, open.conn);
});
}

// Sticky entries and backend places are taken at connect and given back at
// close: the same whichever relay carries the bytes in between.
for (const relay of RELAYS) {
t.test(`[relay: ${relay}] sticky clients: drain still takes them (as HAProxy does), maint does not`, async (t) => {
  const backends = await startIdBackends(t, 2);
  const { port, engine, service } = await startService(t, {
    backends: backends.map((b) => b.port),
    keys: ['sticky: {key: source, timeout: 30m}'],
    relay,
  });
  t.equal(await whoAnswers(t, port, '127.0.0.2'), 'a', 'a first client lands on a and is remembered');
  t.equal(await whoAnswers(t, port, '127.0.0.3'), 'b');
  engine.setBackendState(SERVICE, backends[0]!.address, 'drain');
  t.equal(await whoAnswers(t, port, '127.0.0.2'), 'a', 'the remembered client still reaches its drained backend');
  t.equal(await sequence(t, port, 3), 'bbb', 'new clients avoid it');
  engine.setBackendState(SERVICE, backends[0]!.address, 'maint');
  t.equal(await whoAnswers(t, port, '127.0.0.2'), 'b', 'in maint, the remembered client is balanced anew');
  checkRelayUsed(t, relay, service(), 7);
});

t.test(`[relay: ${relay}] max_connections and the queue: served when a place frees, refused on timeout or when full`, async (t) => {
  const backends = await startIdBackends(t, 1);
  const { port, service } = await startService(t, {
    backends: [{ port: backends[0]!.port, keys: ['max_connections: 1'] }],
    keys: ['queue: {size: 1, timeout: 400ms}'],
    relay,
  });
  const holder = await land(t, port);
  // In the kernel relay the place is held there, and given back when the kernel ends it.
  await untilInKernel(relay, service);
  // A second client waits; a third finds the queue full and is refused at once.
  const waiting = await openConn(t, port);
  await waitUntil('the second client is queued', () => service().queued === 1);
  const third = await openConn(t, port);
  await third.waitEnd(2_000);
  t.equal(third.receivedTotal, 0, 'a full queue refuses at once: closed with nothing received');
  // The holder leaves: the waiting client gets the place.
  holder.conn.socket.destroy();
  t.equal(await waiting.readLine(), 'a', 'the queued client is served when the place frees');
  // Now the waiting one holds the place; a new one times out in the queue.
  const late = await openConn(t, port);
  const queuedAt = Date.now();
  await late.waitEnd(3_000);
  t.ok(Date.now() - queuedAt >= 350, 'it waited the queue timeout');
  const stats = service();
  t.match(stats, { queued: 2, refused: 2, queueTimeouts: 1 }, 'counted: 2 queued, 2 refused, 1 of them by timeout');
  checkRelayUsed(t, relay, stats, 2);
});

}

t.test('queue size 0: every client beyond max_connections is refused at once', async (t) => {
  const backends = await startIdBackends(t, 1);
  const { port, service } = await startService(t, {
    backends: [{ port: backends[0]!.port, keys: ['max_connections: 2'] }],
    keys: ['queue: {size: 0}'],
  });
  await land(t, port);
  await land(t, port);
  const refused = await openConn(t, port);
  await refused.waitEnd(2_000);
  t.match(service(), { queued: 0, refused: 1 });
});

t.test('setBackendWeight changes the distribution at run time; weight 0 takes none', async (t) => {
  const backends = await startIdBackends(t, 2);
  const { port, engine, service } = await startService(t, { backends: backends.map((b) => b.port), balance: 'weighted' });
  t.equal(await sequence(t, port, 4), 'abab');
  engine.setBackendWeight(SERVICE, backends[0]!.address, 3);
  await engine.whenApplied();
  const names = await sequence(t, port, 8);
  t.equal(names.split('').filter((n) => n === 'a').length, 6, `weights 3:1 over two cycles: ${names}`);
  engine.setBackendWeight(SERVICE, backends[0]!.address, 0);
  await engine.whenApplied();
  t.equal(await sequence(t, port, 4), 'bbbb', 'weight 0 takes no new connection');
  t.equal(service().backends[0]!.weight, 0, 'stats show the weight in effect');
});

t.test('sticky source: clients keep their backend, also across a reload that adds one', async (t) => {
  const backends = await startIdBackends(t, 4);
  const first = backends.slice(0, 3).map((b) => b.port);
  const options = { backends: first, keys: ['sticky: {key: source, timeout: 30m}'] };
  const { port, engine } = await startService(t, options);
  const clients = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6', '127.0.0.7'];
  const home = new Map<string, string>();
  for (const from of clients) home.set(from, await whoAnswers(t, port, from));
  t.equal(new Set(home.values()).size, 3, 'six new clients spread round robin over three backends');
  for (const from of clients) t.equal(await whoAnswers(t, port, from), home.get(from), `${from} comes back to ${home.get(from)}`);

  engine.apply(serviceConfig(port, { ...options, backends: [...first, backends[3]!.port] }));
  await engine.whenApplied();
  for (const from of clients) t.equal(await whoAnswers(t, port, from), home.get(from), `after the reload ${from} still reaches ${home.get(from)}`);
  t.equal(await whoAnswers(t, port, '127.0.0.8'), 'a', 'a new client is balanced as usual (next turn of a fresh cycle)');
});
