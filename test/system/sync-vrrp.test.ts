// Session state shared between a VRRP pair (sync:), in network namespaces
// this test creates and removes (prefix fulsync-<pid>-): a sticky client keeps
// its backend when the Backup takes over, and hostile, malformed and replayed
// sync datagrams are rejected, counted by reason, and change nothing. Needs root.
import t from 'tap';
import { join } from 'node:path';
import { address, fulcrumConfig, HaRig, removeStaleNamespaces, ROOT, startFulcrum, startIdBackend, VIP, waitFor, waitForOutput } from './helpers/ha-rig.mjs';

const PREFIX = `fulsync-${process.pid}-`;
const SENDER = join(ROOT, 'test/system/helpers/sync-send.mjs');

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root (network namespaces, raw sockets)');
  process.exit(0);
}

function nodeConfig(host: 'n1' | 'n2', keyFile: string): string {
  const peer = host === 'n1' ? 'n2' : 'n1';
  return fulcrumConfig({
    priority: host === 'n1' ? 200 : 100,
    serviceKeys: '    balance: roundrobin\n    sticky:\n      key: source\n      timeout: 10m\n',
    extra: `sync:\n  listen: ${address(host)}:7480\n  peers: [${address(peer)}:7480]\n  key_file: ${keyFile}\n  interval: 50ms\n`,
  });
}

async function connectOnce(rig: HaRig, host: string): Promise<string> {
  const script = `const s=require('net').connect(8080,'${VIP}');let d='';s.setTimeout(2000,()=>{console.log('timeout');s.destroy()});s.on('data',x=>d+=x);s.on('end',()=>console.log(d.trim()||'empty'));s.on('error',e=>console.log(e.code))`;
  return (await rig.exec(host, process.execPath, ['-e', script])).stdout.trim();
}

async function api(rig: HaRig, host: string, path: string): Promise<any> {
  const script = `fetch('http://127.0.0.1:8406${path}').then(r=>r.text()).then(b=>process.stdout.write(b))`;
  return JSON.parse((await rig.exec(host, process.execPath, ['-e', script])).stdout);
}

t.before(() => removeStaleNamespaces('fulsync-'));

t.test('a sticky client keeps its backend across a VRRP failover; hostile sync datagrams change nothing', async (t) => {
  const rig = await HaRig.create(PREFIX);
  t.teardown(() => rig.destroy());
  const key = rig.file('sync.key', 'a sync test key that is long enough\n');
  for (const b of [startIdBackend(rig, 'b1'), startIdBackend(rig, 'b2')]) t.ok(await waitForOutput(b, 'ready', 15_000), 'backend ready');
  const n1 = startFulcrum(rig, 'n1', nodeConfig('n1', key));
  const n2 = startFulcrum(rig, 'n2', nodeConfig('n2', key));
  t.ok(await waitFor(async () => (await rig.holds('n1')) && n2.stdout.includes('session sync started'), 15_000), 'n1 is Master, n2 runs sync');

  // x takes n1's first round-robin turn (b1), so cl is sent to b2, which
  // n2, left to itself, would not pick first.
  t.equal(await connectOnce(rig, 'x'), 'b1', 'another client gets b1 first');
  t.equal(await connectOnce(rig, 'cl'), 'b2', 'the client gets b2');
  t.equal(await connectOnce(rig, 'cl'), 'b2', 'and sticks to it on n1');
  t.ok(await waitFor(async () => (await api(rig, 'n2', '/api/sync')).counters.recordsInstalled >= 2, 5_000, 50), "n2 installed n1's sticky entries");

  process.kill(n1.child.pid, 'SIGKILL');
  t.ok(await waitFor(() => rig.holds('n2'), 5_000), 'n2 takes the VIP');
  t.equal(await connectOnce(rig, 'cl'), 'b2', 'after the failover the client still reaches b2');
  t.equal(await connectOnce(rig, 'cl'), 'b2', 'and stays there');

  // The dead n1's address is a configured peer: the hostile sender uses it.
  const sender = await rig.exec('n1', process.execPath, [SENDER, key, address('n2'), '7480', 'web', `${address('b1')}:9000`, address('cl')], { timeoutMs: 30_000 });
  t.same(JSON.parse(sender.stdout || '{}'), { sent: 1101 }, 'sender sent 1000 malformed, 1 valid and 100 replayed datagrams');
  const status = await waitFor(async () => {
    const s = await api(rig, 'n2', '/api/sync');
    const total = Object.values(s.rejected as Record<string, number>).reduce((a, b) => a + b, 0);
    return total >= 1100 ? s : undefined;
  }, 5_000, 100);
  t.ok(status, 'every hostile datagram was counted');
  const rejected = status?.rejected ?? {};
  const total = Object.values(rejected as Record<string, number>).reduce((a, b) => a + b, 0);
  t.equal(total, 1100, `1100 rejected (${JSON.stringify(rejected)})`);
  t.equal(rejected.badVersion, 250, 'bad version: 250');
  t.equal(rejected.badMac, 250, 'wrong key: 250');
  t.equal(rejected.stale, 250, 'an hour old: 250');
  t.equal(rejected.replay, 100, 'replays: 100');
  t.ok(rejected.truncated + rejected.tooLarge + rejected.badMagic + rejected.badLength === 250, 'random bytes: 250 (truncated, too large, bad magic or bad length)');
  t.equal(status?.counters.recordsUnknown, 1, 'the one valid message named an unknown service: counted, not applied');
  t.equal(await connectOnce(rig, 'cl'), 'b2', 'the client still reaches b2 (the hostile records named its entry and b1)');
  const metrics = await rig.exec('n2', process.execPath, ['-e', "fetch('http://127.0.0.1:8406/metrics').then(r=>r.text()).then(t=>process.stdout.write(t))"]);
  t.match(metrics.stdout, /fulcrum_sync_rejected_total\{reason="badMac"\} 250/, '/metrics counts rejections by reason');
});
