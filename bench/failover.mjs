#!/usr/bin/env node
// VRRP failover: how long the virtual IP is gone and how many client connects
// fail when the Master goes away, for a Fulcrum pair (`ha:` block) and a
// keepalived pair (vrrp_version 3) in the same namespace rig, interleaved
// round by round with the order rotated.
//
//   node bench/failover.mjs [--cases vrrp,ecmp] [--rounds 3] [--intervals 1000,100] [--events kill9,graceful]
//        [--pairs fulcrum,keepalived] [--ecmp-rounds 5] [--ecmp-events poweroff,kill9,graceful,poweroff-nobfd]
//        [--quick] [--write]
//
// --cases ecmp: active-active behind a router's ECMP with BGP and BFD; see
// bench/lib/ecmp-failover.mjs for what is killed and measured.
//
// Per measurement: n1 (priority 150) is Master, n2 (100) Backup; the client
// connects to VIP:8080 every 50 ms (1 s timeout) and each connect must be
// answered by a backend. Events:
//   kill9     SIGKILL every process of the Master's node (Fulcrum; or keepalived
//             and the plain Fulcrum beside it): the VIP stays on n1's link as on
//             a hung node, n2 takes over when the adverts stop
//   graceful  SIGTERM the VRRP daemon of n1 (Fulcrum, or keepalived): it sends
//             priority 0 and removes the VIP, n2 takes over after its skew time
// Failover time: from the event to the VIP added on n2 (netlink events via
// `ip monitor`, no polling). Failed connects: attempts in the measurement
// window that did not get a backend's reply.
//
// In both pairs the data plane is Fulcrum (binding the VIP with IP_FREEBIND);
// only what moves the address differs. Root, keepalived and iproute2 needed.
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import {
  HaRig,
  VIP,
  killTree,
  fulcrumConfig,
  keepalivedConfig,
  probeResults,
  removeStaleNamespaces,
  startFulcrum,
  startIdBackend,
  startKeepalived,
  startProbeClient,
  waitFor,
  waitForOutput,
} from '../test/system/helpers/ha-rig.mjs';
import { summarize, ratio, fixed } from './lib/stats.mjs';
import { markdownTable } from './lib/table.mjs';
import { writeSection, RESULTS_FILE } from './lib/results.mjs';
import { machineInfo, commandLine } from './lib/machine.mjs';
import { runEcmpFailover, ECMP_PROBE_INTERVAL_MS } from './lib/ecmp-failover.mjs';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    intervals: { type: 'string', default: '1000,100' },
    events: { type: 'string', default: 'kill9,graceful' },
    pairs: { type: 'string', default: 'fulcrum,keepalived' },
    cases: { type: 'string', default: 'vrrp,ecmp' },
    'ecmp-rounds': { type: 'string', default: '5' },
    'ecmp-events': { type: 'string', default: 'poweroff,kill9,graceful,poweroff-nobfd' },
    quick: { type: 'boolean', default: false },
    write: { type: 'boolean', default: false },
  },
});
const ROUNDS = args.quick ? 1 : Number(args.rounds);
const INTERVALS = args.intervals.split(',').map(Number);
const EVENTS = args.events.split(',');
const PAIRS = args.pairs.split(',');
const PROBE_INTERVAL_MS = 50;
const PROBE_TIMEOUT_MS = 1000;
const TARGETS_AT_100MS = { kill9: 400, graceful: 100 };
const CASES = args.cases.split(',');
const ECMP_ROUNDS = args.quick ? 1 : Number(args['ecmp-rounds']);
const ECMP_EVENTS = args['ecmp-events'].split(',');

const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

if (process.getuid() !== 0) {
  console.error('bench/failover.mjs needs root (network namespaces, raw sockets)');
  process.exit(2);
}
try {
  execFileSync('keepalived', ['--version'], { stdio: 'ignore' });
} catch {
  if (CASES.includes('vrrp') && PAIRS.includes('keepalived')) {
    console.error('keepalived is not installed (apt-get install keepalived)');
    process.exit(2);
  }
}

/** Start the pair; resolves once n1 holds the VIP and n2 does not. Returns what kill9/graceful act on. */
async function startPair(rig, pair, intervalMs) {
  if (pair === 'fulcrum') {
    const n1 = startFulcrum(rig, 'n1', fulcrumConfig({ priority: 150, advertInterval: `${intervalMs}ms` }));
    const n2 = startFulcrum(rig, 'n2', fulcrumConfig({ priority: 100, advertInterval: `${intervalMs}ms` }));
    return { daemon: n1, node: [n1], all: [n1, n2] };
  }
  const p1 = startFulcrum(rig, 'n1', fulcrumConfig({ ha: false }));
  const p2 = startFulcrum(rig, 'n2', fulcrumConfig({ ha: false }));
  const k1 = startKeepalived(rig, 'n1', keepalivedConfig({ priority: 150, advertInterval: intervalMs / 1000, name: 'k1' }));
  const k2 = startKeepalived(rig, 'n2', keepalivedConfig({ priority: 100, advertInterval: intervalMs / 1000, name: 'k2' }));
  return { daemon: k1, node: [k1, p1], all: [k1, k2, p1, p2] };
}

async function stopAll(rig, entries) {
  for (const e of entries) {
    if (!e.exited) killTree(e.child.pid);
  }
  await Promise.all(entries.map((e) => Promise.race([e.exit, new Promise((r) => setTimeout(r, 2000))])));
  for (const host of ['n1', 'n2']) await rig.exec(host, 'ip', ['addr', 'del', `${VIP}/24`, 'dev', 'eth0']);
}

async function measure(rig, pair, event, intervalMs) {
  const procs = await startPair(rig, pair, intervalMs);
  try {
    const ready = await waitFor(async () => (await rig.holds('n1')) && !(await rig.holds('n2')), 8 * intervalMs + 8000, 20);
    if (!ready) throw new Error(`${pair}: n1 never became the only Master`);
    await new Promise((r) => setTimeout(r, 3 * intervalMs + 300)); // settled: n2 has heard several adverts
    const watch = rig.watchVip('n2');
    const downMs = 3 * intervalMs + ((256 - 100) * intervalMs) / 256;
    const after = downMs + 1500;
    const count = Math.ceil((1000 + after) / PROBE_INTERVAL_MS);
    const client = startProbeClient(rig, 'cl', { intervalMs: PROBE_INTERVAL_MS, count, timeoutMs: PROBE_TIMEOUT_MS });
    await new Promise((r) => setTimeout(r, 1000));
    const at = Date.now();
    // kill9: keepalived's VRRP child too (killTree), all at the same instant.
    if (event === 'kill9') for (const e of procs.node) killTree(e.child.pid);
    else process.kill(procs.daemon.child.pid, 'SIGTERM');
    const added = await waitFor(() => watch.addedAfter(at), downMs + 5000, 2);
    await client.exit;
    watch.stop();
    const results = probeResults(client);
    const failures = results.filter((r) => !r.ok);
    // When each failed connect started, relative to the event, and why: tells a
    // takeover gap from a stale ARP entry or a connection cut on the old Master.
    const detail = failures.map((r) => `${r.at - at}ms:${r.error}`).join(' ');
    return { failoverMs: added ? added.at - at : Number.NaN, failed: failures.length, attempts: results.length, detail };
  } finally {
    await stopAll(rig, procs.all);
  }
}

const sections = [];
if (CASES.includes('vrrp')) sections.push(await runVrrp());
if (CASES.includes('ecmp')) sections.push(await runEcmp());
if (args.write) {
  for (const [key, body] of sections) console.log(`${writeSection(key, body)} the ${key} section of ${RESULTS_FILE}`);
}

/** The date, command, machine and load lines of a recorded section. */
function runLines(started, machine, load) {
  return [
    `- date: ${started.toISOString().replace(/\.\d+Z$/, 'Z')}`,
    `- command: \`${commandLine()}\``,
    ...[...machine, ['loadavg', `${load} (other engineers' builds and tests share this 2-core machine)`]].map(([k, v]) => `- ${k}: ${v}`),
  ];
}

async function runVrrp() {
  const prefix = `fulhb-${process.pid}-`;
  await removeStaleNamespaces('fulhb-');
  const rig = await HaRig.create(prefix);
  const cleanup = () => rig.destroy();
  process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));
  const loadAtStart = loadavg();
  const started = new Date();
  const samples = new Map(); // key pair|event|interval → [{failoverMs, failed, attempts}]
  try {
    for (const b of [startIdBackend(rig, 'b1'), startIdBackend(rig, 'b2')]) await waitForOutput(b, 'ready', 5000);
    for (let round = 0; round < ROUNDS; round++) {
      for (const intervalMs of INTERVALS) {
        for (const event of EVENTS) {
          const order = round % 2 === 0 ? PAIRS : [...PAIRS].reverse();
          for (const pair of order) {
            const result = await measure(rig, pair, event, intervalMs);
            const key = `${pair}|${event}|${intervalMs}`;
            if (!samples.has(key)) samples.set(key, []);
            samples.get(key).push(result);
            console.log(
              `round ${round + 1}/${ROUNDS} ${pair.padEnd(10)} ${event.padEnd(8)} advert ${String(intervalMs).padStart(4)}ms: ` +
                `VIP moved in ${fixed(result.failoverMs, 0)}ms, ${result.failed}/${result.attempts} connects failed` +
                (result.failed > 0 ? ` [${result.detail}]` : ''),
            );
          }
        }
      }
    }
  } finally {
    await cleanup();
  }

  const rows = [];
  const verdicts = [];
  for (const intervalMs of INTERVALS) {
    for (const event of EVENTS) {
      const stat = {};
      for (const pair of PAIRS) {
        const list = samples.get(`${pair}|${event}|${intervalMs}`) ?? [];
        const time = summarize(list.map((s) => s.failoverMs));
        const failed = summarize(list.map((s) => s.failed));
        stat[pair] = { time, failed, total: list.reduce((a, s) => a + s.failed, 0) };
        rows.push([
          pair,
          event,
          `${intervalMs}ms`,
          fixed(time.median, 0),
          `${fixed(time.min, 0)}–${fixed(time.max, 0)}`,
          fixed(failed.median, 1),
          `${fixed(failed.min, 0)}–${fixed(failed.max, 0)}`,
          String(time.n),
        ]);
      }
      if (stat.fulcrum && stat.keepalived) {
        rows.push(['fulcrum / keepalived', event, `${intervalMs}ms`, ratio(stat.fulcrum.time.median, stat.keepalived.time.median), '', '', '', '']);
      }
      if (intervalMs === 100 && stat.fulcrum) {
        const bound = TARGETS_AT_100MS[event];
        const worst = stat.fulcrum.time.max;
        verdicts.push(`- ${event} at 100 ms adverts: VIP moved within ${bound} ms in every round? ${worst <= bound ? 'MET' : 'NOT MET'} (median ${fixed(stat.fulcrum.time.median, 0)} ms, worst ${fixed(worst, 0)} ms)`);
        if (stat.keepalived) {
          const ok = stat.fulcrum.total <= stat.keepalived.total;
          verdicts.push(`- ${event} at 100 ms adverts: failed connects no more than keepalived's? ${ok ? 'MET' : 'NOT MET'} (Fulcrum ${stat.fulcrum.total}, keepalived ${stat.keepalived.total} over ${stat.fulcrum.time.n} rounds)`);
        }
      }
    }
  }
  const table = markdownTable(['pair', 'event', 'advert', 'median ms', 'min–max ms', 'failed connects (median)', 'failed min–max', 'rounds'], rows);
  const load = `${loadAtStart} at start, ${loadavg()} at end`;
  const machine = machineInfo([{ label: 'keepalived', cmd: 'keepalived', args: ['--version'] }]);
  console.log(`\n${table}\n\n${verdicts.join('\n')}\nloadavg: ${load}`);

  const body = [
    '## VRRP failover (bench/failover.mjs)',
    '',
    `Two nodes in network namespaces on one bridge, n1 priority 150 (Master), n2 priority 100; a client connects to the VIP every ${PROBE_INTERVAL_MS} ms (${PROBE_TIMEOUT_MS} ms timeout) through Fulcrum (the data plane on both nodes, in both pairs) to two backends. **kill9**: SIGKILL the Master's processes (the VIP stays on its link, as on a hung node). **graceful**: SIGTERM the Master's VRRP daemon (priority-0 advert). Failover: event → VIP added on n2 (netlink event). ${ROUNDS} interleaved round(s), pair order alternating.`,
    '',
    'Targets at 100 ms adverts: VIP moved within 400 ms of kill -9 and within 100 ms of a graceful stop; no more failed connects than the keepalived pair.',
    '',
    ...runLines(started, machine, load),
    '',
    table,
    '',
    ...verdicts,
  ].join('\n');
  return ['failover', body];
}

async function runEcmp() {
  const prefix = `fulhe-${process.pid}-`;
  await removeStaleNamespaces('fulhe-');
  const loadAtStart = loadavg();
  const started = new Date();
  const samples = await runEcmpFailover({ prefix, rounds: ECMP_ROUNDS, variants: ECMP_EVENTS, log: (line) => console.log(line) });
  const rows = [];
  const verdicts = [];
  for (const [variant, list] of samples) {
    const withdrawn = summarize(list.map((s) => s.withdrawnMs));
    const firstOk = summarize(list.map((s) => s.firstOkMs));
    const lastFailure = summarize(list.map((s) => s.lastFailureMs));
    const failed = summarize(list.map((s) => s.failed));
    const attempts = list.reduce((a, s) => a + s.attempts, 0);
    rows.push([
      variant,
      fixed(withdrawn.median, 0),
      `${fixed(withdrawn.min, 0)}–${fixed(withdrawn.max, 0)}`,
      fixed(firstOk.median, 0),
      fixed(lastFailure.median, 0),
      `${fixed(lastFailure.min, 0)}–${fixed(lastFailure.max, 0)}`,
      `${fixed(failed.median, 1)} (${fixed(failed.min, 0)}–${fixed(failed.max, 0)})`,
      `${list.reduce((a, s) => a + s.failed, 0)}/${attempts}`,
      String(list.length),
    ]);
    if (variant === 'poweroff') verdicts.push(`- poweroff: route withdrawn within 1000 ms (BFD) in every round? ${withdrawn.max <= 1000 ? 'MET' : 'NOT MET'} (median ${fixed(withdrawn.median, 0)} ms, worst ${fixed(withdrawn.max, 0)} ms)`);
    if (variant === 'graceful') verdicts.push(`- graceful: no failed connect? ${failed.max === 0 ? 'MET' : 'NOT MET'} (${list.reduce((a, s) => a + s.failed, 0)} over ${list.length} rounds)`);
  }
  const bfd = samples.get('poweroff');
  const nobfd = samples.get('poweroff-nobfd');
  if (bfd && nobfd) {
    rows.push(['poweroff: BFD / no BFD', ratio(summarize(bfd.map((s) => s.withdrawnMs)).median, summarize(nobfd.map((s) => s.withdrawnMs)).median), '', '', ratio(summarize(bfd.map((s) => s.lastFailureMs)).median, summarize(nobfd.map((s) => s.lastFailureMs)).median), '', '', '', '']);
  }
  const table = markdownTable(['event', 'withdrawn median ms', 'withdrawn min–max', 'first ok connect ms', 'last failure ms (median)', 'last failure min–max', 'failed connects median (min–max)', 'failed / attempts', 'rounds'], rows);
  const load = `${loadAtStart} at start, ${loadavg()} at end`;
  const machine = machineInfo([{ label: 'bird', cmd: 'bird', args: ['--version'] }]);
  console.log(`\n${table}\n\n${verdicts.join('\n')}\nloadavg: ${load}`);
  const body = [
    '## ECMP failover (bench/failover.mjs --cases ecmp)',
    '',
    `Two Fulcrum nodes announce one VIP over BGP (each through its own BIRD, BFD 100 ms x 3) to a router namespace running BIRD with ECMP multipath and L4 hashing; a client behind the router connects to the VIP every ${ECMP_PROBE_INTERVAL_MS} ms (1 s timeout). **poweroff**: SIGKILL n1's processes and take its link down (only BFD can tell). **kill9**: SIGKILL n1's processes (its kernel closes the BGP session). **graceful**: SIGTERM n1 (withdraw, 300 ms grace, drain). **poweroff-nobfd**: poweroff with BFD off everywhere (the 9 s BGP hold time decides). Withdrawn: event → the router's route has n2 only. First ok connect: event → the first later connect a backend answered. Last failure: event → start of the last failed connect. ${ECMP_ROUNDS} interleaved round(s), order rotated.`,
    '',
    ...runLines(started, machine, load),
    '',
    table,
    '',
    ...verdicts,
  ].join('\n');
  return ['failover-ecmp', body];
}
