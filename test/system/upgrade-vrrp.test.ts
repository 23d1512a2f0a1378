// Upgrading a VRRP Master (`ha:` with `sync:` and sticky clients) hands its
// state over instead of re-electing, in network namespaces this test creates
// and removes (prefix fulupg-<pid>-): Fulcrum on n1 is Master (priority 200),
// keepalived on n2 its Backup (100, advert_int 0.1 s: it takes over after
// 3 x 100 ms + skew, 361 ms, without an advert). While a client connects
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
import { masterDownIntervalMs } from '../../src/ha/state-machine.js';

const PREFIX = `fulupg-${process.pid}-`;
const WATCH = join(ROOT, 'test/system/helpers/vrrp-watch.py');
/** keepalived's Master_Down_Interval at priority 100 with 100 ms adverts. */
const PEER_DOWN_MS = masterDownIntervalMs(100, 100);

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
  for (const b of [startIdBackend(rig, 'b1'), startIdBackend(rig, 'b2')]) t.ok(await waitForOutput(b, 'ready', 15_000), 'backend ready');
  const n1 = startFulcrum(
    rig,
    'n1',
    fulcrumConfig({
      priority: 200,
      serviceKeys: '    balance: roundrobin\n    sticky:\n      key: source\n      timeout: 10m\n',
      extra: `sync:\n  listen: ${address('n1')}:7480\n  peers: [${address('n2')}:7480]\n  key_file: ${key}\n  interval: 50ms\n`,
    }),
  ) as Entry;
  // n1 first: alone, it is Master after its Master_Down_Interval; keepalived then starts as Backup.
  t.ok(await waitFor(() => rig.holds('n1'), 20_000), 'n1 is Master');
  const ka = startKeepalived(rig, 'n2', keepalivedConfig({ priority: 100 })) as Entry;
  const settled = await waitFor(async () => (await rig.holds('n1')) && /Entering BACKUP STATE/.test(ka.stdout + ka.stderr), 15_000);
  if (!settled) t.comment(`n1: ${n1.stdout.slice(-3000)} ${n1.stderr}\nkeepalived: ${(ka.stdout + ka.stderr).slice(-2000)}`);
  t.ok(settled, 'Fulcrum (200) is Master, keepalived (100) Backup');

  // x takes the first round-robin turn (b1), so cl sticks to b2: a fresh process would send cl to b1.
  t.equal(await connectOnce(rig, 'x'), 'b1', 'another client gets b1 first');
  t.equal(await connectOnce(rig, 'cl'), 'b2', 'the client gets b2');

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
  let gap = 0;
  let gapAt = 0;
  for (let i = 1; i < adverts.length; i++) {
    if (adverts[i]!.at - adverts[i - 1]!.at > gap) {
      gap = adverts[i]!.at - adverts[i - 1]!.at;
      gapAt = adverts[i - 1]!.at;
    }
  }
  if (gap >= PEER_DOWN_MS) t.comment(`gap from ${new Date(gapAt).toISOString()}; keepalived: ${(ka.stdout + ka.stderr).slice(kaBefore)}`);
  t.ok(gap < PEER_DOWN_MS, `longest gap between n1's adverts ${gap} ms < the peer's Master_Down_Interval ${PEER_DOWN_MS.toFixed(0)} ms`);
  t.comment(`upgrade: longest advert gap ${gap} ms, ${adverts.length} adverts`);
  t.same(n1Vip.events, [], 'the VIP never left n1');
  t.same(n2Vip.events, [], 'the VIP never reached n2');
  t.notMatch((ka.stdout + ka.stderr).slice(kaBefore), /Entering MASTER STATE|priority 0/, 'keepalived logged no transition');
  t.ok(await rig.holds('n1'), 'n1 holds the VIP');
  t.notOk(alive(n1.child.pid), 'the old pid is gone');
});
