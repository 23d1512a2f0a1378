// The kernel UDP datapath (datapath: kernel, udp_kernel_nat.h) in network
// namespaces this test creates and removes (prefix fulkn-<pid>-): a client,
// the balancer node running `fulcrum run`, and four backends (one namespace,
// four addresses) whose default route is the balancer. Checks byte-exact
// echo over 200 flows, stickiness, Maglev moves on disable/enable, drain,
// checksums verified by the receivers with tx offload on and off, 60,000 new
// flows against max_flows 256, idle expiry, and the fallback to the relay
// (auto) or a refused start (kernel) where the programs cannot be attached.
// Needs root and Linux >= 6.6 (tcx).
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, run, waitFor } from './helpers/ha-rig.mjs';
import { BACKENDS, FRONT, KernelNatRig, must, type Host } from './helpers/kernel-nat-rig.js';

const GAME = `${FRONT}:7000`;
const SMALL = `${FRONT}:7001`;
const HELPERS = new URL('./helpers/', import.meta.url).pathname;
const ADMIN = '127.0.0.1:18406';

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root (network namespaces, BPF)');
}

// The namespaces (helpers/kernel-nat-rig.ts) of the running test.
let rig: KernelNatRig;
const ns = (host: Host): string => rig.ns(host);
const buildRig = async (t: Test): Promise<void> => {
  rig = await KernelNatRig.create(t, 'fulkn-');
};
const spawnIn = (t: Test, host: Host, cmd: string, args: string[]) => {
  const started = rig.spawn(t, host, cmd, args);
  return { ...started, output: started.stderr };
};
const startClient = (t: Test) => rig.startClient(t);
const admin = (method: 'GET' | 'POST', path: string): Promise<string> => rig.admin(ADMIN, method, path);
const metric = (name: string, labels: string): Promise<number | undefined> => rig.metric(ADMIN, name, labels);

async function csumErrors(host: 'c' | 'b'): Promise<number> {
  const snmp = await must('ip', ['netns', 'exec', ns(host), 'cat', '/proc/net/snmp']);
  const [names, values] = snmp.split('\n').filter((l) => l.startsWith('Udp:'));
  const index = names!.split(/\s+/).indexOf('InCsumErrors');
  return Number(values!.split(/\s+/)[index]);
}

function serviceConfig(extra = ''): string {
  const backends = BACKENDS.map((ip) => `{address: "${ip}:9000"}`).join(', ');
  return `workers: 1
log: {level: info}
admin: {listen: ${ADMIN}}
services:
  - name: game
    protocol: udp
    listen: ${GAME}
    datapath: kernel
    timeouts: {idle: 5s}
    health_check: {type: udp, send: "WHO?", interval: 200ms, timeout: 200ms, rise: 1, fall: 1}
    backends: [${backends}]
  - name: small
    protocol: udp
    listen: ${SMALL}
    datapath: kernel
    max_flows: 256
    udp: {nat_ports: 30000-31999}
    backends: [${backends}]
  - name: wild
    protocol: udp
    listen: "*:7002"
    datapath: auto
    backends: [${backends}]
${extra}`;
}

t.test('datapath: kernel NATs UDP flows in tcx programs', { timeout: 180_000 }, async (t) => {
  await buildRig(t);
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-udp-kernel-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));

  const backends = spawnIn(t, 'b', process.execPath, [join(HELPERS, 'udp-echo-backends.mjs'), ...BACKENDS.map((ip, i) => `${ip}:9000:b${i + 1}`)]);
  let backendsOut = '';
  backends.child.stdout.on('data', (c: Buffer) => (backendsOut += c.toString()));
  t.ok(await waitFor(async () => backendsOut.includes('ready'), 10_000), 'the backends are bound');
  const backendControl = async (op: 'stop' | 'start', id: string): Promise<void> => {
    const seen = backendsOut.split(`ok ${id}`).length;
    backends.child.stdin.write(`${op} ${id}\n`);
    await waitFor(async () => backendsOut.split(`ok ${id}`).length > seen, 5_000);
  };
  const backendState = async (ip: string): Promise<string> => JSON.parse(await admin('GET', `/api/services/game/backends/${ip}:9000`)).backend.state;

  const config = join(dir, 'fulcrum.yaml');
  writeFileSync(config, serviceConfig());
  const fulcrum = spawnIn(t, 'p', process.execPath, [CLI, 'run', '-c', config]);
  let log = '';
  fulcrum.child.stdout.on('data', (c: Buffer) => (log += c.toString()));
  const up = await waitFor(async () => (await metric('fulcrum_udp_datapath_kernel', 'service="game"')) === 1, 20_000);
  t.ok(up, `game runs on the kernel datapath${up ? '' : `: ${log}${fulcrum.output()}`}`);
  t.equal(await metric('fulcrum_udp_datapath_kernel', 'service="small"'), 1, 'small too');
  t.equal(await metric('fulcrum_udp_datapath_kernel', 'service="wild"'), 0, 'wild (a wildcard listen address) falls back to the relay');
  t.match(log, /udp service on the kernel datapath.*"service":"game"|"service":"game".*udp service on the kernel datapath/, 'the log says which datapath game uses');
  t.match(log, /"reason":"the listen address is a wildcard/, 'and why wild is on the relay');
  const view = JSON.parse(await admin('GET', '/api/services/game'));
  t.match(view.datapath, { datapath: 'kernel', clientInterface: 'front', backendInterface: 'back' }, 'the admin API shows the datapath and its interfaces');

  const client = startClient(t);
  t.same(await client({ op: 'open', count: 200 }), { flows: 200 }, '200 flows from the client');
  for (const size of [64, 1400]) {
    const echo = await client({ op: 'echo', size, target: GAME });
    t.same(echo, { exact: 200, timeouts: 0, wrongSource: 0, total: 200 }, `${size} B: 200 byte-exact echoes, every reply from ${GAME}`);
  }
  const natted = await metric('fulcrum_udp_kernel_datagrams_total', 'direction="request"');
  t.ok(natted !== undefined && natted >= 400, `the programs NATed the requests (${natted})`);
  const replies = await metric('fulcrum_udp_kernel_datagrams_total', 'direction="reply"');
  t.ok(replies !== undefined && replies >= 400, `and the replies (${replies})`);

  // Stickiness: every flow answered by one backend, every time.
  const first: (string | null)[] = (await client({ op: 'who', target: GAME })).ids;
  const again: (string | null)[] = (await client({ op: 'who', target: GAME })).ids;
  t.same(again, first, 'each flow stays on its backend');
  const share = (ids: (string | null)[]) => Object.fromEntries(['b1', 'b2', 'b3', 'b4'].map((b) => [b, ids.filter((id) => id === b).length]));
  const before = share(first);
  t.ok(Object.values(before).every((n) => n >= 20), `Maglev spreads the flows over the four backends (${JSON.stringify(before)})`);

  // b2 fails its health check (down): only its flows move, and evenly; back
  // up: none move back.
  await backendControl('stop', 'b2');
  t.ok(await waitFor(async () => (await backendState(BACKENDS[1]!)) === 'down', 10_000), 'b2 is down (health check)');
  const down: (string | null)[] = (await client({ op: 'who', target: GAME })).ids;
  const moved = first.map((id, i) => (id !== down[i] ? i : -1)).filter((i) => i >= 0);
  t.ok(moved.length === before.b2 && moved.every((i) => first[i] === 'b2'), `exactly the ${before.b2} flows of b2 moved (${moved.length})`);
  t.ok(down.every((id) => id !== null && id !== 'b2'), 'every flow answered, none by b2');
  t.ok(new Set(moved.map((i) => down[i])).size >= 2, 'b2\'s flows spread over more than one backend');
  await backendControl('start', 'b2');
  t.ok(await waitFor(async () => (await backendState(BACKENDS[1]!)) === 'up', 10_000), 'b2 is up again');
  t.same((await client({ op: 'who', target: GAME })).ids, down, 'b2 back up: no flow moves back (only new flows reach it)');

  // maint (disable), as drain: b4 keeps its flows.
  await admin('POST', `/api/services/game/backends/${BACKENDS[3]}:9000/disable`);
  t.same((await client({ op: 'who', target: GAME })).ids, down, 'maint: b4 keeps its flows');
  await admin('POST', `/api/services/game/backends/${BACKENDS[3]}:9000/enable`);

  // drain: b3 keeps its flows and takes no new ones.
  await admin('POST', `/api/services/game/backends/${BACKENDS[2]}:9000/drain`);
  t.same((await client({ op: 'who', target: GAME })).ids, down, 'drain: b3 keeps its flows');
  await client({ op: 'open', count: 100 });
  const withNew: (string | null)[] = (await client({ op: 'who', target: GAME })).ids;
  t.ok(withNew.slice(200).every((id) => id !== null && id !== 'b3'), 'the 100 new flows avoid the draining b3');
  await admin('POST', `/api/services/game/backends/${BACKENDS[2]}:9000/enable`);

  // Checksums: the receivers verify them (tx offload off: in software).
  t.equal(await csumErrors('c') + await csumErrors('b'), 0, 'UdpInCsumErrors 0 with tx offload on');
  await must('ip', ['netns', 'exec', ns('c'), 'ethtool', '-K', 'eth0', 'tx', 'off']);
  await must('ip', ['netns', 'exec', ns('b'), 'ethtool', '-K', 'eth0', 'tx', 'off']);
  await must('ip', ['netns', 'exec', ns('p'), 'ethtool', '-K', 'front', 'tx', 'off']);
  await must('ip', ['netns', 'exec', ns('p'), 'ethtool', '-K', 'back', 'tx', 'off']);
  const offloadOff = await client({ op: 'echo', size: 1400, target: GAME });
  t.same(offloadOff, { exact: 300, timeouts: 0, wrongSource: 0, total: 300 }, 'tx offload off: 300 byte-exact echoes');
  t.equal(await csumErrors('c') + await csumErrors('b'), 0, 'UdpInCsumErrors 0 with tx offload off');

  // 60,000 new flows on `small` (max_flows 256, 2,000 NAT ports): memory is
  // the maps' fixed size; flows kept busy keep working.
  const busy = startClient(t);
  await busy({ op: 'open', count: 10 });
  t.same(await busy({ op: 'echo', size: 64, target: SMALL }), { exact: 10, timeouts: 0, wrongSource: 0, total: 10 }, 'small: 10 flows work');
  const flood = startClient(t);
  for (let done = 0; done < 60_000; done += 10_000) {
    const sent = await flood({ op: 'flood', count: 10_000, target: SMALL });
    t.equal(sent.sent, 10_000, `flood: ${done + 10_000} new flows sent`);
    const echo = await busy({ op: 'echo', size: 64, target: SMALL });
    if (echo.exact !== 10) t.fail(`the busy flows during the flood: ${JSON.stringify(echo)}`);
  }
  t.same(await busy({ op: 'echo', size: 1400, target: SMALL }), { exact: 10, timeouts: 0, wrongSource: 0, total: 10 }, 'after 60,000 new flows the busy flows still echo byte-exact');
  const flowsSmall = await waitFor(async () => (await metric('fulcrum_udp_kernel_flows', 'service="small"')) !== undefined, 5_000);
  const smallFlows = await metric('fulcrum_udp_kernel_flows', 'service="small"');
  t.ok(flowsSmall && smallFlows! <= 256, `small's flow map holds at most max_flows (${smallFlows})`);
  const created = await metric('fulcrum_udp_kernel_flow_events_total', 'service="small",event="created"');
  t.ok(created !== undefined && created > 2_000, `the kernel path took flows past its 2,000 NAT ports as they were freed (${created} created)`);

  // The fallback relay serves the wildcard service.
  const wild = await client({ op: 'echo', size: 64, target: `${FRONT}:7002` });
  t.same(wild, { exact: 300, timeouts: 0, wrongSource: 0, total: 300 }, 'wild (datapath auto, on the relay): byte-exact echo');

  // Idle expiry: game's flows end 5 s after their last datagram.
  await client({ op: 'close' });
  const gone = await waitFor(async () => (await metric('fulcrum_udp_kernel_flows', 'service="game"')) === 0, 15_000);
  t.ok(gone, 'idle flows are swept from the kernel flow map');
  const expired = await metric('fulcrum_udp_kernel_flow_events_total', 'service="game",event="expired"');
  t.ok(expired !== undefined && expired >= 300, `counted as expired (${expired})`);
});

t.test('datapath: kernel that cannot be attached refuses to start; the error names the service', { timeout: 60_000 }, async (t) => {
  await buildRig(t);
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-udp-kernel-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'fulcrum.yaml');
  writeFileSync(config, `workers: 1
services:
  - name: everywhere
    protocol: udp
    listen: "*:7000"
    datapath: kernel
    backends: [{address: "${BACKENDS[0]}:9000"}]
`);
  const result = await run('ip', ['netns', 'exec', ns('p'), process.execPath, CLI, 'run', '-c', config], { timeoutMs: 20_000 });
  t.not(result.code, 0, 'fulcrum run exits with an error');
  t.match(result.stdout + result.stderr, /datapath: kernel for service everywhere: the listen address is a wildcard/, 'saying why');
});
