// `fulcrum run` with health checks, as a real process: the monitor is wired
// into the running lifecycle (a killed backend is logged down and gets no
// connection; a redis check logs in with a password from the environment
// that never reaches stdout or stderr), and a stop signal still exits 0.
import t from 'tap';
import { freePort, startIdBackends, whoAnswers } from '../helpers/backends.js';
import { startFulcrum } from '../helpers/cli.js';
import { startRedis } from '../helpers/db-servers.js';
import { HOST } from '../helpers/traffic.js';

const PASSWORD = 'cli-Redis-S3cret-0b7e';

t.test('fulcrum run checks backends, logs each state change with its reason, and never logs the password', async (t) => {
  const backends = await startIdBackends(t, 2);
  const redis = await startRedis(t, { password: PASSWORD });
  process.env.FULCRUM_TEST_CLI_REDIS_PW = PASSWORD;
  const cachePort = await freePort();
  const { proc, port } = await startFulcrum(t, (listen) =>
    [
      'workers: 1',
      'log:',
      '  level: debug',
      'services:',
      '  - name: ids',
      `    listen: ${HOST}:${listen}`,
      '    health_check: {type: tcp, interval: 200ms, fast_interval: 100ms, timeout: 150ms, fall: 2}',
      '    backends:',
      ...backends.map((b) => `      - address: ${b.address}`),
      '  - name: cache',
      `    listen: ${HOST}:${cachePort}`,
      '    health_check: {type: redis, role: primary, password_env: FULCRUM_TEST_CLI_REDIS_PW, interval: 200ms, timeout: 150ms}',
      '    backends:',
      `      - address: ${HOST}:${redis.port}`,
      '',
    ].join('\n'),
  );
  const up = await proc.waitForLog(`backend ${HOST}:${redis.port} of cache is up`, () => true, 5_000);
  t.match(up.reason, /redis check passed: PONG, role master/, 'the redis check logged in and read ROLE');

  process.kill(backends[1]!.pid, 'SIGKILL');
  const down = await proc.waitForLog(`backend ${backends[1]!.address} of ids is down`, () => true, 5_000);
  t.match(down, { level: 'warn', service: 'ids', backend: backends[1]!.address, health: 'down', check: 'tcp' });
  t.match(down.reason, /tcp check failed: ECONNREFUSED/);
  const seen = new Set<string>();
  for (let i = 0; i < 6; i++) seen.add(await whoAnswers(t, port));
  t.same([...seen], ['a'], 'no new connection reaches the down backend');

  proc.signal('SIGTERM');
  const exit = await proc.waitForExit(10_000);
  t.equal(exit.code, 0, 'a stop signal still exits 0 with the health checks running');
  t.notOk(proc.stdout.includes(PASSWORD) || proc.stderr.includes(PASSWORD), `the password is nowhere in the output (${proc.logs.length} log lines)`);
});
