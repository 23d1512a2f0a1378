// The ECMP case of bench/failover.mjs: two Fulcrum nodes announce one VIP over
// BGP through their own BIRD to a router namespace running BIRD with
// multipath (test/system/helpers/ecmp-rig.mjs). A client connects to the VIP
// every PROBE_INTERVAL_MS; the router spreads the connects over both nodes by
// its L4 hash. Then n1 goes away:
//   poweroff   SIGKILL every process of n1 (Fulcrum, BIRD) and take its link
//              down at once: nothing is said to the router, BFD must notice
//   kill9      SIGKILL every process of n1; its kernel still closes the BGP
//              session (TCP FIN), so the router learns at once
//   graceful   SIGTERM n1's Fulcrum: it withdraws, keeps serving for
//              withdraw_grace, then drains
// The variant "poweroff, no BFD" runs the same with bfd: false on every side,
// to show what BFD buys (the BGP hold time, 9 s, decides instead).
// Per measurement: withdrawn = event → the router's route has n2 only (polled
// every 10 ms); first ok = event → the first connect started after it that a
// backend answered (through n2: n1 is gone); last failure = event → the start
// of the last connect that failed (from then on every connect succeeds);
// failed = connects in the window without a backend's reply.
import { killTree, probeResults, startFulcrum, startIdBackend, startProbeClient, waitFor, waitForOutput } from '../../test/system/helpers/ha-rig.mjs';
import { ECMP_VIP, EcmpRig, ecmpNodeConfig, lbAddress, ROUTER_LB } from '../../test/system/helpers/ecmp-rig.mjs';

export const ECMP_PROBE_INTERVAL_MS = 20;
const PROBE_TIMEOUT_MS = 1000;
const AFTER_MS = { poweroff: 2500, kill9: 2000, graceful: 2000, 'poweroff-nobfd': 12_000 };

async function measure(rig, variant) {
  const event = variant === 'poweroff-nobfd' ? 'poweroff' : variant;
  const bfd = variant !== 'poweroff-nobfd';
  const router = rig.startRouter(['n1', 'n2'], { bfd });
  const nodes = ['n1', 'n2'].map((n) => startFulcrum(rig, n, ecmpNodeConfig(rig, n, { sync: false, bfd, withdrawGrace: '300ms' }).replace('level: debug', 'level: info')));
  try {
    const both = await waitFor(async () => (await rig.nextHops()).length === 2, 30_000, 50);
    if (!both) throw new Error(`${variant}: the router never had both next hops`);
    await new Promise((r) => setTimeout(r, 500));
    const count = Math.ceil((1000 + AFTER_MS[variant]) / ECMP_PROBE_INTERVAL_MS);
    const client = startProbeClient(rig, 'cl', { intervalMs: ECMP_PROBE_INTERVAL_MS, count, timeoutMs: PROBE_TIMEOUT_MS, target: `${ECMP_VIP}:8080` });
    await new Promise((r) => setTimeout(r, 1000));
    const at = Date.now();
    if (event === 'graceful') process.kill(nodes[0].child.pid, 'SIGTERM');
    else {
      // Power off: the link first, so not even the kernel's FIN for BIRD's BGP socket gets out.
      if (event === 'poweroff') await rig.exec('n1', 'ip', ['link', 'set', 'eth0', 'down']);
      killTree(nodes[0].child.pid);
    }
    const withdrawn = await waitFor(async () => {
      const hops = await rig.nextHops();
      return hops.length === 1 && hops[0] === lbAddress('n2') ? Date.now() : undefined;
    }, AFTER_MS[variant] + 5000, 10);
    await client.exit;
    const results = probeResults(client);
    const after = results.filter((r) => r.at >= at);
    const firstOk = after.filter((r) => r.ok).sort((a, b) => a.at - b.at)[0];
    const failures = results.filter((r) => !r.ok);
    const lastFailure = failures.length > 0 ? failures[failures.length - 1] : undefined;
    return {
      withdrawnMs: withdrawn ? withdrawn - at : Number.NaN,
      firstOkMs: firstOk ? firstOk.at - at : Number.NaN,
      lastFailureMs: lastFailure ? Math.max(0, lastFailure.at - at) : 0,
      failed: failures.length,
      attempts: results.length,
    };
  } finally {
    for (const e of [...nodes, router]) if (!e.exited) killTree(e.child.pid);
    await Promise.all([...nodes, router].map((e) => Promise.race([e.exit, new Promise((r) => setTimeout(r, 3000))])));
    // A link that went down lost its routes: bring n1 back as it was.
    await rig.exec('n1', 'ip', ['link', 'set', 'eth0', 'up']);
    await rig.exec('n1', 'ip', ['route', 'replace', 'default', 'via', ROUTER_LB]);
  }
}

/** Runs every variant `rounds` times, interleaved with the order rotated; returns the samples by variant. */
export async function runEcmpFailover({ prefix, rounds, variants, log }) {
  const rig = await EcmpRig.create(prefix);
  const samples = new Map(variants.map((v) => [v, []]));
  try {
    for (const b of [startIdBackend(rig, 'b1'), startIdBackend(rig, 'b2')]) await waitForOutput(b, 'ready', 5000);
    for (let round = 0; round < rounds; round++) {
      const order = variants.map((_, i) => variants[(i + round) % variants.length]);
      for (const variant of order) {
        const result = await measure(rig, variant);
        samples.get(variant).push(result);
        log(`round ${round + 1}/${rounds} ecmp ${variant.padEnd(15)}: route withdrawn in ${Math.round(result.withdrawnMs)}ms, ` +
          `first ok connect ${Math.round(result.firstOkMs)}ms, last failure ${result.lastFailureMs}ms, ${result.failed}/${result.attempts} connects failed`);
      }
    }
  } finally {
    await rig.destroy();
  }
  return samples;
}
