// source: client (transparent proxying) in network namespaces this test
// creates and removes (prefix fultp-<pid>-): a client, the proxy node running
// `fulcrum run`, and a backend whose default route is the proxy. The proxy
// uses the README's routing recipe (nft socket match -> fwmark 1 -> table 100
// with `local 0.0.0.0/0 dev lo`), so the backends' replies to client
// addresses come back to Fulcrum's transparent sockets. The backend sees the
// client's own address: a plain TCP server reports it, and PostgreSQL (which
// cannot read a PROXY header) admits the client by pg_hba and answers
// inet_client_addr() with it. The same services without source: client are
// the control: the backend sees the proxy's address. Needs root.
import t, { type Test } from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, killTree, removeStaleNamespaces, run, waitFor } from './helpers/ha-rig.mjs';
import { pgBin, postgresUser } from '../helpers/db-servers.js';

const PREFIX = `fultp-${process.pid}-`;
const CLIENT = '10.201.1.2';
const PROXY_FRONT = '10.201.1.1';
const PROXY_BACK = '10.201.2.1';
const BACKEND = '10.201.2.2';

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root (network namespaces, IP_TRANSPARENT)');
  process.exit(0);
}

const ns = (host: 'c' | 'p' | 'b'): string => `${PREFIX}${host}`;

async function must(cmd: string, args: string[], input?: string): Promise<string> {
  const result = await run(cmd, args, input === undefined ? {} : { input });
  if (result.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${result.stderr.trim() || `exit ${result.code}`}`);
  return result.stdout;
}

/** The routing recipe of the README, on the proxy node. */
const DIVERT_RULESET = `table ip fulcrum_tproxy {
  chain divert {
    type filter hook prerouting priority mangle; policy accept;
    meta l4proto tcp socket transparent 1 meta mark set 0x1 accept
  }
}
`;

async function buildRig(t: Test): Promise<void> {
  await removeStaleNamespaces('fultp-');
  t.teardown(async () => {
    for (const host of ['c', 'b', 'p'] as const) await run('ip', ['netns', 'del', ns(host)]);
  });
  for (const host of ['c', 'p', 'b'] as const) {
    await must('ip', ['netns', 'add', ns(host)]);
    await must('ip', ['-n', ns(host), 'link', 'set', 'lo', 'up']);
  }
  await must('ip', ['-n', ns('c'), 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'front', 'netns', ns('p')]);
  await must('ip', ['-n', ns('b'), 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'back', 'netns', ns('p')]);
  const address = async (host: 'c' | 'p' | 'b', dev: string, cidr: string): Promise<void> => {
    await must('ip', ['-n', ns(host), 'addr', 'add', cidr, 'dev', dev]);
    await must('ip', ['-n', ns(host), 'link', 'set', dev, 'up']);
  };
  await address('c', 'eth0', `${CLIENT}/24`);
  await address('p', 'front', `${PROXY_FRONT}/24`);
  await address('p', 'back', `${PROXY_BACK}/24`);
  await address('b', 'eth0', `${BACKEND}/24`);
  await must('ip', ['-n', ns('c'), 'route', 'add', 'default', 'via', PROXY_FRONT]);
  // The backend answers every client through the proxy (its gateway).
  await must('ip', ['-n', ns('b'), 'route', 'add', 'default', 'via', PROXY_BACK]);
  await must('ip', ['netns', 'exec', ns('p'), 'nft', '-f', '-'], DIVERT_RULESET);
  await must('ip', ['-n', ns('p'), 'rule', 'add', 'fwmark', '1', 'lookup', '100']);
  await must('ip', ['-n', ns('p'), 'route', 'add', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', '100']);
}

/** A long-running process in a namespace, killed (with its children) at teardown. */
function spawnIn(t: Test, host: 'c' | 'p' | 'b', cmd: string, args: string[]): { output: () => string } {
  const child = spawn('ip', ['netns', 'exec', ns(host), cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => {
    exited = true;
    resolve();
  }));
  t.teardown(async () => {
    if (!exited && child.pid !== undefined) killTree(child.pid, 'SIGTERM');
    await Promise.race([exit, new Promise((r) => setTimeout(r, 5_000))]);
    if (!exited && child.pid !== undefined) killTree(child.pid, 'SIGKILL');
  });
  return { output: () => output };
}

/** From the client namespace: connect to the proxy's port, resolve what the server said (or ERR code). */
async function fromClient(port: number): Promise<string> {
  const script = `const s=require('net').connect(${port},'${PROXY_FRONT}');let d='';s.setTimeout(3000,()=>{console.log('ERR timeout');process.exit(0)});
s.on('data',c=>d+=c);s.on('end',()=>{console.log(d.trim());process.exit(0)});s.on('error',e=>{console.log('ERR '+e.code);process.exit(0)});`;
  const result = await run('ip', ['netns', 'exec', ns('c'), process.execPath, '-e', script], { timeoutMs: 10_000 });
  return result.stdout.trim();
}

t.test('source: client in network namespaces: the backend sees the client, PostgreSQL included', { timeout: 120_000 }, async (t) => {
  await buildRig(t);
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-transparent-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));

  // A server on the backend that tells each connection the address it came from.
  spawnIn(t, 'b', process.execPath, ['-e', `require('net').createServer(s=>s.end(s.remoteAddress+'\\n')).listen(9000,'${BACKEND}')`]);

  // PostgreSQL on the backend, admitting only the client's address.
  const owner = postgresUser();
  const pgDir = join(dir, 'pg');
  execFileSync('mkdir', ['-p', pgDir]);
  chownSync(dir, owner.uid, owner.gid);
  chownSync(pgDir, owner.uid, owner.gid);
  const data = join(pgDir, 'data');
  execFileSync('runuser', ['-u', 'postgres', '--', pgBin('initdb'), '-D', data, '-U', 'postgres', '--auth=reject', '--no-sync', '-E', 'UTF8', '--locale=C'], { stdio: 'ignore', timeout: 60_000 });
  writeFileSync(join(data, 'pg_hba.conf'), `host all postgres ${CLIENT}/32 trust\n`);
  spawnIn(t, 'b', 'setpriv', [`--reuid=${owner.uid}`, `--regid=${owner.gid}`, '--init-groups', '--', pgBin('postgres'), '-D', data, '-p', '5432',
    '-k', pgDir, '-c', `listen_addresses=${BACKEND}`, '-c', 'fsync=off', '-c', 'logging_collector=off']);

  const config = join(dir, 'fulcrum.yaml');
  writeFileSync(config, `workers: 1
log: {level: warn}
services:
  - name: id
    listen: ${PROXY_FRONT}:7000
    source: client
    backends: [{address: "${BACKEND}:9000"}]
  - name: id-plain
    listen: ${PROXY_FRONT}:7001
    backends: [{address: "${BACKEND}:9000"}]
  - name: pg
    listen: ${PROXY_FRONT}:6432
    source: client
    backends: [{address: "${BACKEND}:5432"}]
  - name: pg-plain
    listen: ${PROXY_FRONT}:6433
    backends: [{address: "${BACKEND}:5432"}]
`);
  const fulcrum = spawnIn(t, 'p', process.execPath, [CLI, 'run', '-c', config]);

  const ready = await waitFor(async () => (await fromClient(7001)) === PROXY_BACK, 20_000);
  t.ok(ready, `fulcrum relays (plain service: the backend sees the proxy's ${PROXY_BACK})${ready ? '' : `: ${fulcrum.output()}`}`);
  t.equal(await fromClient(7000), CLIENT, `source: client: the backend sees the client's own ${CLIENT}`);
  t.equal(await fromClient(7000), CLIENT, 'again, on a new connection (the kernel picks a new source port)');

  const psql = (port: number) => run('ip', ['netns', 'exec', ns('c'), pgBin('psql'), '-h', PROXY_FRONT, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-tAXq', '-c', 'select inet_client_addr()'], { timeoutMs: 15_000 });
  const pgUp = await waitFor(async () => (await psql(6432)).code === 0, 30_000);
  const answer = await psql(6432);
  t.ok(pgUp, `PostgreSQL answers through the transparent service${pgUp ? '' : `: ${answer.stderr}`}`);
  t.equal(answer.stdout.trim(), CLIENT, `inet_client_addr() is the client's ${CLIENT}`);
  const plain = await psql(6433);
  t.not(plain.code, 0, 'without source: client, pg_hba refuses the proxy address');
  t.match(plain.stderr, new RegExp(`no pg_hba.conf entry for host "${PROXY_BACK.replace(/\./g, '\\.')}"`), 'PostgreSQL saw the proxy, not the client');
});
