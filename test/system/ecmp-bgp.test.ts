// Active-active behind ECMP: two Fulcrum nodes announce one VIP over BGP
// through their own BIRD to a router namespace running BIRD with multipath,
// in namespaces this test creates and removes (prefix fulecmp-<pid>-). Needs
// root and bird2; skipped otherwise.
//
// Bounds asserted are the protocol's (BFD 100ms x 3) plus a margin for a busy
// 2-core machine; bench/failover.mjs measures.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { probeResults, removeStaleNamespaces, startFulcrum, startIdBackend, startProbeClient, waitFor, waitForOutput } from './helpers/ha-rig.mjs';
import { CLIENT_SOURCES, ECMP_VIP, EcmpRig, ecmpNodeConfig, lbAddress, startUdpIdBackend } from './helpers/ecmp-rig.mjs';

const PREFIX = `fulecmp-${process.pid}-`;
/** BFD detects in 300ms; the rest is BIRD's route update and a loaded machine. */
const BFD_BOUND_MS = 1000;

if (process.getuid?.() !== 0 || spawnSync('bird', ['--version']).status !== 0) {
  t.plan(0, 'needs root and bird (network namespaces, BGP)');
  process.exit(0);
}

type Entry = { child: { pid: number }; stdout: string; stderr: string; exit: Promise<{ code: number | null; signal: string | null }>; exited: boolean };

interface Nodes {
  rig: EcmpRig;
  n1: Entry;
  n2: Entry;
}

async function startAll(t: Test): Promise<Nodes> {
  const rig = await EcmpRig.create(PREFIX);
  t.teardown(() => rig.destroy());
  const key = rig.file('sync.key', 'an ecmp test key, 32 bytes long!\n');
  const router = rig.startRouter();
  const backends = ['b1', 'b2'].flatMap((b) => [startIdBackend(rig, b), startUdpIdBackend(rig, b)]);
  for (const b of backends) t.ok(await waitForOutput(b, 'ready', 15_000), 'backend ready');
  const n1 = startFulcrum(rig, 'n1', ecmpNodeConfig(rig, 'n1', { keyFile: key })) as Entry;
  const n2 = startFulcrum(rig, 'n2', ecmpNodeConfig(rig, 'n2', { keyFile: key })) as Entry;
  const both = await waitFor(async () => (await rig.nextHops()).length === 2, 30_000, 50);
  if (!both) t.comment(`n1: ${n1.stdout.slice(-2000)} ${n1.stderr}\nrouter: ${router.stderr.slice(-2000)}`);
  t.ok(both, 'the router has a route to the VIP with both nodes as next hops');
  return { rig, n1, n2 };
}

/** GET or POST the node's admin API from inside its namespace. */
async function api(rig: EcmpRig, host: string, path: string, method = 'GET'): Promise<any> {
  const script = `fetch('http://127.0.0.1:8406${path}',{method:'${method}',headers:{'content-type':'application/json'}}).then(r=>r.text()).then(b=>process.stdout.write(b))`;
  const result = await rig.exec(host, process.execPath, ['-e', script]);
  return JSON.parse(result.stdout);
}

/** `count` TCP connections to VIP:8080 from the client's source addresses; the backend each reached, or an error. */
async function connectMany(rig: EcmpRig, count: number): Promise<string[]> {
  const script = `const net=require('net');const out=[];let done=0;
for(let i=0;i<${count};i++){const s=net.connect({port:8080,host:'${ECMP_VIP}',localAddress:${JSON.stringify(CLIENT_SOURCES)}[i%${CLIENT_SOURCES.length}]});
let d='';let fin=false;const end=(v)=>{if(fin)return;fin=true;out[i]=v;if(++done===${count})console.log(JSON.stringify(out))};
s.setTimeout(2000,()=>{s.destroy();end('timeout')});s.on('data',x=>d+=x);s.on('end',()=>end(d.trim()||'empty'));s.on('error',e=>end(e.code))}`;
  const result = await rig.exec('cl', process.execPath, ['-e', script], { timeoutMs: 15_000 });
  return JSON.parse(result.stdout) as string[];
}

/** UDP flows held open by one client process: `send` sends one datagram on every flow and prints the backend each reply came from. */
function udpFlows(rig: EcmpRig, flows: number) {
  const script = `const dgram=require('dgram');const rl=require('readline').createInterface({input:process.stdin});
const socks=[];let ready=0;
for(let i=0;i<${flows};i++){const s=dgram.createSocket('udp4');s.bind(0,${JSON.stringify(CLIENT_SOURCES)}[i%${CLIENT_SOURCES.length}],()=>{if(++ready===${flows})console.log('ready')});socks.push(s)}
rl.on('line',(round)=>{const got=new Array(${flows}).fill('lost');let n=0;
socks.forEach((s,i)=>{s.removeAllListeners('message');s.on('message',(m)=>{got[i]=m.toString().split('|')[0]});
const send=()=>s.send(round+':'+i,7000,'${ECMP_VIP}');send();setTimeout(()=>{if(got[i]==='lost')send()},300)});
setTimeout(()=>console.log(JSON.stringify({round,got})),900)});`;
  const child = rig.spawn('cl', process.execPath, ['-e', script], { stdin: true }) as Entry & { child: { stdin: NodeJS.WritableStream } };
  return {
    ready: () => waitForOutput(child, 'ready', 10_000),
    async round(name: string): Promise<string[]> {
      child.child.stdin.write(`${name}\n`);
      const line = await waitFor(() => child.stdout.split('\n').find((l) => l.includes(`"round":"${name}"`)), 10_000);
      return line ? (JSON.parse(line) as { got: string[] }).got : [];
    },
  };
}

t.before(() => removeStaleNamespaces('fulecmp-'));

t.test('both nodes announce; a dead node is dropped by BFD within 1s; new connections and UDP flows go on through the survivor', async (t) => {
  const { rig } = await startAll(t);

  const first = await connectMany(rig, 64);
  t.equal(first.filter((r) => r === 'b1' || r === 'b2').length, 64, 'all 64 connections from 16 sources are served');
  const [s1, s2] = await Promise.all([api(rig, 'n1', '/api/status'), api(rig, 'n2', '/api/status')]);
  const accepted = (s: any): number => s.services.find((x: any) => x.name === 'web').accepted;
  t.ok(accepted(s1) > 0 && accepted(s2) > 0, `the router's ECMP reaches both nodes (n1 ${accepted(s1)}, n2 ${accepted(s2)})`);
  t.equal(accepted(s1) + accepted(s2), 64, 'every connection was taken by one node');
  t.equal(s1.announce.vips[0].state, 'announced', 'n1 says it announces the VIP');
  // BIRD's view is read once a second.
  const established = await waitFor(async () => (await api(rig, 'n1', '/api/announce')).neighbors[0].info === 'Established', 5_000, 100);
  t.ok(established, 'n1 shows its BGP session established');

  const flows = udpFlows(rig, 48);
  t.ok(await flows.ready(), 'UDP client ready');
  const before = await flows.round('before');
  t.equal(before.filter((b) => b === 'b1' || b === 'b2').length, 48, 'every UDP flow has a backend');
  const game = async (host: string): Promise<number> => (await api(rig, host, '/api/services/game')).accepted;
  const [g1, g2] = [await game('n1'), await game('n2')];
  t.ok(g1 > 0 && g2 > 0, `UDP flows are spread over both nodes (n1 ${g1}, n2 ${g2})`);
  // Round robin on each node: without the shared assignments, n1's flows would land on n2's next pick.
  await waitFor(async () => (await api(rig, 'n2', '/api/sync')).counters.recordsInstalled >= g1, 3_000, 100);
  const synced = await api(rig, 'n2', '/api/sync');
  t.ok(synced.counters.recordsInstalled >= g1, `n2 installed n1's flow assignments (${synced.counters.recordsInstalled} records)`);

  // n1 "loses power": its link goes down, nothing is said to the router.
  const downAt = Date.now();
  await rig.exec('n1', 'ip', ['link', 'set', 'eth0', 'down']);
  const gone = await waitFor(async () => {
    const hops = await rig.nextHops();
    return hops.length === 1 && hops[0] === lbAddress('n2') ? Date.now() : undefined;
  }, 5_000, 10);
  t.ok(gone, 'the router drops n1');
  if (gone) t.ok(gone - downAt <= BFD_BOUND_MS, `within ${BFD_BOUND_MS}ms by BFD (${gone - downAt}ms)`);

  const after = await connectMany(rig, 48);
  t.equal(after.filter((r) => r === 'b1' || r === 'b2').length, 48, `every new connection succeeds through n2 (${after.filter((r) => r !== 'b1' && r !== 'b2').join(', ') || 'no failures'})`);
  const moved = await flows.round('after');
  const kept = moved.filter((b, i) => b === before[i]).length;
  t.equal(kept, 48, `every UDP flow keeps its backend across the move (${kept}/48; n1 had ${g1})`);
});

t.test('withdraw on admin drain, on no backend up and on SIGTERM; a graceful stop fails no connection', async (t) => {
  const { rig, n1 } = await startAll(t);
  const only = (host: string) => async () => {
    const hops = await rig.nextHops();
    return hops.length === 1 && hops[0] === lbAddress(host);
  };

  await api(rig, 'n2', '/api/announce/drain', 'POST');
  t.ok(await waitFor(only('n1'), 5_000, 20), 'admin drain: n2 withdraws');
  t.equal((await api(rig, 'n2', '/api/announce')).vips[0].reason, 'drained by admin', 'and says why');
  await api(rig, 'n2', '/api/announce/resume', 'POST');
  t.ok(await waitFor(async () => (await rig.nextHops()).length === 2, 10_000, 20), 'resume: announced again');

  for (const b of ['b1', 'b2']) await api(rig, 'n2', `/api/services/web/backends/${lbAddress(b)}:9000/maint`, 'POST');
  t.ok(await waitFor(only('n1'), 5_000, 20), 'no backend up for web on n2: n2 withdraws');
  t.match((await api(rig, 'n2', '/api/announce')).vips[0].reason, /service web: no backend up/, 'and says why');
  const metrics = await rig.exec('n2', process.execPath, ['-e', "fetch('http://127.0.0.1:8406/metrics').then(r=>r.text()).then(t=>process.stdout.write(t))"]);
  t.match(metrics.stdout, new RegExp(`fulcrum_announce_vip_announced\\{vip="${ECMP_VIP.replaceAll('.', '\\.')}"\\} 0`), 'metrics show the VIP withdrawn');
  for (const b of ['b1', 'b2']) await api(rig, 'n2', `/api/services/web/backends/${lbAddress(b)}:9000/enable`, 'POST');
  t.ok(await waitFor(async () => (await rig.nextHops()).length === 2, 10_000, 20), 'backends back: announced again');

  // A probe connects every 20ms while n1 stops gracefully.
  const probe = startProbeClient(rig as never, 'cl', { intervalMs: 20, count: 150, timeoutMs: 1000, target: `${ECMP_VIP}:8080` });
  await sleep(500);
  const stopAt = Date.now();
  process.kill(n1.child.pid, 'SIGTERM');
  t.ok(await waitFor(only('n2'), 5_000, 10), `SIGTERM: n1 withdraws (${Date.now() - stopAt}ms)`);
  const exit = await Promise.race([n1.exit, sleep(10_000).then(() => undefined)]);
  t.same(exit && exit.code, 0, 'n1 exits 0');
  await waitFor(() => probe.exited, 10_000);
  const results = probeResults(probe) as Array<{ ok: boolean; error?: string }>;
  const failed = results.filter((r) => !r.ok);
  t.ok(results.length >= 140, `the probe ran (${results.length} connects)`);
  t.equal(failed.length, 0, `no connect failed across the graceful stop (${failed.map((f) => f.error).join(', ')})`);
  t.match(n1.stdout, /announce: VIPs withdrawn/, 'n1 logged the withdrawal');
  t.match(n1.stdout, /bird exited/, "n1's BIRD stopped with it");
});
