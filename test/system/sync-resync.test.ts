// Failback with session resync, in network namespaces this test creates and
// removes (prefix fulresync-<pid>-): n1 (priority 150, preempt) serves a
// sticky TCP client and a UDP flow, is killed, n2 takes over and keeps them
// (shared state), n1 restarts with empty tables, asks n2 for its state and
// takes the VIP back only once taught: the client and the flow keep their
// backend through the failback. Without the resync a restarted n1 would send
// both to b1 (its first round-robin turn). Needs root.
import t from 'tap';
import { address, HaRig, removeStaleNamespaces, startFulcrum, startIdBackend, VIP, waitFor, waitForOutput, webServiceConfig } from './helpers/ha-rig.mjs';

const PREFIX = `fulresync-${process.pid}-`;
const UDP_PORT = 8081;
const CLIENT_PORT = 40000;

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root (network namespaces, raw sockets)');
  process.exit(0);
}

function nodeConfig(host: 'n1' | 'n2', keyFile: string): string {
  const peer = host === 'n1' ? 'n2' : 'n1';
  // UDP idle 2m: n2 refreshes its flow for peers only every 30 s of use, so
  // within this test n1 can learn it only from the resync.
  const game = `  - name: game
    protocol: udp
    listen: ${VIP}:${UDP_PORT}
    balance: roundrobin
    timeouts:
      idle: 2m
    backends:
      - address: ${address('b1')}:9001
      - address: ${address('b2')}:9001
`;
  return `${webServiceConfig(VIP, [address('b1'), address('b2')], '    balance: roundrobin\n    sticky:\n      key: source\n      timeout: 30m\n')}${game}ha:
  interface: eth0
  vrid: 51
  priority: ${host === 'n1' ? 150 : 100}
  virtual_ips: [${VIP}/24]
  advert_interval: 100ms
  preempt: true
  garp_delay: 0
sync:
  listen: ${address(host)}:7480
  peers: [${address(peer)}:7480]
  key_file: ${keyFile}
  interval: 50ms
`;
}

function startUdpIdBackend(rig: HaRig, host: string) {
  const script = `const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>s.send(${JSON.stringify(host)},r.port,r.address));s.bind(9001,'0.0.0.0',()=>console.log('ready'))`;
  return rig.spawn(host, process.execPath, ['-e', script]);
}

async function connectOnce(rig: HaRig, host: string): Promise<string> {
  const script = `const s=require('net').connect(8080,'${VIP}');let d='';s.setTimeout(2000,()=>{console.log('timeout');s.destroy()});s.on('data',x=>d+=x);s.on('end',()=>console.log(d.trim()||'empty'));s.on('error',e=>console.log(e.code))`;
  return (await rig.exec(host, process.execPath, ['-e', script])).stdout.trim();
}

/** One datagram to the UDP service from `host` (resent every 200 ms, at most 25 times): who answered. */
async function udpOnce(rig: HaRig, host: string): Promise<string> {
  const script = `const s=require('dgram').createSocket('udp4');let n=0;const go=()=>{if(n++>=25){console.log('timeout');process.exit(0)}s.send('ping',${UDP_PORT},'${VIP}')};s.on('message',m=>{console.log(m.toString());process.exit(0)});go();setInterval(go,200)`;
  return (await rig.exec(host, process.execPath, ['-e', script], { timeoutMs: 10_000 })).stdout.trim();
}

async function api(rig: HaRig, host: string, path: string): Promise<any> {
  const script = `fetch('http://127.0.0.1:8406${path}').then(r=>r.text()).then(b=>process.stdout.write(b))`;
  const { stdout } = await rig.exec(host, process.execPath, ['-e', script]);
  try {
    return JSON.parse(stdout);
  } catch {
    return undefined; // not listening yet
  }
}

t.before(() => removeStaleNamespaces('fulresync-'));

t.test('failback: a restarted n1 is taught by n2 before it preempts; the sticky client and the UDP flow keep their backend', async (t) => {
  const rig = await HaRig.create(PREFIX);
  t.teardown(() => rig.destroy());
  const key = rig.file('sync.key', 'a resync test key that is long enough\n');
  for (const b of [startIdBackend(rig, 'b1'), startIdBackend(rig, 'b2'), startUdpIdBackend(rig, 'b1'), startUdpIdBackend(rig, 'b2')]) {
    t.ok(await waitForOutput(b, 'ready', 15_000), 'backend ready');
  }
  let n1 = startFulcrum(rig, 'n1', nodeConfig('n1', key));
  const n2 = startFulcrum(rig, 'n2', nodeConfig('n2', key));
  t.ok(await waitFor(async () => (await rig.holds('n1')) && n2.stdout.includes('session sync started'), 15_000), 'n1 is Master, n2 runs sync');

  // x takes n1's first round-robin turns (b1), so the client's TCP
  // connections and its UDP flow go to b2, which a fresh node would not pick first.
  t.equal(await connectOnce(rig, 'x'), 'b1', 'another client gets b1 first');
  t.equal(await udpOnce(rig, 'x'), 'b1', 'and the first flow');
  t.equal(await connectOnce(rig, 'cl'), 'b2', 'the client gets b2');
  // The client's flow: one fixed 5-tuple, a datagram every 100 ms for the whole test; each reply logged.
  const stream = rig.spawn('cl', process.execPath, ['-e', `const s=require('dgram').createSocket('udp4');
s.on('message',(m)=>console.log(JSON.stringify({at:Date.now(),from:m.toString()})));
s.bind(${CLIENT_PORT},()=>{const timer=setInterval(()=>s.send('ping',${UDP_PORT},'${VIP}'),100);setTimeout(()=>{clearInterval(timer);s.close()},120000)});`]);
  const replies = (): Array<{ at: number; from: string }> => stream.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  t.ok(await waitFor(() => replies().length >= 3, 5_000), 'the flow gets replies');
  t.same([...new Set(replies().map((r) => r.from))], ['b2'], 'from b2');
  t.ok(await waitFor(async () => (await api(rig, 'n2', '/api/sync'))?.counters.recordsInstalled >= 4, 5_000, 50), "n2 installed n1's 2 sticky entries and 2 flows");

  process.kill(n1.child.pid!, 'SIGKILL');
  const killedAt = Date.now();
  t.ok(await waitFor(() => rig.holds('n2'), 5_000), 'n2 takes the VIP');
  t.equal(await connectOnce(rig, 'cl'), 'b2', 'on n2 the client still reaches b2');
  t.ok(await waitFor(() => replies().some((r) => r.at > killedAt + 500), 5_000), 'the flow is answered through n2');
  t.same([...new Set(replies().map((r) => r.from))], ['b2'], 'still by b2');
  await n1.exit;

  // n1 comes back with empty tables and a higher priority.
  const copiesBefore = (await api(rig, 'n2', '/api/sync'))?.counters;
  const vip = rig.watchVip('n1');
  t.teardown(() => vip.stop());
  const restartedAt = Date.now();
  n1 = startFulcrum(rig, 'n1', nodeConfig('n1', key));
  const taken = await waitFor(() => vip.addedAfter(restartedAt), 15_000);
  t.ok(taken, 'n1 takes the VIP back (preempt)');
  const sync = await waitFor(async () => await api(rig, 'n1', '/api/sync'), 5_000, 50);
  t.equal(sync?.resync.state, 'taught', `n1 was taught by n2 (${sync?.counters.dumpRecordsReceived} records)`);
  t.ok(sync?.resync.taughtAt <= (taken?.at ?? 0), `before it took the VIP (taught ${sync?.resync.taughtAfterMs} ms after sync started, VIP ${(taken?.at ?? 0) - restartedAt} ms after the restart)`);
  t.ok(sync?.counters.dumpRecordsReceived >= 4, 'the copy held at least both sticky entries and both flows');
  // Asked (or, had the request been lost, on n1's first message of its new incarnation): one copy.
  const copiesAfter = (await api(rig, 'n2', '/api/sync'))?.counters;
  const started = (c: any): number => (c?.resyncRequestsServed ?? 0) + (c?.dumpsUnprompted ?? 0);
  t.equal(started(copiesAfter) - started(copiesBefore), 1, 'n2 sent the restarted n1 one copy');
  t.equal((copiesAfter?.dumpsCompleted ?? 0) - (copiesBefore?.dumpsCompleted ?? 0), 1, 'and completed it');

  t.equal(await connectOnce(rig, 'cl'), 'b2', 'after the failback the sticky client still reaches b2');
  t.equal(await connectOnce(rig, 'cl'), 'b2', 'and stays there');
  const failbackAt = taken?.at ?? Date.now();
  t.ok(await waitFor(() => replies().filter((r) => r.at > failbackAt + 300).length >= 5, 5_000), 'the flow is answered after the failback');
  t.same([...new Set(replies().map((r) => r.from))], ['b2'], 'every reply of the flow, before, during and after, came from b2');
  const metrics = await rig.exec('n1', process.execPath, ['-e', "fetch('http://127.0.0.1:8406/metrics').then(r=>r.text()).then(t=>process.stdout.write(t))"]);
  const datagramsIn = Number(/fulcrum_udp_datagrams_total\{service="game",direction="in"\} (\d+)/.exec(metrics.stdout)?.[1] ?? 0);
  t.ok(datagramsIn >= 5, `the restarted n1 forwarded the flow (${datagramsIn} datagrams in)`);
  t.match(metrics.stdout, /fulcrum_sync_resync_taught 1/, '/metrics says n1 was taught');
  t.ok(await waitFor(async () => (await api(rig, 'n1', '/api/sync'))?.counters.recordsSent > 0, 5_000, 100), 'n1 shares what it serves now');
});
