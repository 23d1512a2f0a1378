// The kernel UDP datapath's flows in the connection log (udp_kernel_flows.h):
// in network namespaces this test creates and removes (prefix fulkl-<pid>-),
// 20 client flows exchange a known number of datagrams through `datapath:
// kernel`, go idle, and each gets one record of the relay's shape with exact
// datagrams and payload bytes each way, its client port, its backend and
// idle_timeout; flows still open when Fulcrum stops end `shutdown`. Needs
// root and Linux >= 6.6 (tcx).
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, waitFor } from './helpers/ha-rig.mjs';
import { BACKENDS, CLIENT, FRONT, KernelNatRig, logRecords } from './helpers/kernel-nat-rig.js';

const ADMIN = '127.0.0.1:18407';
const GAME = `${FRONT}:7000`;

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root (network namespaces, BPF)');
  process.exit(0);
}

/** The namespaces, the backends and a `fulcrum run` whose service `game` runs on the kernel datapath with `keys`, logging to a file. */
async function startLogged(t: Test, prefix: string, keys: string[]) {
  const rig = await KernelNatRig.create(t, prefix);
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-udp-kernel-log-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await rig.startBackends(t);
  const logFile = join(dir, 'connections.log');
  const config = join(dir, 'fulcrum.yaml');
  const backends = BACKENDS.map((ip) => `{address: "${ip}:9000"}`).join(', ');
  writeFileSync(config, `workers: 1
log: {level: info}
admin: {listen: ${ADMIN}}
connection_log: {output: ${logFile}}
services:
  - name: game
    protocol: udp
    listen: ${GAME}
    datapath: kernel
${keys.map((key) => `    ${key}\n`).join('')}    backends: [${backends}]
`);
  const fulcrum = rig.spawn(t, 'p', process.execPath, [CLI, 'run', '-c', config]);
  const up = await waitFor(async () => (await rig.metric(ADMIN, 'fulcrum_udp_datapath_kernel', 'service="game"')) === 1, 20_000);
  t.ok(up, `game runs on the kernel datapath${up ? '' : `: ${fulcrum.stdout()}${fulcrum.stderr()}`}`);
  return { rig, logFile, fulcrum };
}

t.test('flows on the kernel datapath are logged like the relay\'s, with exact counts', { timeout: 60_000 }, async (t) => {
  const { rig, logFile, fulcrum } = await startLogged(t, 'fulkl-', ['timeouts: {idle: 2s}']);

  // 20 flows: three 64 B echoes and one of 1400 B each.
  const client = rig.startClient(t);
  t.same(await client({ op: 'open', count: 20 }), { flows: 20 }, '20 flows');
  for (const size of [64, 64, 64, 1400]) {
    t.same(await client({ op: 'echo', size, target: GAME }), { exact: 20, timeouts: 0, wrongSource: 0, total: 20 }, `${size} B: 20 byte-exact echoes`);
  }
  const ports: number[] = (await client({ op: 'ports' })).ports;
  const who: (string | null)[] = (await client({ op: 'who', target: GAME })).ids;
  t.ok(who.every((id) => id !== null), 'every flow knows its backend');
  await client({ op: 'close' });

  // Idle 2 s, swept within a second: one record per flow.
  const ended = await waitFor(async () => logRecords(logFile).filter((r) => r.type === 'udp').length >= 20, 10_000, 200);
  t.ok(ended, 'the 20 flows are logged once idle');
  const udp = logRecords(logFile).filter((r) => r.type === 'udp');
  t.equal(udp.length, 20, 'exactly one record per flow');
  const byPort = new Map(udp.map((r) => [Number(String(r.client).split(':')[1]), r]));
  let exact = 0;
  for (const [i, port] of ports.entries()) {
    const r = byPort.get(port);
    const backendId = `b${BACKENDS.indexOf(String(r?.backend).split(':')[0]!) + 1}`;
    if (r && r.client === `${CLIENT}:${port}` && r.event === 'end' && r.service === 'game' && r.listen === GAME &&
        r.termination === 'idle_timeout' && r.datagrams_in === 5 && r.datagrams_out === 5 &&
        r.bytes_in === 3 * 64 + 1400 + 4 && r.bytes_out === 3 * 64 + 1400 + 2 && backendId === who[i] &&
        r.duration_ms >= 2000 && r.duration_ms < 6000) exact++;
  }
  t.equal(exact, 20, `every record exact: its client port, its backend, 5 datagrams and ${3 * 64 + 1400 + 4} bytes in, 5 and ${3 * 64 + 1400 + 2} out, idle_timeout (first: ${JSON.stringify(udp[0])})`);
  t.same(Object.keys(udp[0]).sort(), ['backend', 'bytes_in', 'bytes_out', 'client', 'datagrams_in', 'datagrams_out', 'duration_ms', 'event', 'listen', 'service', 'start', 'termination', 'time', 'type', 'worker'], 'the relay\'s UDP record fields');
  const metric = await rig.metric(ADMIN, 'fulcrum_connections_ended_total', 'termination="idle_timeout"');
  t.equal(metric, 20, 'fulcrum_connections_ended_total counts them');

  // A flow still open when Fulcrum stops ends `shutdown`.
  await client({ op: 'open', count: 1 });
  t.same(await client({ op: 'echo', size: 100, target: GAME }), { exact: 1, timeouts: 0, wrongSource: 0, total: 1 }, 'one more flow');
  const [last] = (await client({ op: 'ports' })).ports as number[];
  await waitFor(async () => (await rig.metric(ADMIN, 'fulcrum_udp_kernel_flows', 'service="game"')) === 1, 5_000, 100);
  fulcrum.child.kill('SIGTERM');
  t.ok(await waitFor(async () => fulcrum.exited(), 15_000), 'Fulcrum stops on SIGTERM');
  const shutdown = logRecords(logFile).filter((r) => r.client === `${CLIENT}:${last}`);
  t.match(shutdown, [{ termination: 'shutdown', datagrams_in: 1, datagrams_out: 1, bytes_in: 100, bytes_out: 100 }], 'the open flow ends shutdown, with its counts');
});

t.test('a flow the program ends at its udp.responses-th reply is logged responses_done, with its replies exact', { timeout: 60_000 }, async (t) => {
  const { rig, logFile, fulcrum } = await startLogged(t, 'fulkr-', ['udp: {responses: 3}', 'timeouts: {idle: 30s}']);
  const client = rig.startClient(t);
  t.same(await client({ op: 'open', count: 5 }), { flows: 5 }, '5 flows');
  for (let i = 0; i < 2; i++) t.same(await client({ op: 'echo', size: 64, target: GAME }), { exact: 5, timeouts: 0, wrongSource: 0, total: 5 }, `request ${i + 1}: 5 byte-exact echoes`);
  // The once-a-second walk must have seen the flows (a flow that begins and
  // ends between two walks has no record, README).
  t.ok(await waitFor(async () => (await rig.metric(ADMIN, 'fulcrum_udp_kernel_flows', 'service="game"')) === 5, 5_000, 100), 'the walk saw the 5 flows');
  const ports: number[] = (await client({ op: 'ports' })).ports;
  t.same(await client({ op: 'echo', size: 64, target: GAME }), { exact: 5, timeouts: 0, wrongSource: 0, total: 5 }, 'request 3: the third reply, which ends each flow');
  const logged = await waitFor(async () => logRecords(logFile).filter((r) => r.type === 'udp').length >= 5, 10_000, 200);
  t.ok(logged, 'the 5 flows are logged once the walk finds them ended');
  const udp = logRecords(logFile).filter((r) => r.type === 'udp');
  t.same(udp.map((r) => r.termination), ['responses_done', 'responses_done', 'responses_done', 'responses_done', 'responses_done'], 'each ended responses_done (not evicted: the program ended it)');
  t.same(udp.map((r) => Number(String(r.client).split(':')[1])).sort(), [...ports].sort(), 'one record per client port');
  t.ok(udp.every((r) => r.datagrams_out === 3 && r.bytes_out === 3 * 64), `3 replies and ${3 * 64} bytes out each, exact (first: ${JSON.stringify(udp[0])})`);
  t.ok(udp.every((r) => r.datagrams_in >= 2 && r.datagrams_in <= 3), 'the client datagrams as of the last walk (2 or 3)');
  await client({ op: 'close' });
  fulcrum.child.kill('SIGTERM');
  t.ok(await waitFor(async () => fulcrum.exited(), 15_000), 'Fulcrum stops on SIGTERM');
});
