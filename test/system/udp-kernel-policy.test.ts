// The kernel UDP datapath's admission policies (udp_kernel_policy.h) in
// network namespaces this test creates and removes (prefix fulkp-<pid>-): a
// client with four addresses, the balancer running `fulcrum run`, one
// backend. Checks that allow/deny drops and counts refused clients' datagrams
// in BPF (longest prefix decides, the same prefix in both lists denies, no
// prefix with an allow list refuses), that datagram_rate holds a client to its
// bucket over all its flows (counts exact: every datagram is echoed or counted
// over rate), that udp.responses: 1 makes every request a new flow whose one
// reply is byte-exact, and that a reload changes the lists and the rate
// without losing flows (a kept flow keeps its NAT port). Needs root and Linux
// >= 6.6 (tcx).
import t, { type Test } from 'tap';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import readline from 'node:readline';
import { CLI, killTree, removeStaleNamespaces, run, waitFor } from './helpers/ha-rig.mjs';

const PREFIX = `fulkp-${process.pid}-`;
const FRONT = '10.204.1.1';
const BACK = '10.204.2.1';
const BACKEND = '10.204.2.11:9000';
// Client addresses: two in 10.204.1.0/24, one each in 10.204.9.0/24 and 10.204.8.0/24.
const C2 = '10.204.1.2';
const C3 = '10.204.1.3';
const C9 = '10.204.9.2';
const C8 = '10.204.8.2';
const ACL = `${FRONT}:7100`;
const RATE = `${FRONT}:7101`;
const RESP = `${FRONT}:7102`;
const HELPERS = new URL('./helpers/', import.meta.url).pathname;
const ADMIN = '127.0.0.1:18407';

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root (network namespaces, BPF)');
  process.exit(0);
}

type Host = 'c' | 'p' | 'b';
const ns = (host: Host): string => `${PREFIX}${host}`;

async function must(cmd: string, args: string[]): Promise<string> {
  const result = await run(cmd, args);
  if (result.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${result.stderr.trim() || `exit ${result.code}`}`);
  return result.stdout;
}

async function buildRig(t: Test): Promise<void> {
  await removeStaleNamespaces('fulkp-');
  t.teardown(async () => {
    for (const host of ['c', 'b', 'p'] as const) await run('ip', ['netns', 'del', ns(host)]);
  });
  for (const host of ['c', 'p', 'b'] as const) {
    await must('ip', ['netns', 'add', ns(host)]);
    await must('ip', ['-n', ns(host), 'link', 'set', 'lo', 'up']);
  }
  await must('ip', ['-n', ns('c'), 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'front', 'netns', ns('p')]);
  await must('ip', ['-n', ns('b'), 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'back', 'netns', ns('p')]);
  const address = async (host: Host, dev: string, cidrs: string[]): Promise<void> => {
    for (const cidr of cidrs) await must('ip', ['-n', ns(host), 'addr', 'add', cidr, 'dev', dev]);
    await must('ip', ['-n', ns(host), 'link', 'set', dev, 'up']);
  };
  await address('c', 'eth0', [C2, C3, C9, C8].map((ip) => `${ip}/24`));
  await address('p', 'front', [`${FRONT}/24`, '10.204.9.1/24', '10.204.8.1/24']);
  await address('p', 'back', [`${BACK}/24`]);
  await address('b', 'eth0', ['10.204.2.11/24']);
  await must('ip', ['-n', ns('c'), 'route', 'add', 'default', 'via', FRONT]);
  await must('ip', ['-n', ns('b'), 'route', 'add', 'default', 'via', BACK]);
}

/** A long-running process in a namespace, killed (with its children) at teardown. */
function spawnIn(t: Test, host: Host, cmd: string, args: string[]): ChildProcessWithoutNullStreams {
  const child = spawn('ip', ['netns', 'exec', ns(host), cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
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
  return child;
}

/** The client helper: one JSON command, one JSON answer. */
function startClient(t: Test): (command: Record<string, unknown>) => Promise<any> {
  const child = spawnIn(t, 'c', process.execPath, [join(HELPERS, 'udp-policy-client.mjs')]);
  const answers = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return async (command) => {
    child.stdin.write(`${JSON.stringify(command)}\n`);
    let timer: NodeJS.Timeout | undefined;
    const next = await Promise.race([answers.next(), new Promise<null>((r) => (timer = setTimeout(() => r(null), 30_000)))]);
    clearTimeout(timer);
    if (!next || next.done) throw new Error(`the client helper did not answer ${JSON.stringify(command)}`);
    return JSON.parse(next.value);
  };
}

/** The admin API from inside the balancer's namespace. */
async function admin(path: string): Promise<string> {
  const script = `require('http').get('http://${ADMIN}${path}',(res)=>{let d='';res.on('data',(c)=>d+=c);res.on('end',()=>process.stdout.write(d))}).on('error',()=>{});`;
  return (await run('ip', ['netns', 'exec', ns('p'), process.execPath, '-e', script])).stdout;
}

/** A metric's value for the given labels (the first match), or undefined. */
async function metric(name: string, labels: string): Promise<number | undefined> {
  const text = await admin('/metrics');
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

/** The kernel datapath's counters of one service (the admin API's datapath.stats). */
async function kernelStats(service: string): Promise<Record<string, number>> {
  return JSON.parse(await admin(`/api/services/${service}`)).datapath?.stats ?? {};
}

function config(acl: string, rate: string): string {
  const common = `    protocol: udp
    datapath: kernel
    timeouts: {idle: 30s}
    backends: [{address: "${BACKEND}"}]`;
  return `workers: 1
log: {level: info}
admin: {listen: ${ADMIN}}
services:
  - name: acl
    listen: ${ACL}
${acl}
${common}
  - name: rate
    listen: ${RATE}
    client_limits: {${rate}}
${common}
  - name: resp
    listen: ${RESP}
    udp: {responses: 1}
${common}
`;
}

// 10.204.1.3 (a /32 deny inside the /24 allow) and 10.204.8.0/24 (in both
// lists: deny) are refused; 10.204.1.2 and 10.204.9.2 admitted.
const ACL_BEFORE = `    allow: [10.204.1.0/24, 10.204.9.0/24, 10.204.8.0/24]
    deny: [10.204.1.3/32, 10.204.8.0/24]`;
// After the reload: 10.204.1.2 refused instead of 10.204.1.3; 10.204.8.2 in
// no prefix of an allow list: refused.
const ACL_AFTER = `    allow: [10.204.1.0/24, 10.204.9.0/24]
    deny: [10.204.1.2/32]`;

t.test('the kernel datapath enforces allow/deny, datagram_rate and udp.responses', { timeout: 90_000 }, async (t) => {
  await buildRig(t);
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-udp-policy-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));

  const backend = spawnIn(t, 'b', process.execPath, [join(HELPERS, 'udp-policy-backend.mjs'), BACKEND]);
  let backendOut = '';
  backend.stdout.on('data', (c: Buffer) => (backendOut += c.toString()));
  t.ok(await waitFor(async () => backendOut.includes('ready'), 10_000), 'the backend is bound');

  const file = join(dir, 'fulcrum.yaml');
  writeFileSync(file, config(ACL_BEFORE, 'datagram_rate: 10, datagram_burst: 20'));
  const fulcrum = spawnIn(t, 'p', process.execPath, [CLI, 'run', '-c', file]);
  let log = '';
  fulcrum.stdout.on('data', (c: Buffer) => (log += c.toString()));
  fulcrum.stderr.on('data', (c: Buffer) => (log += c.toString()));
  const kernel = async (service: string) => (await metric('fulcrum_udp_datapath_kernel', `service="${service}"`)) === 1;
  const up = await waitFor(async () => (await kernel('acl')) && (await kernel('rate')) && (await kernel('resp')), 20_000);
  t.ok(up, `acl, rate and resp run on the kernel datapath${up ? '' : `: ${log}`}`);
  if (!up) return;

  const client = startClient(t);
  for (const [id, from] of [['a2', C2], ['a3', C3], ['a9', C9], ['a8', C8], ['r1a', C2], ['r1b', C2], ['r9', C9], ['q', C2]]) {
    t.same(await client({ op: 'open', id, from }), { ok: true }, `socket ${id} from ${from}`);
  }
  const port = async (id: string, target: string): Promise<string | undefined> =>
    (await client({ op: 'ask', id, target, text: 'PORT?', waitMs: 1000 })).replies[0];

  // allow/deny.
  t.same(await client({ op: 'echo', id: 'a2', target: ACL, count: 5, size: 64, waitMs: 1000 }), { exact: 5, timeouts: 0, wrong: 0 }, `${C2} (allow /24): 5 byte-exact echoes`);
  t.same(await client({ op: 'echo', id: 'a9', target: ACL, count: 5, size: 1400, waitMs: 1000 }), { exact: 5, timeouts: 0, wrong: 0 }, `${C9} (allow /24): 5 byte-exact echoes of 1400 B`);
  t.same(await client({ op: 'echo', id: 'a3', target: ACL, count: 5, size: 64, waitMs: 200 }), { exact: 0, timeouts: 5, wrong: 0 }, `${C3} (deny /32 inside the allow /24): no reply`);
  t.same(await client({ op: 'echo', id: 'a8', target: ACL, count: 5, size: 64, waitMs: 200 }), { exact: 0, timeouts: 5, wrong: 0 }, `${C8} (the same /24 in allow and deny): no reply`);
  let acl = await kernelStats('acl');
  t.equal(acl.denied, 10, 'the program dropped and counted the 10 refused datagrams');
  t.equal(acl.newFlows, 2, 'two flows, for the two admitted clients');
  t.equal(acl.passedNoBackend! + acl.passedNoNatPort! + acl.passedUnsupported!, 0, 'nothing was passed on to the relay');
  t.equal(await metric('fulcrum_service_refused_clients_total', 'service="acl",reason="denied"'), 10, 'counted where the relay counts them (refused clients, reason denied)');
  const kept = await port('a9', ACL);
  t.match(kept, /^10\.204\.2\.1:\d+$/, `the backend sees ${C9}'s flow from the NAT address (${kept})`);

  // datagram_rate 10/s, burst 20, over two flows of one client address.
  const burst = await client({ op: 'burst', ids: ['r1a', 'r1b'], target: RATE, count: 100 });
  let rate = await kernelStats('rate');
  // A bucket of 20 refilled at 10/s while the 100 datagrams went out; the
  // program admits at most one more per other CPU (2 CPUs here) when a
  // quiet client starts at the same instant on two CPUs.
  const most = 20 + Math.ceil((10 * burst.sendMs) / 1000) + 1;
  t.ok(burst.replies >= 20 && burst.replies <= most, `${burst.replies} of 100 datagrams admitted in ${burst.sendMs.toFixed(1)} ms (20 to ${most})`);
  t.equal(rate.overRate! + burst.replies, 100, `every datagram was echoed or counted over the rate (${rate.overRate} over)`);
  t.equal(await metric('fulcrum_service_refused_clients_total', 'service="rate",reason="rate"'), rate.overRate, 'counted where the relay counts them (refused clients, reason rate)');
  const other = await client({ op: 'burst', ids: ['r9'], target: RATE, count: 10 });
  t.equal(other.replies, 10, 'another client address has a bucket of its own');

  // udp.responses: 1: every request a new flow, its one reply byte-exact.
  t.same(await client({ op: 'echo', id: 'q', target: RESP, count: 5, size: 1400, waitMs: 1000 }), { exact: 5, timeouts: 0, wrong: 0 }, 'responses 1: 5 requests, 5 byte-exact replies');
  let resp = await kernelStats('resp');
  t.equal(resp.newFlows, 5, 'each request made a new flow');
  t.equal(resp.completedFlows, 5, 'each flow ended after its reply');
  const first = await port('q', RESP);
  const second = await port('q', RESP);
  t.ok(first !== undefined && second !== undefined && first !== second, `one client socket, a new NAT port per request (${first}, ${second})`);
  t.same((await client({ op: 'ask', id: 'q', target: RESP, text: 'x3:three', waitMs: 300 })).replies, ['x3:three'], 'a request answered three times: one reply reaches the client');
  t.ok(await waitFor(async () => (await kernelStats('resp')).repliesDropped === 2, 2_000), 'the other two are dropped and counted');
  resp = await kernelStats('resp');
  t.equal(resp.completedFlows, 8, '8 flows completed');
  t.equal(await metric('fulcrum_udp_flows_total', 'service="resp",event="completed"'), 8, 'counted where the relay counts completed flows');
  t.equal(await metric('fulcrum_udp_datagrams_dropped_total', 'service="resp"'), 2, 'and the dropped replies');

  // A reload: new lists, a new rate; flows of clients still admitted keep their NAT port.
  const ratePort = await port('r1a', RATE);
  writeFileSync(file, config(ACL_AFTER, 'datagram_rate: 1000, datagram_burst: 1000'));
  const reloads = log.split('reloaded:').length;
  fulcrum.kill('SIGHUP');
  t.ok(await waitFor(async () => log.split('reloaded:').length > reloads, 10_000), 'reloaded');
  t.equal(await port('a9', ACL), kept, `${C9}'s flow is kept across the reload (same NAT port)`);
  t.same(await client({ op: 'echo', id: 'a2', target: ACL, count: 3, size: 64, waitMs: 200 }), { exact: 0, timeouts: 3, wrong: 0 }, `${C2} now denied: its open flow ends`);
  t.same(await client({ op: 'echo', id: 'a3', target: ACL, count: 3, size: 64, waitMs: 1000 }), { exact: 3, timeouts: 0, wrong: 0 }, `${C3} now admitted`);
  t.same(await client({ op: 'echo', id: 'a8', target: ACL, count: 3, size: 64, waitMs: 200 }), { exact: 0, timeouts: 3, wrong: 0 }, `${C8} (in no allow prefix now) still refused`);
  acl = await kernelStats('acl');
  t.equal(acl.denied, 16, 'denied counted on, in the same maps (10 + 6)');
  t.equal(await metric('fulcrum_udp_datapath_kernel', 'service="acl"'), 1, 'acl stayed on the kernel datapath');
  t.equal(await port('r1a', RATE), ratePort, 'the rate-limited flow is kept across the reload');
  const after = await client({ op: 'burst', ids: ['r1a', 'r1b'], target: RATE, count: 100 });
  t.equal(after.replies, 100, 'the new rate (1000/s, burst 1000) admits all 100');
  rate = await kernelStats('rate');
  t.equal(rate.overRate, 100 - burst.replies, 'and counts none over the rate');
});

