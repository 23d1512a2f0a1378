// Upgrading a VRRP Master (`ha:` with `sync:` and sticky clients) hands its
// state over instead of re-electing, in network namespaces this test creates
// and removes (prefix fulupg-<pid>-): Fulcrum on n1 is Master (priority 200),
// keepalived on n2 its Backup (100, advert_int 0.2 s: it takes over after
// 3 x 200 ms + skew, 722 ms, without an advert; 0.2 s rather than 0.1 s so
// that a 2-core machine shared with other tests, which can stall a process
// for 300-600 ms whether it upgrades or not, does not flap the pair by
// itself). While a client connects
// through the VIP every 20 ms, n1 gets SIGUSR2. A raw-socket watcher on n2
// records every VRRP advert and every ARP from the VIP. Needs root, keepalived
// and python3.
import t from 'tap';
import { execFileSync } from 'node:child_process';

import { join } from 'node:path';
import {
  address,
  fulcrumConfig,
  HaRig,
  keepalivedConfig,
  killTree,
  probeResults,
  removeStaleNamespaces,
  ROOT,
  startFulcrum,
  startIdBackend,
  startKeepalived,
  startProbeClient,
  VIP,
  waitFor,
  waitForOutput,
} from './helpers/ha-rig.mjs';
import { startUdpIdBackend } from './helpers/ecmp-rig.mjs';
import { masterDownIntervalMs } from '../../src/ha/state-machine.js';

const PREFIX = `fulupg-${process.pid}-`;
const WATCH = join(ROOT, 'test/system/helpers/vrrp-watch.py');
const ADVERT_MS = 200;
/** keepalived's Master_Down_Interval at priority 100. */
const PEER_DOWN_MS = masterDownIntervalMs(100, ADVERT_MS);

function has(command: string, args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

if (process.getuid?.() !== 0 || !has('keepalived', ['--version']) || !has('python3', ['--version'])) {
  t.plan(0, 'needs root, keepalived and python3');
  process.exit(0);
}

type Entry = { child: { pid: number }; stdout: string; stderr: string; exit: Promise<unknown>; exited: boolean };
type Seen = { at: number; kind: 'vrrp' | 'arp'; src?: string; prio?: number; op?: number };

function logs(entry: Entry): Array<Record<string, unknown>> {
  return entry.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function connectOnce(rig: HaRig, host: string): Promise<string> {
  const script = `const s=require('net').connect(8080,'${VIP}');let d='';s.setTimeout(2000,()=>{console.log('timeout');s.destroy()});s.on('data',x=>d+=x);s.on('end',()=>console.log(d.trim()||'empty'));s.on('error',e=>console.log(e.code))`;
  return (await rig.exec(host, process.execPath, ['-e', script])).stdout.trim();
}

/** UDP flows held open by one client process in `host`: each round sends one datagram on every flow
 * (again after 300 ms if unanswered) and gives the backend each reply came from. */
function udpFlows(rig: HaRig, host: string, flows: number) {
  const script = `const dgram=require('dgram');const rl=require('readline').createInterface({input:process.stdin});
const socks=[];let ready=0;
for(let i=0;i<${flows};i++){const s=dgram.createSocket('udp4');s.bind(0,()=>{if(++ready===${flows})console.log('ready')});socks.push(s)}
rl.on('line',(round)=>{const got=new Array(${flows}).fill('lost');
socks.forEach((s,i)=>{s.removeAllListeners('message');s.on('message',(m)=>{got[i]=m.toString().split('|')[0]});
const send=()=>s.send(round+':'+i,7000,'${VIP}');send();setTimeout(()=>{if(got[i]==='lost')send()},300)});
setTimeout(()=>console.log(JSON.stringify({round,got})),900)});`;
  const child = rig.spawn(host, process.execPath, ['-e', script], { stdin: true }) as Entry & { child: { stdin: NodeJS.WritableStream } };
  return {
    ready: () => waitForOutput(child, 'ready', 10_000),
    async round(name: string): Promise<string[]> {
      child.child.stdin.write(`${name}\n`);
      const line = await waitFor(() => child.stdout.split('\n').find((l) => l.includes(`"round":"${name}"`)), 10_000);
      return line ? (JSON.parse(line) as { got: string[] }).got : [];
    },
  };
}

async function api(rig: HaRig, host: string, path: string): Promise<any> {
  const script = `fetch('http://127.0.0.1:8406${path}').then(r=>r.text()).then(b=>process.stdout.write(b))`;
  return JSON.parse((await rig.exec(host, process.execPath, ['-e', script])).stdout);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^\d+ \(.*\) Z /.test(execFileSync('cat', [`/proc/${pid}/stat`], { encoding: 'utf8' }));
  } catch {
    return false;
  }
}

t.before(() => removeStaleNamespaces('fulupg-'));

t.test('upgrade of a VRRP Master: it stays Master, no flap, no GARP, no failed connection, sticky clients keep their backend', async (t) => {
  const rig = await HaRig.create(PREFIX);
  t.teardown(() => rig.destroy());
  let newPid: number | undefined;
  t.teardown(() => {
    if (newPid !== undefined) killTree(newPid);
  });
  const key = rig.file('sync.key', 'an upgrade test key, long enough\n');
  for (const b of ['b1', 'b2'].flatMap((h) => [startIdBackend(rig, h), startUdpIdBackend(rig, h)])) t.ok(await waitForOutput(b, 'ready', 15_000), 'backend ready');
  const config = fulcrumConfig({
    priority: 200,
    advertInterval: `${ADVERT_MS}ms`,
    serviceKeys: '    balance: roundrobin\n    sticky:\n      key: source\n      timeout: 10m\n',
    extra: `sync:\n  listen: ${address('n1')}:7480\n  peers: [${address('n2')}:7480]\n  key_file: ${key}\n  interval: 50ms\n`,
  }).replace(
    'ha:\n',
    `  - name: game\n    protocol: udp\n    listen: ${VIP}:7000\n    balance: roundrobin\n    timeouts:\n      idle: 60s\n    backends:\n      - address: ${address('b1')}:7001\n      - address: ${address('b2')}:7001\nha:\n`,
  );
  const n1 = startFulcrum(rig, 'n1', config) as Entry;
  // n1 first: alone, it is Master after its Master_Down_Interval; keepalived then starts as Backup.
  t.ok(await waitFor(() => rig.holds('n1'), 20_000), 'n1 is Master');
  const ka = startKeepalived(rig, 'n2', keepalivedConfig({ priority: 100, advertInterval: ADVERT_MS / 1000 })) as Entry;
  const settled = await waitFor(async () => (await rig.holds('n1')) && /Entering BACKUP STATE/.test(ka.stdout + ka.stderr), 15_000);
  if (!settled) t.comment(`n1: ${n1.stdout.slice(-3000)} ${n1.stderr}\nkeepalived: ${(ka.stdout + ka.stderr).slice(-2000)}`);
  t.ok(settled, 'Fulcrum (200) is Master, keepalived (100) Backup');

  // x takes the first round-robin turn (b1), so cl sticks to b2: a fresh process would send cl to b1.
  t.equal(await connectOnce(rig, 'x'), 'b1', 'another client gets b1 first');
  t.equal(await connectOnce(rig, 'cl'), 'b2', 'the client gets b2');
  // UDP: 8 flows from x, then 8 from cl, so cl's flows are not where a fresh round robin would put them.
  const [xFlows, clFlows] = [udpFlows(rig, 'x', 1), udpFlows(rig, 'cl', 8)];
  t.ok((await xFlows.ready()) && (await clFlows.ready()), 'UDP clients ready');
  t.same(await xFlows.round('first'), ['b1'], 'another UDP flow gets b1 first');
  const flowsBefore = await clFlows.round('before');
  t.same(flowsBefore, ['b2', 'b1', 'b2', 'b1', 'b2', 'b1', 'b2', 'b1'], 'the 8 UDP flows alternate from b2');

  const watch = rig.spawn('n2', 'python3', [WATCH, 'eth0', VIP]) as Entry;
  t.ok(await waitForOutput(watch, 'ready', 5_000), 'the watcher listens on n2');
  const n1Vip = rig.watchVip('n1');
  const n2Vip = rig.watchVip('n2');
  const kaBefore = (ka.stdout + ka.stderr).length;

  // A connection every 20 ms (at most 1500) from before the upgrade until a second after the old process exited.
  const probe = startProbeClient(rig, 'cl', { intervalMs: 20, count: 1500, timeoutMs: 1000 }) as Entry;
  await new Promise((r) => setTimeout(r, 500));
  const upgradeAt = Date.now();
  process.kill(n1.child.pid, 'SIGUSR2');
  const ready = await waitFor(() => logs(n1).find((l) => l.msg === 'upgrade: the new process is ready and accepting; this one stops accepting and drains'), 30_000);
  t.ok(ready, 'the new process is ready');
  newPid = ready?.newPid as number | undefined;
  t.ok(newPid !== undefined && newPid !== n1.child.pid, `new pid ${newPid}`);
  t.ok(await waitFor(() => n1.exited, 15_000), 'the old process drained and exited');
  await new Promise((r) => setTimeout(r, 1000));
  // Stopped by its pid; an attempt in flight is simply not reported.
  if (!probe.exited) killTree(probe.child.pid, 'SIGTERM');
  await probe.exit;
  const results = probeResults(probe) as Array<{ at: number; ok: boolean; reply?: string; error?: string }>;
  const afterReady = results.filter((r) => r.at > Date.parse(String(ready?.time))).length;
  t.ok(results.length >= 100 && afterReady >= 20, `the probe connected ${results.length} times, ${afterReady} after the handover`);
  t.same(results.filter((r) => !r.ok).map((r) => r.error), [], '0 refused, 0 failed across the upgrade');
  t.same([...new Set(results.map((r) => r.reply))], ['b2'], 'every connection of the sticky client reached b2');

  // The new process serves, as Master, with the sticky entry it was handed.
  const ha = await api(rig, 'n1', '/api/ha');
  t.equal(ha.state, 'master', 'the new process is Master');
  t.equal(ha.counters.garpSent, 0, 'the new process sent no gratuitous ARP');
  t.equal(ha.counters.priorityZeroSent, 0, 'and no priority-0 advert');
  const status = await api(rig, 'n1', '/api/status');
  t.equal(status.pid, newPid, 'the admin API answers from the new process');
  t.ok(status.services[0].accepted > 0, `the new process accepted ${status.services[0].accepted} of the connections`);
  t.equal(await connectOnce(rig, 'cl'), 'b2', 'after the old process is gone the client still reaches b2');
  t.equal(await connectOnce(rig, 'x'), 'b1', 'and the other client b1');
  const flowsAfter = await clFlows.round('after');
  t.same(flowsAfter, flowsBefore, 'every UDP flow keeps its backend across the upgrade');
  const sync = await api(rig, 'n1', '/api/sync');
  t.equal(sync.resync.state, 'taught', `session sync was taught by ${sync.resync.taughtBy}`);

  // What the link saw: adverts from n1 all along, never priority 0, no ARP from the VIP.
  watch.child.pid && killTree(watch.child.pid, 'SIGTERM');
  n1Vip.stop();
  n2Vip.stop();
  const seen = watch.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Seen);
  const adverts = seen.filter((s) => s.kind === 'vrrp' && s.src === address('n1'));
  t.ok(adverts.length > 20, `${adverts.length} adverts from n1 seen`);
  t.same(seen.filter((s) => s.kind === 'vrrp' && s.prio === 0), [], 'no priority-0 advert');
  t.same(seen.filter((s) => s.kind === 'vrrp' && s.src === address('n2')), [], 'keepalived never advertised (never Master)');
  t.same(seen.filter((s) => s.kind === 'arp' && s.at >= upgradeAt), [], 'no ARP from the VIP after the upgrade began (no GARP burst)');
  // The handover: from the old process's last advert to the new one's first.
  const step = (msg: string): number => Date.parse(String(logs(n1).find((l) => l.msg === msg)?.time));
  const frozenAt = step('VRRP instance handed over to the new process');
  const resumedAt = step('VRRP instance taken over from the previous process: Master');
  const lastOld = adverts.filter((a) => a.at <= resumedAt).at(-1);
  const firstNew = adverts.find((a) => a.at > resumedAt);
  t.ok(lastOld !== undefined && firstNew !== undefined, 'adverts seen on both sides of the handover');
  const handoverGap = (firstNew?.at ?? Infinity) - (lastOld?.at ?? 0);
  t.ok(handoverGap < ADVERT_MS, `the handover's gap in adverts is ${handoverGap} ms (${resumedAt - frozenAt} ms from freeze to resume): less than one interval, far below the peer's ${PEER_DOWN_MS.toFixed(0)} ms`);
  let gap = 0;
  for (let i = 1; i < adverts.length; i++) gap = Math.max(gap, adverts[i]!.at - adverts[i - 1]!.at);
  t.ok(gap < PEER_DOWN_MS, `longest gap between n1's adverts over the whole test ${gap} ms < the peer's Master_Down_Interval`);
  t.same(n1Vip.events, [], 'the VIP never left n1');
  t.same(n2Vip.events, [], 'the VIP never reached n2');
  t.notMatch((ka.stdout + ka.stderr).slice(kaBefore), /Entering MASTER STATE|priority 0/, 'keepalived logged no transition');
  t.ok(await rig.holds('n1'), 'n1 holds the VIP');
  t.notOk(alive(n1.child.pid), 'the old pid is gone');
});
