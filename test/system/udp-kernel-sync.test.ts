// Session sync of the kernel UDP datapath's flow assignments: in network
// namespaces this test creates and removes (prefix fulks-<pid>-), two
// mirrored sites (client, balancer, four backends at the same addresses)
// whose balancers p1 and p2 share state over a link of their own. p1 runs
// `datapath: kernel`; its backend b2 is down while 40 client flows start, so
// none of them is on b2 there. p2 (on the relay, b2 up all along) is then
// asked by the same clients (same addresses and ports): each lands on the
// backend p1 gave it, not where p2's own placement would put a quarter of
// them (b2). Needs root and Linux >= 6.6 (tcx).
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { CLI, killTree, removeStaleNamespaces, run, waitFor } from './helpers/ha-rig.mjs';
import { must } from './helpers/kernel-nat-rig.js';

const PREFIX = `fulks-${process.pid}-`;
const CLIENT = '10.204.1.2';
const FRONT = '10.204.1.1';
const BACK = '10.204.2.1';
const BACKENDS = ['10.204.2.11', '10.204.2.12', '10.204.2.13', '10.204.2.14'];
const HELPERS = new URL('./helpers/', import.meta.url).pathname;
const PORTS = Array.from({ length: 40 }, (_, i) => 41000 + i);

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root (network namespaces, BPF)');
  process.exit(0);
}

const ns = (name: string): string => `${PREFIX}${name}`;

t.test('a peer places the kernel datapath\'s flows on the backends they have', { timeout: 60_000 }, async (t) => {
  await removeStaleNamespaces('fulks-');
  const names = ['c1', 'p1', 'b1', 'c2', 'p2', 'b2'];
  t.teardown(async () => {
    for (const name of names) await run('ip', ['netns', 'del', ns(name)]);
  });
  for (const name of names) {
    await must('ip', ['netns', 'add', ns(name)]);
    await must('ip', ['-n', ns(name), 'link', 'set', 'lo', 'up']);
  }
  const up = async (name: string, dev: string, cidrs: string[]): Promise<void> => {
    for (const cidr of cidrs) await must('ip', ['-n', ns(name), 'addr', 'add', cidr, 'dev', dev]);
    await must('ip', ['-n', ns(name), 'link', 'set', dev, 'up']);
  };
  for (const site of ['1', '2']) {
    await must('ip', ['-n', ns(`c${site}`), 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'front', 'netns', ns(`p${site}`)]);
    await must('ip', ['-n', ns(`b${site}`), 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'back', 'netns', ns(`p${site}`)]);
    await up(`c${site}`, 'eth0', [`${CLIENT}/24`]);
    await up(`p${site}`, 'front', [`${FRONT}/24`]);
    await up(`p${site}`, 'back', [`${BACK}/24`]);
    await up(`b${site}`, 'eth0', BACKENDS.map((ip) => `${ip}/24`));
    await must('ip', ['-n', ns(`c${site}`), 'route', 'add', 'default', 'via', FRONT]);
    await must('ip', ['-n', ns(`b${site}`), 'route', 'add', 'default', 'via', BACK]);
  }
  await must('ip', ['-n', ns('p1'), 'link', 'add', 'sync', 'type', 'veth', 'peer', 'name', 'sync', 'netns', ns('p2')]);
  await up('p1', 'sync', ['10.204.9.1/24']);
  await up('p2', 'sync', ['10.204.9.2/24']);

  const children: number[] = [];
  t.teardown(() => {
    for (const pid of children) killTree(pid, 'SIGKILL');
  });
  const start = (name: string, args: string[]): { out: () => string; write: (line: string) => void } => {
    const child = spawn('ip', ['netns', 'exec', ns(name), process.execPath, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    children.push(child.pid!);
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    return { out: () => out, write: (line) => child.stdin.write(line) };
  };
  const backends1 = start('b1', [join(HELPERS, 'udp-echo-backends.mjs'), ...BACKENDS.map((ip, i) => `${ip}:9000:b${i + 1}`)]);
  const backends2 = start('b2', [join(HELPERS, 'udp-echo-backends.mjs'), ...BACKENDS.map((ip, i) => `${ip}:9000:b${i + 1}`)]);
  t.ok(await waitFor(async () => backends1.out().includes('ready') && backends2.out().includes('ready'), 10_000), 'both sites\' backends are bound');

  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-udp-kernel-sync-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const key = join(dir, 'sync.key');
  writeFileSync(key, 'a sync test key that is long enough\n', { mode: 0o600 });
  const config = (self: string, peer: string, datapath: string): string => {
    const file = join(dir, `${self}.yaml`);
    writeFileSync(file, `workers: 1
log: {level: info}
admin: {listen: 127.0.0.1:8406}
sync:
  listen: ${self}:7480
  peers: [${peer}:7480]
  key_file: ${key}
  interval: 50ms
services:
  - name: game
    protocol: udp
    listen: ${FRONT}:7000
    datapath: ${datapath}
    timeouts: {idle: 30s}
    health_check: {type: udp, send: "WHO?", interval: 200ms, timeout: 200ms, rise: 1, fall: 1}
    backends: [${BACKENDS.map((ip) => `{address: "${ip}:9000"}`).join(', ')}]
`);
    return file;
  };
  const api = async (name: string, path: string): Promise<any> => {
    const script = `fetch('http://127.0.0.1:8406${path}').then(r=>r.text()).then(b=>process.stdout.write(b)).catch(()=>{})`;
    const body = (await run('ip', ['netns', 'exec', ns(name), process.execPath, '-e', script])).stdout;
    try {
      return JSON.parse(body);
    } catch {
      return undefined;
    }
  };
  // b2 of site 1 is down before the first client datagram.
  backends1.write('stop b2\n');
  const p1 = start('p1', [CLI, 'run', '-c', config('10.204.9.1', '10.204.9.2', 'kernel')]);
  const p2 = start('p2', [CLI, 'run', '-c', config('10.204.9.2', '10.204.9.1', 'user')]);
  const state = async (name: string, ip: string): Promise<string | undefined> => (await api(name, `/api/services/game/backends/${ip}:9000`))?.backend?.state;
  const kernel = await waitFor(async () => (await api('p1', '/api/services/game'))?.datapath?.datapath === 'kernel', 20_000);
  t.ok(kernel, `p1 runs game on the kernel datapath${kernel ? '' : `: ${p1.out().slice(-400)}`}`);
  const states = await waitFor(async () => (await state('p1', BACKENDS[1]!)) === 'down' && (await state('p2', BACKENDS[1]!)) === 'up', 10_000);
  t.ok(states, `b2 is down at p1, up at p2${states ? '' : `: ${p2.out().slice(-400)}`}`);

  // The same 40 client ports ask each site who answers.
  const ask = async (site: string, ports = PORTS): Promise<(string | null)[]> => {
    const script = `const d=require('dgram');const ports=${JSON.stringify(ports)};Promise.all(ports.map(p=>new Promise(r=>{const s=d.createSocket('udp4');let done=false;const end=(v)=>{if(!done){done=true;s.close();r(v)}};s.on('message',m=>end(m.toString()));s.bind(p,'${CLIENT}',()=>{s.send('WHO?',7000,'${FRONT}');setTimeout(()=>s.send('WHO?',7000,'${FRONT}'),700)});setTimeout(()=>end(null),1500)}))).then(v=>console.log(JSON.stringify(v)))`;
    return JSON.parse((await run('ip', ['netns', 'exec', ns(`c${site}`), process.execPath, '-e', script])).stdout || '[]');
  };
  const at1 = await ask('1');
  t.ok(at1.length === 40 && at1.every((id) => id !== null && id !== 'b2'), `site 1: 40 answers, none from the down b2 (${at1.join(' ')})`);
  t.ok(await waitFor(async () => ((await api('p2', '/api/sync'))?.counters?.recordsInstalled ?? 0) >= 40, 10_000, 100), 'p2 installed p1\'s 40 flow assignments');
  const at2 = await ask('2');
  t.same(at2, at1, 'site 2: every client on the backend p1 gave it');
  const fresh = await ask('2', PORTS.map((p) => p + 1000));
  t.ok(fresh.includes('b2'), `other clients (not synced) do reach b2 at site 2: what p2 would have done without the sync (${fresh.filter((id) => id === 'b2').length} of 40)`);
});
