// The kernel's own work during a measurement, for paths whose cost is no
// longer in the proxy process (the sockmap relay, the TC NAT): how often the
// kernel's worker threads ran and for how long, and the machine's softirq
// time.
//
// kworkers: the psock backlog of a sockmap redirect to a peer's egress runs
// as a work item (sk_psock_backlog), so each message relayed that way wakes
// a kworker on that CPU. /proc/PID/schedstat gives per thread the time on CPU,
// the time spent runnable but waiting for a CPU (wake-up to run: the delay a
// message sees) and the number of times it was switched in (timeslices,
// about one per wake-up for a worker that sleeps between items). Summed over
// every kworker on the machine, so other work's kworkers count too: compare
// paths within one run, where the direct path shows the background.
//
// softirq: /proc/stat's softirq column over all CPUs (jiffies), where the
// redirect of the TC NAT and the TCP receive path run.

import { readFileSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5000 });
  const n = Number.parseInt(r.stdout ?? '', 10);
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/** Kernel worker threads by name prefix: summed schedstat of each group. */
const GROUPS = { kworker: 'kworker/', ksoftirqd: 'ksoftirqd/' };

function read(path) {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null; // exited while we looked
  }
}

/** `{ threads: Map pid -> { group, runNs, waitNs, slices }, softirqTicks, systemTicks, busyTicks }` now. */
export function kernelWorkSnapshot() {
  const threads = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const comm = read(`/proc/${name}/comm`);
    if (!comm) continue;
    const group = Object.keys(GROUPS).find((g) => comm.startsWith(GROUPS[g]));
    if (!group) continue;
    const stat = read(`/proc/${name}/schedstat`);
    if (!stat) continue;
    const [runNs, waitNs, slices] = stat.trim().split(/\s+/).map(Number);
    threads.set(name, { group, runNs, waitNs, slices });
  }
  // cpu  user nice system idle iowait irq softirq steal ...
  const v = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number);
  return { threads, softirqTicks: v[6], systemTicks: v[2] + v[5] + v[6], busyTicks: v[0] + v[1] + v[2] + v[5] + v[6] + v[7] };
}

/**
 * Per unit of work (`count` round trips, requests or datagrams) between two
 * snapshots: `{ kworkerRuns, kworkerRunUs, kworkerWaitUs, ksoftirqdUs,
 * softirqUs, systemUs, busyUs }` — kworker switch-ins, kworker CPU µs,
 * kworker runnable-but-waiting µs (all per unit), ksoftirqd CPU µs, softirq
 * µs, system + irq + softirq µs and all busy CPU µs per unit, summed over
 * every CPU. Kworkers that appeared in between count from zero; the work of
 * those that exited in between is lost (the kernel retires idle kworkers).
 */
export function kernelWorkPer(before, after, count) {
  if (!(count > 0)) return {};
  const sums = Object.fromEntries(Object.keys(GROUPS).map((g) => [g, { runNs: 0, waitNs: 0, slices: 0 }]));
  for (const [pid, a] of after.threads) {
    const b = before.threads.get(pid);
    const same = b && b.group === a.group && b.slices <= a.slices; // a reused PID starts again
    for (const k of ['runNs', 'waitNs', 'slices']) sums[a.group][k] += a[k] - (same ? b[k] : 0);
  }
  const d = (g, k) => sums[g][k];
  const ticksUs = (k) => ((after[k] - before[k]) / CLK_TCK) * 1e6 / count;
  return {
    kworkerRuns: d('kworker', 'slices') / count,
    kworkerRunUs: d('kworker', 'runNs') / 1e3 / count,
    kworkerWaitUs: d('kworker', 'waitNs') / 1e3 / count,
    ksoftirqdUs: d('ksoftirqd', 'runNs') / 1e3 / count,
    softirqUs: ticksUs('softirqTicks'),
    systemUs: ticksUs('systemTicks'),
    busyUs: ticksUs('busyTicks'),
  };
}
