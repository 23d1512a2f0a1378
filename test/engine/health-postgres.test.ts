// The postgres check against a real PostgreSQL primary and a standby made
// with pg_basebackup -R and started in recovery (Debian's postgresql, run as
// the postgres user in a temp dir). Anonymous startup, SCRAM-SHA-256 and md5
// logins, pg_is_in_recovery(), and a service with role: primary that follows
// the promotion of the standby after the primary is killed, seen through
// real connections relayed by Fulcrum.
import t from 'tap';
import { buildHealthCheck } from '../../src/config/health-check.js';
import { runProbe } from '../../src/health/probe.js';
import { startPostgresPair } from '../helpers/db-servers.js';
import { startHealth, stateChanges } from '../helpers/health.js';
import { HOST, waitUntil } from '../helpers/traffic.js';

const SCRAM_PW = 'Pg-scram-S3cret-41d9';
const MD5_PW = 'Pg-md5-S3cret-77c2';
process.env.FULCRUM_TEST_PG_SCRAM = SCRAM_PW;

const pg = await startPostgresPair(t, { scram: SCRAM_PW, md5: MD5_PW });
t.equal(pg.sql(pg.standby, 'SELECT pg_is_in_recovery()'), 't', 'the standby runs in recovery');

function check(keys: Record<string, unknown>) {
  return buildHealthCheck({ type: 'postgres', timeout: '2s', ...keys }, undefined)!;
}

t.test('without a user: the startup protocol answers on both', async (t) => {
  for (const server of [pg.primary, pg.standby]) {
    const result = await runProbe({ host: HOST, port: server.port, check: check({}), password: undefined });
    t.equal(result.ok, true, result.detail);
    t.match(result.detail, /startup answered/);
  }
});

t.test('SCRAM-SHA-256 and md5 logins read pg_is_in_recovery(): primary and replica', async (t) => {
  const scram = check({ user: 'fulcrum_scram', database: 'postgres', password_env: 'FULCRUM_TEST_PG_SCRAM' });
  const p = await runProbe({ host: HOST, port: pg.primary.port, check: scram, password: SCRAM_PW });
  t.same({ ok: p.ok, role: p.role, detail: p.detail }, { ok: true, role: 'primary', detail: 'not in recovery: role primary' });
  const s = await runProbe({ host: HOST, port: pg.standby.port, check: scram, password: SCRAM_PW });
  t.same({ ok: s.ok, role: s.role, detail: s.detail }, { ok: true, role: 'replica', detail: 'in recovery: role replica' });
  const md5 = check({ user: 'fulcrum_md5', database: 'postgres', password_env: 'X' });
  const m = await runProbe({ host: HOST, port: pg.standby.port, check: md5, password: MD5_PW });
  t.same({ ok: m.ok, role: m.role }, { ok: true, role: 'replica' }, 'md5 login');
});

t.test('a wrong password fails with the server reason, never the password', async (t) => {
  for (const [user, password] of [['fulcrum_scram', 'wrong-scram-pw'], ['fulcrum_md5', 'wrong-md5-pw']] as const) {
    const r = await runProbe({ host: HOST, port: pg.primary.port, check: check({ user, database: 'postgres', password_env: 'X' }), password });
    t.equal(r.ok, false);
    t.match(r.detail, /login refused: 28P01 password authentication failed/);
    t.notMatch(r.detail, password);
  }
  const missing = await runProbe({ host: HOST, port: pg.primary.port, check: check({ user: 'fulcrum_scram', database: 'postgres' }), password: undefined });
  t.match(missing.detail, /asks for a password and none is configured/);
});

/** Log in through Fulcrum's listener (the probe as a client) and ask pg_is_in_recovery(): 1 when the server reached is a primary. */
async function reachedPrimary(port: number): Promise<number> {
  const result = await runProbe({ host: HOST, port, check: check({ user: 'fulcrum_scram', database: 'postgres' }), password: SCRAM_PW });
  if (!result.ok) throw new Error(result.detail);
  return result.role === 'primary' ? 1 : 0;
}

t.test('role: primary sends connections only to the primary; after the primary dies and the standby is promoted, to the new primary', async (t) => {
  const h = await startHealth(t, (listen) =>
    [
      'services:',
      '  - name: pg',
      `    listen: ${HOST}:${listen}`,
      '    balance: leastconn',
      '    health_check: {type: postgres, role: primary, user: fulcrum_scram, database: postgres, password_env: FULCRUM_TEST_PG_SCRAM, interval: 300ms, fast_interval: 150ms, timeout: 300ms, rise: 2, fall: 2}',
      '    backends:',
      `      - address: ${HOST}:${pg.primary.port}`,
      `      - address: ${HOST}:${pg.standby.port}`,
      '',
    ].join('\n'),
  );
  const primary = `${HOST}:${pg.primary.port}`;
  const standby = `${HOST}:${pg.standby.port}`;
  await h.waitHealth(primary, 'up', 3_000);
  t.equal(h.health(standby), 'down', 'with a role filter the standby starts down');
  const standbyRole = (): string | undefined => h.monitor.snapshot().find((b) => b.backend === standby)!.role;
  await waitUntil('the standby checked', () => standbyRole() !== undefined, 3_000);
  t.equal(standbyRole(), 'replica', 'the standby is seen as a replica');
  t.equal(h.health(standby), 'down', 'and stays down');
  let primaries = 0;
  for (let i = 0; i < 6; i++) primaries += await reachedPrimary(h.port);
  t.equal(primaries, 6, 'every login through Fulcrum reaches a server not in recovery');

  await pg.primary.stop('SIGKILL');
  const killedAt = Date.now();
  await h.waitHealth(primary, 'down', 3_000);
  t.comment(`primary killed: down after ${Date.now() - killedAt} ms (fall 2)`);
  const promoteAt = Date.now();
  pg.promote();
  const promotedMs = Date.now() - promoteAt;
  await h.waitHealth(standby, 'up', 5_000);
  t.comment(`standby promoted (pg_ctl promote took ${promotedMs} ms): up ${Date.now() - promoteAt} ms after the promote began (rise 2)`);
  t.equal(h.monitor.snapshot().find((b) => b.backend === standby)!.role, 'primary');
  primaries = 0;
  for (let i = 0; i < 6; i++) primaries += await reachedPrimary(h.port);
  t.equal(primaries, 6, 'every login through Fulcrum reaches the new primary');
  t.match(stateChanges(h.logs, primary).at(-1)!.reason, /postgres check failed: ECONNREFUSED/);
  t.match(stateChanges(h.logs, standby).at(-1)!.reason, /not in recovery: role primary/);

  const raw = h.logs.raw.join('');
  t.notOk(raw.includes(SCRAM_PW), `the password is in no log line (${h.logs.raw.length} lines checked)`);
  t.notOk(JSON.stringify(h.monitor.snapshot()).includes(SCRAM_PW), 'nor in any check detail');
});

t.test('a server that accepts and says nothing: the check times out at its bound and closes its socket', async (t) => {
  const { createServer } = await import('node:net');
  let closed = 0;
  const sockets = new Set<import('node:net').Socket>();
  // resume(): read (and discard) the startup message, so the check's close is seen.
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.resume().on('close', () => closed++).on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const port = (server.address() as { port: number }).port;
  const started = Date.now();
  const r = await runProbe({ host: HOST, port, check: check({ timeout: '300ms' }), password: undefined });
  const took = Date.now() - started;
  t.equal(r.ok, false);
  t.match(r.detail, /timeout after 300 ms waiting for the startup answer/);
  t.ok(took >= 290 && took < 600, `bounded by the timeout (${took} ms)`);
  const until = Date.now() + 1_000;
  while (closed < 1 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  t.equal(closed, 1, 'the server saw the check close its connection');
});
