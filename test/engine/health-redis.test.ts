// The redis check against a real Redis master and replica (Debian's
// redis-server, started here on free ports): PING and ROLE, AUTH with a
// password from the environment or a file, and a service with role: primary
// that follows a failover (REPLICAOF NO ONE on the replica, the old master
// made its replica), seen through real connections relayed by Fulcrum.
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { buildHealthCheck } from '../../src/config/health-check.js';
import { encodeCommand, parseReply, type RespValue } from '../../src/health/checks/resp.js';
import { runProbe } from '../../src/health/probe.js';
import { redisCli, startRedis } from '../helpers/db-servers.js';
import { startHealth, stateChanges } from '../helpers/health.js';
import { HOST, waitUntil } from '../helpers/traffic.js';

const PASSWORD = 'r3dis-Secret-7a91';
process.env.FULCRUM_TEST_REDIS_PW = PASSWORD;

const master = await startRedis(t, { password: PASSWORD });
const replica = await startRedis(t, { password: PASSWORD, replicaOf: master.port });
await waitUntil('the replica link up', () => /master_link_status:up/.test(redisCli(replica.port, PASSWORD, 'INFO', 'replication')), 20_000, 100);
// The master lists the replica (in ROLE) once the replica acknowledged the sync: wait for that side too.
await waitUntil('the master lists its replica', () => /connected_slaves:1/.test(redisCli(master.port, PASSWORD, 'INFO', 'replication')), 20_000, 100);

function probe(port: number, keys: Record<string, unknown>) {
  return runProbe({ host: HOST, port, check: buildHealthCheck({ type: 'redis', timeout: '1s', ...keys }, undefined)!, password: keys.password_env ? PASSWORD : undefined });
}

t.test('PING and ROLE: master is primary, a connected replica is replica', async (t) => {
  const m = await probe(master.port, { password_env: 'FULCRUM_TEST_REDIS_PW' });
  t.same({ ok: m.ok, role: m.role }, { ok: true, role: 'primary' });
  t.match(m.detail, /PONG, role master \(1 replicas\)/);
  const r = await probe(replica.port, { password_env: 'FULCRUM_TEST_REDIS_PW', role: 'replica' });
  t.same({ ok: r.ok, role: r.role }, { ok: true, role: 'replica' });
  t.match(r.detail, new RegExp(`role replica of 127\\.0\\.0\\.1:${master.port}`));
  const wrongRole = await probe(replica.port, { password_env: 'FULCRUM_TEST_REDIS_PW', role: 'primary' });
  t.equal(wrongRole.ok, false, 'role: primary fails on the replica');
  t.match(wrongRole.detail, /wanted role primary/);
});

t.test('without the password PING fails (NOAUTH); a wrong password fails and never shows up in the detail', async (t) => {
  const none = await runProbe({ host: HOST, port: master.port, check: buildHealthCheck({ type: 'redis' }, undefined)!, password: undefined });
  t.equal(none.ok, false);
  t.match(none.detail, /NOAUTH/);
  const wrong = await runProbe({ host: HOST, port: master.port, check: buildHealthCheck({ type: 'redis', password_env: 'X' }, undefined)!, password: 'not-the-password' });
  t.equal(wrong.ok, false);
  t.match(wrong.detail, /AUTH refused/);
  t.notMatch(wrong.detail, /not-the-password/);
});

t.test('a backend is down after fall checks when redis is killed, up after rise when it is back', async (t) => {
  const extra = await startRedis(t, {});
  const h = await startHealth(t, (listen) =>
    [
      'services:',
      '  - name: cache',
      `    listen: ${HOST}:${listen}`,
      '    health_check: {type: redis, interval: 200ms, fast_interval: 200ms, timeout: 200ms, rise: 2, fall: 3, jitter: 0}',
      '    backends:',
      `      - address: ${HOST}:${extra.port}`,
      '',
    ].join('\n'),
  );
  const address = `${HOST}:${extra.port}`;
  await waitUntil('first check', () => (h.monitor.snapshot()[0]?.history.length ?? 0) > 0, 2_000);
  t.equal(h.health(address), 'up');
  const killedAt = Date.now();
  await extra.stop('SIGKILL');
  await h.waitHealth(address, 'down', 3_000);
  const downMs = Date.now() - killedAt;
  t.comment(`redis killed: down after ${downMs} ms (fall 3 × 200 ms)`);
  t.ok(downMs >= 380 && downMs <= 2_500, `${downMs} ms`);
  const again = await startRedis(t, { port: extra.port });
  t.ok(again.port === extra.port);
  const backAt = Date.now();
  await h.waitHealth(address, 'up', 3_000);
  t.comment(`restarted: up after ${Date.now() - backAt} ms (rise 2 × 200 ms)`);
});

/** Through Fulcrum: AUTH + ROLE on a new connection; the role of the node it reached. */
function roleVia(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: HOST, port });
    let buffer = Buffer.alloc(0);
    const replies: RespValue[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no ROLE reply through fulcrum within 3 s'));
    }, 3_000);
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (let parsed = parseReply(buffer); parsed; parsed = parseReply(buffer)) {
        replies.push(parsed.value);
        buffer = buffer.subarray(parsed.used);
      }
      if (replies.length >= 2) {
        clearTimeout(timer);
        socket.destroy();
        resolve(String((replies[1] as RespValue[])[0]));
      }
    });
    socket.write(Buffer.concat([encodeCommand('AUTH', PASSWORD), encodeCommand('ROLE')]));
  });
}

t.test('role: primary sends connections only to the master and follows a failover (REPLICAOF NO ONE)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-health-redis-pw-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'redis.pw'), `${PASSWORD}\n`);
  const h = await startHealth(t, (listen) =>
    [
      'services:',
      '  - name: cache',
      `    listen: ${HOST}:${listen}`,
      '    balance: roundrobin',
      `    health_check: {type: redis, role: primary, interval: 200ms, fast_interval: 100ms, timeout: 200ms, rise: 2, fall: 2, jitter: 0.1, password_file: ${join(dir, 'redis.pw')}}`,
      '    backends:',
      `      - address: ${HOST}:${master.port}`,
      `      - address: ${HOST}:${replica.port}`,
      '',
    ].join('\n'),
  );
  const m = `${HOST}:${master.port}`;
  const r = `${HOST}:${replica.port}`;
  t.equal(h.health(m), 'down', 'with a role filter a backend starts down (no writes to a replica before the first check)');
  await h.waitHealth(m, 'up', 2_000);
  await h.waitHealth(r, 'down', 2_000);
  const before = new Set<string>();
  for (let i = 0; i < 8; i++) before.add(await roleVia(h.port));
  t.same([...before], ['master'], 'every connection through Fulcrum reaches the master');

  const failoverAt = Date.now();
  redisCli(replica.port, PASSWORD, 'REPLICAOF', 'NO', 'ONE');
  redisCli(master.port, PASSWORD, 'REPLICAOF', '127.0.0.1', String(replica.port));
  await h.waitHealth(r, 'up', 3_000);
  await h.waitHealth(m, 'down', 3_000);
  const followedMs = Date.now() - failoverAt;
  t.comment(`role primary followed the failover in ${followedMs} ms (rise/fall 2 × interval 200 ms, fast 100 ms)`);
  const after = new Set<string>();
  for (let i = 0; i < 8; i++) after.add(await roleVia(h.port));
  t.same([...after], ['master'], 'after the failover every connection reaches the new master');
  t.equal(h.engine.stats().services[0]!.backends.find((b) => b.address === r)!.state, 'up');
  t.match(stateChanges(h.logs, m).at(-1)!.reason, /wanted role primary/, 'the old master went down because of its role');

  // Put things back for the other tests of this file.
  redisCli(master.port, PASSWORD, 'REPLICAOF', 'NO', 'ONE');
  redisCli(replica.port, PASSWORD, 'REPLICAOF', '127.0.0.1', String(master.port));
  const raw = h.logs.raw.join('');
  t.notOk(raw.includes(PASSWORD), `the password is in no log line (${h.logs.raw.length} lines checked)`);
  t.notOk(JSON.stringify(h.monitor.snapshot()).includes(PASSWORD), 'nor in any check detail');
});
