// Interoperability: Fulcrum and keepalived (Debian's, vrrp_version 3) as the
// two peers of one virtual router, each in turn as Master. Both must agree on
// one Master, the VIP moves both ways, and is never held by both (both
// namespaces sampled every ~20ms). keepalived runs in the foreground with its
// own config and pid files in the rig's temp dir. Needs root and keepalived.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import {
  address,
  fulcrumConfig,
  HaRig,
  keepalivedConfig,
  killTree,
  probeResults,
  removeStaleNamespaces,
  startFulcrum,
  startIdBackend,
  startKeepalived,
  startProbeClient,
  waitFor,
  waitForOutput,
} from './helpers/ha-rig.mjs';

const PREFIX = `fulka-${process.pid}-`;

function hasKeepalived(): boolean {
  try {
    execFileSync('keepalived', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

if (process.getuid?.() !== 0 || !hasKeepalived()) {
  t.plan(0, 'needs root and keepalived (apt-get install keepalived)');
  process.exit(0);
}

type Entry = { child: { pid: number }; stdout: string; stderr: string; exit: Promise<unknown> };

async function rigWithBackends(t: Test): Promise<HaRig> {
  const rig = await HaRig.create(PREFIX);
  t.teardown(() => rig.destroy());
  for (const b of [startIdBackend(rig, 'b1'), startIdBackend(rig, 'b2')]) t.ok(await waitForOutput(b, 'ready', 15_000), 'backend ready');
  return rig;
}

/** Sample both nodes for `ms`; returns how often each held the VIP and how often both did. */
async function sample(rig: HaRig, ms: number): Promise<{ samples: number; both: number; n1: number; n2: number }> {
  const until = Date.now() + ms;
  const seen = { samples: 0, both: 0, n1: 0, n2: 0 };
  while (Date.now() < until) {
    const [a, b] = await Promise.all([rig.holds('n1'), rig.holds('n2')]);
    seen.samples++;
    if (a) seen.n1++;
    if (b) seen.n2++;
    if (a && b) seen.both++;
    await new Promise((r) => setTimeout(r, 20));
  }
  return seen;
}

/** keepalived only moves the address: its node runs Fulcrum without `ha:` to serve it. */
function keepalivedNode(rig: HaRig, config: string): Entry {
  startFulcrum(rig, 'n2', fulcrumConfig({ priority: 1, ha: false }));
  return startKeepalived(rig, 'n2', config) as Entry;
}

async function clientsServed(t: Test, rig: HaRig, via: string): Promise<void> {
  const client = startProbeClient(rig, 'cl', { count: 4 });
  await client.exit;
  const results = probeResults(client);
  t.ok(results.length === 4 && results.every((r: { ok: boolean }) => r.ok), `clients served through the VIP on ${via}`);
}

for (const mode of ['multicast', 'unicast'] as const) {
  t.test(`Fulcrum Master, keepalived Backup (${mode}): the VIP moves to keepalived and back`, async (t) => {
    const rig = await rigWithBackends(t);
    const unicast = mode === 'unicast';
    const fulcrum = () =>
      startFulcrum(rig, 'n1', fulcrumConfig({ priority: 150, ...(unicast ? { unicastPeers: [address('n2')] } : {}) })) as Entry;
    let n1 = fulcrum();
    const ka = keepalivedNode(
      rig,
      keepalivedConfig({ priority: 100, ...(unicast ? { unicastSource: address('n2'), unicastPeers: [address('n1')] } : {}) }),
    ) as Entry;
    t.ok(await waitFor(async () => (await rig.holds('n1')) && !(await rig.holds('n2')), 15_000), 'Fulcrum (150) holds the VIP, keepalived (100) not');
    let seen = await sample(rig, 1500);
    t.equal(seen.both, 0, `never both (${seen.samples} samples)`);
    t.equal(seen.n1, seen.samples, 'Fulcrum held it throughout');
    t.match(ka.stdout + ka.stderr, /Entering BACKUP STATE/, 'keepalived is Backup');
    await clientsServed(t, rig, 'Fulcrum');

    // Graceful stop: priority 0, keepalived takes over after its skew time.
    process.kill(n1.child.pid, 'SIGTERM');
    t.ok(await waitFor(() => rig.holds('n2'), 2000, 10), 'keepalived took the VIP after the graceful stop');
    await n1.exit;
    t.notOk(await rig.holds('n1'), 'Fulcrum released it');
    t.match(ka.stdout + ka.stderr, /priority 0 advertisement/, 'keepalived saw the priority-0 advert');
    await clientsServed(t, rig, 'keepalived');

    // Fulcrum returns with the higher priority and preempts keepalived.
    n1 = fulcrum();
    t.ok(await waitFor(async () => (await rig.holds('n1')) && !(await rig.holds('n2')), 15_000), 'Fulcrum took the VIP back');
    seen = await sample(rig, 1000);
    t.equal(seen.both, 0, `never both after the preemption (${seen.samples} samples)`);
    t.match(ka.stdout + ka.stderr, /higher priority 150/, 'keepalived yielded to the higher priority');

    // kill -9: keepalived takes over when the adverts stop.
    process.kill(n1.child.pid, 'SIGKILL');
    await n1.exit;
    t.ok(await waitFor(() => rig.holds('n2'), 2000, 10), 'keepalived took the VIP after kill -9');
  });
}

t.test('keepalived Master, Fulcrum Backup: Fulcrum takes over on keepalived stop and kill -9', async (t) => {
  const rig = await rigWithBackends(t);
  startFulcrum(rig, 'n2', fulcrumConfig({ priority: 1, ha: false }));
  const startKa = () => startKeepalived(rig, 'n2', keepalivedConfig({ priority: 200 })) as Entry;
  let ka = startKa();
  const n1 = startFulcrum(rig, 'n1', fulcrumConfig({ priority: 150 })) as Entry;
  t.ok(await waitFor(async () => (await rig.holds('n2')) && !(await rig.holds('n1')), 15_000), 'keepalived (200) holds the VIP, Fulcrum (150) not');
  let seen = await sample(rig, 1500);
  t.equal(seen.both, 0, `never both (${seen.samples} samples)`);
  t.equal(seen.n2, seen.samples, 'keepalived held it throughout');
  // keepalived holding the VIP says nothing about Fulcrum having started: wait for its word.
  t.ok(await waitFor(() => n1.stdout.includes('"to":"backup"'), 15_000), 'Fulcrum is Backup');
  await clientsServed(t, rig, 'keepalived');

  process.kill(ka.child.pid, 'SIGTERM');
  t.ok(await waitFor(() => rig.holds('n1'), 2000, 10), 'Fulcrum took the VIP after keepalived stopped');
  t.ok(n1.stdout.split('\n').some((l) => l.includes('"to":"master"')), 'Fulcrum logged the transition');
  await ka.exit;
  t.notOk(await rig.holds('n2'), 'keepalived released it');
  await clientsServed(t, rig, 'Fulcrum');

  ka = startKa();
  t.ok(await waitFor(async () => (await rig.holds('n2')) && !(await rig.holds('n1')), 15_000), 'keepalived (200) preempted Fulcrum');
  seen = await sample(rig, 1000);
  t.equal(seen.both, 0, 'never both after the preemption');

  killTree(ka.child.pid); // keepalived and its VRRP child
  await ka.exit;
  // keepalived killed with -9 leaves its VIP; Fulcrum takes over regardless (the address on a dead node's link is harmless here).
  t.ok(await waitFor(() => rig.holds('n1'), 2000, 10), 'Fulcrum took the VIP after keepalived was killed');
});
