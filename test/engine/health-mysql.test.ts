// The mysql check against a real MariaDB (Debian's mariadb-server,
// mariadb-install-db into a temp datadir, mariadbd on a free port): the
// greeting alone, a mysql_native_password login reading @@read_only, the role
// following `SET GLOBAL read_only`, a wrong password, and a service with
// role: primary steered by it through Fulcrum.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { buildHealthCheck } from '../../src/config/health-check.js';
import { runProbe } from '../../src/health/probe.js';
import { startMariaDb } from '../helpers/db-servers.js';
import { startHealth, stateChanges } from '../helpers/health.js';
import { HOST } from '../helpers/traffic.js';

const PASSWORD = 'Maria-S3cret-e5f0';
const db = await startMariaDb(t);
db.sql(`CREATE USER 'fulcrum'@'127.0.0.1' IDENTIFIED BY '${PASSWORD}'`);
db.sql(`CREATE USER 'nopass'@'127.0.0.1'`);

function check(keys: Record<string, unknown>) {
  return buildHealthCheck({ type: 'mysql', timeout: '2s', ...keys }, undefined)!;
}

t.test('without a user: the server greeting', async (t) => {
  const r = await runProbe({ host: HOST, port: db.server.port, check: check({}), password: undefined });
  t.equal(r.ok, true, r.detail);
  t.match(r.detail, /^greeting from .*MariaDB/);
});

t.test('with a user: logs in and reads @@read_only; the role follows SET GLOBAL read_only', async (t) => {
  const withPassword = check({ user: 'fulcrum', password_env: 'X' });
  const primary = await runProbe({ host: HOST, port: db.server.port, check: withPassword, password: PASSWORD });
  t.same({ ok: primary.ok, role: primary.role }, { ok: true, role: 'primary' }, primary.detail);
  t.match(primary.detail, /read_only off: role primary/);
  db.sql('SET GLOBAL read_only = 1');
  t.teardown(() => void db.sql('SET GLOBAL read_only = 0'));
  const replica = await runProbe({ host: HOST, port: db.server.port, check: withPassword, password: PASSWORD });
  t.same({ ok: replica.ok, role: replica.role }, { ok: true, role: 'replica' }, replica.detail);
  const empty = await runProbe({ host: HOST, port: db.server.port, check: check({ user: 'nopass', database: 'mysql' }), password: undefined });
  t.equal(empty.ok, false, 'a user without privileges on the database is refused');
  t.match(empty.detail, /login refused: 1044 Access denied/);
  const noDb = await runProbe({ host: HOST, port: db.server.port, check: check({ user: 'nopass' }), password: undefined });
  t.same({ ok: noDb.ok, role: noDb.role }, { ok: true, role: 'replica' }, 'a user with an empty password and no database logs in');
  db.sql('SET GLOBAL read_only = 0');
});

t.test('a wrong password fails with the server reason, never the password', async (t) => {
  const r = await runProbe({ host: HOST, port: db.server.port, check: check({ user: 'fulcrum', password_env: 'X' }), password: 'wrong-maria-pw' });
  t.equal(r.ok, false);
  t.match(r.detail, /login refused: 1045 Access denied for user 'fulcrum'@'127\.0\.0\.1' \(using password: YES\)/);
  t.notMatch(r.detail, /wrong-maria-pw/);
});

t.test('role: primary through Fulcrum: read_only on takes the backend out after fall checks, off brings it back after rise', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-health-mysql-pw-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'mysql.pw'), `${PASSWORD}\n`);
  const h = await startHealth(t, (listen) =>
    [
      'services:',
      '  - name: mysql',
      `    listen: ${HOST}:${listen}`,
      `    health_check: {type: mysql, role: primary, user: fulcrum, password_file: ${join(dir, 'mysql.pw')}, interval: 200ms, fast_interval: 200ms, timeout: 200ms, rise: 2, fall: 3, jitter: 0}`,
      '    backends:',
      `      - address: ${HOST}:${db.server.port}`,
      '',
    ].join('\n'),
  );
  const address = `${HOST}:${db.server.port}`;
  await h.waitHealth(address, 'up', 3_000);
  const through = await runProbe({ host: HOST, port: h.port, check: check({ user: 'fulcrum' }), password: PASSWORD });
  t.same({ ok: through.ok, role: through.role }, { ok: true, role: 'primary' }, 'a login through Fulcrum reaches the server');

  db.sql('SET GLOBAL read_only = 1');
  const readOnlyAt = Date.now();
  await h.waitHealth(address, 'down', 3_000);
  const downMs = Date.now() - readOnlyAt;
  t.comment(`read_only on: down after ${downMs} ms (fall 3 × 200 ms)`);
  t.ok(downMs >= 380 && downMs <= 2_500, `${downMs} ms`);
  t.match(stateChanges(h.logs, address).at(-1)!.reason, /read_only on: role replica; wanted role primary/);
  db.sql('SET GLOBAL read_only = 0');
  const offAt = Date.now();
  await h.waitHealth(address, 'up', 3_000);
  t.comment(`read_only off: up after ${Date.now() - offAt} ms (rise 2 × 200 ms)`);

  const raw = h.logs.raw.join('');
  t.notOk(raw.includes(PASSWORD), `the password is in no log line (${h.logs.raw.length} lines checked)`);
  t.notOk(JSON.stringify(h.monitor.snapshot()).includes(PASSWORD), 'nor in any check detail');
});
