// The kernel UDP datapath's pinned flow maps (udp_kernel_nat.h, "Pinned
// maps"), in network namespaces this test creates and removes (prefix
// fulku-<pid>-): 40 flows keep their backend and their NAT port, and echo
// byte-exact, across a reload and across `POST /api/upgrade` (a new process
// adopts the pinned maps and attaches its programs before the old one
// detaches); the old process ends none of them; the new one logs each with
// its counts from before and after the upgrade; the pins are removed when
// Fulcrum stops. Fulcrum runs under `ip netns exec` (its own mount
// namespace, where it mounts a bpffs); a watcher process holds that
// namespace so the pins can be listed after Fulcrum has gone. Needs root and
// Linux >= 6.6 (tcx).
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, run, waitFor } from './helpers/ha-rig.mjs';
import { BACKENDS, CLIENT, FRONT, KernelNatRig, logRecords } from './helpers/kernel-nat-rig.js';

const ADMIN = '127.0.0.1:18408';
const GAME = `${FRONT}:7000`;
const FLOWS = 40;

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root (network namespaces, BPF)');
  process.exit(0);
}

function config(logFile: string, extra = ''): string {
  const backends = BACKENDS.map((ip) => `{address: "${ip}:9000"}`).join(', ');
  return `workers: 1
log: {level: info}
admin: {listen: ${ADMIN}}
connection_log: {output: ${logFile}}
services:
  - name: game
    protocol: udp
    listen: ${GAME}
    datapath: kernel
    timeouts: {idle: 8s}
    backends: [${backends}]
${extra}`;
}

t.test('flows keep their backend and NAT port across a reload and an upgrade; pins go when Fulcrum stops', { timeout: 90_000 }, async (t) => {
  const rig = await KernelNatRig.create(t, 'fulku-');
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-udp-kernel-upgrade-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await rig.startBackends(t);
  const logFile = join(dir, 'connections.log');
  const file = join(dir, 'fulcrum.yaml');
  writeFileSync(file, config(logFile));
  const first = rig.spawn(t, 'p', process.execPath, [CLI, 'run', '-c', file]);
  const up = await waitFor(async () => (await rig.metric(ADMIN, 'fulcrum_udp_datapath_kernel', 'service="game"')) === 1, 20_000);
  t.ok(up, `game runs on the kernel datapath${up ? '' : `: ${first.stdout()}${first.stderr()}`}`);

  // Holds Fulcrum's mount namespace (and so its bpffs) past Fulcrum's own life.
  const watcher = spawn('nsenter', ['-t', String(first.child.pid), '-m', 'sleep', '120'], { stdio: 'ignore' });
  t.teardown(() => void watcher.kill('SIGKILL'));
  const pins = async (): Promise<string[]> => {
    const listing = await run('nsenter', ['-t', String(watcher.pid), '-m', 'sh', '-c', 'cd /sys/fs/bpf/fulcrum 2>/dev/null && ls -A . */ 2>/dev/null']);
    return listing.stdout.split('\n').filter((l) => l.trim());
  };

  const client = rig.startClient(t);
  let bytesIn = 0;
  let datagrams = 0;
  const ask = async (): Promise<string[]> => {
    const ids: (string | null)[] = (await client({ op: 'who', text: 'PORT?', target: GAME })).ids;
    datagrams++;
    bytesIn += 5;
    return ids.map((id) => id ?? 'none');
  };
  const echo = async (size: number, label: string): Promise<void> => {
    t.same(await client({ op: 'echo', size, target: GAME }), { exact: FLOWS, timeouts: 0, wrongSource: 0, total: FLOWS }, `${label}: ${FLOWS} byte-exact ${size} B echoes`);
    datagrams++;
    bytesIn += size;
  };
  t.same(await client({ op: 'open', count: FLOWS }), { flows: FLOWS }, `${FLOWS} flows`);
  await echo(64, 'before');
  const before = await ask();
  t.ok(before.every((a) => /^b\d \d+$/.test(a)), `every flow has a backend and a NAT port (${before[0]})`);
  t.equal(new Set(before.map((a) => a.split(' ')[1])).size, FLOWS, 'one NAT port each');
  const listed = await pins();
  t.ok(listed.some((l) => /^udp-10_203_1_1-7000-game-net\d+$/.test(l)) && listed.includes('flows') && listed.includes('reverse'),
    `the flow and reverse maps are pinned by service and listen address (${listed.join(' ')})`);

  // A reload (a service added) keeps the running maps.
  writeFileSync(file, config(logFile, `  - name: other\n    protocol: udp\n    listen: ${FRONT}:7001\n    backends: [{address: "${BACKENDS[0]}:9000"}]\n`));
  const reloaded = await rig.admin(ADMIN, 'POST', '/api/reload');
  t.match(reloaded, /"ok":true|reloaded|"generation"/, `reloaded (${reloaded.slice(0, 200)})`);
  t.same(await ask(), before, 'after the reload: every flow on its backend, with its NAT port');
  await echo(1400, 'after the reload');

  // The upgrade: a new process adopts the pinned maps.
  const answer = await rig.admin(ADMIN, 'POST', '/api/upgrade');
  const successor = Number(JSON.parse(answer || '{}').pid);
  t.ok(successor > 0, `the upgrade started a new process (${answer})`);
  if (successor > 0) t.teardown(() => { try { process.kill(successor, 'SIGKILL'); } catch { /* gone */ } });
  t.same(await ask(), before, 'right after the upgrade: every flow on its backend, with its NAT port');
  await echo(1400, 'right after the upgrade');
  t.ok(await waitFor(async () => first.exited(), 20_000), 'the old process exits');
  t.same(await ask(), before, 'with the old process gone: every flow on its backend, with its NAT port');
  await echo(64, 'with the old process gone');
  t.equal(await rig.metric(ADMIN, 'fulcrum_udp_datapath_kernel', 'service="game"'), 1, 'the new process runs game on the kernel datapath');
  t.equal(logRecords(logFile).filter((r) => r.service === 'game').length, 0, 'the old process ended no flow of game');

  // Idle: the new process logs every flow once, with the counts of both processes.
  await client({ op: 'close' });
  const logged = await waitFor(async () => logRecords(logFile).filter((r) => r.service === 'game').length >= FLOWS, 20_000, 250);
  t.ok(logged, 'the new process logs the flows once idle');
  const game = logRecords(logFile).filter((r) => r.service === 'game');
  const exact = game.filter((r) => r.termination === 'idle_timeout' && r.datagrams_in === datagrams && r.bytes_in === bytesIn &&
    r.datagrams_out === datagrams && String(r.client).startsWith(`${CLIENT}:`));
  t.equal(exact.length, FLOWS, `${FLOWS} records, each ${datagrams} datagrams and ${bytesIn} bytes in, ${datagrams} out (first: ${JSON.stringify(game[0])})`);

  // A normal stop removes the pins.
  t.ok((await pins()).some((l) => l.startsWith('udp-10_203_1_1-7000-game')), 'still pinned under the new process');
  if (successor > 0) process.kill(successor, 'SIGTERM');
  t.ok(await waitFor(async () => (await run('kill', ['-0', String(successor)])).code !== 0, 15_000), 'the new process stops on SIGTERM');
  t.same(await pins(), [], 'the pins are gone');
});
