// Upgrading a node that announces its VIP over BGP (`announce:`, its own
// BIRD) hands BIRD over instead of withdrawing, in network namespaces this
// test creates and removes (prefix fulupgb-<pid>-): n1 announces the VIP to
// the router r (BIRD); while a client connects through the VIP every 20 ms,
// n1 gets SIGUSR2 (first with a changed announce: block, which is refused).
// The router's route is sampled every 20 ms and its BGP
// counters are read before and after: no withdraw, no new update, the
// session never re-established. Needs root and bird2.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { killTree, probeResults, removeStaleNamespaces, run, startFulcrum, startIdBackend, startProbeClient, waitFor, waitForOutput } from './helpers/ha-rig.mjs';
import { ECMP_VIP, EcmpRig, ecmpNodeConfig, lbAddress, startUdpIdBackend } from './helpers/ecmp-rig.mjs';

const PREFIX = `fulupgb-${process.pid}-`;

if (process.getuid?.() !== 0 || spawnSync('bird', ['--version']).status !== 0) {
  t.plan(0, 'needs root and bird (network namespaces, BGP)');
  process.exit(0);
}

type Entry = { child: { pid: number }; stdout: string; stderr: string; exit: Promise<unknown>; exited: boolean };

function logs(entry: Entry): Array<Record<string, unknown>> {
  return entry.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function api(rig: EcmpRig, path: string): Promise<any> {
  const script = `fetch('http://127.0.0.1:8406${path}').then(r=>r.text()).then(b=>process.stdout.write(b))`;
  return JSON.parse((await rig.exec('n1', process.execPath, ['-e', script])).stdout);
}

/** The router's view of its session with n1: since when it is up, and the route updates and withdraws received. */
async function routerView(rig: EcmpRig): Promise<{ since: string; updates: number; withdraws: number }> {
  const { stdout } = await rig.exec('r', 'birdc', ['-s', rig.routerSocket, 'show', 'protocols', 'all', 'n1']);
  const row = /^n1\s+BGP\s+\S+\s+(\S+)\s+(\S+(?: \S+)?)\s+Established/m.exec(stdout);
  const updates = /Import updates:\s+(\d+)/.exec(stdout);
  const withdraws = /Import withdraws:\s+(\d+)/.exec(stdout);
  return { since: row ? `${row[1]} ${row[2]}` : `not established: ${stdout}`, updates: Number(updates?.[1] ?? -1), withdraws: Number(withdraws?.[1] ?? -1) };
}

function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

t.before(() => removeStaleNamespaces('fulupgb-'));

t.test('upgrade of an announcing node: BIRD is handed over, the route never leaves the router, no connection fails', async (t) => {
  const rig = await EcmpRig.create(PREFIX);
  t.teardown(() => rig.destroy());
  let newPid: number | undefined;
  t.teardown(() => {
    if (newPid !== undefined) killTree(newPid);
  });
  rig.startRouter(['n1']);
  for (const b of ['b1', 'b2'].flatMap((h) => [startIdBackend(rig, h), startUdpIdBackend(rig, h)])) t.ok(await waitForOutput(b, 'ready', 15_000), 'backend ready');
  const n1 = startFulcrum(rig, 'n1', ecmpNodeConfig(rig, 'n1', { sync: false })) as Entry;
  const configFile = (/"config":"([^"]+)"/.exec(await waitFor(() => n1.stdout.split('\n').find((l) => l.includes('"msg":"starting"')), 15_000) ?? '') ?? [])[1]!;
  t.ok(await waitFor(async () => (await rig.nextHops()).join() === lbAddress('n1'), 30_000, 50), 'the router routes the VIP to n1');
  t.ok(await waitFor(async () => (await routerView(rig)).withdraws === 0, 10_000, 100), "the router's session with n1 is up");
  const before = await routerView(rig);
  const birdBefore = (await api(rig, '/api/announce')).bird;
  t.ok(birdBefore.running && birdBefore.pid > 0, `n1 runs BIRD (watchdog pid ${birdBefore.pid})`);

  // A changed announce: block cannot run on this BIRD: the upgrade is refused and nothing moves.
  const original = readFileSync(configFile, 'utf8');
  writeFileSync(configFile, original.replace('announce:\n', 'announce:\n  hold_time: 30s\n'));
  process.kill(n1.child.pid, 'SIGUSR2');
  const refused = await waitFor(() => logs(n1).find((l) => typeof l.msg === 'string' && l.msg.startsWith('upgrade failed, this process keeps serving')), 30_000);
  t.match(String(refused?.msg), /the announce: block changed .*restart Fulcrum to apply it/, `a changed announce: block is refused: ${String(refused?.msg)}`);
  writeFileSync(configFile, original);
  t.same(await routerView(rig), before, 'the router saw nothing of it');
  t.equal((await api(rig, '/api/announce')).bird.pid, birdBefore.pid, 'the same BIRD runs');

  // The route, sampled every 20 ms until the old process is gone.
  let samples = 0;
  let missing = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const hops = await rig.nextHops();
      samples++;
      if (hops.join() !== lbAddress('n1')) missing++;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const probe = startProbeClient(rig as never, 'cl', { intervalMs: 20, count: 1500, timeoutMs: 1000, target: `${ECMP_VIP}:8080` }) as Entry;
  await new Promise((r) => setTimeout(r, 500));
  process.kill(n1.child.pid, 'SIGUSR2');
  const ready = await waitFor(() => logs(n1).find((l) => l.msg === 'upgrade: the new process is ready and accepting; this one stops accepting and drains'), 30_000);
  t.ok(ready, 'the new process is ready');
  newPid = ready?.newPid as number | undefined;
  t.ok(await waitFor(() => n1.exited, 15_000), 'the old process drained and exited');
  await new Promise((r) => setTimeout(r, 1000));
  sampling = false;
  await sampler;
  if (!probe.exited) killTree(probe.child.pid, 'SIGTERM');
  await probe.exit;

  const results = probeResults(probe) as Array<{ at: number; ok: boolean; error?: string }>;
  const afterReady = results.filter((r) => r.at > Date.parse(String(ready?.time))).length;
  t.ok(results.length >= 100 && afterReady >= 20, `the probe connected ${results.length} times, ${afterReady} after the handover`);
  t.same(results.filter((r) => !r.ok).map((r) => r.error), [], '0 refused, 0 failed across the upgrade');
  t.equal(missing, 0, `the router had the route in all ${samples} samples`);
  const after = await routerView(rig);
  t.equal(after.since, before.since, `the BGP session was never re-established (up since ${before.since})`);
  t.equal(after.withdraws, before.withdraws, `no withdraw reached the router (${after.withdraws})`);
  t.equal(after.updates, before.updates, `no new update either (${after.updates})`);
  const announce = await api(rig, '/api/announce');
  t.equal(announce.bird.pid, birdBefore.pid, 'the new process runs the same BIRD');
  t.ok(announce.bird.running && announce.bird.reachable, 'and reaches it');
  t.equal(announce.vips[0].state, 'announced', 'the VIP is announced');
  t.equal(announce.counters.withdrawals, 0, 'the new process withdrew nothing');
  t.ok(n1.stdout.includes('bird taken over from the previous process'), 'the new process says it took BIRD over');
  t.notOk(n1.stdout.includes('"msg":"bird exited"'), 'BIRD never exited');

  // A second upgrade hands on the BIRD this process adopted (its pipes, not its child).
  const second = newPid!;
  process.kill(second, 'SIGUSR2');
  const again = await waitFor(() => logs(n1).find((l) => l.pid === second && l.msg === 'upgrade: the new process is ready and accepting; this one stops accepting and drains'), 30_000);
  t.ok(again, 'a second upgrade: the third process is ready');
  newPid = again?.newPid as number | undefined;
  t.ok(await waitFor(() => !alive(second), 15_000), 'the second process exited');
  t.equal((await api(rig, '/api/announce')).bird.pid, birdBefore.pid, 'the third process runs the same BIRD');
  const third = await routerView(rig);
  t.same([third.since, third.withdraws, third.updates], [before.since, before.withdraws, before.updates], 'the router saw nothing of either upgrade');

  // The newest process holds BIRD's watchdog: its stop withdraws and stops BIRD.
  process.kill(newPid!, 'SIGTERM');
  t.ok(await waitFor(async () => (await rig.nextHops()).length === 0, 10_000, 50), 'SIGTERM to the new process: the route is withdrawn');
  t.ok(await waitFor(() => !alive(newPid!) && !alive(birdBefore.pid), 10_000, 50), 'the newest process and BIRD (with its watchdog) are gone');
  const leftover = await run('ip', ['netns', 'pids', rig.ns('n1')]);
  const comm = (pid: string): string => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      return '';
    }
  };
  t.same(leftover.stdout.trim().split('\n').filter((pid: string) => pid !== '' && comm(pid) === 'bird'), [], 'no BIRD left in n1');
});
