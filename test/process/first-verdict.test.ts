// A backend that is down from the start says why, as a real `fulcrum run`
// process: against a real PostgreSQL with a wrong password, and with a
// password_file that does not exist, the first failing check is logged as a
// warning with its reason, and `fulcrum status -c FILE` shows that reason.
// The normal "waiting for the first check" at start is not a warning.
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { freePort } from '../helpers/backends.js';
import { runCli, startFulcrum, tempDir, type LogLine } from '../helpers/cli.js';
import { startPostgres } from '../helpers/db-servers.js';
import { HOST } from '../helpers/traffic.js';

const pg = await startPostgres(t, { scram: 'Pg-first-S3cret-5e1a', md5: 'Pg-first-md5-90aa' });
process.env.FULCRUM_TEST_PG_WRONG = 'not-the-password';

/** One postgres service (role primary) with `check` keys, its admin API on a free port. */
async function run(t: Test, checkKeys: string) {
  const adminPort = await freePort();
  return startFulcrum(t, (listen) =>
    [
      'workers: 1',
      `admin: { listen: ${HOST}:${adminPort} }`,
      'services:',
      '  - name: db',
      `    listen: ${HOST}:${listen}`,
      `    health_check: {type: postgres, role: primary, user: fulcrum_scram, database: postgres, ${checkKeys}, interval: 500ms, timeout: 400ms}`,
      '    backends:',
      `      - address: ${HOST}:${pg.primary.port}`,
      '',
    ].join('\n'),
  );
}

const backend = `${HOST}:${pg.primary.port}`;
const isDown = (l: LogLine): boolean => typeof l.msg === 'string' && l.msg.startsWith(`backend ${backend} of db is down`);

t.test('a wrong password: the first failing check is logged with the server reason and shown by fulcrum status', async (t) => {
  const { proc, file } = await run(t, 'password_env: FULCRUM_TEST_PG_WRONG');
  const failed = await proc.waitForLog(`backend ${backend} of db is down: postgres check failed`, () => true, 10_000);
  t.match(failed, { level: 'warn', service: 'db', backend, health: 'down', check: 'postgres' });
  t.match(failed.msg, /password authentication failed/, 'the log line says why');
  // The start (down until the first check passes, as role: primary asks) is info, not a warning.
  const waiting = proc.logs.filter(isDown).find((l) => String(l.msg).includes('waiting for the first check'));
  t.ok(waiting, 'the wait for the first check is logged');
  t.equal(waiting?.level, 'info', 'waiting for the first check is not a warning');
  t.notOk(
    proc.logs.some((l) => l.level === 'warn' && l.msg === 'backend down' && proc.logs.indexOf(l) < proc.logs.indexOf(failed)),
    'no bare "backend down" warning before the check said why',
  );

  const status = await runCli(t, ['status', '-c', file]);
  t.equal(status.code, 0, status.stderr);
  t.match(status.stdout, /postgres FAIL \d+\.\dms: login refused: 28P01 password authentication failed/, 'fulcrum status shows the reason');
  proc.signal('SIGTERM');
  t.equal((await proc.waitForExit(10_000)).code, 0);
});

t.test('a missing password_file: the log and fulcrum status name the file and the error', async (t) => {
  const missing = join(tempDir(t), 'pg.password');
  const { proc, file } = await run(t, `password_file: ${missing}`);
  const failed = await proc.waitForLog(`backend ${backend} of db is down: postgres check failed`, () => true, 10_000);
  t.equal(failed.level, 'warn');
  t.match(failed.msg, `password: cannot read ${missing} (ENOENT)`);
  const status = await runCli(t, ['status', '-c', file]);
  t.equal(status.code, 0, status.stderr);
  t.match(status.stdout, `postgres FAIL`);
  t.match(status.stdout, `password: cannot read ${missing} (ENOENT)`);
  proc.signal('SIGTERM');
  t.equal((await proc.waitForExit(10_000)).code, 0);
});
